//! How tasks look on the wire (SPEC §6): the canonical `/v1` JSON, the shape a daemon receives
//! when it claims, and the output cap applied to stdout and stderr (SPEC §7.1 output).

use crate::db::tasks::Task;
use serde_json::{Map, Value, json};

/// Parses a stored JSON column (`args`, `env`, ...) back into a value; `null` if absent.
pub fn json_col(s: &Option<String>) -> Value {
    s.as_deref()
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or(Value::Null)
}

/// The canonical JSON of a task (`/v1`; the other families pick from it).
pub fn task_json(t: &Task) -> Value {
    json!({
        "id": t.id,
        "device_id": t.device_uuid,
        "session_id": t.session_id,
        "batch_id": t.batch_id,
        "depends_on": t.depends_on,
        "parent_task_id": t.parent_task_id,
        "type": t.kind,
        "command": t.command,
        "args": json_col(&t.args),
        "cwd": t.cwd,
        "env": json_col(&t.env),
        "status": t.status,
        "priority": t.priority,
        "timeout": t.timeout_ms,
        "max_retries": t.max_retries,
        "retry_count": t.retry_count,
        "attempt": t.attempt,
        "progress": t.progress,
        "exit_code": t.exit_code,
        "stdout": t.stdout,
        "stderr": t.stderr,
        "error_message": t.error_message,
        "source": t.source,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
        "started_at": t.started_at,
        "completed_at": t.completed_at,
        "lease_expires_at": t.lease_expires_at,
        "cancel_requested_at": t.cancel_requested_at,
    })
}

/// A claimed task as a daemon receives it (Full's pending-task shape; Lite and Control pick).
pub fn claimed_json(t: &Task) -> Value {
    let mut args = match json_col(&t.args) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let env = json_col(&t.env);
    args.insert("cwd".into(), json!(t.cwd));
    args.insert("env".into(), env.clone());
    args.insert("timeout".into(), json!(t.timeout_ms));
    json!({
        "id": t.id,
        "type": t.kind,
        "command": t.command,
        "args": args,
        "cwd": t.cwd,
        "env": env,
        "timeout": t.timeout_ms,
        "priority": t.priority,
        "max_retries": t.max_retries,
        "attempt": t.attempt,
        "created_at": t.created_at,
        "lease_expires_at": t.lease_expires_at,
    })
}

/// Caps one output stream at `cap` bytes: the first 64 KiB, a `…[N bytes truncated]…` marker,
/// and the last part (SPEC §7.1 output). Cuts only at character boundaries.
pub fn cap_output(s: &str, cap: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= cap {
        return s.into();
    }
    let floor = |mut i: usize| {
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let ceil = |mut i: usize| {
        while !s.is_char_boundary(i) {
            i += 1;
        }
        i
    };
    const MARKER_ROOM: usize = 48;
    let head = floor((64 * 1024).min(cap / 2));
    let tail_start = ceil(s.len() - (cap - head - MARKER_ROOM));
    let dropped = tail_start - head;
    format!(
        "{}\n…[{dropped} bytes truncated]…\n{}",
        &s[..head],
        &s[tail_start..]
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::cap_output;

    #[test]
    fn output_cap_keeps_head_and_tail() {
        let s = format!(
            "{}{}{}",
            "a".repeat(70_000),
            "é".repeat(100_000),
            "z".repeat(70_000)
        );
        let cap = 128 * 1024;
        let out = cap_output(&s, cap);
        assert!(out.len() <= cap, "{}", out.len());
        assert!(out.starts_with(&"a".repeat(65_536)));
        assert!(out.ends_with(&"z".repeat(60_000)));
        assert!(out.contains("bytes truncated]"));
        assert_eq!(cap_output("short", cap), "short");
    }
}
