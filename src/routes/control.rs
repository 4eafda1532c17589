//! Control — the contract of the real CCJK CLI v3.7.x daemon under `/api/control` (SPEC §6.5).
//!
//! That daemon ignores HTTP status codes, reads only the JSON body `{success, data, error}` in
//! camelCase, authenticates with `X-Device-Token` (a device key) and never retries a result: a
//! wrong body shape would silently lose a task. So bodies here are read leniently (any content
//! type, unknown fields ignored, every field optional) and replies keep exactly the shape the
//! daemon parses. Heartbeat replies claim the tasks they return, except for an `offline`
//! heartbeat, whose reply the daemon discards.

use super::{Family, Outcome, not_found_route};
use crate::api::daemon::{self, Beat, Reported, ResultRequest};
use crate::api::devices::fact;
use crate::api::task_json::json_col;
use crate::app::Ctx;
use crate::auth::{DeviceCaller, require_device};
use crate::db::devices::{BeatRow, Facts};
use crate::db::tasks::Task;
use crate::error::ApiResult;
use crate::http::parse_json;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const F: Family = Family::Control;

/// The Control route table.
pub fn dispatch(cx: &Ctx) -> Outcome {
    let req = cx.req;
    let r = match (req.method.as_str(), &req.segs()[2..]) {
        ("POST", ["devices", "register"]) => require_device(cx).and_then(|d| register(cx, &d)),
        ("POST", ["devices", "heartbeat"]) => require_device(cx).and_then(|d| heartbeat(cx, &d)),
        ("GET", ["devices", "pending"]) => require_device(cx).and_then(|d| pending(cx, &d)),
        ("POST", ["commands", id, "result"]) => require_device(cx).and_then(|d| result(cx, &d, id)),
        _ => Err(not_found_route()),
    };
    F.render(req, 200, r)
}

/// Reads the body as JSON whatever the content type says (an empty body is `{}`).
fn lenient<T: DeserializeOwned + Default>(cx: &Ctx) -> ApiResult<T> {
    if cx.req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json(&cx.req.body)
}

fn device_short(d: &BeatRow) -> Value {
    json!({"id": d.uuid, "name": d.name, "platform": d.os_type, "status": d.status})
}

/// A claimed task as the daemon runs it.
fn command(t: &Task, device_uuid: &str) -> Value {
    let args = Some(json_col(&t.args)).filter(Value::is_array);
    let env = Some(json_col(&t.env)).filter(|e| !e.is_null());
    json!({
        "id": t.id,
        "deviceId": device_uuid,
        "commandType": "shell",
        "command": t.command,
        "args": args.unwrap_or_else(|| json!([])),
        "cwd": t.cwd,
        "env": env.unwrap_or_else(|| json!({})),
        "timeout": t.timeout_ms,
        "priority": t.priority,
    })
}

/// `POST /api/control/devices/register` {name, platform, hostname, version}.
fn register(cx: &Ctx, d: &DeviceCaller) -> ApiResult<Value> {
    #[derive(Deserialize, Default)]
    struct Body {
        name: Option<String>,
        platform: Option<String>,
        hostname: Option<String>,
        version: Option<String>,
    }
    let b: Body = lenient(cx)?;
    let facts = Facts {
        name: fact(b.name.as_deref()),
        os_type: fact(b.platform.as_deref()),
        hostname: fact(b.hostname.as_deref()),
        ccjk_version: fact(b.version.as_deref()),
        ..Facts::default()
    };
    let r = daemon::heartbeat(
        cx,
        d,
        Beat {
            status: Some("online".into()),
            facts,
            ..Beat::default()
        },
    )?;
    Ok(json!({"device": device_short(&r.device)}))
}

/// `POST /api/control/devices/heartbeat` {status, currentTasks, timestamp}: claims what it
/// returns in `pendingTasks`, never for an `offline` heartbeat.
fn heartbeat(cx: &Ctx, d: &DeviceCaller) -> ApiResult<Value> {
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        status: Option<String>,
        current_tasks: Option<Vec<Value>>,
    }
    let b: Body = lenient(cx)?;
    // currentTasks may be ids or task objects with an id.
    let current = b.current_tasks.map(|l| {
        l.iter()
            .filter_map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .or_else(|| v.get("id").and_then(Value::as_str).map(str::to_string))
            })
            .collect()
    });
    let beat = Beat {
        status: b.status,
        current_tasks: current,
        ..Beat::default()
    };
    let (r, claimed) = daemon::beat_and_claim(cx, d, beat, 50)?;
    let list: Vec<Value> = claimed.iter().map(|t| command(t, &r.device.uuid)).collect();
    Ok(
        json!({"pendingTasks": list, "deviceStatus": r.device.status, "cancelTasks": r.cancel_tasks}),
    )
}

/// `GET /api/control/devices/pending`: claims.
fn pending(cx: &Ctx, d: &DeviceCaller) -> ApiResult<Value> {
    let list: Vec<Value> = daemon::claim(cx, d, 50)?
        .iter()
        .map(|t| command(t, &d.uuid))
        .collect();
    Ok(json!({"commands": list}))
}

/// `POST /api/control/commands/{id}/result` {exitCode, stdout, stderr, success, duration}.
fn result(cx: &Ctx, d: &DeviceCaller, id: &str) -> ApiResult<Value> {
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        exit_code: Option<i64>,
        stdout: Option<String>,
        stderr: Option<String>,
        success: Option<bool>,
        error: Option<String>,
    }
    let b: Body = lenient(cx)?;
    let status = match (b.success, b.exit_code) {
        (Some(true), _) => "completed",
        (Some(false), _) => "failed",
        (None, Some(0)) => "completed",
        (None, _) => "failed",
    };
    let r = ResultRequest {
        status: Some(status.into()),
        exit_code: b.exit_code,
        stdout: b.stdout,
        stderr: b.stderr,
        error: b.error,
        attempt: None,
    };
    let t = match daemon::report(cx, d, id, r)? {
        Reported::Accepted(t) | Reported::Duplicate(t) | Reported::CancelledKept(t) => t,
    };
    Ok(json!({"commandId": t.id, "status": t.status}))
}
