//! SQL for `messages` (schema.sql, docs/tasks.md): notifications written in the same
//! transaction as the event that caused them, and what their owner does with them (list, mark
//! read, delete). Every lookup by id names the owner.

use super::OptionalRow;
use crate::time;
use rusqlite::{Connection, Row, params};
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

/// A message row, with its device's public id.
#[derive(Clone, Debug)]
pub struct Message {
    pub id: i64,
    pub user_id: i64,
    pub task_id: Option<String>,
    pub device_uuid: Option<String>,
    pub kind: String,
    pub title: String,
    pub content: Option<String>,
    /// JSON text.
    pub data: Option<String>,
    pub read_at: Option<String>,
    pub sent_via_email: bool,
    pub sent_via_push: bool,
    pub created_at: String,
}

const COLUMNS: &str = "m.id, m.user_id, m.task_id, (SELECT uuid FROM devices WHERE id = m.device_id), \
    m.type, m.title, m.content, m.data, m.read_at, m.sent_via_email, m.sent_via_push, m.created_at";

fn from_row(r: &Row) -> rusqlite::Result<Message> {
    Ok(Message {
        id: r.get(0)?,
        user_id: r.get(1)?,
        task_id: r.get(2)?,
        device_uuid: r.get(3)?,
        kind: r.get(4)?,
        title: r.get(5)?,
        content: r.get(6)?,
        data: r.get(7)?,
        read_at: r.get(8)?,
        sent_via_email: r.get(9)?,
        sent_via_push: r.get(10)?,
        created_at: r.get(11)?,
    })
}

/// The user's messages, newest first (only unread ones with `unread_only`).
pub fn list(
    c: &Connection,
    user_id: i64,
    unread_only: bool,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<Vec<Message>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM messages m WHERE m.user_id = ?1 AND (?2 = 0 OR m.read_at IS NULL) \
         ORDER BY m.created_at DESC, m.id DESC LIMIT ?3 OFFSET ?4"
    ))?
    .query_map(params![user_id, unread_only, limit, offset], from_row)?
    .collect()
}

/// The user's message with this id.
pub fn get(c: &Connection, user_id: i64, id: i64) -> rusqlite::Result<Option<Message>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM messages m WHERE m.id = ?1 AND m.user_id = ?2"
    ))?
    .query_row(params![id, user_id], from_row)
    .optional()
}

/// How many of the user's messages are unread.
pub fn unread_count(c: &Connection, user_id: i64) -> rusqlite::Result<i64> {
    c.prepare_cached("SELECT count(*) FROM messages WHERE user_id = ?1 AND read_at IS NULL")?
        .query_row([user_id], |r| r.get(0))
}

/// Marks the user's message read (keeping the first read time); whether it exists.
pub fn mark_read(c: &Connection, user_id: i64, id: i64) -> rusqlite::Result<bool> {
    Ok(c.prepare_cached(
        "UPDATE messages SET read_at = coalesce(read_at, ?3) WHERE id = ?1 AND user_id = ?2",
    )?
    .execute(params![id, user_id, time::now()])?
        == 1)
}

/// Marks every unread message of the user read; how many.
pub fn mark_all_read(c: &Connection, user_id: i64) -> rusqlite::Result<usize> {
    c.prepare_cached("UPDATE messages SET read_at = ?2 WHERE user_id = ?1 AND read_at IS NULL")?
        .execute(params![user_id, time::now()])
}

/// Deletes the user's message; whether it existed.
pub fn delete(c: &Connection, user_id: i64, id: i64) -> rusqlite::Result<bool> {
    Ok(
        c.prepare_cached("DELETE FROM messages WHERE id = ?1 AND user_id = ?2")?
            .execute(params![id, user_id])?
            == 1,
    )
}

/// Records that a message went out by e-mail (the mailer, once the relay accepted it).
pub fn set_sent_via_email(c: &Connection, id: i64) -> rusqlite::Result<()> {
    c.prepare_cached("UPDATE messages SET sent_via_email = 1 WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}
