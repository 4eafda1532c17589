//! What happens around a task's state changes (docs/tasks.md): making a task claimable,
//! cancelling it, the consequences of reaching a final state (a notification, releasing or
//! cancelling what is queued behind it in a sequential batch), and requeueing held attempts.
//!
//! Every function here runs inside a write job (`&Tx`) and registers the after-commit effects
//! its change implies (wake the polls that may now claim, free a user's running slot, tell the
//! owner's event streams), so no caller can forget one: task cancel, device delete and session delete all cancel through
//! `cancel`, and the janitor, heartbeats and `offline` all requeue through `requeue`.

use crate::db::Tx;
use crate::db::effects::Effect;
use crate::db::messages::NewMessage;
use crate::db::tasks::{self, Task, TaskStatus};
use crate::domain::events::{self, NewOutput};
use crate::domain::mail;
use crate::error::{ApiError, ApiResult, Code};
use crate::state::claimable::ClaimableIndex;
use serde_json::json;

/// Records that `t` is claimable now: marks the claimable-work index (inside the job, so the
/// mark is ordered with the change) and wakes the polls that may claim it after commit.
pub fn made_claimable(tx: &Tx, index: &ClaimableIndex, device_id: Option<i64>, user_id: i64) {
    index.mark(device_id, user_id);
    tx.after_commit(match device_id {
        Some(d) => Effect::DeviceWork(d),
        None => Effect::UserWork(user_id),
    });
}

/// Why a task was cancelled, for its `error_message`.
#[derive(Clone, Copy, Debug)]
pub enum CancelReason {
    /// Its owner asked.
    User,
    /// Its device was deleted.
    DeviceDeleted,
    /// The session it was created in was deleted.
    SessionDeleted,
}

impl CancelReason {
    fn text(self) -> &'static str {
        match self {
            CancelReason::User => "Cancelled by user",
            CancelReason::DeviceDeleted => "Cancelled: the device was deleted",
            CancelReason::SessionDeleted => "Cancelled: its session was deleted",
        }
    }
}

/// Cancels task `t` (already looked up inside its owner's data): `queued`/`pending` at once;
/// `running` is marked cancelled with `cancel_requested_at` and stays held until its daemon
/// acknowledges (the next heartbeat's `cancel_tasks`; its parked polls are woken now and the
/// owner's running slot counts as free). What was queued behind it in a sequential batch is
/// cancelled too. Returns the task as it now stands.
/// Errors: 409 `TASK_NOT_CANCELLABLE` for a final task.
pub fn cancel(tx: &Tx, index: &ClaimableIndex, t: &Task, why: CancelReason) -> ApiResult<Task> {
    match t.status {
        TaskStatus::Queued | TaskStatus::Pending => {
            tasks::cancel_unheld(tx, &t.id, why.text())?;
        }
        TaskStatus::Running => {
            tasks::cancel_running(tx, &t.id, why.text())?;
            if let Some(holder) = t.claimed_by {
                tx.after_commit(Effect::DeviceWork(holder));
            }
            tx.after_commit(Effect::CapacityFreed(t.user_id));
        }
        s => {
            return Err(ApiError::conflict(
                Code::TaskNotCancellable,
                format!("Task is already {s}"),
            ));
        }
    }
    let after = tasks::get(tx, t.user_id, &t.id)?
        .ok_or_else(|| ApiError::internal("cancelled task vanished"))?;
    after_final(tx, index, &after)?;
    Ok(after)
}

/// Cancels the tasks queued behind `id` in a sequential batch, saying why.
fn cancel_successors(tx: &Tx, id: &str, why: &str) -> ApiResult<()> {
    let mut cur = id.to_string();
    while let Some(next) = tasks::successor(tx, &cur)? {
        if tasks::cancel_unheld(tx, &next, why)?
            && let Some(n) = tasks::get_internal(tx, &next)?
        {
            events::task_completed(tx, &n);
        }
        cur = next;
    }
    Ok(())
}

/// What follows a task reaching a final state, inside the same write job: its
/// `task.completed` event, a notification (none for a cancel, which the owner asked for), its
/// mails (`mail::task_final`: the owner with `notify_email`, the sender of a task that came by
/// e-mail), and in a sequential batch the release (after success) or cancellation (otherwise)
/// of what is queued behind it.
pub fn after_final(tx: &Tx, index: &ClaimableIndex, t: &Task) -> ApiResult<()> {
    events::task_completed(tx, t);
    let (kind, verb) = match t.status {
        TaskStatus::Completed => ("task_completed", "completed"),
        TaskStatus::Failed => ("task_failed", "failed"),
        TaskStatus::Timeout => ("task_failed", "timed out"),
        _ => ("task_cancelled", "was cancelled"),
    };
    let mut message_id = None;
    if t.status != TaskStatus::Cancelled {
        let short: String = t.command.chars().take(80).collect();
        message_id = Some(events::insert_message(
            tx,
            &NewMessage {
                user_id: t.user_id,
                task_id: Some(&t.id),
                device_id: t.claimed_by.or(t.device_id),
                kind,
                title: format!("Task {verb}: {short}"),
                content: t.error_message.clone(),
                data: json!({"task_id": t.id, "status": t.status, "exit_code": t.exit_code}),
            },
        )?);
    }
    mail::task_final(tx, t, message_id)?;
    if t.status == TaskStatus::Completed {
        if let Some(next) = tasks::successor(tx, &t.id)?
            && tasks::unblock(tx, &next)?
            && let Some(n) = tasks::get_internal(tx, &next)?
        {
            made_claimable(tx, index, n.device_id, n.user_id);
            events::task_updated(tx, &n, &NewOutput::default());
        }
    } else {
        cancel_successors(
            tx,
            &t.id,
            &format!("Cancelled: an earlier task in the batch {verb}"),
        )?;
    }
    Ok(())
}

/// Requeues held attempts (lease expired, daemon went offline, a heartbeat no longer lists
/// them): `pending` again while retries remain, else `timeout` with its final consequences.
/// Either way the owner's running slot is free again.
pub fn requeue(tx: &Tx, index: &ClaimableIndex, ids: &[String], reason: &str) -> ApiResult<()> {
    for id in ids {
        let Some(status) = tasks::requeue(tx, id, reason)? else {
            continue;
        };
        let Some(t) = tasks::get_internal(tx, id)? else {
            continue;
        };
        tx.after_commit(Effect::CapacityFreed(t.user_id));
        match status {
            TaskStatus::Pending => {
                made_claimable(tx, index, t.device_id, t.user_id);
                events::task_updated(tx, &t, &NewOutput::default());
            }
            TaskStatus::Timeout => after_final(tx, index, &t)?,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::db::effects::Effect;
    use crate::db::tasks::TaskStatus;
    use crate::domain::callers::DeviceCaller;
    use crate::domain::testing::Fixture;
    use crate::domain::{daemon, devices, tasks};

    fn queue(f: &Fixture, user: i64, device: &str, command: &str) -> String {
        let who = tasks::Creator {
            user_id: user,
            session_id: None,
            own_device: None,
        };
        let r = tasks::CreateTaskRequest {
            device_id: Some(device.to_string()),
            command: command.into(),
            ..Default::default()
        };
        tasks::create(&f.cx(), &who, &r, tasks::Source::Api, None)
            .expect("create")
            .0
            .id
    }

    #[test]
    fn cancelling_a_running_task_frees_the_slot_and_wakes_its_device() {
        let f = Fixture::new();
        let user = f.user("a@example.com", "pro");
        let (d, _) = devices::create(&f.cx(), user, "box").expect("device");
        let id = queue(&f, user, &d.uuid, "sleep 100");
        assert!(
            f.effects.take().contains(&Effect::DeviceWork(d.id)),
            "creation wakes"
        );
        let dev = DeviceCaller {
            id: d.id,
            uuid: d.uuid.clone(),
            user_id: user,
        };
        assert_eq!(daemon::claim(&f.cx(), &dev, 5).expect("claim").len(), 1);
        f.effects.take();
        let t = tasks::cancel(&f.cx(), user, &id, None).expect("cancel");
        assert_eq!(t.status, TaskStatus::Cancelled);
        let effects = f.effects.take();
        assert!(effects.contains(&Effect::DeviceWork(d.id)), "{effects:?}");
        assert!(
            effects.contains(&Effect::CapacityFreed(user)),
            "{effects:?}"
        );
        assert!(
            tasks::cancel(&f.cx(), user, &id, None).is_err(),
            "final is final"
        );
        assert!(
            f.effects.take().is_empty(),
            "a refused cancel registers nothing"
        );
    }

    #[test]
    fn deleting_a_device_cancels_its_tasks_and_frees_their_slots() {
        let f = Fixture::new();
        let user = f.user("b@example.com", "pro");
        let (d, _) = devices::create(&f.cx(), user, "box").expect("device");
        let running = queue(&f, user, &d.uuid, "a");
        let waiting = queue(&f, user, &d.uuid, "b");
        let dev = DeviceCaller {
            id: d.id,
            uuid: d.uuid.clone(),
            user_id: user,
        };
        assert_eq!(daemon::claim(&f.cx(), &dev, 1).expect("claim").len(), 1);
        f.effects.take();
        devices::delete(&f.cx(), user, &d.uuid).expect("delete");
        for id in [&running, &waiting] {
            let t = tasks::get(&f.cx(), user, id).expect("task");
            assert_eq!(t.status, TaskStatus::Cancelled, "{id}");
            assert_eq!(t.device_id, None);
        }
        let effects = f.effects.take();
        assert!(
            effects.contains(&Effect::CapacityFreed(user)),
            "{effects:?}"
        );
        assert!(
            effects.contains(&Effect::DeviceChanged(d.id)),
            "{effects:?}"
        );
    }

    #[test]
    fn tasks_of_the_same_millisecond_are_claimed_in_insertion_order() {
        let f = Fixture::new();
        let user = f.user("c@example.com", "enterprise");
        let (d, _) = devices::create(&f.cx(), user, "box").expect("device");
        let mut made = Vec::new();
        for i in 0..60 {
            made.push(queue(&f, user, &d.uuid, &format!("echo {i}")));
        }
        let dev = DeviceCaller {
            id: d.id,
            uuid: d.uuid.clone(),
            user_id: user,
        };
        let mut claimed = Vec::new();
        for _ in 0..30 {
            for t in daemon::claim(&f.cx(), &dev, 2).expect("claim") {
                claimed.push(t.id.clone());
                let r = daemon::ResultRequest {
                    exit_code: Some(0),
                    ..Default::default()
                };
                daemon::report(&f.cx(), &dev, &t.id, r).expect("result");
            }
        }
        assert_eq!(claimed, made, "claimed in the order they were queued");
    }
}
