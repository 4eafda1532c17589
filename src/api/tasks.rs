//! The task queue (SPEC §7.1, §7.3): create (with idempotency keys, batches and the per-day
//! quota), read, cancel, retry; the daemon side (claim, progress, result) lives in
//! `api::daemon`, the consequences of state changes in `api::lifecycle`, the wire shapes in
//! `api::task_json`.
//!
//! Every id is looked up inside the caller's own data (`user_id = ?`, and for a device caller
//! its own device): another user's task is 404 exactly like a missing one. Changes that must
//! happen together run in one writer job; claimable-work hints are marked inside that job and
//! parked long-polls are woken after it has committed.

use crate::api::lifecycle::{after_final, announce, capacity_freed};
use crate::app::Ctx;
use crate::auth::UserCaller;
use crate::db::tasks::{self, Filter, NewTask, Task};
use crate::db::{devices, sessions, users};
use crate::error::{ApiError, ApiResult};
use crate::time;
use rusqlite::Connection;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Longest command accepted, in bytes.
const MAX_COMMAND: usize = 64 * 1024;
/// Most tasks in one batch.
pub const MAX_BATCH: usize = 100;
/// Default and bounds of `timeout` (milliseconds).
const DEFAULT_TIMEOUT_MS: i64 = 300_000;
const TIMEOUT_RANGE: std::ops::RangeInclusive<i64> = 1_000..=86_400_000;

/// `POST /v1/tasks` body (Full; Lite sends `cwd`/`env` at the top level).
#[derive(Deserialize, Default, Clone, Debug)]
pub struct CreateTaskRequest {
    /// Public uuid of one of the caller's devices; none = any of them.
    pub device_id: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub command: String,
    /// `{cwd, env, …}` (Full).
    pub args: Option<Value>,
    pub cwd: Option<String>,
    pub env: Option<Value>,
    pub priority: Option<i64>,
    /// Milliseconds.
    pub timeout: Option<i64>,
    pub max_retries: Option<i64>,
    pub session_id: Option<i64>,
}

/// Who creates a task: a person, or (Lite) a daemon queueing work for its own device.
pub struct Creator {
    pub user_id: i64,
    pub session_id: Option<i64>,
    /// Set for a device caller: the task is for that device, whatever the body says.
    pub own_device: Option<i64>,
}

impl From<&UserCaller> for Creator {
    fn from(u: &UserCaller) -> Creator {
        Creator {
            user_id: u.user_id(),
            session_id: u.session_id,
            own_device: None,
        }
    }
}

fn opt_text(field: &str, v: Option<&str>, max: usize) -> ApiResult<Option<String>> {
    match v {
        Some(s) if s.len() > max => Err(ApiError::invalid(field, format!("at most {max} bytes"))),
        Some(s) => Ok(Some(s.to_string())),
        None => Ok(None),
    }
}

/// Validates a request into a `NewTask` (device and session resolved inside the caller's data).
/// Errors: 422 per field, 404 for a device or session that is not the caller's.
fn validate(cx: &Ctx, who: &Creator, r: &CreateTaskRequest) -> ApiResult<NewTask> {
    let command = r.command.trim();
    if command.is_empty() {
        return Err(ApiError::invalid("command", "is required"));
    }
    if command.len() > MAX_COMMAND || command.contains('\0') {
        return Err(ApiError::invalid(
            "command",
            format!("at most {MAX_COMMAND} bytes, no NUL"),
        ));
    }
    let kind = r.kind.clone().unwrap_or_else(|| "bash".into());
    if !["bash", "workflow", "custom"].contains(&kind.as_str()) {
        return Err(ApiError::invalid(
            "type",
            "must be bash, workflow or custom",
        ));
    }
    let priority = r.priority.unwrap_or(5);
    if !(1..=10).contains(&priority) {
        return Err(ApiError::invalid("priority", "must be 1 to 10"));
    }
    let mut args = match &r.args {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(ApiError::invalid("args", "must be an object")),
    };
    let timeout_ms = r
        .timeout
        .or_else(|| args.get("timeout").and_then(Value::as_i64))
        .unwrap_or(DEFAULT_TIMEOUT_MS);
    if !TIMEOUT_RANGE.contains(&timeout_ms) {
        return Err(ApiError::invalid(
            "timeout",
            "must be 1000 to 86400000 milliseconds",
        ));
    }
    let max_retries = r.max_retries.unwrap_or(3);
    if !(0..=10).contains(&max_retries) {
        return Err(ApiError::invalid("max_retries", "must be 0 to 10"));
    }
    let cwd = r
        .cwd
        .clone()
        .or_else(|| args.get("cwd").and_then(Value::as_str).map(str::to_string));
    let cwd = opt_text("cwd", cwd.as_deref(), 4096)?;
    let env = r
        .env
        .clone()
        .or_else(|| args.get("env").cloned())
        .filter(|v| !v.is_null());
    if let Some(e) = &env {
        let ok = e
            .as_object()
            .is_some_and(|m| m.len() <= 256 && m.values().all(Value::is_string));
        if !ok {
            return Err(ApiError::invalid(
                "env",
                "must be an object of at most 256 string values",
            ));
        }
    }
    args.remove("cwd");
    args.remove("env");
    args.remove("timeout");
    let device_id = match (who.own_device, r.device_id.as_deref()) {
        (Some(d), _) => Some(d),
        (None, None) | (None, Some("")) => None,
        (None, Some(uuid)) => Some(
            devices::get(cx.db, who.user_id, uuid)?
                .ok_or_else(|| ApiError::not_found("Device"))?
                .id,
        ),
    };
    let session_id = match r.session_id {
        Some(id) => Some(
            sessions::get(cx.db, who.user_id, id)?
                .ok_or_else(|| ApiError::not_found("Session"))?
                .id,
        ),
        None => who.session_id,
    };
    Ok(NewTask {
        user_id: who.user_id,
        device_id,
        session_id,
        kind,
        command: command.to_string(),
        args: (!args.is_empty()).then(|| Value::Object(args).to_string()),
        cwd,
        env: env.map(|e| e.to_string()),
        status: "pending",
        priority,
        timeout_ms,
        max_retries,
        source: "api",
        ..NewTask::default()
    })
}

/// Refuses `n` more tasks today beyond the plan's `max_tasks_per_day` (inside the writer job).
fn check_daily_quota(c: &Connection, user_id: i64, n: i64) -> ApiResult<()> {
    if let Some(limit) = users::limits(c, user_id)?.max_tasks_per_day {
        let today = format!("{}T00:00:00.000Z", time::day(&time::now()));
        let used = tasks::count_created_since(c, user_id, &today)?;
        if used + n > limit {
            return Err(ApiError::quota("tasks_per_day", limit, used));
        }
    }
    Ok(())
}

/// Creates a task. With an `Idempotency-Key`, a repeat from the same user returns the first
/// task (`replayed = true`). Errors: 422, 404 (device/session), 403 `QUOTA_EXCEEDED`.
pub fn create(
    cx: &Ctx,
    who: &Creator,
    r: &CreateTaskRequest,
    source: &'static str,
) -> ApiResult<(Task, bool)> {
    let key = cx
        .req
        .header("idempotency-key")
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string);
    if let Some(k) = &key {
        if k.len() > 255 {
            return Err(ApiError::invalid("Idempotency-Key", "at most 255 bytes"));
        }
        if let Some(t) = tasks::by_idempotency_key(cx.db, who.user_id, k)? {
            return Ok((visible_replay(t, who)?, true));
        }
    }
    let mut new = validate(cx, who, r)?;
    new.source = source;
    new.idempotency_key = key;
    let target = (new.device_id, new.user_id);
    let (uid, hints) = (who.user_id, cx.app.hints.clone());
    let (id, replayed) = cx.write(move |c| {
        if let Some(k) = &new.idempotency_key
            && let Some(t) = tasks::by_idempotency_key(c, uid, k)?
        {
            return Ok((t.id, true));
        }
        check_daily_quota(c, uid, 1)?;
        let id = tasks::insert(c, &new)?;
        hints.mark(target.0, target.1);
        Ok((id, false))
    })?;
    if !replayed {
        announce(cx.app, &[target]);
    }
    let t =
        tasks::get(cx.db, uid, &id)?.ok_or_else(|| ApiError::internal("created task vanished"))?;
    if replayed {
        return Ok((visible_replay(t, who)?, true));
    }
    Ok((t, false))
}

/// A replayed `Idempotency-Key` answers with the first task only if the caller may see it: a
/// device key sees its own device's tasks (SPEC §6.2), so a key the owner used for another
/// device is a conflict, not that task's id and status.
fn visible_replay(t: Task, who: &Creator) -> ApiResult<Task> {
    match who.own_device {
        Some(d) if !is_for_device(&t, d) => Err(ApiError::conflict(
            "IDEMPOTENCY_KEY_REUSED",
            "Idempotency-Key already used for another device's task",
        )),
        _ => Ok(t),
    }
}

/// `POST /v1/tasks/batch`: all tasks in one transaction. `sequential`: the first is pending,
/// each later one queued behind its predecessor. Errors: as `create`, per task index.
pub fn batch(
    cx: &Ctx,
    who: &Creator,
    items: &[CreateTaskRequest],
    sequential: bool,
) -> ApiResult<(String, Vec<Task>)> {
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "tasks",
            format!("must hold 1 to {MAX_BATCH} tasks"),
        ));
    }
    let batch_id = uuid::Uuid::new_v4().to_string();
    let mut news = Vec::with_capacity(items.len());
    for (i, r) in items.iter().enumerate() {
        let mut n = validate(cx, who, r).map_err(|mut e| {
            e.message = format!("tasks[{i}]: {}", e.message);
            e
        })?;
        n.batch_id = Some(batch_id.clone());
        if sequential && i > 0 {
            n.status = "queued";
        }
        news.push(n);
    }
    let targets: Vec<(Option<i64>, i64)> = news
        .iter()
        .filter(|n| n.status == "pending")
        .map(|n| (n.device_id, n.user_id))
        .collect();
    let (uid, hints, marks) = (who.user_id, cx.app.hints.clone(), targets.clone());
    let ids = cx.write(move |c| {
        check_daily_quota(c, uid, news.len() as i64)?;
        let mut ids: Vec<String> = Vec::with_capacity(news.len());
        for mut n in news {
            if sequential {
                n.depends_on = ids.last().cloned();
            }
            ids.push(tasks::insert(c, &n)?);
        }
        for (d, u) in &marks {
            hints.mark(*d, *u);
        }
        Ok(ids)
    })?;
    announce(cx.app, &targets);
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(get(cx, uid, &id)?);
    }
    Ok((batch_id, out))
}

/// The user's task. Errors: 404.
pub fn get(cx: &Ctx, user_id: i64, id: &str) -> ApiResult<Task> {
    tasks::get(cx.db, user_id, id)?.ok_or_else(|| ApiError::not_found("Task"))
}

/// The user's tasks; `device_uuid` and `session_id` filters are resolved inside the user's data
/// (an unknown one is 404). Errors: 422 for an unknown status.
pub fn list(
    cx: &Ctx,
    user_id: i64,
    mut f: Filter,
    device_uuid: Option<&str>,
) -> ApiResult<Vec<Task>> {
    if let Some(s) = &f.status
        && ![
            "queued",
            "pending",
            "running",
            "completed",
            "failed",
            "cancelled",
            "timeout",
        ]
        .contains(&s.as_str())
    {
        return Err(ApiError::invalid("status", "unknown status"));
    }
    if let Some(u) = device_uuid {
        f.device_id = Some(
            devices::get(cx.db, user_id, u)?
                .ok_or_else(|| ApiError::not_found("Device"))?
                .id,
        );
    }
    if let Some(s) = f.session_id {
        sessions::get(cx.db, user_id, s)?.ok_or_else(|| ApiError::not_found("Session"))?;
    }
    Ok(tasks::list(cx.db, user_id, &f)?)
}
/// Is the task this device's: targeted at it, or held (or last held) by it?
pub fn is_for_device(t: &Task, device_id: i64) -> bool {
    t.device_id == Some(device_id) || t.claimed_by == Some(device_id)
}

/// Cancels the user's task: `queued`/`pending` at once; `running` is marked cancelled and the
/// cancel is delivered to its daemon (next heartbeat's `cancel_tasks`; a parked poll wakes).
/// `own_device`: a device caller may cancel only its own device's tasks.
/// Errors: 404, 409 `TASK_NOT_CANCELLABLE` for a final task.
pub fn cancel(cx: &Ctx, user_id: i64, id: &str, own_device: Option<i64>) -> ApiResult<Task> {
    let (id, hints) = (id.to_string(), cx.app.hints.clone());
    // One read before the change (inside the job, so the status cannot move meanwhile) and one
    // after it, which is also the reply.
    let (holder, after) = cx.write(move |c| {
        let t = tasks::get(c, user_id, &id)?
            .filter(|t| own_device.is_none_or(|d| is_for_device(t, d)))
            .ok_or_else(|| ApiError::not_found("Task"))?;
        let why = "Cancelled by user";
        let holder = match t.status.as_str() {
            "queued" | "pending" => {
                tasks::cancel_unheld(c, &id, why)?;
                None
            }
            "running" => {
                tasks::cancel_running(c, &id, why)?;
                t.claimed_by
            }
            s => {
                return Err(ApiError::conflict(
                    "TASK_NOT_CANCELLABLE",
                    format!("Task is already {s}"),
                ));
            }
        };
        let after = tasks::get(c, user_id, &id)?
            .ok_or_else(|| ApiError::internal("cancelled task vanished"))?;
        after_final(c, &after, &hints)?;
        Ok((holder, after))
    })?;
    if let Some(d) = holder {
        cx.app.park.wake_device(d);
        capacity_freed(cx.app, user_id);
    }
    Ok(after)
}

/// `POST /v1/tasks/{id}/retry`: a new task with the same command and settings and
/// `parent_task_id` = the old one. Errors: 404, 409 `CONFLICT` unless the old task is final or
/// when its device was deleted, 403 `QUOTA_EXCEEDED`.
pub fn retry(cx: &Ctx, who: &Creator, id: &str) -> ApiResult<Task> {
    let old = get(cx, who.user_id, id)?;
    if !old.is_final() {
        return Err(ApiError::conflict(
            "CONFLICT",
            format!(
                "Task is {}; only a finished task can be retried",
                old.status
            ),
        ));
    }
    if old.device_id.is_none() && !old.any_device {
        // Its device was deleted: never hand the command to another machine.
        return Err(ApiError::conflict(
            "CONFLICT",
            "The task's device was deleted; queue it again for another device",
        ));
    }
    let new = NewTask {
        user_id: old.user_id,
        device_id: old.device_id,
        session_id: old.session_id,
        parent_task_id: Some(old.id.clone()),
        kind: old.kind.clone(),
        command: old.command.clone(),
        args: old.args.clone(),
        cwd: old.cwd.clone(),
        env: old.env.clone(),
        status: "pending",
        priority: old.priority,
        timeout_ms: old.timeout_ms,
        max_retries: old.max_retries,
        source: "api",
        ..NewTask::default()
    };
    let target = (new.device_id, new.user_id);
    let (uid, hints) = (who.user_id, cx.app.hints.clone());
    let id = cx.write(move |c| {
        check_daily_quota(c, uid, 1)?;
        let id = tasks::insert(c, &new)?;
        hints.mark(target.0, target.1);
        Ok(id)
    })?;
    announce(cx.app, &[target]);
    get(cx, uid, &id)
}
