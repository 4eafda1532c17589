//! Control — the contract of the real CCJK CLI v3.7.x daemon under `/api/control`
//! (docs/families.md): its route table and handlers.
//!
//! That daemon ignores HTTP status codes, reads only the JSON body `{success, data, error}` in
//! camelCase, authenticates with `X-Device-Token` (a device key) and never retries a result: a
//! wrong body shape would silently lose a task. So bodies here are read leniently (any content
//! type, unknown fields ignored, every field optional) and replies keep exactly the shape the
//! daemon parses. Heartbeat replies claim the tasks they return, except for an `offline`
//! heartbeat, whose reply the daemon discards.

use crate::db::devices::{BeatRow, DeviceStatus, Facts};
use crate::db::tasks::{Task, TaskStatus};
use crate::domain::daemon::{self, Beat, Reported, ResultRequest};
use crate::domain::devices::{fact, validate_name};
use crate::domain::policy::HEARTBEAT_CLAIM_LIMIT;
use crate::error::ApiResult;
use crate::http::route::{Call, Cap, Lenient, Route, get, post};
use crate::http::views::json_col;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The Control routes.
#[rustfmt::skip]
pub fn routes() -> Vec<Route> {
    vec![
        post("/api/control/devices/register").device()
            .to("The daemon announces itself", register),
        post("/api/control/devices/heartbeat").device()
            .to("Heartbeat; claims and returns pending commands", heartbeat),
        get("/api/control/devices/pending").device()
            .to("Claim pending commands", pending),
        post("/api/control/commands/{id}/result").device().cap(Cap::Output)
            .to("Report a command's result", result),
    ]
}

/// The device as the daemon sees it.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "ControlDevice")]
pub struct DeviceShort {
    pub id: String,
    pub name: String,
    pub platform: Option<String>,
    pub status: DeviceStatus,
}

fn device_short(d: &BeatRow) -> DeviceShort {
    DeviceShort {
        id: d.uuid.clone(),
        name: d.name.clone(),
        platform: d.os_type.clone(),
        status: d.status,
    }
}

/// A claimed task as the daemon runs it.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ControlCommand")]
pub struct Command {
    pub id: String,
    pub device_id: String,
    /// Always `shell`.
    pub command_type: &'static str,
    pub command: String,
    pub args: Value,
    pub cwd: Option<String>,
    pub env: Value,
    /// Milliseconds.
    pub timeout: i64,
    pub priority: i64,
}

fn command(t: &Task, device_uuid: &str) -> Command {
    let args = Some(json_col(t.args.as_deref())).filter(Value::is_array);
    let env = Some(json_col(t.env.as_deref())).filter(|e| !e.is_null());
    Command {
        id: t.id.clone(),
        device_id: device_uuid.to_string(),
        command_type: "shell",
        command: t.command.clone(),
        args: args.unwrap_or_else(|| Value::Array(Vec::new())),
        cwd: t.cwd.clone(),
        env: env.unwrap_or_else(|| Value::Object(Default::default())),
        timeout: t.timeout_ms,
        priority: t.priority,
    }
}

/// What the daemon says about itself.
#[derive(Deserialize, JsonSchema, Default)]
#[schemars(rename = "ControlRegister")]
pub struct RegisterBody {
    pub name: Option<String>,
    pub platform: Option<String>,
    pub hostname: Option<String>,
    pub version: Option<String>,
}

/// The registered device.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "ControlRegistered")]
pub struct Registered {
    pub device: DeviceShort,
}

/// `POST /api/control/devices/register` {name, platform, hostname, version}.
fn register(call: &Call, Lenient(b): Lenient<RegisterBody>) -> ApiResult<Registered> {
    let facts = Facts {
        name: b.name.as_deref().map(validate_name).transpose()?,
        os_type: fact(b.platform.as_deref()),
        hostname: fact(b.hostname.as_deref()),
        ccjk_version: fact(b.version.as_deref()),
        ..Facts::default()
    };
    let beat = Beat {
        status: Some("online".into()),
        facts,
        ..Beat::default()
    };
    let r = daemon::heartbeat(&call.cx, call.device()?, beat, call.ip())?;
    Ok(Registered {
        device: device_short(&r.device),
    })
}

/// Control's heartbeat.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ControlHeartbeat")]
pub struct HeartbeatBody {
    /// `online`, `busy` or `offline`.
    pub status: Option<String>,
    /// Ids of running tasks, or task objects with an `id`.
    pub current_tasks: Option<Vec<Value>>,
    /// The daemon's clock (unused).
    pub timestamp: Option<Value>,
}

/// Claimed commands and the device's status.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ControlHeartbeatReply")]
pub struct HeartbeatReply {
    pub pending_tasks: Vec<Command>,
    pub device_status: DeviceStatus,
    pub cancel_tasks: Vec<String>,
}

/// `POST /api/control/devices/heartbeat` {status, currentTasks, timestamp}: claims what it
/// returns in `pendingTasks`, never for an `offline` heartbeat.
fn heartbeat(call: &Call, Lenient(b): Lenient<HeartbeatBody>) -> ApiResult<HeartbeatReply> {
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
    let (r, claimed) = daemon::beat_and_claim(
        &call.cx,
        call.device()?,
        beat,
        call.ip(),
        HEARTBEAT_CLAIM_LIMIT,
    )?;
    Ok(HeartbeatReply {
        pending_tasks: claimed.iter().map(|t| command(t, &r.device.uuid)).collect(),
        device_status: r.device.status,
        cancel_tasks: r.cancel_tasks,
    })
}

/// Claimed commands.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "ControlCommands")]
pub struct Commands {
    pub commands: Vec<Command>,
}

/// `GET /api/control/devices/pending`: claims.
fn pending(call: &Call, _: ()) -> ApiResult<Commands> {
    let d = call.device()?;
    let list = daemon::claim(&call.cx, d, HEARTBEAT_CLAIM_LIMIT)?;
    Ok(Commands {
        commands: list.iter().map(|t| command(t, &d.uuid)).collect(),
    })
}

/// A command's result.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ControlResult")]
pub struct ResultBody {
    pub exit_code: Option<i64>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    /// Wins over `exitCode` when present.
    pub success: Option<bool>,
    pub error: Option<String>,
    /// Milliseconds (unused: the server times the attempt).
    pub duration: Option<Value>,
}

/// The command's state.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ControlResultReply")]
pub struct ResultReply {
    pub command_id: String,
    pub status: TaskStatus,
}

/// `POST /api/control/commands/{id}/result` {exitCode, stdout, stderr, success, duration}.
fn result(call: &Call, Lenient(b): Lenient<ResultBody>) -> ApiResult<ResultReply> {
    let status = match (b.success, b.exit_code) {
        (Some(true), _) | (None, Some(0)) => "completed",
        _ => "failed",
    };
    let r = ResultRequest {
        status: Some(status.into()),
        exit_code: b.exit_code,
        stdout: b.stdout,
        stderr: b.stderr,
        error: b.error,
        ..ResultRequest::default()
    };
    let t = match daemon::report(&call.cx, call.device()?, call.param("id"), r)? {
        Reported::Accepted(t) | Reported::Duplicate(t) | Reported::CancelledKept(t) => t,
    };
    Ok(ResultReply {
        command_id: t.id,
        status: t.status,
    })
}
