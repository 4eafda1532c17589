//! The daemon side of the queue (docs/tasks.md), shared by `/v1/daemon/*`, Lite's
//! `/daemon/*` and Control's `/api/control/*`: heartbeat (status, uptime, online/offline
//! transitions, omitted tasks, cancels to deliver), claim, progress, result, offline.
//!
//! A device caller only ever touches its own tasks: the task must belong to the device's owner
//! and be for this device (or for any device) and be held by it; anything else is 404.

use crate::db::devices::{self, BeatRow, Device, DeviceStatus, Facts};
use crate::db::effects::Effect;
use crate::db::messages::NewMessage;
use crate::db::tasks::{self, Task, TaskResult, TaskStatus};
use crate::db::{Tx, users};
use crate::domain::Cx;
use crate::domain::callers::DeviceCaller;
use crate::domain::events::{self, NewOutput, output_delta};
use crate::domain::lifecycle::{after_final, requeue};
use crate::domain::mail;
use crate::domain::output::cap_output;
use crate::domain::policy::{self, *};
use crate::error::{ApiError, ApiResult, Code};
use crate::time;
use serde_json::{Value, json};
use std::sync::Arc;

/// What a heartbeat carries, whatever the family called the fields.
#[derive(Default, Debug)]
pub struct Beat {
    /// `online`, `busy`, `error`, `maintenance` or `offline` (default `online`).
    pub status: Option<String>,
    /// Tasks the daemon is running now; `None` when the family does not send the list.
    pub current_tasks: Option<Vec<String>>,
    pub system_info: Option<Value>,
    pub facts: Facts,
}

/// The device after a heartbeat, with what it should know.
pub struct BeatReply {
    /// The device as it now stands (status and facts as just reported); shared with the
    /// heartbeat-row cache when the beat changed nothing. Its `config` reaches the daemon in
    /// the reply: interval changes travel this way.
    pub device: Arc<BeatRow>,
    /// Cancelled tasks the daemon still holds: it should stop them.
    pub cancel_tasks: Vec<String>,
}

/// Records a heartbeat from `ip`. A beat that changes the status or the daemon's facts is
/// written at once (with a `device_online`/`device_offline` message on a transition); any
/// other beat is coalesced in memory. Online time since the previous beat (at most
/// `UPTIME_CREDIT_INTERVALS` × interval) accrues to the UTC day. Running tasks the daemon no
/// longer lists in `current_tasks` although it has held them for more than one interval are
/// requeued, and so is everything it holds when it goes offline. Errors: 422 for an unknown
/// status, 401 if the device was deleted.
pub fn heartbeat(cx: &Cx, dev: &DeviceCaller, b: Beat, ip: &str) -> ApiResult<BeatReply> {
    let status = match b.status.as_deref() {
        None => DeviceStatus::Online,
        Some(s) => DeviceStatus::parse(s).ok_or_else(|| {
            ApiError::invalid(
                "status",
                "must be online, busy, error, maintenance or offline",
            )
        })?,
    };
    let system_info = b
        .system_info
        .filter(Value::is_object)
        .map(|v| v.to_string());
    let presence = &cx.svc.presence;
    let row = match presence.row(dev.id) {
        (Some(row), _) => row,
        (None, generation) => {
            let row = devices::beat_row(cx.reader, dev.id)?
                .ok_or_else(|| ApiError::unauthorized("Device deleted"))?;
            let row = Arc::new(row);
            presence.cache_row(row.clone(), generation);
            row
        }
    };
    let interval = row.interval(DEFAULT_HEARTBEAT_INTERVAL);
    let now_t = std::time::SystemTime::now();
    let now = time::fmt(now_t);
    let prev_last = presence
        .swap_last(dev.id, &now)
        .or_else(|| row.last_heartbeat_at.clone());
    let credit = (UPTIME_CREDIT_INTERVALS * interval) as u64;
    let online_secs = match prev_last {
        Some(last) if row.status != DeviceStatus::Offline => {
            time::millis_between(&last, &now).map_or(0, |ms| ((ms + 500) / 1000).min(credit) as i64)
        }
        _ => 0,
    };
    let after = if status != row.status || row.differs(&b.facts) {
        let mut after = BeatRow::clone(&row);
        after.status = status;
        let mut facts = b.facts;
        if let Some(n) = &facts.name {
            after.name = n.clone();
        }
        after.os_type = facts.os_type.clone().or(after.os_type);
        facts.system_info = system_info;
        facts.ip_address = Some(ip.to_string());
        let pending = presence.take(dev.id);
        // Written below: the cached row must not outlive the write with the old status.
        presence.forget_row(dev.id);
        let at = now.clone();
        cx.write(move |tx| {
            if let Some(p) = pending {
                devices::write_beats(tx, &[(row.id, p)])?;
            }
            // The status as stored now, not as read before the write: one message per transition.
            let cur = devices::beat_row(tx, row.id)?
                .ok_or_else(|| ApiError::unauthorized("Device deleted"))?;
            devices::beat(tx, row.id, status, &at)?;
            devices::set_facts(tx, row.id, &facts)?;
            devices::add_uptime(tx, row.id, time::day(&at), online_secs)?;
            let was_offline = cur.status == DeviceStatus::Offline;
            if was_offline != (status == DeviceStatus::Offline) {
                record_transition(tx, &cur, status)?;
            }
            Ok(())
        })?;
        Arc::new(after)
    } else {
        presence.record(dev.id, |p| {
            p.last = now.clone();
            if system_info.is_some() {
                p.system_info = system_info;
            }
            p.ip_address = Some(ip.to_string());
            p.add_uptime(time::day(&now), online_secs);
        });
        row
    };
    // One read of what the device holds serves both the requeues and the cancels to deliver.
    let listed = b.current_tasks;
    let cutoff = time::fmt(
        now_t - std::time::Duration::from_secs((OMITTED_TASK_INTERVALS * interval) as u64),
    );
    let (mut give, mut cancel_tasks) = (Vec::new(), Vec::new());
    let held = match cx.svc.claimable.may_hold(dev.id) {
        Some(generation) => {
            let held = tasks::held_by(cx.reader, dev.id)?;
            if held.is_empty() {
                cx.svc.claimable.saw_nothing_held(dev.id, generation);
            }
            held
        }
        None => Vec::new(),
    };
    for (id, st, started) in held {
        let omitted = listed.as_ref().is_some_and(|l| !l.contains(&id));
        let long_held = started.as_deref().is_some_and(|s| s < cutoff.as_str());
        if status == DeviceStatus::Offline
            || (omitted && (st == TaskStatus::Cancelled || long_held))
        {
            give.push(id);
        } else if st == TaskStatus::Cancelled {
            cancel_tasks.push(id);
        }
    }
    if !give.is_empty() {
        let index = cx.svc.claimable.clone();
        cx.write(move |tx| {
            requeue(
                tx,
                &index,
                &give,
                "Requeued: the daemon stopped reporting it",
            )
        })?;
    }
    Ok(BeatReply {
        device: after,
        cancel_tasks,
    })
}

/// Tasks the device could claim now (`/v1` heartbeat's `pending_count`); 0 while offline, and
/// answered from memory when the claimable-work index says there is none.
pub fn pending_count(cx: &Cx, dev: &DeviceCaller, r: &BeatReply) -> ApiResult<i64> {
    if r.device.status == DeviceStatus::Offline || !cx.svc.claimable.maybe(dev.id, dev.user_id) {
        return Ok(0);
    }
    Ok(tasks::count_claimable(cx.reader, dev.id, dev.user_id)?)
}

/// Writes a `device_online`/`device_offline` message for device `d` going to `status`, and
/// publishes the `device.online`/`device.offline` event, and mails an offline transition to an
/// owner with `notify_email` on (`mail::device_offline`).
pub fn record_transition(tx: &Tx, d: &BeatRow, status: DeviceStatus) -> ApiResult<()> {
    events::device_status(tx, d, status);
    let (kind, word) = if status == DeviceStatus::Offline {
        ("device_offline", "offline")
    } else {
        ("device_online", "online")
    };
    let id = events::insert_message(
        tx,
        &NewMessage {
            user_id: d.user_id,
            task_id: None,
            device_id: Some(d.id),
            kind,
            title: format!("Device {} is {word}", d.name),
            content: None,
            data: json!({"device_id": d.uuid, "status": word}),
        },
    )?;
    if status == DeviceStatus::Offline {
        mail::device_offline(tx, d, id)?;
    }
    Ok(())
}

/// Claims up to `limit` tasks for the device (docs/tasks.md "Claim"), shaped by the device's
/// and the plan's concurrency limits. Answers from memory when no work can be claimable.
pub fn claim(cx: &Cx, dev: &DeviceCaller, limit: i64) -> ApiResult<Vec<Task>> {
    if !cx.svc.claimable.maybe(dev.id, dev.user_id) {
        return Ok(Vec::new());
    }
    let (did, uid, index) = (dev.id, dev.user_id, cx.svc.claimable.clone());
    let grace = cx.cfg().lease_grace.as_millis() as i64;
    cx.write(move |tx| {
        let d =
            devices::beat_row(tx, did)?.ok_or_else(|| ApiError::unauthorized("Device deleted"))?;
        let (dev_running, user_running) = tasks::running_counts(tx, did, uid)?;
        let n = policy::claim_room(
            limit,
            d.config_int("max_concurrent_tasks", DEFAULT_DEVICE_CONCURRENCY),
            dev_running,
            users::limits(tx, uid)?.max_concurrent_tasks,
            user_running,
        );
        let got = tasks::claim(tx, did, uid, n, grace)?;
        if !got.is_empty() {
            index.claimed(did);
        }
        for t in &got {
            events::task_updated(tx, t, &NewOutput::default());
        }
        if tasks::count_claimable(tx, did, uid)? == 0 {
            index.clear(did, uid);
        }
        Ok(got)
    })
}

/// Lite's and Control's heartbeat: records the beat and claims up to `limit` tasks, which the
/// reply hands out — never for an `offline` beat, whose reply the daemon discards.
pub fn beat_and_claim(
    cx: &Cx,
    dev: &DeviceCaller,
    b: Beat,
    ip: &str,
    limit: i64,
) -> ApiResult<(BeatReply, Vec<Task>)> {
    let r = heartbeat(cx, dev, b, ip)?;
    let claimed = if r.device.status == DeviceStatus::Offline {
        Vec::new()
    } else {
        claim(cx, dev, limit)?
    };
    Ok((r, claimed))
}

/// Cancelled tasks this device still holds whose cancel was requested after `since`.
pub fn cancels_since(cx: &Cx, dev: &DeviceCaller, since: &str) -> ApiResult<Vec<String>> {
    Ok(tasks::pending_cancels(cx.reader, dev.id, since)?)
}

/// A daemon's result (Full's field names; the other families map theirs onto it).
#[derive(serde::Deserialize, schemars::JsonSchema, Default, Debug)]
pub struct ResultRequest {
    /// `completed`, `failed`, `timeout` or `cancelled` (also `success`, `error`, …); when
    /// absent, `exit_code` 0 means completed and anything else failed.
    pub status: Option<String>,
    pub exit_code: Option<i64>,
    /// Capped at `CCJK_MAX_OUTPUT` (head and tail kept).
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    /// Why it failed, in the daemon's words.
    pub error: Option<String>,
    /// When the command started, RFC 3339; kept when not before the claim nor in the future.
    pub started_at: Option<String>,
    /// When the command ended, RFC 3339; kept when not before the start nor in the future.
    pub completed_at: Option<String>,
    /// The attempt this result is for (as claimed); checked when sent.
    pub attempt: Option<i64>,
}

/// What became of a reported result.
pub enum Reported {
    /// The task is now final with this result.
    Accepted(Task),
    /// The same result again: nothing changed.
    Duplicate(Task),
    /// The task was cancelled while running: output kept, status stays `cancelled`.
    CancelledKept(Task),
}

/// Loads a task for a device caller: the owner's, for this device or any device, else 404.
fn task_for_device(c: &rusqlite::Connection, dev: &DeviceCaller, id: &str) -> ApiResult<Task> {
    let t = tasks::get(c, dev.user_id, id)?.ok_or_else(|| ApiError::not_found("Task"))?;
    let for_me = t.device_id.is_none_or(|d| d == dev.id) || t.claimed_by == Some(dev.id);
    if !for_me {
        return Err(ApiError::not_found("Task"));
    }
    Ok(t)
}

fn stale_attempt() -> ApiError {
    ApiError::conflict(
        Code::StaleAttempt,
        "This result is for an attempt that no longer holds the task",
    )
}

fn not_running(t: &Task) -> ApiError {
    ApiError::conflict(Code::TaskNotRunning, format!("Task is {}", t.status))
}

/// A daemon-reported time, normalised, if it lies within `[not_before, now]`.
fn sane_time(v: Option<&str>, not_before: Option<&str>, now: &str) -> Option<String> {
    let t = time::normalize(v?)?;
    let after_start = not_before.is_none_or(|b| t.as_str() >= b);
    (after_start && t.as_str() <= now).then_some(t)
}

/// Records a result (docs/tasks.md "Result"). Status comes from the body, else from
/// `exit_code` (0 → completed). Errors: 404 (not this device's task, or held by another
/// device), 409 `STALE_ATTEMPT`, 409 `TASK_NOT_RUNNING`, 422.
pub fn report(cx: &Cx, dev: &DeviceCaller, id: &str, r: ResultRequest) -> ApiResult<Reported> {
    let status = match r.status.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("completed" | "success" | "succeeded") => TaskStatus::Completed,
        Some("failed" | "failure" | "error") => TaskStatus::Failed,
        Some("timeout") => TaskStatus::Timeout,
        Some("cancelled" | "canceled") => TaskStatus::Cancelled,
        Some(_) => {
            return Err(ApiError::invalid(
                "status",
                "must be completed, failed, timeout or cancelled",
            ));
        }
        None if r.exit_code == Some(0) => TaskStatus::Completed,
        None if r.exit_code.is_some() || r.error.is_some() => TaskStatus::Failed,
        None => {
            return Err(ApiError::invalid(
                "status",
                "a result needs a status, an exit_code or an error",
            ));
        }
    };
    let cap = cx.cfg().max_output;
    let stdout = r.stdout.as_deref().map(|s| cap_output(s, cap).into_owned());
    let stderr = r.stderr.as_deref().map(|s| cap_output(s, cap).into_owned());
    let error = r
        .error
        .as_deref()
        .map(|s| cap_output(s, OUTPUT_HEAD).into_owned());
    let (dev, id, index) = (dev.clone(), id.to_string(), cx.svc.claimable.clone());
    cx.write(move |tx| {
        let t = task_for_device(tx, &dev, &id)?;
        if t.claimed_by != Some(dev.id) {
            // Held (or last held) by another device: as far as this one knows, no such task.
            if t.claimed_by.is_some() {
                return Err(ApiError::not_found("Task"));
            }
            return Err(not_running(&t));
        }
        if r.attempt.is_some_and(|a| a != t.attempt) {
            return Err(stale_attempt());
        }
        let now = time::now();
        let started_at = sane_time(r.started_at.as_deref(), t.started_at.as_deref(), &now);
        let completed_at = sane_time(
            r.completed_at.as_deref(),
            started_at.as_deref().or(t.started_at.as_deref()),
            &now,
        )
        .unwrap_or_else(|| now.clone());
        let o = TaskResult {
            status,
            exit_code: r.exit_code,
            stdout: stdout.as_deref(),
            stderr: stderr.as_deref(),
            error: error.as_deref(),
            started_at: started_at.as_deref(),
            completed_at: &completed_at,
        };
        match t.status {
            TaskStatus::Running => {
                tasks::finish(tx, &id, dev.id, t.attempt, &o)?;
                tx.after_commit(Effect::CapacityFreed(dev.user_id));
                let done =
                    tasks::get(tx, dev.user_id, &id)?.ok_or_else(|| ApiError::not_found("Task"))?;
                after_final(tx, &index, &done)?;
                Ok(Reported::Accepted(done))
            }
            TaskStatus::Cancelled if t.lease_expires_at.is_some() => {
                tasks::keep_cancelled_output(tx, &id, dev.id, &o)?;
                tx.after_commit(Effect::CapacityFreed(dev.user_id));
                let kept =
                    tasks::get(tx, dev.user_id, &id)?.ok_or_else(|| ApiError::not_found("Task"))?;
                let out = NewOutput {
                    stdout: output_delta(t.stdout.as_deref(), kept.stdout.as_deref()),
                    stderr: output_delta(t.stderr.as_deref(), kept.stderr.as_deref()),
                };
                events::task_updated(tx, &kept, &out);
                Ok(Reported::CancelledKept(kept))
            }
            TaskStatus::Completed | TaskStatus::Failed => Ok(Reported::Duplicate(t)),
            TaskStatus::Cancelled => Ok(Reported::CancelledKept(t)),
            _ => Err(stale_attempt()),
        }
    })
}

/// Progress 0–100 and partial output of a task the device runs.
/// Errors: 404, 409 `TASK_NOT_RUNNING`, 422.
pub fn progress(
    cx: &Cx,
    dev: &DeviceCaller,
    id: &str,
    progress: i64,
    stdout: Option<String>,
    stderr: Option<String>,
) -> ApiResult<Task> {
    if !(0..=100).contains(&progress) {
        return Err(ApiError::invalid("progress", "must be 0 to 100"));
    }
    let cap = cx.cfg().max_output;
    let (stdout, stderr) = (
        stdout.map(|s| cap_output(&s, cap).into_owned()),
        stderr.map(|s| cap_output(&s, cap).into_owned()),
    );
    let (dev, id) = (dev.clone(), id.to_string());
    cx.write(move |tx| {
        let t = task_for_device(tx, &dev, &id)?;
        if t.claimed_by.is_some() && t.claimed_by != Some(dev.id) {
            return Err(ApiError::not_found("Task"));
        }
        if t.claimed_by != Some(dev.id)
            || !tasks::progress(
                tx,
                &id,
                dev.id,
                progress,
                stdout.as_deref(),
                stderr.as_deref(),
            )?
        {
            return Err(not_running(&t));
        }
        let now = tasks::get(tx, dev.user_id, &id)?.ok_or_else(|| ApiError::not_found("Task"))?;
        let out = NewOutput {
            stdout: output_delta(t.stdout.as_deref(), stdout.as_deref()),
            stderr: output_delta(t.stderr.as_deref(), stderr.as_deref()),
        };
        events::task_updated(tx, &now, &out);
        Ok(now)
    })
}

/// `POST /v1/daemon/offline`: the device is offline now and its running tasks are requeued.
pub fn offline(cx: &Cx, dev: &DeviceCaller, ip: &str) -> ApiResult<BeatReply> {
    heartbeat(
        cx,
        dev,
        Beat {
            status: Some("offline".into()),
            ..Beat::default()
        },
        ip,
    )
}

/// The device's config (and marks the sync time).
pub fn config_sync(cx: &Cx, dev: &DeviceCaller) -> ApiResult<Device> {
    let did = dev.id;
    cx.write(move |tx| Ok(devices::touch_sync(tx, did)?))?;
    devices::get_by_id(cx.reader, dev.id)?.ok_or_else(|| ApiError::unauthorized("Device deleted"))
}
