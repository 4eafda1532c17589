//! SQL for `messages` (schema.sql, docs/tasks.md): notifications written in the same transaction as the
//! event that caused them.

use crate::time;
use rusqlite::{Connection, params};
use serde_json::Value;

/// A notification to insert.
pub struct NewMessage<'a> {
    pub user_id: i64,
    pub task_id: Option<&'a str>,
    pub device_id: Option<i64>,
    /// `task_completed`, `task_failed`, `device_online`, `device_offline`, ...
    pub kind: &'a str,
    pub title: String,
    pub content: Option<String>,
    pub data: Value,
}

/// Inserts a message; returns its id.
pub fn insert(c: &Connection, m: &NewMessage) -> rusqlite::Result<i64> {
    c.prepare_cached(
        "INSERT INTO messages (user_id, task_id, device_id, type, title, content, data, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![m.user_id, m.task_id, m.device_id, m.kind, m.title, m.content, m.data.to_string(), time::now()])?;
    Ok(c.last_insert_rowid())
}
