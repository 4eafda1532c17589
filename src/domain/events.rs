//! What each state change tells a user's event streams (docs/events.md): the payloads of
//! `task.created`, `task.updated`, `task.completed`, `device.online`, `device.offline` and
//! `message.new` (Full's WebSocket events), registered as after-commit effects on the write
//! job that made the change, so a rolled-back write publishes nothing.
//!
//! The functions that change task and device state call these (`lifecycle`, `daemon`,
//! `tasks`, the janitor through `daemon::record_transition`); `insert_message` is how every
//! notification is written, so none is written without its `message.new`.

use crate::db::Tx;
use crate::db::devices::{BeatRow, DeviceStatus};
use crate::db::effects::{Effect, Event, EventKind};
use crate::db::messages::{self, NewMessage};
use crate::db::tasks::Task;
use crate::domain::policy::EVENT_OUTPUT_TAIL;
use crate::error::ApiResult;
use crate::time;
use serde_json::{Map, Value, json};

fn publish(tx: &Tx, user_id: i64, kind: EventKind, data: Value) {
    tx.after_commit(Effect::Publish(Box::new(Event {
        user_id,
        kind,
        data,
    })));
}

/// The last `max` bytes of `s` (on a character boundary) and whether anything was cut.
pub fn tail(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    (&s[start..], true)
}

/// Output a progress report brought: the text added to what was stored (`reset = false`), or,
/// when the new output does not continue the old one or its new part is too long for one event,
/// its tail to show instead of what the client has (`reset = true`). `None`: no change.
pub fn output_delta<'a>(old: Option<&str>, new: Option<&'a str>) -> Option<(&'a str, bool)> {
    let new = new?;
    let (part, reset) = match old {
        Some(o) if new.starts_with(o) => (&new[o.len()..], false),
        _ => (new, true),
    };
    if part.is_empty() && !reset {
        return None;
    }
    let (t, cut) = tail(part, EVENT_OUTPUT_TAIL);
    Some((t, reset || cut))
}

fn task_base(t: &Task) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("task_id".into(), json!(t.id));
    m.insert("status".into(), json!(t.status));
    m.insert("device_id".into(), json!(t.device_uuid));
    m
}

/// `task.created`: a task was queued (`POST /v1/tasks`, a batch, a retry, Lite, e-mail).
pub fn task_created(tx: &Tx, t: &Task) {
    let mut m = task_base(t);
    m.insert("type".into(), json!(t.kind));
    m.insert("command".into(), json!(t.command));
    m.insert("priority".into(), json!(t.priority));
    m.insert("batch_id".into(), json!(t.batch_id));
    m.insert("parent_task_id".into(), json!(t.parent_task_id));
    m.insert("created_at".into(), json!(t.created_at));
    publish(tx, t.user_id, EventKind::TaskCreated, Value::Object(m));
}

/// New output of a running task, for `task_updated`.
#[derive(Default)]
pub struct NewOutput<'a> {
    pub stdout: Option<(&'a str, bool)>,
    pub stderr: Option<(&'a str, bool)>,
}

/// `task.updated`: a task changed state without finishing (claimed, requeued, released in a
/// batch) or reported progress; `out` is the output the report brought (see `output_delta`).
pub fn task_updated(tx: &Tx, t: &Task, out: &NewOutput) {
    let mut m = task_base(t);
    m.insert("progress".into(), json!(t.progress));
    m.insert("attempt".into(), json!(t.attempt));
    m.insert("updated_at".into(), json!(t.updated_at));
    for (name, o) in [("stdout", out.stdout), ("stderr", out.stderr)] {
        if let Some((text, reset)) = o {
            m.insert(name.into(), json!(text));
            m.insert(format!("{name}_reset"), json!(reset));
        }
    }
    publish(tx, t.user_id, EventKind::TaskUpdated, Value::Object(m));
}

/// `task.completed`: a task reached a final state (completed, failed, timeout or cancelled),
/// with the tail of its output (`output_truncated` when more is stored: read the task).
pub fn task_completed(tx: &Tx, t: &Task) {
    let mut m = task_base(t);
    let (stdout, cut_out) = tail(t.stdout.as_deref().unwrap_or(""), EVENT_OUTPUT_TAIL);
    let (stderr, cut_err) = tail(t.stderr.as_deref().unwrap_or(""), EVENT_OUTPUT_TAIL);
    m.insert("exit_code".into(), json!(t.exit_code));
    m.insert("stdout".into(), json!(stdout));
    m.insert("stderr".into(), json!(stderr));
    m.insert("output_truncated".into(), json!(cut_out || cut_err));
    m.insert("error_message".into(), json!(t.error_message));
    m.insert("progress".into(), json!(t.progress));
    m.insert("completed_at".into(), json!(t.completed_at));
    publish(tx, t.user_id, EventKind::TaskCompleted, Value::Object(m));
}

/// `device.online` / `device.offline`: device `d` went to `status` across the offline line.
pub fn device_status(tx: &Tx, d: &BeatRow, status: DeviceStatus) {
    let kind = if status == DeviceStatus::Offline {
        EventKind::DeviceOffline
    } else {
        EventKind::DeviceOnline
    };
    let data = json!({
        "device_id": d.uuid,
        "name": d.name,
        "status": status,
        "timestamp": time::now(),
    });
    publish(tx, d.user_id, kind, data);
}

/// Writes a notification and publishes its `message.new`. Returns the message id.
pub fn insert_message(tx: &Tx, m: &NewMessage) -> ApiResult<i64> {
    let id = messages::insert(tx, m)?;
    let data = json!({
        "message_id": id,
        "type": m.kind,
        "title": m.title,
        "content": m.content,
        "task_id": m.task_id,
        "data": m.data,
        "created_at": time::now(),
    });
    publish(tx, m.user_id, EventKind::MessageNew, data);
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_cut_on_character_boundaries() {
        assert_eq!(tail("abc", 5), ("abc", false));
        assert_eq!(tail("abcdef", 3), ("def", true));
        // "é" is two bytes: a cut inside it moves forward.
        assert_eq!(tail("aéb", 2), ("b", true));
    }

    #[test]
    fn deltas_append_or_reset() {
        assert_eq!(output_delta(None, None), None);
        assert_eq!(output_delta(Some("a"), None), None);
        assert_eq!(output_delta(None, Some("hi")), Some(("hi", true)));
        assert_eq!(
            output_delta(Some("hello\n"), Some("hello\nworld\n")),
            Some(("world\n", false))
        );
        assert_eq!(output_delta(Some("same"), Some("same")), None);
        assert_eq!(output_delta(Some("old"), Some("new")), Some(("new", true)));
        let long = "x".repeat(EVENT_OUTPUT_TAIL + 10);
        let (t, reset) = output_delta(Some(""), Some(&long)).expect("a delta");
        assert_eq!((t.len(), reset), (EVENT_OUTPUT_TAIL, true));
    }
}
