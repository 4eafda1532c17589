//! SQL for `email_configs` (schema.sql): a user's e-mail settings, their own (device NULL) or
//! per device. Every lookup names the owner; the sealed password is read only to know whether
//! one is set.

use super::OptionalRow;
use crate::time;
use rusqlite::{Connection, Row, params};

/// A config row as the API shows it (no password, only whether one is set).
#[derive(Clone, Debug)]
pub struct EmailConfig {
    pub id: i64,
    pub user_id: i64,
    pub device_id: Option<i64>,
    /// The device's public id.
    pub device_uuid: Option<String>,
    pub email_address: String,
    pub imap_host: Option<String>,
    pub imap_port: Option<i64>,
    pub imap_secure: bool,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<i64>,
    pub smtp_secure: bool,
    pub username: Option<String>,
    pub has_password: bool,
    pub check_interval: i64,
    pub is_active: bool,
    pub last_check_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str = "c.id, c.user_id, c.device_id, (SELECT uuid FROM devices WHERE id = c.device_id), \
    c.email_address, c.imap_host, c.imap_port, c.imap_secure, c.smtp_host, c.smtp_port, \
    c.smtp_secure, c.username, c.password_sealed IS NOT NULL, c.check_interval, c.is_active, \
    c.last_check_at, c.created_at, c.updated_at";

fn from_row(r: &Row) -> rusqlite::Result<EmailConfig> {
    Ok(EmailConfig {
        id: r.get(0)?,
        user_id: r.get(1)?,
        device_id: r.get(2)?,
        device_uuid: r.get(3)?,
        email_address: r.get(4)?,
        imap_host: r.get(5)?,
        imap_port: r.get(6)?,
        imap_secure: r.get(7)?,
        smtp_host: r.get(8)?,
        smtp_port: r.get(9)?,
        smtp_secure: r.get(10)?,
        username: r.get(11)?,
        has_password: r.get(12)?,
        check_interval: r.get(13)?,
        is_active: r.get(14)?,
        last_check_at: r.get(15)?,
        created_at: r.get(16)?,
        updated_at: r.get(17)?,
    })
}

/// What a config is set to (validated by `domain::email_config`).
#[derive(Clone, Debug, Default)]
pub struct ConfigInput {
    pub email_address: String,
    pub imap_host: Option<String>,
    pub imap_port: Option<i64>,
    pub imap_secure: bool,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<i64>,
    pub smtp_secure: bool,
    pub username: Option<String>,
    /// `None` keeps the stored password; `Some(box)` replaces it.
    pub password_sealed: Option<Vec<u8>>,
    pub check_interval: i64,
    pub is_active: bool,
}

/// Creates or replaces the user's config for `device_id` (NULL: their own); returns its id.
pub fn upsert(
    c: &Connection,
    user_id: i64,
    device_id: Option<i64>,
    i: &ConfigInput,
) -> rusqlite::Result<i64> {
    let now = time::now();
    c.prepare_cached(
        "INSERT INTO email_configs (user_id, device_id, email_address, imap_host, imap_port, \
         imap_secure, smtp_host, smtp_port, smtp_secure, username, password_sealed, \
         check_interval, is_active, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14) \
         ON CONFLICT (user_id, ifnull(device_id, 0)) DO UPDATE SET \
         email_address = excluded.email_address, imap_host = excluded.imap_host, \
         imap_port = excluded.imap_port, imap_secure = excluded.imap_secure, \
         smtp_host = excluded.smtp_host, smtp_port = excluded.smtp_port, \
         smtp_secure = excluded.smtp_secure, username = excluded.username, \
         password_sealed = coalesce(excluded.password_sealed, email_configs.password_sealed), \
         check_interval = excluded.check_interval, is_active = excluded.is_active, \
         updated_at = excluded.updated_at",
    )?
    .execute(params![
        user_id,
        device_id,
        i.email_address,
        i.imap_host,
        i.imap_port,
        i.imap_secure,
        i.smtp_host,
        i.smtp_port,
        i.smtp_secure,
        i.username,
        i.password_sealed,
        i.check_interval,
        i.is_active,
        now
    ])?;
    c.prepare_cached(
        "SELECT id FROM email_configs WHERE user_id = ?1 AND ifnull(device_id, 0) = ifnull(?2, 0)",
    )?
    .query_row(params![user_id, device_id], |r| r.get(0))
}

/// The user's config for `device_id` (NULL: their own).
pub fn get(
    c: &Connection,
    user_id: i64,
    device_id: Option<i64>,
) -> rusqlite::Result<Option<EmailConfig>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM email_configs c WHERE c.user_id = ?1 \
         AND ifnull(c.device_id, 0) = ifnull(?2, 0)"
    ))?
    .query_row(params![user_id, device_id], from_row)
    .optional()
}

/// Every config of the user, their own first.
pub fn list(c: &Connection, user_id: i64) -> rusqlite::Result<Vec<EmailConfig>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM email_configs c WHERE c.user_id = ?1 \
         ORDER BY c.device_id IS NOT NULL, c.id"
    ))?
    .query_map([user_id], from_row)?
    .collect()
}

/// Deletes the user's config for `device_id` (NULL: their own); whether one existed.
pub fn delete(c: &Connection, user_id: i64, device_id: Option<i64>) -> rusqlite::Result<bool> {
    Ok(c.prepare_cached(
        "DELETE FROM email_configs WHERE user_id = ?1 AND ifnull(device_id, 0) = ifnull(?2, 0)",
    )?
    .execute(params![user_id, device_id])?
        > 0)
}

/// Is `address` one of the user's active configured addresses (case-insensitive)?
pub fn is_users_address(c: &Connection, user_id: i64, address: &str) -> rusqlite::Result<bool> {
    c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM email_configs WHERE user_id = ?1 AND email_address = ?2 \
         AND is_active = 1)",
    )?
    .query_row(params![user_id, address], |r| r.get(0))
}

/// Active configs with this address (case-insensitive), as (user id, device id), for the
/// inbound webhook's sender check.
pub fn owners_of(c: &Connection, address: &str) -> rusqlite::Result<Vec<(i64, Option<i64>)>> {
    c.prepare_cached(
        "SELECT user_id, device_id FROM email_configs WHERE email_address = ?1 AND is_active = 1 \
         ORDER BY user_id, device_id",
    )?
    .query_map([address], |r| Ok((r.get(0)?, r.get(1)?)))?
    .collect()
}
