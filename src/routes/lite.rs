//! Lite — the unprefixed routes of `000_*` (SPEC §6.2), plus `GET /health`.
//!
//! Envelope `{ok, data, error}`; failures carry the message in `error` and the code in `code`.
//! Lite's clients authenticate with `X-Device-Key`; a session token or API key is accepted
//! where the seed shows one.

use super::{Family, Outcome, not_found_route, poll, poll_limit, poll_wait};
use crate::api::daemon::{self, Beat, ResultRequest};
use crate::api::devices::fact;
use crate::api::task_json::{json_col, task_json};
use crate::api::tasks::{self, CreateTaskRequest, Creator};
use crate::api::{auth as accounts, health};
use crate::app::Ctx;
use crate::auth::{Caller, DeviceCaller, require_device, resolve, resolve_token};
use crate::db::devices::Facts;
use crate::db::tasks::{Filter, Task};
use crate::db::users;
use crate::error::{ApiError, ApiResult};
use crate::http::Reply;
use serde::Deserialize;
use serde_json::{Value, json};

const F: Family = Family::Lite;

/// The Lite route table.
pub fn dispatch(cx: &Ctx) -> Outcome {
    let req = cx.req;
    let r = match (req.method.as_str(), req.segs().as_slice()) {
        ("GET", ["health"]) => return health_reply(cx),
        ("GET", ["metrics"]) => return metrics_reply(cx),
        ("POST", ["auth"]) => register_or_login(cx),
        ("GET", ["auth", "verify"]) => verify(cx),
        ("POST", ["daemon", "heartbeat"]) => require_device(cx).and_then(|d| heartbeat(cx, &d)),
        ("GET", ["daemon", "tasks"]) => return daemon_tasks(cx),
        ("POST", ["daemon", "tasks", t, "result"]) => {
            require_device(cx).and_then(|d| result(cx, &d, t))
        }
        ("POST", ["tasks"]) => create_task(cx),
        ("GET", ["tasks"]) => list_tasks(cx),
        ("GET", ["tasks", t]) => get_task(cx, t),
        ("POST", ["tasks", t, "cancel"]) => cancel_task(cx, t),
        _ => Err(not_found_route()),
    };
    F.render(req, 200, r)
}

/// A claimed task in Lite's shape.
fn lite_task(t: &Task) -> Value {
    let env = json_col(&t.env);
    json!({"id": t.id, "command": t.command, "timeout": t.timeout_ms, "cwd": t.cwd, "env": env, "priority": t.priority, "attempt": t.attempt})
}

/// `POST /daemon/heartbeat` {status, os, version}: records the beat and CLAIMS the device's
/// pending tasks, as the seed's author's own server did: `pending_tasks` are now running.
fn heartbeat(cx: &Ctx, d: &DeviceCaller) -> ApiResult<Value> {
    #[derive(Deserialize, Default)]
    struct Body {
        status: Option<String>,
        os: Option<String>,
        version: Option<String>,
    }
    let b: Body = cx.req.json_or_default()?;
    let facts = Facts {
        os_type: fact(b.os.as_deref()),
        ccjk_version: fact(b.version.as_deref()),
        ..Facts::default()
    };
    let (r, claimed) = daemon::beat_and_claim(
        cx,
        d,
        Beat {
            status: b.status,
            facts,
            ..Beat::default()
        },
        50,
    )?;
    let list: Vec<Value> = claimed.iter().map(lite_task).collect();
    Ok(json!({"pending_tasks": list, "cancel_tasks": r.cancel_tasks}))
}

fn render_tasks(cx: &Ctx, tasks: &[Task], cancels: &[String]) -> Reply {
    let list: Vec<Value> = tasks.iter().map(lite_task).collect();
    F.ok(cx.req, 200, json!({"tasks": list, "cancel_tasks": cancels}))
}

/// `GET /daemon/tasks` (claims; `?wait=` long-polls as in `/v1`).
fn daemon_tasks(cx: &Ctx) -> Outcome {
    match require_device(cx).and_then(|d| Ok((d, poll_wait(cx.req)?))) {
        Ok((d, wait)) => poll(cx, &d, poll_limit(cx.req), wait, render_tasks),
        Err(e) => F.render(cx.req, 200, Err(e)),
    }
}

fn result(cx: &Ctx, d: &DeviceCaller, id: &str) -> ApiResult<Value> {
    let b: ResultRequest = cx.req.json()?;
    let t = match daemon::report(cx, d, id, b)? {
        daemon::Reported::Accepted(t)
        | daemon::Reported::Duplicate(t)
        | daemon::Reported::CancelledKept(t) => t,
    };
    Ok(json!({"task_id": t.id, "status": t.status}))
}

/// The owner and (for a device key) the device whose tasks a Lite caller sees.
fn scope(cx: &Ctx, scope: &str) -> ApiResult<Creator> {
    match resolve(cx)? {
        Caller::Device(d) => Ok(Creator {
            user_id: d.user_id,
            session_id: None,
            own_device: Some(d.id),
        }),
        Caller::User(u) if u.has(scope) => Ok(Creator::from(&u)),
        Caller::User(_) => Err(ApiError::insufficient_scope(scope)),
    }
}

/// `POST /tasks` {command, timeout, cwd, env?, priority?}: with a device key the task is for
/// the calling device.
fn create_task(cx: &Ctx) -> ApiResult<Value> {
    let who = scope(cx, "task:create")?;
    let body: CreateTaskRequest = cx.req.json()?;
    let (t, _) = tasks::create(cx, &who, &body, "api")?;
    Ok(json!({"task_id": t.id, "status": t.status}))
}

fn get_task(cx: &Ctx, id: &str) -> ApiResult<Value> {
    let who = scope(cx, "task:read")?;
    let t = tasks::get(cx, who.user_id, id)?;
    if who.own_device.is_some_and(|d| !tasks::is_for_device(&t, d)) {
        return Err(ApiError::not_found("Task"));
    }
    Ok(task_json(&t))
}

fn list_tasks(cx: &Ctx) -> ApiResult<Value> {
    let who = scope(cx, "task:read")?;
    let (limit, offset) = crate::api::page(cx.req);
    let f = Filter {
        status: cx.req.query("status").map(str::to_string),
        device_id: who.own_device,
        limit,
        offset,
        ..Filter::default()
    };
    let list: Vec<Value> = tasks::list(cx, who.user_id, f, None)?
        .iter()
        .map(task_json)
        .collect();
    Ok(json!({"tasks": list}))
}

fn cancel_task(cx: &Ctx, id: &str) -> ApiResult<Value> {
    let who = scope(cx, "task:cancel")?;
    let t = tasks::cancel(cx, who.user_id, id, who.own_device)?;
    Ok(json!({"task_id": t.id, "status": t.status}))
}

/// `GET /health`: a flat `{status, database, version}`; 503 when the database is not answering.
fn health_reply(cx: &Ctx) -> Outcome {
    Outcome::Reply(match health::check(cx) {
        Ok(v) => Reply::json(200, &v),
        Err(e) => Reply::json(
            e.status,
            &json!({"status": "unavailable", "error": e.message}),
        )
        .for_error(&e),
    })
}

/// `GET /metrics`: Prometheus text, or a Lite error.
fn metrics_reply(cx: &Ctx) -> Outcome {
    match health::metrics(cx) {
        Ok(text) => Outcome::Reply(Reply {
            content_type: "text/plain; version=0.0.4",
            ..Reply::text(200, text)
        }),
        Err(e) => F.render(cx.req, 200, Err(e)),
    }
}

/// `POST /auth` {email, password}: registers the email if it is new, else logs in; either way
/// returns the key of the user's primary device, the same key every time.
fn register_or_login(cx: &Ctx) -> ApiResult<Value> {
    let b: accounts::RegisterInput = cx.req.json()?;
    let email = b.email.trim();
    let known = users::find_for_login(cx.db, email)?.is_some();
    let user_id = if known || !cx.cfg().signups_open {
        accounts::login(cx, email, &b.password)?.id
    } else {
        match accounts::register(cx, &b, None) {
            Ok((u, _)) => u.id,
            // Registered by a concurrent request a moment ago: log in instead.
            Err(e) if e.code == "EMAIL_TAKEN" => accounts::login(cx, email, &b.password)?.id,
            Err(e) => return Err(e),
        }
    };
    let key = accounts::primary_device_key(cx, user_id)?;
    Ok(json!({"device_key": key, "user_id": user_id}))
}

/// `GET /auth/verify?device_key=` (or `X-Device-Key`): `{valid, user_id}`.
fn verify(cx: &Ctx) -> ApiResult<Value> {
    let token = cx
        .req
        .query("device_key")
        .map(str::to_string)
        .or_else(|| crate::auth::credential(cx))
        .ok_or_else(|| ApiError::unauthorized("Missing device_key"))?;
    let user_id = match resolve_token(cx, &token)? {
        Caller::Device(d) => d.user_id,
        Caller::User(u) => u.user_id(),
    };
    Ok(json!({"valid": true, "user_id": user_id}))
}
