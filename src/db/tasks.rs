//! SQL for `tasks` (docs/tasks.md): insert, look up inside the owner's data, claim, finish,
//! cancel, requeue. State changes that must happen together run inside one write job; the
//! functions here are the single statements those jobs are made of. Ties in age are broken by
//! the insertion order (`rowid`), never by the random id.

use super::OptionalRow;
pub use super::status::TaskStatus;
use crate::time;
use rusqlite::{Connection, Row, params};

/// A task row, with its device's public uuid.
#[derive(Clone, Debug)]
pub struct Task {
    pub id: String,
    pub user_id: i64,
    pub device_id: Option<i64>,
    pub device_uuid: Option<String>,
    /// Created for any of the owner's devices (not: its device was deleted).
    pub any_device: bool,
    pub session_id: Option<i64>,
    pub batch_id: Option<String>,
    pub depends_on: Option<String>,
    pub parent_task_id: Option<String>,
    pub kind: String,
    pub command: String,
    pub args: Option<String>,
    pub cwd: Option<String>,
    pub env: Option<String>,
    pub status: TaskStatus,
    pub priority: i64,
    pub timeout_ms: i64,
    pub max_retries: i64,
    pub retry_count: i64,
    pub attempt: i64,
    pub claimed_by: Option<i64>,
    pub progress: i64,
    pub exit_code: Option<i64>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub error_message: Option<String>,
    pub source: String,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub lease_expires_at: Option<String>,
    pub cancel_requested_at: Option<String>,
}

impl Task {
    /// Is the status final?
    pub fn is_final(&self) -> bool {
        self.status.is_final()
    }

    /// Is the task this device's: targeted at it, or held (or last held) by it?
    pub fn is_for_device(&self, device_id: i64) -> bool {
        self.device_id == Some(device_id) || self.claimed_by == Some(device_id)
    }
}

const COLUMNS: &str = "t.id, t.user_id, t.device_id, (SELECT uuid FROM devices WHERE id = t.device_id), t.any_device, t.session_id, t.batch_id, t.depends_on, \
    t.parent_task_id, t.type, t.command, t.args, t.cwd, t.env, t.status, t.priority, t.timeout_ms, \
    t.max_retries, t.retry_count, t.attempt, t.claimed_by, t.progress, t.exit_code, t.stdout, \
    t.stderr, t.error_message, t.source, t.created_at, t.updated_at, t.started_at, t.completed_at, \
    t.lease_expires_at, t.cancel_requested_at";
/// The device uuid comes from a scalar subquery, not a JOIN: with the bundled SQLite (STAT4)
/// a joined statement is re-prepared on every reuse from the statement cache, which measured at
/// 8 % of the server's CPU with 1,000 daemons.
const FROM: &str = "FROM tasks t";

fn from_row(r: &Row) -> rusqlite::Result<Task> {
    Ok(Task {
        id: r.get(0)?,
        user_id: r.get(1)?,
        device_id: r.get(2)?,
        device_uuid: r.get(3)?,
        any_device: r.get(4)?,
        session_id: r.get(5)?,
        batch_id: r.get(6)?,
        depends_on: r.get(7)?,
        parent_task_id: r.get(8)?,
        kind: r.get(9)?,
        command: r.get(10)?,
        args: r.get(11)?,
        cwd: r.get(12)?,
        env: r.get(13)?,
        status: r.get(14)?,
        priority: r.get(15)?,
        timeout_ms: r.get(16)?,
        max_retries: r.get(17)?,
        retry_count: r.get(18)?,
        attempt: r.get(19)?,
        claimed_by: r.get(20)?,
        progress: r.get(21)?,
        exit_code: r.get(22)?,
        stdout: r.get(23)?,
        stderr: r.get(24)?,
        error_message: r.get(25)?,
        source: r.get(26)?,
        created_at: r.get(27)?,
        updated_at: r.get(28)?,
        started_at: r.get(29)?,
        completed_at: r.get(30)?,
        lease_expires_at: r.get(31)?,
        cancel_requested_at: r.get(32)?,
    })
}

/// What a new task is made of (validated by `api::tasks`).
#[derive(Clone, Debug)]
pub struct NewTask {
    pub user_id: i64,
    pub device_id: Option<i64>,
    pub session_id: Option<i64>,
    pub batch_id: Option<String>,
    pub depends_on: Option<String>,
    pub parent_task_id: Option<String>,
    pub kind: String,
    pub command: String,
    pub args: Option<String>,
    pub cwd: Option<String>,
    pub env: Option<String>,
    /// `Pending`, or `Queued` behind a predecessor.
    pub status: TaskStatus,
    pub priority: i64,
    pub timeout_ms: i64,
    pub max_retries: i64,
    pub source: &'static str,
    pub idempotency_key: Option<String>,
}

/// Inserts a task with a fresh UUID and returns the id.
pub fn insert(c: &Connection, t: &NewTask) -> rusqlite::Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = time::now();
    c.prepare_cached(
        "INSERT INTO tasks (id, user_id, device_id, session_id, batch_id, depends_on, parent_task_id, \
         type, command, args, cwd, env, status, priority, timeout_ms, max_retries, source, \
         idempotency_key, created_at, updated_at, any_device) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?19, ?3 IS NULL)",
    )?
    .execute(params![
        id,
        t.user_id,
        t.device_id,
        t.session_id,
        t.batch_id,
        t.depends_on,
        t.parent_task_id,
        t.kind,
        t.command,
        t.args,
        t.cwd,
        t.env,
        t.status,
        t.priority,
        t.timeout_ms,
        t.max_retries,
        t.source,
        t.idempotency_key,
        now
    ])?;
    Ok(id)
}

/// The user's task with this id.
pub fn get(c: &Connection, user_id: i64, id: &str) -> rusqlite::Result<Option<Task>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} {FROM} WHERE t.id = ?1 AND t.user_id = ?2"
    ))?
    .query_row(params![id, user_id], from_row)
    .optional()
}

/// The user's task created with this idempotency key.
pub fn by_idempotency_key(
    c: &Connection,
    user_id: i64,
    key: &str,
) -> rusqlite::Result<Option<Task>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} {FROM} WHERE t.user_id = ?1 AND t.idempotency_key = ?2"
    ))?
    .query_row(params![user_id, key], from_row)
    .optional()
}

/// Filters for `list`.
#[derive(Default, Debug, Clone)]
pub struct Filter {
    pub status: Option<TaskStatus>,
    pub device_id: Option<i64>,
    pub session_id: Option<i64>,
    pub batch_id: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// The user's tasks matching `f`, newest first.
pub fn list(c: &Connection, user_id: i64, f: &Filter) -> rusqlite::Result<Vec<Task>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} {FROM} WHERE t.user_id = ?1 AND (?2 IS NULL OR t.status = ?2) \
         AND (?3 IS NULL OR t.device_id = ?3) AND (?4 IS NULL OR t.session_id = ?4) \
         AND (?5 IS NULL OR t.batch_id = ?5) \
         ORDER BY t.created_at DESC, t.rowid DESC LIMIT ?6 OFFSET ?7"
    ))?
    .query_map(
        params![
            user_id,
            f.status,
            f.device_id,
            f.session_id,
            f.batch_id,
            f.limit,
            f.offset
        ],
        from_row,
    )?
    .collect()
}

/// (status, number of tasks) over all users (`/metrics`).
pub fn count_by_status(c: &Connection) -> rusqlite::Result<Vec<(TaskStatus, i64)>> {
    let mut st = c.prepare("SELECT status, count(*) FROM tasks GROUP BY status")?;
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
}

/// Number of tasks created in a session.
pub fn count_in_session(c: &Connection, session_id: i64) -> rusqlite::Result<i64> {
    c.prepare_cached("SELECT count(*) FROM tasks WHERE session_id = ?1")?
        .query_row([session_id], |r| r.get(0))
}

/// Tasks the user created since `since` (a stored timestamp), for the per-day quota.
pub fn count_created_since(c: &Connection, user_id: i64, since: &str) -> rusqlite::Result<i64> {
    c.prepare_cached("SELECT count(*) FROM tasks WHERE user_id = ?1 AND created_at >= ?2")?
        .query_row(params![user_id, since], |r| r.get(0))
}

/// Running tasks held by a device, and by all of a user's devices.
pub fn running_counts(
    c: &Connection,
    device_id: i64,
    user_id: i64,
) -> rusqlite::Result<(i64, i64)> {
    let dev: i64 = c
        .prepare_cached("SELECT count(*) FROM tasks WHERE claimed_by = ?1 AND lease_expires_at IS NOT NULL AND status = 'running'")?
        .query_row([device_id], |r| r.get(0))?;
    let user: i64 = c
        .prepare_cached("SELECT count(*) FROM tasks WHERE user_id = ?1 AND status = 'running'")?
        .query_row([user_id], |r| r.get(0))?;
    Ok((dev, user))
}

/// Pending tasks a device could claim (its own and its owner's device-less ones).
pub fn count_claimable(c: &Connection, device_id: i64, user_id: i64) -> rusqlite::Result<i64> {
    c.prepare_cached(
        "SELECT (SELECT count(*) FROM tasks WHERE device_id = ?1 AND status = 'pending') + \
         (SELECT count(*) FROM tasks WHERE user_id = ?2 AND any_device = 1 AND device_id IS NULL AND status = 'pending')",
    )?
    .query_row(params![device_id, user_id], |r| r.get(0))
}

/// Claims up to `n` claimable tasks for a device: by priority descending, then age. Each
/// becomes `running` with `started_at`, `attempt + 1`, `claimed_by` and a lease of
/// `timeout + grace_ms`. Must run inside the writer's transaction (it is a read-then-write).
pub fn claim(
    c: &Connection,
    device_id: i64,
    user_id: i64,
    n: i64,
    grace_ms: i64,
) -> rusqlite::Result<Vec<Task>> {
    if n <= 0 {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = c
        .prepare_cached(
            "SELECT id FROM (\
               SELECT id, priority, created_at, rowid AS seq FROM tasks WHERE device_id = ?1 AND status = 'pending' \
               UNION ALL \
               SELECT id, priority, created_at, rowid AS seq FROM tasks WHERE user_id = ?2 AND any_device = 1 AND device_id IS NULL AND status = 'pending') \
             ORDER BY priority DESC, created_at, seq LIMIT ?3",
        )?
        .query_map(params![device_id, user_id, n], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let now_t = std::time::SystemTime::now();
    let now = time::fmt(now_t);
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        c.prepare_cached(
            "UPDATE tasks SET status = 'running', started_at = ?2, updated_at = ?2, attempt = attempt + 1, \
             claimed_by = ?3, progress = 0, \
             lease_expires_at = strftime('%Y-%m-%dT%H:%M:%fZ', ?2, '+' || ((timeout_ms + ?4) / 1000.0) || ' seconds') \
             WHERE id = ?1 AND status = 'pending'",
        )?
        .execute(params![id, now, device_id, grace_ms])?;
        if let Some(t) = get(c, user_id, &id)? {
            out.push(t);
        }
    }
    Ok(out)
}

/// Ids of cancelled tasks whose cancel the device has not acknowledged yet and that were
/// requested after `since`.
pub fn pending_cancels(
    c: &Connection,
    device_id: i64,
    since: &str,
) -> rusqlite::Result<Vec<String>> {
    c.prepare_cached(
        "SELECT id FROM tasks WHERE claimed_by = ?1 AND lease_expires_at IS NOT NULL \
         AND status = 'cancelled' AND cancel_requested_at > ?2",
    )?
    .query_map(params![device_id, since], |r| r.get(0))?
    .collect()
}

/// Tasks a device holds (running or cancel not yet acknowledged): (id, status, started_at).
pub fn held_by(
    c: &Connection,
    device_id: i64,
) -> rusqlite::Result<Vec<(String, TaskStatus, Option<String>)>> {
    c.prepare_cached(
        "SELECT id, status, started_at FROM tasks WHERE claimed_by = ?1 AND lease_expires_at IS NOT NULL",
    )?
    .query_map([device_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
    .collect()
}

/// A daemon's result, already capped and checked.
pub struct TaskResult<'a> {
    pub status: TaskStatus,
    pub exit_code: Option<i64>,
    pub stdout: Option<&'a str>,
    pub stderr: Option<&'a str>,
    pub error: Option<&'a str>,
    /// When the daemon says the command started, if that is sane (else the claim's time stays).
    pub started_at: Option<&'a str>,
    pub completed_at: &'a str,
}

/// Finishes a running task held by `device_id` (attempt `attempt`). Returns whether it matched.
pub fn finish(
    c: &Connection,
    id: &str,
    device_id: i64,
    attempt: i64,
    o: &TaskResult,
) -> rusqlite::Result<bool> {
    let n = c
        .prepare_cached(
            "UPDATE tasks SET status = ?4, exit_code = ?5, stdout = ?6, stderr = ?7, error_message = ?8, \
             completed_at = ?9, updated_at = ?10, lease_expires_at = NULL, \
             started_at = coalesce(?11, started_at), \
             progress = CASE WHEN ?4 = 'completed' THEN 100 ELSE progress END \
             WHERE id = ?1 AND claimed_by = ?2 AND attempt = ?3 AND status = 'running'",
        )?
        .execute(params![id, device_id, attempt, o.status, o.exit_code, o.stdout, o.stderr, o.error, o.completed_at, time::now(), o.started_at])?;
    Ok(n == 1)
}

/// Stores the output of a task cancelled while running and acknowledges the cancel; the status
/// stays `cancelled`.
pub fn keep_cancelled_output(
    c: &Connection,
    id: &str,
    device_id: i64,
    o: &TaskResult,
) -> rusqlite::Result<bool> {
    let n = c
        .prepare_cached(
            "UPDATE tasks SET exit_code = ?3, stdout = ?4, stderr = ?5, lease_expires_at = NULL, updated_at = ?6 \
             WHERE id = ?1 AND claimed_by = ?2 AND status = 'cancelled' AND lease_expires_at IS NOT NULL",
        )?
        .execute(params![id, device_id, o.exit_code, o.stdout, o.stderr, time::now()])?;
    Ok(n == 1)
}

/// Records progress (and partial output) of a running task held by the device.
pub fn progress(
    c: &Connection,
    id: &str,
    device_id: i64,
    p: i64,
    stdout: Option<&str>,
    stderr: Option<&str>,
) -> rusqlite::Result<bool> {
    let n = c
        .prepare_cached(
            "UPDATE tasks SET progress = ?3, stdout = coalesce(?4, stdout), stderr = coalesce(?5, stderr), updated_at = ?6 \
             WHERE id = ?1 AND claimed_by = ?2 AND status = 'running'",
        )?
        .execute(params![id, device_id, p, stdout, stderr, time::now()])?;
    Ok(n == 1)
}

/// Requeues a held attempt: `pending` with `retry_count + 1` while retries remain, else
/// `timeout`; a cancelled task just loses its lease. Returns the new status, if it matched.
pub fn requeue(c: &Connection, id: &str, reason: &str) -> rusqlite::Result<Option<TaskStatus>> {
    let now = time::now();
    c.prepare_cached(
        "UPDATE tasks SET \
           status = CASE WHEN status = 'cancelled' THEN 'cancelled' \
                         WHEN retry_count < max_retries THEN 'pending' ELSE 'timeout' END, \
           retry_count = CASE WHEN status = 'running' AND retry_count < max_retries THEN retry_count + 1 ELSE retry_count END, \
           completed_at = CASE WHEN status = 'running' AND retry_count >= max_retries THEN ?2 ELSE completed_at END, \
           error_message = CASE WHEN status = 'running' THEN ?3 ELSE error_message END, \
           lease_expires_at = NULL, updated_at = ?2 \
         WHERE id = ?1 AND lease_expires_at IS NOT NULL RETURNING status",
    )?
    .query_row(params![id, now, reason], |r| r.get(0))
    .optional()
}

/// Ids of tasks whose lease expired before `now`.
pub fn expired_leases(c: &Connection, now: &str) -> rusqlite::Result<Vec<String>> {
    c.prepare_cached(
        "SELECT id FROM tasks WHERE lease_expires_at IS NOT NULL AND lease_expires_at < ?1",
    )?
    .query_map([now], |r| r.get(0))?
    .collect()
}

/// Cancels a task that no daemon holds (`queued`/`pending`). Returns whether it matched.
pub fn cancel_unheld(c: &Connection, id: &str, reason: &str) -> rusqlite::Result<bool> {
    let now = time::now();
    let n = c.prepare_cached(
        "UPDATE tasks SET status = 'cancelled', error_message = ?3, completed_at = ?2, updated_at = ?2 \
         WHERE id = ?1 AND status IN ('queued', 'pending')",
    )?
    .execute(params![id, now, reason])?;
    Ok(n == 1)
}

/// Cancels a running task: it stays held until the daemon acknowledges (`cancel_tasks`).
pub fn cancel_running(c: &Connection, id: &str, reason: &str) -> rusqlite::Result<bool> {
    let now = time::now();
    let n = c.execute(
        "UPDATE tasks SET status = 'cancelled', cancel_requested_at = ?2, error_message = ?3, \
         completed_at = ?2, updated_at = ?2 WHERE id = ?1 AND status = 'running'",
        params![id, now, reason],
    )?;
    Ok(n == 1)
}

/// The task queued behind `id` in a sequential batch, if any.
pub fn successor(c: &Connection, id: &str) -> rusqlite::Result<Option<String>> {
    c.prepare_cached("SELECT id FROM tasks WHERE depends_on = ?1 AND status = 'queued'")?
        .query_row([id], |r| r.get(0))
        .optional()
}

/// Unblocks a task queued behind a finished predecessor: it becomes claimable.
pub fn unblock(c: &Connection, id: &str) -> rusqlite::Result<bool> {
    let n = c.execute(
        "UPDATE tasks SET status = 'pending', updated_at = ?2 WHERE id = ?1 AND status = 'queued'",
        params![id, time::now()],
    )?;
    Ok(n == 1)
}

/// Ids of the user's unfinished tasks for a device, or in a session.
pub fn unfinished(
    c: &Connection,
    user_id: i64,
    device_id: Option<i64>,
    session_id: Option<i64>,
) -> rusqlite::Result<Vec<String>> {
    c.prepare(
        "SELECT id FROM tasks WHERE user_id = ?1 AND status IN ('queued', 'pending', 'running') \
         AND (?2 IS NULL OR device_id = ?2) AND (?3 IS NULL OR session_id = ?3) ORDER BY rowid",
    )?
    .query_map(params![user_id, device_id, session_id], |r| r.get(0))?
    .collect()
}

/// Pending tasks per (device, user) at start-up, to seed the claimable-work index.
pub fn all_pending_targets(c: &Connection) -> rusqlite::Result<Vec<(Option<i64>, i64)>> {
    c.prepare("SELECT DISTINCT device_id, user_id FROM tasks WHERE status = 'pending'")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// A task by id alone — only for internal jobs (janitor, requeue) that got the id from the
/// database itself, never for an id a caller sent.
pub fn get_internal(c: &Connection, id: &str) -> rusqlite::Result<Option<Task>> {
    c.prepare_cached(&format!("SELECT {COLUMNS} {FROM} WHERE t.id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

/// Deletes a session's tasks that no daemon holds; returns how many.
pub fn delete_unheld_in_session(c: &Connection, session_id: i64) -> rusqlite::Result<usize> {
    c.execute(
        "DELETE FROM tasks WHERE session_id = ?1 AND lease_expires_at IS NULL",
        [session_id],
    )
}

/// Detaches a session's remaining (held) tasks from it, so the cancels still reach the daemon.
pub fn detach_session(c: &Connection, session_id: i64) -> rusqlite::Result<usize> {
    c.execute(
        "UPDATE tasks SET session_id = NULL WHERE session_id = ?1",
        [session_id],
    )
}

pub(crate) const OLD_OUTPUT: &str = "SELECT id FROM tasks WHERE completed_at IS NOT NULL \
    AND (stdout IS NOT NULL OR stderr IS NOT NULL) AND completed_at < ?1 \
    ORDER BY completed_at LIMIT ?2";

/// Ids of at most `limit` tasks that finished before `cutoff` and still hold output, oldest
/// first (retention; reads the `tasks_output_age` index).
pub fn old_output(c: &Connection, cutoff: &str, limit: i64) -> rusqlite::Result<Vec<String>> {
    c.prepare_cached(OLD_OUTPUT)?
        .query_map(params![cutoff, limit], |r| r.get(0))?
        .collect()
}

/// Clears the stdout and stderr of these finished tasks (retention: the rows stay). Returns how
/// many changed.
pub fn clear_output(c: &Connection, ids: &[String]) -> rusqlite::Result<usize> {
    let mut st = c.prepare_cached(
        "UPDATE tasks SET stdout = NULL, stderr = NULL WHERE id = ?1 AND completed_at IS NOT NULL",
    )?;
    let mut n = 0;
    for id in ids {
        n += st.execute([id])?;
    }
    Ok(n)
}
