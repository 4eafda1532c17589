//! SQL for `inbound_emails` (schema.sql): one row per delivery to the inbound-mail webhook,
//! with its outcome. `message_id` is unique among first deliveries (status other than
//! `duplicate`), which is what makes a redelivery create nothing.

use super::OptionalRow;
use crate::time;
use rusqlite::{Connection, Row, params};

/// A delivery to record.
#[derive(Clone, Debug, Default)]
pub struct NewInbound {
    pub message_id: Option<String>,
    pub from_address: Option<String>,
    pub subject: Option<String>,
    pub user_id: Option<i64>,
    pub device_id: Option<i64>,
    pub task_id: Option<String>,
    /// `accepted`, `rejected` or `duplicate`.
    pub status: &'static str,
    pub reason: Option<String>,
    pub ip_address: Option<String>,
}

/// A recorded delivery.
#[derive(Clone, Debug)]
pub struct Inbound {
    pub id: i64,
    pub message_id: Option<String>,
    pub from_address: Option<String>,
    pub subject: Option<String>,
    pub user_id: Option<i64>,
    pub device_id: Option<i64>,
    pub task_id: Option<String>,
    pub status: String,
    pub reason: Option<String>,
    pub received_at: String,
}

const COLUMNS: &str = "id, message_id, from_address, subject, user_id, device_id, task_id, \
    status, reason, received_at";

fn from_row(r: &Row) -> rusqlite::Result<Inbound> {
    Ok(Inbound {
        id: r.get(0)?,
        message_id: r.get(1)?,
        from_address: r.get(2)?,
        subject: r.get(3)?,
        user_id: r.get(4)?,
        device_id: r.get(5)?,
        task_id: r.get(6)?,
        status: r.get(7)?,
        reason: r.get(8)?,
        received_at: r.get(9)?,
    })
}

/// Records a delivery; returns its id.
pub fn insert(c: &Connection, n: &NewInbound) -> rusqlite::Result<i64> {
    c.prepare_cached(
        "INSERT INTO inbound_emails (message_id, from_address, subject, user_id, device_id, \
         task_id, status, reason, ip_address, received_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        n.message_id,
        n.from_address,
        n.subject,
        n.user_id,
        n.device_id,
        n.task_id,
        n.status,
        n.reason,
        n.ip_address,
        time::now()
    ])?;
    Ok(c.last_insert_rowid())
}

/// The first delivery of `message_id`, if there was one.
pub fn first_delivery(c: &Connection, message_id: &str) -> rusqlite::Result<Option<Inbound>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM inbound_emails WHERE message_id = ?1 AND status <> 'duplicate'"
    ))?
    .query_row([message_id], from_row)
    .optional()
}

/// The accepted delivery that created task `task_id` (its sender gets the result).
pub fn for_task(c: &Connection, task_id: &str) -> rusqlite::Result<Option<Inbound>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM inbound_emails WHERE task_id = ?1 AND status = 'accepted'"
    ))?
    .query_row([task_id], from_row)
    .optional()
}

/// Deletes deliveries received before `cutoff`; how many.
pub fn delete_before(c: &Connection, cutoff: &str) -> rusqlite::Result<usize> {
    c.prepare_cached("DELETE FROM inbound_emails WHERE received_at < ?1")?
        .execute([cutoff])
}

/// The active user whose address is exactly `email` (case-insensitive, no look-alike
/// folding: a sender must match precisely).
pub fn active_user_by_email(c: &Connection, email: &str) -> rusqlite::Result<Option<i64>> {
    c.prepare_cached("SELECT id FROM users WHERE email = ?1 AND is_active = 1")?
        .query_row([email], |r| r.get(0))
        .optional()
}

/// Whether the user exists and is active.
pub fn is_active_user(c: &Connection, user_id: i64) -> rusqlite::Result<bool> {
    c.prepare_cached("SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1 AND is_active = 1)")?
        .query_row([user_id], |r| r.get(0))
}

/// The user's devices whose public id is `name` or whose name is `name` (case-insensitive).
pub fn devices_named(c: &Connection, user_id: i64, name: &str) -> rusqlite::Result<Vec<i64>> {
    c.prepare_cached(
        "SELECT id FROM devices WHERE user_id = ?1 AND (uuid = ?2 OR name = ?2 COLLATE NOCASE) \
         ORDER BY id",
    )?
    .query_map(params![user_id, name], |r| r.get(0))?
    .collect()
}
