//! SQL for `config_backups` (schema.sql "Config backups, daemon logs, statistics"): insert,
//! look up inside the owner's data, list, delete, prune automatic backups, and the bytes a user
//! stores in them. Rows carry the device's public uuid (a scalar subquery, as `db::tasks` does).

use super::OptionalRow;
use crate::time;
use rusqlite::{Connection, Row, params};

/// A backup row without its document.
#[derive(Clone, Debug)]
pub struct Backup {
    pub id: i64,
    pub user_id: i64,
    pub device_id: Option<i64>,
    /// The device's public id, if the backup belongs to a device that still exists.
    pub device_uuid: Option<String>,
    pub name: String,
    pub size_bytes: i64,
    pub is_auto: bool,
    pub created_at: String,
}

const COLUMNS: &str = "b.id, b.user_id, b.device_id, (SELECT uuid FROM devices WHERE id = b.device_id), \
    b.name, b.size_bytes, b.is_auto, b.created_at";

fn from_row(r: &Row) -> rusqlite::Result<Backup> {
    Ok(Backup {
        id: r.get(0)?,
        user_id: r.get(1)?,
        device_id: r.get(2)?,
        device_uuid: r.get(3)?,
        name: r.get(4)?,
        size_bytes: r.get(5)?,
        is_auto: r.get(6)?,
        created_at: r.get(7)?,
    })
}

/// What a new backup is made of; `config_json` is stored exactly as given.
pub struct NewBackup<'a> {
    pub user_id: i64,
    pub device_id: Option<i64>,
    pub name: &'a str,
    pub config_json: &'a str,
    pub is_auto: bool,
}

/// Inserts a backup and returns its id.
pub fn insert(c: &Connection, b: &NewBackup) -> rusqlite::Result<i64> {
    c.prepare_cached(
        "INSERT INTO config_backups (user_id, device_id, name, config_json, size_bytes, is_auto, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        b.user_id,
        b.device_id,
        b.name,
        b.config_json,
        b.config_json.len() as i64,
        b.is_auto,
        time::now()
    ])?;
    Ok(c.last_insert_rowid())
}

/// The user's backup with this id (without the document).
pub fn get(c: &Connection, user_id: i64, id: i64) -> rusqlite::Result<Option<Backup>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM config_backups b WHERE b.id = ?1 AND b.user_id = ?2"
    ))?
    .query_row(params![id, user_id], from_row)
    .optional()
}

/// The user's backup with this id and its document, exactly as stored.
pub fn get_with_document(
    c: &Connection,
    user_id: i64,
    id: i64,
) -> rusqlite::Result<Option<(Backup, String)>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS}, b.config_json FROM config_backups b WHERE b.id = ?1 AND b.user_id = ?2"
    ))?
    .query_row(params![id, user_id], |r| Ok((from_row(r)?, r.get(8)?)))
    .optional()
}

/// A page of the user's backups (of one device when `device_id` is set), newest first.
pub fn list(
    c: &Connection,
    user_id: i64,
    device_id: Option<i64>,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<Vec<Backup>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM config_backups b WHERE b.user_id = ?1 AND (?2 IS NULL OR b.device_id = ?2) \
         ORDER BY b.created_at DESC, b.id DESC LIMIT ?3 OFFSET ?4"
    ))?
    .query_map(params![user_id, device_id, limit, offset], from_row)?
    .collect()
}

/// Deletes the user's backup. Returns whether it matched.
pub fn delete(c: &Connection, user_id: i64, id: i64) -> rusqlite::Result<bool> {
    Ok(
        c.prepare_cached("DELETE FROM config_backups WHERE id = ?1 AND user_id = ?2")?
            .execute(params![id, user_id])?
            == 1,
    )
}

/// Deletes the user's automatic backups of `device_id` (or of no device) beyond the newest
/// `keep`. Returns how many went.
pub fn prune_auto(
    c: &Connection,
    user_id: i64,
    device_id: Option<i64>,
    keep: i64,
) -> rusqlite::Result<usize> {
    c.prepare_cached(
        "DELETE FROM config_backups WHERE id IN (SELECT id FROM config_backups \
         WHERE device_id IS ?2 AND user_id = ?1 AND is_auto = 1 \
         ORDER BY created_at DESC, id DESC LIMIT -1 OFFSET ?3)",
    )?
    .execute(params![user_id, device_id, keep])
}

/// Bytes of the user's backups (a term of `domain::policy::storage_used`).
pub fn bytes_used(c: &Connection, user_id: i64) -> rusqlite::Result<i64> {
    c.prepare_cached("SELECT coalesce(sum(size_bytes), 0) FROM config_backups WHERE user_id = ?1")?
        .query_row([user_id], |r| r.get(0))
}

/// Bytes of the backups of one device (its statistics).
pub fn device_bytes(c: &Connection, device_id: i64) -> rusqlite::Result<i64> {
    c.prepare_cached(
        "SELECT coalesce(sum(size_bytes), 0) FROM config_backups WHERE device_id = ?1",
    )?
    .query_row([device_id], |r| r.get(0))
}
