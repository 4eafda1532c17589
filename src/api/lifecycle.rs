//! What happens around a task's state changes (SPEC §7.1): the consequences of reaching a
//! final state (notification, sequential-batch release or cancellation), giving held attempts
//! back, and waking the parked polls that may now claim work. Shared by `api::tasks`,
//! `api::daemon`, `api::devices`, `api::sessions` and the janitor.

use crate::app::App;
use crate::db::messages::{self, NewMessage};
use crate::db::tasks::{self, Task};
use crate::error::ApiResult;
use rusqlite::Connection;
use serde_json::json;

/// A running slot of this user was freed (a result, a give-back, a cancel acknowledged): polls
/// that waited at a concurrency limit may claim now.
pub fn capacity_freed(app: &App, user_id: i64) {
    if app.hints.user_maybe(user_id) {
        app.park.wake_user(user_id);
    }
}

/// Marks claimable work and wakes the parked polls that may claim it (after commit).
pub fn announce(app: &App, targets: &[(Option<i64>, i64)]) {
    for (device, user) in targets {
        match device {
            Some(d) => app.park.wake_device(*d),
            None => app.park.wake_user(*user),
        }
    }
}

/// Cancels the tasks queued behind `id` in a sequential batch, saying why.
fn cancel_successors(c: &Connection, id: &str, why: &str) -> ApiResult<()> {
    let mut cur = id.to_string();
    while let Some(next) = tasks::successor(c, &cur)? {
        tasks::cancel_unheld(c, &next, why)?;
        cur = next;
    }
    Ok(())
}

/// What follows a task reaching a final state, inside the same writer job: a notification,
/// and in a sequential batch the release (after success) or cancellation (otherwise) of what is
/// queued behind it. Returns the released task's claim target, if any.
pub fn after_final(
    c: &Connection,
    t: &Task,
    hints: &crate::hints::Hints,
) -> ApiResult<Option<(Option<i64>, i64)>> {
    let (kind, verb) = match t.status.as_str() {
        "completed" => ("task_completed", "completed"),
        "failed" => ("task_failed", "failed"),
        "timeout" => ("task_failed", "timed out"),
        _ => ("task_cancelled", "was cancelled"),
    };
    if t.status != "cancelled" {
        let short: String = t.command.chars().take(80).collect();
        messages::insert(
            c,
            &NewMessage {
                user_id: t.user_id,
                task_id: Some(&t.id),
                device_id: t.claimed_by.or(t.device_id),
                kind,
                title: format!("Task {verb}: {short}"),
                content: t.error_message.clone(),
                data: json!({"task_id": t.id, "status": t.status, "exit_code": t.exit_code}),
            },
        )?;
    }
    if t.status == "completed" {
        if let Some(next) = tasks::successor(c, &t.id)?
            && tasks::release(c, &next)?
            && let Some(n) = tasks::get_internal(c, &next)?
        {
            hints.mark(n.device_id, n.user_id);
            return Ok(Some((n.device_id, n.user_id)));
        }
    } else {
        cancel_successors(
            c,
            &t.id,
            &format!("Cancelled: an earlier task in the batch {verb}"),
        )?;
    }
    Ok(None)
}

/// Gives held attempts back (lease expired, daemon went offline, a heartbeat no longer lists
/// them): `pending` again while retries remain, else `timeout` (SPEC §7.1 leases).
pub fn give_back(app: &App, ids: Vec<String>, reason: &'static str) -> ApiResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let hints = app.hints.clone();
    let targets = app.db.write(move |c| {
        let mut targets = Vec::new();
        let mut owners = Vec::new();
        for id in ids {
            let Some(status) = tasks::give_back(c, &id, reason)? else {
                continue;
            };
            let Some(t) = tasks::get_internal(c, &id)? else {
                continue;
            };
            owners.push(t.user_id);
            match status.as_str() {
                "pending" => {
                    hints.mark(t.device_id, t.user_id);
                    targets.push((t.device_id, t.user_id));
                }
                "timeout" => targets.extend(after_final(c, &t, &hints)?),
                _ => {}
            }
        }
        Ok((targets, owners))
    })?;
    let (targets, owners) = targets;
    announce(app, &targets);
    for u in owners {
        capacity_freed(app, u);
    }
    Ok(())
}
