//! SQL for `api_keys` (schema.sql): scoped, long-lived credentials for scripts.

use super::OptionalRow;
use crate::time;
use rusqlite::{Connection, Row, params};

/// An API key row (no credential material beyond its display prefix).
#[derive(Clone, Debug)]
pub struct ApiKey {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub key_prefix: String,
    /// JSON array of scope names.
    pub scopes: Vec<String>,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

const COLUMNS: &str =
    "id, user_id, name, key_prefix, scopes, last_used_at, expires_at, created_at, revoked_at";

fn from_row(r: &Row) -> rusqlite::Result<ApiKey> {
    let scopes: String = r.get(4)?;
    Ok(ApiKey {
        id: r.get(0)?,
        user_id: r.get(1)?,
        name: r.get(2)?,
        key_prefix: r.get(3)?,
        scopes: serde_json::from_str(&scopes).unwrap_or_default(),
        last_used_at: r.get(5)?,
        expires_at: r.get(6)?,
        created_at: r.get(7)?,
        revoked_at: r.get(8)?,
    })
}

/// Inserts a key and returns its row.
pub fn insert(
    c: &Connection,
    user_id: i64,
    name: &str,
    prefix: &str,
    hash: &[u8],
    scopes: &[String],
    expires_at: Option<&str>,
) -> rusqlite::Result<ApiKey> {
    let scopes = serde_json::to_string(scopes).unwrap_or_else(|_| "[]".into());
    c.execute(
        "INSERT INTO api_keys (user_id, name, key_prefix, key_hash, scopes, expires_at, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![user_id, name, prefix, hash, scopes, expires_at, time::now()],
    )?;
    let id = c.last_insert_rowid();
    c.query_row(
        &format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"),
        [id],
        from_row,
    )
}

/// A page of the user's keys, newest first, revoked ones included (with `revoked_at`).
pub fn list(
    c: &Connection,
    user_id: i64,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<Vec<ApiKey>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2 OFFSET ?3"
    ))?
    .query_map(params![user_id, limit, offset], from_row)?
    .collect()
}

/// The key a hash belongs to, revoked or not (the caller checks).
pub fn find_by_hash(c: &Connection, hash: &[u8]) -> rusqlite::Result<Option<ApiKey>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE key_hash = ?1"
    ))?
    .query_row([hash], from_row)
    .optional()
}

/// Revokes the caller's key. Returns whether a live one matched.
pub fn revoke(c: &Connection, user_id: i64, id: i64) -> rusqlite::Result<bool> {
    let n = c.execute(
        "UPDATE api_keys SET revoked_at = ?3 WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
        params![id, user_id, time::now()],
    )?;
    Ok(n == 1)
}

/// Marks a key used at `at` (at most once a minute per key, decided by the caller).
pub fn touch(c: &Connection, id: i64, at: &str) -> rusqlite::Result<()> {
    c.prepare_cached("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1")?
        .execute(params![id, at])?;
    Ok(())
}
