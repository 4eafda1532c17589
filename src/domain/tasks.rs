//! The task queue as people use it (docs/tasks.md): create (with idempotency keys, batches
//! and the per-day quota), read, list, cancel, retry. The daemon side (claim, progress,
//! result) is `domain::daemon`; the consequences of state changes are `domain::lifecycle`.
//!
//! Every id is looked up inside the caller's own data (`user_id = ?`, and for a device caller
//! its own device): another user's task is 404 exactly like a missing one. Changes that must
//! happen together run in one write job, which also registers the wakes they imply.

use crate::db::tasks::{self, Filter, NewTask, Task, TaskStatus};
use crate::db::{devices, sessions};
use crate::domain::callers::UserCaller;
use crate::domain::events;
use crate::domain::lifecycle::{self, CancelReason, made_claimable};
use crate::domain::policy::{self, *};
use crate::domain::{Cx, Page, Paged};
use crate::error::{ApiError, ApiResult, Code};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

/// A task to create (`POST /v1/tasks` body; Lite sends `cwd`/`env` at the top level, Full
/// inside `args`).
#[derive(Deserialize, JsonSchema, Default, Clone, Debug)]
pub struct CreateTaskRequest {
    /// Public id of one of the caller's devices; none = any of them.
    pub device_id: Option<String>,
    /// `bash` (default), `workflow` or `custom`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The shell command, at most 64 KiB.
    #[serde(default)]
    pub command: String,
    /// `{cwd, env, …}` (Full); stored and echoed back as sent.
    pub args: Option<Value>,
    /// Working directory (Lite; Full puts it in `args`).
    pub cwd: Option<String>,
    /// Environment variables, string values (Lite; Full puts them in `args`).
    pub env: Option<Value>,
    /// 1–10, default 5; higher runs first.
    pub priority: Option<i64>,
    /// Milliseconds, 1,000–86,400,000, default 300,000.
    pub timeout: Option<i64>,
    /// Automatic retries after an expired lease, 0–10, default 3.
    pub max_retries: Option<i64>,
    /// One of the caller's sessions; default: the calling session.
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

/// Where a task came from (`tasks.source`).
#[derive(Clone, Copy, Debug)]
pub enum Source {
    Api,
    Cli,
    Web,
    Email,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Cli => "cli",
            Source::Web => "web",
            Source::Email => "email",
        }
    }
}

/// Text with no NUL or other control character except tab.
fn plain(s: &str) -> bool {
    !s.chars().any(|c| c.is_control() && c != '\t')
}

/// What is wrong with a command.
pub(crate) enum CommandProblem {
    Empty,
    /// Longer than `MAX_COMMAND` bytes, or holding a NUL.
    Invalid,
}

/// The rule every task's command follows, whichever way it came (API, Lite, e-mail): not empty,
/// at most `MAX_COMMAND` bytes, no NUL.
pub(crate) fn check_command(command: &str) -> Result<(), CommandProblem> {
    if command.is_empty() {
        Err(CommandProblem::Empty)
    } else if command.len() > MAX_COMMAND || command.contains('\0') {
        Err(CommandProblem::Invalid)
    } else {
        Ok(())
    }
}

/// Queues one task inside a write job: the daily quota, the row, its claimable mark and
/// `task.created`. Returns the row. Errors: 403 `QUOTA_EXCEEDED`.
pub(crate) fn queue(
    tx: &crate::db::Tx,
    index: &crate::state::claimable::ClaimableIndex,
    new: &NewTask,
) -> ApiResult<Task> {
    policy::check_daily_tasks(tx, new.user_id, 1)?;
    let id = tasks::insert(tx, new)?;
    made_claimable(tx, index, new.device_id, new.user_id);
    created(tx, &id)
}

/// Validates a request into a `NewTask` (device and session resolved inside the caller's data).
/// Errors: 422 per field, 404 for a device or session that is not the caller's.
fn validate(cx: &Cx, who: &Creator, r: &CreateTaskRequest) -> ApiResult<NewTask> {
    let command = r.command.trim();
    match check_command(command) {
        Ok(()) => {}
        Err(CommandProblem::Empty) => return Err(ApiError::invalid("command", "is required")),
        Err(CommandProblem::Invalid) => {
            return Err(ApiError::invalid(
                "command",
                format!("at most {MAX_COMMAND} bytes, no NUL"),
            ));
        }
    }
    let kind = r.kind.clone().unwrap_or_else(|| "bash".into());
    if !["bash", "workflow", "custom"].contains(&kind.as_str()) {
        return Err(ApiError::invalid(
            "type",
            "must be bash, workflow or custom",
        ));
    }
    let priority = r.priority.unwrap_or(DEFAULT_PRIORITY);
    if !PRIORITY_RANGE.contains(&priority) {
        return Err(ApiError::invalid("priority", "must be 1 to 10"));
    }
    let args = match &r.args {
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
    let max_retries = r.max_retries.unwrap_or(DEFAULT_MAX_RETRIES);
    if !MAX_RETRIES_RANGE.contains(&max_retries) {
        return Err(ApiError::invalid("max_retries", "must be 0 to 10"));
    }
    let cwd = match r
        .cwd
        .as_deref()
        .or_else(|| args.get("cwd").and_then(Value::as_str))
    {
        Some(c) if c.len() > MAX_CWD || !plain(c) => {
            return Err(ApiError::invalid(
                "cwd",
                format!("at most {MAX_CWD} bytes, no control characters"),
            ));
        }
        c => c.map(str::to_string),
    };
    let env = r
        .env
        .clone()
        .or_else(|| args.get("env").cloned())
        .filter(|v| !v.is_null());
    if let Some(e) = &env {
        let ok = e.as_object().is_some_and(|m| {
            m.len() <= MAX_ENV_VARS
                && m.iter().all(|(k, v)| {
                    !k.is_empty()
                        && !k.contains(['\0', '='])
                        && v.as_str().is_some_and(|s| !s.contains('\0'))
                })
        });
        if !ok {
            return Err(ApiError::invalid(
                "env",
                format!(
                    "must be an object of at most {MAX_ENV_VARS} string values, without NUL or '=' in names"
                ),
            ));
        }
    }
    let device_id = match (who.own_device, r.device_id.as_deref()) {
        (Some(d), _) => Some(d),
        (None, None) | (None, Some("")) => None,
        (None, Some(uuid)) => Some(
            devices::get(cx.reader, who.user_id, uuid)?
                .ok_or_else(|| ApiError::not_found("Device"))?
                .id,
        ),
    };
    let session_id = match r.session_id {
        Some(id) => Some(
            sessions::get(cx.reader, who.user_id, id)?
                .ok_or_else(|| ApiError::not_found("Session"))?
                .id,
        ),
        None => who.session_id,
    };
    Ok(NewTask {
        user_id: who.user_id,
        device_id,
        session_id,
        batch_id: None,
        depends_on: None,
        parent_task_id: None,
        kind,
        command: command.to_string(),
        args: (!args.is_empty()).then(|| Value::Object(args).to_string()),
        cwd,
        env: env.map(|e| e.to_string()),
        status: TaskStatus::Pending,
        priority,
        timeout_ms,
        max_retries,
        source: "api",
        idempotency_key: None,
    })
}

/// Creates a task. With an `Idempotency-Key`, a repeat from the same user returns the first
/// task (`replayed = true`). Errors: 422, 404 (device/session), 403 `QUOTA_EXCEEDED`,
/// 409 `IDEMPOTENCY_KEY_REUSED` (a device key replaying a key used for another device).
pub fn create(
    cx: &Cx,
    who: &Creator,
    r: &CreateTaskRequest,
    source: Source,
    idempotency_key: Option<&str>,
) -> ApiResult<(Task, bool)> {
    let key = idempotency_key
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string);
    if let Some(k) = &key {
        if k.len() > MAX_IDEMPOTENCY_KEY || !plain(k) {
            return Err(ApiError::invalid(
                "Idempotency-Key",
                format!("at most {MAX_IDEMPOTENCY_KEY} bytes of text"),
            ));
        }
        if let Some(t) = tasks::by_idempotency_key(cx.reader, who.user_id, k)? {
            return Ok((visible_replay(t, who)?, true));
        }
    }
    let mut new = validate(cx, who, r)?;
    new.source = source.as_str();
    new.idempotency_key = key;
    let (uid, index) = (who.user_id, cx.svc.claimable.clone());
    let (t, replayed) = cx.write(move |tx| {
        if let Some(k) = &new.idempotency_key
            && let Some(t) = tasks::by_idempotency_key(tx, uid, k)?
        {
            return Ok((t, true));
        }
        Ok((queue(tx, &index, &new)?, false))
    })?;
    if replayed {
        return Ok((visible_replay(t, who)?, true));
    }
    Ok((t, false))
}

/// The task just inserted as `id`, read back inside the job (its answer: the caller reads
/// nothing after the commit), with `task.created` published for it.
fn created(tx: &crate::db::Tx, id: &str) -> ApiResult<Task> {
    let t =
        tasks::get_internal(tx, id)?.ok_or_else(|| ApiError::internal("created task vanished"))?;
    events::task_created(tx, &t);
    Ok(t)
}

/// A replayed `Idempotency-Key` answers with the first task only if the caller may see it: a
/// device key sees its own device's tasks, so a key the owner used for another device is a
/// conflict, not that task's id and status.
fn visible_replay(t: Task, who: &Creator) -> ApiResult<Task> {
    match who.own_device {
        Some(d) if !t.is_for_device(d) => Err(ApiError::conflict(
            Code::IdempotencyKeyReused,
            "Idempotency-Key already used for another device's task",
        )),
        _ => Ok(t),
    }
}

/// Creates several tasks in one transaction. `sequential`: the first is pending, each later
/// one queued behind its predecessor. Returns the batch id and the tasks.
/// Errors: as `create`, the message naming the task's index.
pub fn batch(
    cx: &Cx,
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
            n.status = TaskStatus::Queued;
        }
        news.push(n);
    }
    let (uid, index) = (who.user_id, cx.svc.claimable.clone());
    let out = cx.write(move |tx| {
        policy::check_daily_tasks(tx, uid, news.len() as i64)?;
        let mut out: Vec<Task> = Vec::with_capacity(news.len());
        for mut n in news {
            if sequential {
                n.depends_on = out.last().map(|t| t.id.clone());
            }
            let id = tasks::insert(tx, &n)?;
            if n.status == TaskStatus::Pending {
                made_claimable(tx, &index, n.device_id, n.user_id);
            }
            out.push(created(tx, &id)?);
        }
        Ok(out)
    })?;
    Ok((batch_id, out))
}

/// The user's task. Errors: 404.
pub fn get(cx: &Cx, user_id: i64, id: &str) -> ApiResult<Task> {
    tasks::get(cx.reader, user_id, id)?.ok_or_else(|| ApiError::not_found("Task"))
}

/// The task as a device caller may see it: its owner's, and for that device (or held by it).
/// Errors: 404.
pub fn get_for_device(cx: &Cx, user_id: i64, device_id: i64, id: &str) -> ApiResult<Task> {
    let t = get(cx, user_id, id)?;
    if !t.is_for_device(device_id) {
        return Err(ApiError::not_found("Task"));
    }
    Ok(t)
}

/// What a task list may be filtered by; ids are public ones, resolved inside the user's data.
#[derive(Default, Debug, Clone)]
pub struct ListFilter {
    pub status: Option<TaskStatus>,
    /// A public device id (404 if it is not the user's).
    pub device: Option<String>,
    /// Set for a device caller: only that device's tasks.
    pub own_device: Option<i64>,
    pub session_id: Option<i64>,
    pub batch_id: Option<String>,
}

/// A page of the user's tasks, newest first. Errors: 404 for a device or session filter that
/// is not the user's.
pub fn list(cx: &Cx, user_id: i64, f: ListFilter, page: Page) -> ApiResult<Paged<Task>> {
    let mut device_id = f.own_device;
    if let Some(u) = &f.device {
        device_id = Some(
            devices::get(cx.reader, user_id, u)?
                .ok_or_else(|| ApiError::not_found("Device"))?
                .id,
        );
    }
    if let Some(s) = f.session_id {
        sessions::get(cx.reader, user_id, s)?.ok_or_else(|| ApiError::not_found("Session"))?;
    }
    let filter = Filter {
        status: f.status,
        device_id,
        session_id: f.session_id,
        batch_id: f.batch_id,
        limit: page.limit + 1,
        offset: page.offset,
    };
    Ok(Paged::from_rows(
        tasks::list(cx.reader, user_id, &filter)?,
        page,
    ))
}

/// Cancels the user's task (see `lifecycle::cancel`). `own_device`: a device caller may cancel
/// only its own device's tasks. Errors: 404, 409 `TASK_NOT_CANCELLABLE` for a final task.
pub fn cancel(cx: &Cx, user_id: i64, id: &str, own_device: Option<i64>) -> ApiResult<Task> {
    let (id, index) = (id.to_string(), cx.svc.claimable.clone());
    cx.write(move |tx| {
        let t = tasks::get(tx, user_id, &id)?
            .filter(|t| own_device.is_none_or(|d| t.is_for_device(d)))
            .ok_or_else(|| ApiError::not_found("Task"))?;
        lifecycle::cancel(tx, &index, &t, CancelReason::User)
    })
}

/// A new task with the same command and settings as a finished one, `parent_task_id` = the
/// old one. Errors: 404, 409 `CONFLICT` unless the old task is final or when its device was
/// deleted, 403 `QUOTA_EXCEEDED`.
pub fn retry(cx: &Cx, who: &Creator, id: &str) -> ApiResult<Task> {
    let old = get(cx, who.user_id, id)?;
    if !old.is_final() {
        return Err(ApiError::conflict(
            Code::Conflict,
            format!(
                "Task is {}; only a finished task can be retried",
                old.status
            ),
        ));
    }
    if old.device_id.is_none() && !old.any_device {
        // Its device was deleted: never hand the command to another machine.
        return Err(ApiError::conflict(
            Code::Conflict,
            "The task's device was deleted; queue it again for another device",
        ));
    }
    let new = NewTask {
        user_id: old.user_id,
        device_id: old.device_id,
        session_id: old.session_id,
        batch_id: None,
        depends_on: None,
        parent_task_id: Some(old.id.clone()),
        kind: old.kind.clone(),
        command: old.command.clone(),
        args: old.args.clone(),
        cwd: old.cwd.clone(),
        env: old.env.clone(),
        status: TaskStatus::Pending,
        priority: old.priority,
        timeout_ms: old.timeout_ms,
        max_retries: old.max_retries,
        source: "api",
        idempotency_key: None,
    };
    let index = cx.svc.claimable.clone();
    cx.write(move |tx| queue(tx, &index, &new))
}
