//! SQL for `devices` (SPEC §4): daemons, their keys and (from the task-queue issue on) their
//! state. Every lookup by id names the owner.

use super::OptionalRow;
use crate::time;
use rusqlite::{Connection, params};

/// Default device config (Full: `POST /daemon/register`'s reply).
pub const DEFAULT_CONFIG: &str = r#"{"heartbeat_interval":30,"task_check_interval":10,"log_upload_enabled":true,"max_concurrent_tasks":3}"#;

/// A device as the authentication layer sees it.
#[derive(Clone, Debug)]
pub struct DeviceAuth {
    pub id: i64,
    pub uuid: String,
    pub user_id: i64,
}

/// Key material for a new or rotated device key.
pub struct KeyMaterial {
    pub prefix: String,
    pub hash: Vec<u8>,
    pub sealed: Vec<u8>,
}

/// Inserts a device and returns its internal id.
pub fn insert(
    c: &Connection,
    user_id: i64,
    name: &str,
    machine_id: Option<&str>,
    primary: bool,
    key: &KeyMaterial,
) -> rusqlite::Result<i64> {
    let now = time::now();
    c.prepare_cached(
        "INSERT INTO devices (uuid, user_id, name, machine_id, is_primary, key_prefix, key_hash, \
         key_sealed, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
    )?
    .execute(params![
        uuid::Uuid::new_v4().to_string(),
        user_id,
        name,
        machine_id,
        primary,
        key.prefix,
        key.hash,
        key.sealed,
        now
    ])?;
    Ok(c.last_insert_rowid())
}

/// The sealed key of the user's primary device.
pub fn primary_key_sealed(c: &Connection, user_id: i64) -> rusqlite::Result<Option<Vec<u8>>> {
    c.prepare_cached("SELECT key_sealed FROM devices WHERE user_id = ?1 AND is_primary = 1")?
        .query_row([user_id], |r| r.get(0))
        .optional()
}

/// The device a key hash belongs to.
pub fn find_by_key(c: &Connection, hash: &[u8]) -> rusqlite::Result<Option<DeviceAuth>> {
    c.prepare_cached("SELECT id, uuid, user_id FROM devices WHERE key_hash = ?1")?
        .query_row([hash], |r| Ok(DeviceAuth { id: r.get(0)?, uuid: r.get(1)?, user_id: r.get(2)? }))
        .optional()
}
