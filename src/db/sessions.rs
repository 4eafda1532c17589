//! SQL for `sessions` (schema.sql, docs/security.md): named logins with a token and a refresh token.
//!
//! Every lookup by id also names the owner (`user_id = ?`): another user's session id behaves
//! exactly like a missing one.

use super::OptionalRow;
use crate::time;
use rusqlite::{Connection, Row, params};

/// A session row (no credential material).
#[derive(Clone, Debug)]
pub struct Session {
    pub id: i64,
    pub user_id: i64,
    pub name: Option<String>,
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
    pub created_at: String,
    pub last_used_at: String,
    pub expires_at: Option<String>,
    pub refresh_expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

const COLUMNS: &str = "id, user_id, name, user_agent, ip_address, created_at, last_used_at, \
    expires_at, refresh_expires_at, revoked_at";

fn from_row(r: &Row) -> rusqlite::Result<Session> {
    Ok(Session {
        id: r.get(0)?,
        user_id: r.get(1)?,
        name: r.get(2)?,
        user_agent: r.get(3)?,
        ip_address: r.get(4)?,
        created_at: r.get(5)?,
        last_used_at: r.get(6)?,
        expires_at: r.get(7)?,
        refresh_expires_at: r.get(8)?,
        revoked_at: r.get(9)?,
    })
}

/// Credential material for a new or rotated session.
pub struct Secrets {
    pub token_hash: Vec<u8>,
    pub token_sealed: Vec<u8>,
    pub refresh_hash: Vec<u8>,
    pub expires_at: Option<String>,
    pub refresh_expires_at: Option<String>,
}

/// Inserts a session and returns it.
pub fn insert(
    c: &Connection,
    user_id: i64,
    s: &Secrets,
    name: Option<&str>,
    user_agent: Option<&str>,
    ip: Option<&str>,
) -> rusqlite::Result<Session> {
    let now = time::now();
    c.prepare_cached(
        "INSERT INTO sessions (user_id, token_hash, token_sealed, refresh_hash, name, user_agent, \
         ip_address, created_at, last_used_at, expires_at, refresh_expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10)",
    )?
    .execute(params![
        user_id,
        s.token_hash,
        s.token_sealed,
        s.refresh_hash,
        name,
        user_agent,
        ip,
        now,
        s.expires_at,
        s.refresh_expires_at
    ])?;
    let id = c.last_insert_rowid();
    get_any(c, id).and_then(|s| s.ok_or(rusqlite::Error::QueryReturnedNoRows))
}

fn get_any(c: &Connection, id: i64) -> rusqlite::Result<Option<Session>> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM sessions WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

/// The caller's live (not revoked) session with this id.
pub fn get(c: &Connection, user_id: i64, id: i64) -> rusqlite::Result<Option<Session>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM sessions WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL"
    ))?
    .query_row([id, user_id], from_row)
    .optional()
}

/// The session a token hash belongs to, revoked or not (the caller checks).
pub fn find_by_token(c: &Connection, hash: &[u8]) -> rusqlite::Result<Option<Session>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM sessions WHERE token_hash = ?1"
    ))?
    .query_row([hash], from_row)
    .optional()
}

/// The session a refresh-token hash belongs to.
pub fn find_by_refresh(c: &Connection, hash: &[u8]) -> rusqlite::Result<Option<Session>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM sessions WHERE refresh_hash = ?1"
    ))?
    .query_row([hash], from_row)
    .optional()
}

/// A page of the user's live sessions, most recently used first.
pub fn list(
    c: &Connection,
    user_id: i64,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<Vec<Session>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL \
         ORDER BY last_used_at DESC, id DESC LIMIT ?2 OFFSET ?3"
    ))?
    .query_map(params![user_id, limit, offset], from_row)?
    .collect()
}

/// The user's most recently used live, unexpired session with its sealed token
/// (Sessions' login returns the existing session).
pub fn most_recent_live(
    c: &Connection,
    user_id: i64,
) -> rusqlite::Result<Option<(Session, Vec<u8>)>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS}, token_sealed FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL \
         AND (expires_at IS NULL OR expires_at > ?2) ORDER BY last_used_at DESC, id DESC LIMIT 1"
    ))?
    .query_row(params![user_id, time::now()], |r| {
        Ok((from_row(r)?, r.get(10)?))
    })
    .optional()
}

/// Replaces a session's credentials if its refresh token is still `old_refresh` (so two
/// concurrent refreshes cannot both win). Returns whether it rotated.
pub fn rotate(c: &Connection, id: i64, old_refresh: &[u8], s: &Secrets) -> rusqlite::Result<bool> {
    let n = c.execute(
        "UPDATE sessions SET token_hash = ?3, token_sealed = ?4, refresh_hash = ?5, \
         expires_at = ?6, refresh_expires_at = ?7, last_used_at = ?8 \
         WHERE id = ?1 AND refresh_hash = ?2 AND revoked_at IS NULL",
        params![
            id,
            old_refresh,
            s.token_hash,
            s.token_sealed,
            s.refresh_hash,
            s.expires_at,
            s.refresh_expires_at,
            time::now()
        ],
    )?;
    Ok(n == 1)
}

/// Renames the caller's session. Returns whether it exists.
pub fn rename(c: &Connection, user_id: i64, id: i64, name: Option<&str>) -> rusqlite::Result<bool> {
    let n = c.execute(
        "UPDATE sessions SET name = ?3 WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
        params![id, user_id, name],
    )?;
    Ok(n == 1)
}

/// Revokes the caller's session. Returns whether a live one matched.
pub fn revoke(c: &Connection, user_id: i64, id: i64) -> rusqlite::Result<bool> {
    let n = c.execute(
        "UPDATE sessions SET revoked_at = ?3, refresh_hash = NULL \
         WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
        params![id, user_id, time::now()],
    )?;
    Ok(n == 1)
}

/// Revokes every live session of the user except `keep` (a password change).
pub fn revoke_others(c: &Connection, user_id: i64, keep: Option<i64>) -> rusqlite::Result<usize> {
    c.execute(
        "UPDATE sessions SET revoked_at = ?3, refresh_hash = NULL \
         WHERE user_id = ?1 AND id IS NOT ?2 AND revoked_at IS NULL",
        params![user_id, keep, time::now()],
    )
}

/// Marks a session used at `at` (the caller writes at most once a minute per session).
pub fn touch(c: &Connection, id: i64, at: &str) -> rusqlite::Result<()> {
    c.prepare_cached("UPDATE sessions SET last_used_at = max(last_used_at, ?2) WHERE id = ?1")?
        .execute(params![id, at])?;
    Ok(())
}

/// Revokes sessions unused since `cutoff` (CCJK_SESSION_IDLE_TTL). Returns how many.
pub fn revoke_idle(c: &Connection, cutoff: &str) -> rusqlite::Result<usize> {
    c.execute(
        "UPDATE sessions SET revoked_at = ?2, refresh_hash = NULL \
         WHERE revoked_at IS NULL AND last_used_at < ?1",
        params![cutoff, time::now()],
    )
}
