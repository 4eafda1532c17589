//! The daemon side of the queue (SPEC §6.1 daemon row, §7.1, §7.2), shared by `/v1/daemon/*`,
//! Lite's `/daemon/*` and Control's `/api/control/*`: heartbeat (status, uptime, online/offline
//! transitions, omitted tasks, cancels to deliver), claim, progress, result, offline.
//!
//! A device caller only ever touches its own tasks: the task must belong to the device's owner
//! and be for this device (or for any device) and be held by it; anything else is 404.

use crate::api::lifecycle::{after_final, announce, capacity_freed, give_back};
use crate::api::task_json::cap_output;
use crate::app::Ctx;
use crate::auth::DeviceCaller;
use crate::db::devices::{self, BeatRow, Device, Facts};
use crate::db::messages::{self, NewMessage};
use crate::db::tasks::{self, Outcome, Task};
use crate::db::users;
use crate::error::{ApiError, ApiResult};
use crate::presence;
use crate::time;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// What a heartbeat carries, whatever the family called the fields.
#[derive(Default, Debug)]
pub struct Beat {
    /// `online`, `busy`, `error`, `maintenance` or `offline`.
    pub status: Option<String>,
    /// Tasks the daemon is running now; `None` when the family does not send the list.
    pub current_tasks: Option<Vec<String>>,
    pub system_info: Option<Value>,
    pub facts: Facts,
}

/// The device after a heartbeat, with what it should know.
pub struct BeatReply {
    /// The device as it now stands (status and facts as just reported); shared with the
    /// heartbeat-row cache when the beat changed nothing.
    /// Its `config` reaches the daemon in the reply: interval changes travel this way.
    pub device: Arc<BeatRow>,
    pub cancel_tasks: Vec<String>,
}

const STATUSES: [&str; 5] = ["online", "busy", "error", "maintenance", "offline"];

/// Records a heartbeat (SPEC §7.2). A beat that changes the status or the daemon's facts is
/// written at once (with a `device_online`/`device_offline` message on a transition); any
/// other beat is coalesced in memory (`presence`). Online time since the previous beat (at
/// most 2 × interval) accrues to the UTC day. Running tasks the daemon no longer lists in
/// `current_tasks` although it has held them for more than one interval are given back, and so
/// is everything it holds when it goes offline. Errors: 422 for an unknown status, 401 if the
/// device was deleted.
pub fn heartbeat(cx: &Ctx, dev: &DeviceCaller, b: Beat) -> ApiResult<BeatReply> {
    let status = b.status.as_deref().unwrap_or("online").to_ascii_lowercase();
    if !STATUSES.contains(&status.as_str()) {
        return Err(ApiError::invalid(
            "status",
            "must be online, busy, error, maintenance or offline",
        ));
    }
    let system_info = b
        .system_info
        .filter(Value::is_object)
        .map(|v| v.to_string());
    let ip = cx.req.ip.clone();
    let row = match cx.app.presence.row(dev.id) {
        (Some(row), _) => row,
        (None, generation) => {
            let row = devices::beat_row(cx.db, dev.id)?
                .ok_or_else(|| ApiError::unauthorized("Device deleted"))?;
            let row = Arc::new(row);
            cx.app.presence.cache_row(row.clone(), generation);
            row
        }
    };
    let interval = row.interval();
    let now_t = std::time::SystemTime::now();
    let now = time::fmt(now_t);
    let prev_last = cx
        .app
        .presence
        .swap_last(dev.id, &now)
        .or_else(|| row.last_heartbeat_at.clone());
    let online_secs = match prev_last {
        Some(last) if row.status != "offline" => time::millis_between(&last, &now)
            .map_or(0, |ms| ((ms + 500) / 1000).min(2 * interval as u64) as i64),
        _ => 0,
    };
    let after = if status != row.status || row.differs(&b.facts) {
        let mut after = BeatRow::clone(&row);
        after.status = status.clone();
        let mut facts = b.facts;
        if let Some(n) = &facts.name {
            after.name = n.clone();
        }
        after.os_type = facts.os_type.clone().or(after.os_type);
        facts.system_info = system_info;
        facts.ip_address = Some(ip);
        let pending = cx.app.presence.take(dev.id);
        // Written below: the cached row must not outlive the write with the old status.
        cx.app.presence.forget_row(dev.id);
        let (st, at) = (status.clone(), now.clone());
        cx.write(move |c| {
            if let Some(p) = pending {
                presence::write(c, &[(row.id, p)])?;
            }
            // The status as stored now, not as read before the write: one message per transition.
            let cur = devices::beat_row(c, row.id)?
                .ok_or_else(|| ApiError::unauthorized("Device deleted"))?;
            devices::beat(c, row.id, &st, &at)?;
            devices::set_facts(c, row.id, &facts)?;
            devices::add_uptime(c, row.id, time::day(&at), online_secs)?;
            if (cur.status == "offline") != (st == "offline") {
                let kind = if st == "offline" {
                    "device_offline"
                } else {
                    "device_online"
                };
                record_transition(c, cur.user_id, cur.id, &cur.name, &cur.uuid, kind)?;
            }
            Ok(())
        })?;
        Arc::new(after)
    } else {
        cx.app.presence.record(dev.id, |p| {
            p.last = now.clone();
            if system_info.is_some() {
                p.system_info = system_info;
            }
            p.ip_address = Some(ip);
            p.add_uptime(time::day(&now), online_secs);
        });
        row
    };
    // One read of what the device holds serves both the give-backs and the cancels to deliver.
    let listed = b.current_tasks;
    let cutoff = time::fmt(now_t - std::time::Duration::from_secs(interval as u64));
    let (mut give, mut cancel_tasks) = (Vec::new(), Vec::new());
    let held = match cx.app.hints.may_hold(dev.id) {
        Some(generation) => {
            let held = tasks::held_by(cx.db, dev.id)?;
            if held.is_empty() {
                cx.app.hints.saw_nothing_held(dev.id, generation);
            }
            held
        }
        None => Vec::new(),
    };
    for (id, st, started) in held {
        let omitted = listed.as_ref().is_some_and(|l| !l.contains(&id));
        let long_held = started.as_deref().is_some_and(|s| s < cutoff.as_str());
        if status == "offline" || (omitted && (st == "cancelled" || long_held)) {
            give.push(id);
        } else if st == "cancelled" {
            cancel_tasks.push(id);
        }
    }
    give_back(cx.app, give, "Given back: the daemon stopped reporting it")?;
    Ok(BeatReply {
        device: after,
        cancel_tasks,
    })
}

/// Tasks the device could claim now (`/v1` heartbeat's `pending_count`); 0 while offline, and
/// answered from memory when the claimable-work index says there is none.
pub fn pending_count(cx: &Ctx, dev: &DeviceCaller, r: &BeatReply) -> ApiResult<i64> {
    if r.device.status == "offline" || !cx.app.hints.maybe(dev.id, dev.user_id) {
        return Ok(0);
    }
    Ok(tasks::count_claimable(cx.db, dev.id, dev.user_id)?)
}

/// Writes a `device_online`/`device_offline` message (once per transition).
pub fn record_transition(
    c: &rusqlite::Connection,
    user_id: i64,
    device_id: i64,
    name: &str,
    uuid: &str,
    kind: &str,
) -> ApiResult<()> {
    let word = if kind == "device_online" {
        "online"
    } else {
        "offline"
    };
    messages::insert(
        c,
        &NewMessage {
            user_id,
            task_id: None,
            device_id: Some(device_id),
            kind,
            title: format!("Device {name} is {word}"),
            content: None,
            data: json!({"device_id": uuid, "status": word}),
        },
    )?;
    Ok(())
}

/// Claims up to `limit` tasks for the device (SPEC §7.1 claim), shaped by the device's and the
/// plan's concurrency limits. Answers from memory when no work can be claimable.
pub fn claim(cx: &Ctx, dev: &DeviceCaller, limit: i64) -> ApiResult<Vec<Task>> {
    if !cx.app.hints.maybe(dev.id, dev.user_id) {
        return Ok(Vec::new());
    }
    let (did, uid, hints) = (dev.id, dev.user_id, cx.app.hints.clone());
    let grace = cx.cfg().lease_grace.as_millis() as i64;
    cx.write(move |c| {
        let d =
            devices::beat_row(c, did)?.ok_or_else(|| ApiError::unauthorized("Device deleted"))?;
        let (dev_running, user_running) = tasks::running_counts(c, did, uid)?;
        let mut n = limit.min(d.config_int("max_concurrent_tasks", 3) - dev_running);
        if let Some(plan_max) = users::limits(c, uid)?.max_concurrent_tasks {
            n = n.min(plan_max - user_running);
        }
        let got = tasks::claim(c, did, uid, n, grace)?;
        if !got.is_empty() {
            hints.claimed(did);
        }
        if tasks::count_claimable(c, did, uid)? == 0 {
            hints.clear(did, uid);
        }
        Ok(got)
    })
}

/// Lite's and Control's heartbeat: records the beat and claims up to `limit` tasks, which the
/// reply hands out — never for an `offline` beat, whose reply the daemon discards (SPEC §6.5).
pub fn beat_and_claim(
    cx: &Ctx,
    dev: &DeviceCaller,
    b: Beat,
    limit: i64,
) -> ApiResult<(BeatReply, Vec<Task>)> {
    let r = heartbeat(cx, dev, b)?;
    let claimed = if r.device.status == "offline" {
        Vec::new()
    } else {
        claim(cx, dev, limit)?
    };
    Ok((r, claimed))
}

/// Cancelled tasks this device still holds whose cancel was requested after `since`.
pub fn cancels_since(cx: &Ctx, dev: &DeviceCaller, since: &str) -> ApiResult<Vec<String>> {
    Ok(tasks::pending_cancels(cx.db, dev.id, since)?)
}

/// A daemon's result (Full field names; the other families map theirs onto it).
#[derive(Deserialize, Default, Debug)]
pub struct ResultRequest {
    pub status: Option<String>,
    pub exit_code: Option<i64>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub error: Option<String>,
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

fn stale() -> ApiError {
    ApiError::conflict(
        "STALE_ATTEMPT",
        "This result is for an attempt that no longer holds the task",
    )
}

/// Records a result (SPEC §7.1 result). Status comes from the body, else from `exit_code`
/// (0 → completed). Errors: 404, 409 `STALE_ATTEMPT`, 409 `TASK_NOT_RUNNING`, 422.
pub fn report(cx: &Ctx, dev: &DeviceCaller, id: &str, r: ResultRequest) -> ApiResult<Reported> {
    let status = match r.status.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("completed" | "success" | "succeeded") => "completed",
        Some("failed" | "failure" | "error") => "failed",
        Some("timeout") => "timeout",
        Some("cancelled" | "canceled") => "cancelled",
        Some(_) => {
            return Err(ApiError::invalid(
                "status",
                "must be completed, failed, timeout or cancelled",
            ));
        }
        None if r.exit_code == Some(0) => "completed",
        None => "failed",
    };
    let cap = cx.cfg().max_output;
    let stdout = r.stdout.as_deref().map(|s| cap_output(s, cap).into_owned());
    let stderr = r.stderr.as_deref().map(|s| cap_output(s, cap).into_owned());
    let error = r
        .error
        .as_deref()
        .map(|s| cap_output(s, 64 * 1024).into_owned());
    let owner = dev.user_id;
    let (dev, id, hints) = (dev.clone(), id.to_string(), cx.app.hints.clone());
    let (reported, released) = cx.write(move |c| {
        let t = task_for_device(c, &dev, &id)?;
        if t.claimed_by != Some(dev.id) {
            return Err(if t.attempt > 0 {
                stale()
            } else {
                not_running(&t)
            });
        }
        if r.attempt.is_some_and(|a| a != t.attempt) {
            return Err(stale());
        }
        let o = Outcome {
            status,
            exit_code: r.exit_code,
            stdout: stdout.as_deref(),
            stderr: stderr.as_deref(),
            error: error.as_deref(),
            completed_at: &time::now(),
        };
        match t.status.as_str() {
            "running" => {
                tasks::finish(c, &id, dev.id, t.attempt, &o)?;
                let done =
                    tasks::get(c, dev.user_id, &id)?.ok_or_else(|| ApiError::not_found("Task"))?;
                let released = after_final(c, &done, &hints)?;
                Ok((Reported::Accepted(done), released))
            }
            "cancelled" if t.lease_expires_at.is_some() => {
                tasks::keep_cancelled_output(c, &id, dev.id, &o)?;
                let kept =
                    tasks::get(c, dev.user_id, &id)?.ok_or_else(|| ApiError::not_found("Task"))?;
                Ok((Reported::CancelledKept(kept), None))
            }
            "completed" | "failed" => Ok((Reported::Duplicate(t), None)),
            "cancelled" => Ok((Reported::CancelledKept(t), None)),
            _ => Err(stale()),
        }
    })?;
    announce(cx.app, &released.into_iter().collect::<Vec<_>>());
    capacity_freed(cx.app, owner);
    Ok(reported)
}

fn not_running(t: &Task) -> ApiError {
    ApiError::conflict("TASK_NOT_RUNNING", format!("Task is {}", t.status))
}

/// `POST /v1/daemon/tasks/{id}/progress`: progress 0–100 and partial output of a task the
/// device runs. Errors: 404, 409 `TASK_NOT_RUNNING`, 422.
pub fn progress(
    cx: &Ctx,
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
    cx.write(move |c| {
        let t = task_for_device(c, &dev, &id)?;
        if t.claimed_by != Some(dev.id)
            || !tasks::progress(
                c,
                &id,
                dev.id,
                progress,
                stdout.as_deref(),
                stderr.as_deref(),
            )?
        {
            return Err(not_running(&t));
        }
        tasks::get(c, dev.user_id, &id)?.ok_or_else(|| ApiError::not_found("Task"))
    })
}

/// `POST /v1/daemon/offline`: the device is offline now and its running tasks go back.
pub fn offline(cx: &Ctx, dev: &DeviceCaller) -> ApiResult<BeatReply> {
    heartbeat(
        cx,
        dev,
        Beat {
            status: Some("offline".into()),
            ..Beat::default()
        },
    )
}

/// `GET /v1/daemon/config/sync`: the device's config (and marks the sync time).
pub fn config_sync(cx: &Ctx, dev: &DeviceCaller) -> ApiResult<Device> {
    let did = dev.id;
    cx.write(move |c| Ok(devices::touch_sync(c, did)?))?;
    devices::get_by_id(cx.db, dev.id)?.ok_or_else(|| ApiError::unauthorized("Device deleted"))
}
