//! `/v1` handlers for devices, the daemon protocol and tasks (SPEC §6.1). Each maps Full's
//! field names onto the shared domain functions (`api::devices`, `api::daemon`, `api::tasks`)
//! and returns the `data` of the envelope.

use super::F;
use crate::api::daemon::{self, Beat, Reported, ResultRequest};
use crate::api::devices::{self, config_json, device_json, fact};
use crate::api::task_json::{claimed_json, task_json};
use crate::api::tasks::{self, CreateTaskRequest, Creator};
use crate::app::Ctx;
use crate::auth::{DeviceCaller, UserCaller, require_device, require_user};
use crate::db::devices::Facts;
use crate::db::tasks::{Filter, Task};
use crate::error::{ApiError, ApiResult};
use crate::http::Reply;
use crate::routes::{Outcome, poll, poll_limit, poll_wait};
use serde::Deserialize;
use serde_json::{Map, Value, json};

#[derive(Deserialize, Default)]
struct NameBody {
    #[serde(default)]
    name: String,
}

pub fn list_devices(cx: &Ctx, u: &UserCaller) -> ApiResult<Value> {
    let list: Vec<Value> = devices::list(cx, u)?.iter().map(device_json).collect();
    Ok(json!({"devices": list}))
}

pub fn create_device(cx: &Ctx, u: &UserCaller) -> ApiResult<Value> {
    let b: NameBody = cx.req.json()?;
    let (d, key) = devices::create(cx, u.user_id(), &b.name)?;
    Ok(json!({"device": device_json(&d), "device_key": key}))
}

pub fn get_device(cx: &Ctx, u: &UserCaller, id: &str) -> ApiResult<Value> {
    Ok(json!({"device": device_json(&devices::get(cx, u.user_id(), id)?)}))
}

pub fn rename_device(cx: &Ctx, u: &UserCaller, id: &str) -> ApiResult<Value> {
    let b: NameBody = cx.req.json()?;
    Ok(json!({"device": device_json(&devices::rename(cx, u.user_id(), id, &b.name)?)}))
}

pub fn device_config(cx: &Ctx, u: &UserCaller, id: &str) -> ApiResult<Value> {
    let patch: Map<String, Value> = cx.req.json()?;
    let d = devices::set_config(cx, u.user_id(), id, patch)?;
    Ok(json!({"device": device_json(&d), "config": config_json(&d)}))
}

pub fn rotate_key(cx: &Ctx, u: &UserCaller, id: &str) -> ApiResult<Value> {
    let (d, key) = devices::rotate_key(cx, u.user_id(), id)?;
    Ok(json!({"device": device_json(&d), "device_key": key}))
}

pub fn delete_device(cx: &Ctx, u: &UserCaller, id: &str) -> ApiResult<Value> {
    devices::delete(cx, u.user_id(), id)?;
    Ok(json!({"message": "Device deleted"}))
}

/// `POST /v1/daemon/register`: 201 for a new device, 200 when the `X-Device-ID` is known.
pub fn register(cx: &Ctx) -> Outcome {
    let r = require_user(cx, "device:write").and_then(|u| {
        let machine = cx.req.header("x-device-id").unwrap_or("").to_string();
        let body: devices::RegisterRequest = cx.req.json_or_default()?;
        devices::register(cx, &u, &machine, &body)
    });
    match r {
        Ok((d, key, created)) => F.render(
            cx.req,
            if created { 201 } else { 200 },
            Ok(json!({"device_id": d.uuid, "device_key": key, "config": config_json(&d), "device": device_json(&d)})),
        ),
        Err(e) => F.render(cx.req, 200, Err(e)),
    }
}

/// Full's heartbeat body.
#[derive(Deserialize, Default)]
struct HeartbeatBody {
    status: Option<String>,
    current_tasks: Option<Vec<String>>,
    system_info: Option<Value>,
    os_type: Option<String>,
    os_version: Option<String>,
    ccjk_version: Option<String>,
}

pub fn heartbeat(cx: &Ctx, d: &DeviceCaller) -> ApiResult<Value> {
    let b: HeartbeatBody = cx.req.json_or_default()?;
    let beat = Beat {
        status: b.status,
        current_tasks: b.current_tasks,
        system_info: b.system_info,
        facts: Facts {
            os_type: fact(b.os_type.as_deref()),
            os_version: fact(b.os_version.as_deref()),
            ccjk_version: fact(b.ccjk_version.as_deref()),
            ..Facts::default()
        },
    };
    let r = daemon::heartbeat(cx, d, beat)?;
    Ok(json!({
        "device_status": r.device.status,
        "config": r.device.config,
        "pending_count": daemon::pending_count(cx, d, &r)?,
        "cancel_tasks": r.cancel_tasks,
    }))
}

fn render_pending(cx: &Ctx, tasks: &[Task], cancels: &[String]) -> Reply {
    let list: Vec<Value> = tasks.iter().map(claimed_json).collect();
    F.ok(
        cx.req,
        200,
        json!({"tasks": list, "count": list.len(), "cancel_tasks": cancels}),
    )
}

/// `GET /v1/daemon/tasks/pending?limit=10&wait=0..60`: claims; `wait` long-polls.
pub fn pending(cx: &Ctx) -> Outcome {
    match require_device(cx).and_then(|d| Ok((d, poll_wait(cx.req)?))) {
        Ok((d, wait)) => poll(cx, &d, poll_limit(cx.req), wait, render_pending),
        Err(e) => F.render(cx.req, 200, Err(e)),
    }
}

pub fn progress(cx: &Ctx, d: &DeviceCaller, id: &str) -> ApiResult<Value> {
    #[derive(Deserialize)]
    struct Body {
        progress: i64,
        stdout: Option<String>,
        stderr: Option<String>,
    }
    let b: Body = cx.req.json()?;
    let t = daemon::progress(cx, d, id, b.progress, b.stdout, b.stderr)?;
    Ok(json!({"task_id": t.id, "status": t.status, "progress": t.progress}))
}

/// `POST /v1/daemon/tasks/{id}/result`; a task cancelled meanwhile keeps the output and
/// answers 409 `TASK_NOT_RUNNING`.
pub fn result(cx: &Ctx, d: &DeviceCaller, id: &str) -> ApiResult<Value> {
    let b: ResultRequest = cx.req.json()?;
    match daemon::report(cx, d, id, b)? {
        Reported::Accepted(t) | Reported::Duplicate(t) => {
            Ok(json!({"task_id": t.id, "status": t.status}))
        }
        Reported::CancelledKept(_) => Err(ApiError::conflict(
            "TASK_NOT_RUNNING",
            "Task was cancelled; its output was kept",
        )),
    }
}

pub fn config_sync(cx: &Ctx, d: &DeviceCaller) -> ApiResult<Value> {
    let dev = daemon::config_sync(cx, d)?;
    Ok(
        json!({"device_id": dev.uuid, "config": config_json(&dev), "last_sync_at": dev.last_sync_at}),
    )
}

pub fn offline(cx: &Ctx, d: &DeviceCaller) -> ApiResult<Value> {
    let r = daemon::offline(cx, d)?;
    Ok(json!({"device_status": r.device.status}))
}

/// `POST /v1/tasks`: 201 with the new task, 200 with the first one for a repeated
/// `Idempotency-Key`.
pub fn create_task(cx: &Ctx) -> Outcome {
    let r = require_user(cx, "task:create").and_then(|u| {
        let body: CreateTaskRequest = cx.req.json()?;
        tasks::create(cx, &Creator::from(&u), &body, "api")
    });
    match r {
        Ok((t, replayed)) => F.render(
            cx.req,
            if replayed { 200 } else { 201 },
            Ok(created_json(&t)),
        ),
        Err(e) => F.render(cx.req, 200, Err(e)),
    }
}

fn created_json(t: &Task) -> Value {
    json!({"task_id": t.id, "status": t.status, "estimated_start": t.created_at, "task": task_json(t)})
}

pub fn batch(cx: &Ctx, u: &UserCaller) -> ApiResult<Value> {
    #[derive(Deserialize)]
    struct Body {
        tasks: Vec<CreateTaskRequest>,
        mode: Option<String>,
    }
    let b: Body = cx.req.json()?;
    let sequential = match b.mode.as_deref().unwrap_or("parallel") {
        "parallel" => false,
        "sequential" => true,
        _ => return Err(ApiError::invalid("mode", "must be parallel or sequential")),
    };
    let (batch_id, list) = tasks::batch(cx, &Creator::from(u), &b.tasks, sequential)?;
    let list: Vec<Value> = list.iter().map(task_json).collect();
    Ok(json!({"batch_id": batch_id, "tasks": list}))
}

pub fn list_tasks(cx: &Ctx, u: &UserCaller) -> ApiResult<Value> {
    let (limit, offset) = crate::api::page(cx.req);
    let session_id = match cx.req.query("session_id") {
        Some(s) => Some(
            s.parse::<i64>()
                .map_err(|_| ApiError::not_found("Session"))?,
        ),
        None => None,
    };
    let f = Filter {
        status: cx.req.query("status").map(str::to_string),
        session_id,
        batch_id: cx.req.query("batch_id").map(str::to_string),
        limit: limit + 1,
        offset,
        ..Filter::default()
    };
    let mut list = tasks::list(cx, u.user_id(), f, cx.req.query("device_id"))?;
    let more = list.len() as i64 > limit;
    list.truncate(limit as usize);
    let items: Vec<Value> = list.iter().map(task_json).collect();
    Ok(json!({
        "tasks": items,
        "count": items.len(),
        "limit": limit,
        "offset": offset,
        "next_cursor": more.then(|| (offset + limit).to_string()),
    }))
}

pub fn get_task(cx: &Ctx, u: &UserCaller, id: &str) -> ApiResult<Value> {
    Ok(json!({"task": task_json(&tasks::get(cx, u.user_id(), id)?)}))
}

pub fn cancel_task(cx: &Ctx, u: &UserCaller, id: &str) -> ApiResult<Value> {
    Ok(json!({"task": task_json(&tasks::cancel(cx, u.user_id(), id, None)?)}))
}

pub fn retry_task(cx: &Ctx, u: &UserCaller, id: &str) -> ApiResult<Value> {
    Ok(created_json(&tasks::retry(cx, &Creator::from(u), id)?))
}
