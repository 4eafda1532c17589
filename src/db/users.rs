//! SQL for `users` (schema.sql): accounts, login lookup, profile, plan and admin flags.

use super::OptionalRow;
use crate::error::{ApiError, ApiResult, Code, is_unique_violation};
use crate::time;
use rusqlite::{Connection, Row, params};

/// A user row, without the password hash unless asked for.
#[derive(Clone, Debug)]
pub struct User {
    pub id: i64,
    pub username: Option<String>,
    pub email: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub plan: String,
    pub is_active: bool,
    pub is_verified: bool,
    pub is_admin: bool,
    pub notify_email: bool,
    pub created_at: String,
    pub updated_at: String,
    pub last_login_at: Option<String>,
}

const COLUMNS: &str = "id, username, email, display_name, avatar_url, plan, is_active, \
    is_verified, is_admin, notify_email, created_at, updated_at, last_login_at";

fn from_row(r: &Row) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        email: r.get(2)?,
        display_name: r.get(3)?,
        avatar_url: r.get(4)?,
        plan: r.get(5)?,
        is_active: r.get(6)?,
        is_verified: r.get(7)?,
        is_admin: r.get(8)?,
        notify_email: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
        last_login_at: r.get(12)?,
    })
}

/// The user with this id.
pub fn find(c: &Connection, id: i64) -> rusqlite::Result<Option<User>> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

/// Whether the user's account is active (`None`: no such user). The hot-path check for
/// device keys.
pub fn is_active(c: &Connection, id: i64) -> rusqlite::Result<Option<bool>> {
    c.prepare_cached("SELECT is_active FROM users WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()
}

/// The address to mail the user's notifications to: `Some` only for an active account with
/// `notify_email` on (`None` also for no such user). The per-result check (`domain::mail`).
pub fn notify_address(c: &Connection, id: i64) -> rusqlite::Result<Option<String>> {
    c.prepare_cached(
        "SELECT email FROM users WHERE id = ?1 AND is_active = 1 AND notify_email = 1",
    )?
    .query_row([id], |r| r.get(0))
    .optional()
}

/// The user whose e-mail comparison key is `key` (`domain::text::email_key` of what was
/// typed) or whose username is `login` (ASCII case-insensitive), with the password hash.
pub fn find_for_login(
    c: &Connection,
    login: &str,
    key: &str,
) -> rusqlite::Result<Option<(User, String)>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS}, password_hash FROM users WHERE email_key = ?2 OR email = ?1 \
         OR username = ?1 ORDER BY email_key IS ?2 DESC, email = ?1 DESC LIMIT 1"
    ))?
    .query_row(params![login, key], |r| Ok((from_row(r)?, r.get(13)?)))
    .optional()
}

/// Users whose e-mail comparison key is not filled in yet (accounts made before it existed),
/// as (id, email).
pub fn missing_email_keys(c: &Connection) -> rusqlite::Result<Vec<(i64, String)>> {
    c.prepare("SELECT id, email FROM users WHERE email_key IS NULL")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// Fills in a user's e-mail comparison key. Errors: a UNIQUE violation when another account
/// already has the same key (a look-alike registered before keys existed).
pub fn set_email_key(c: &Connection, id: i64, key: &str) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE users SET email_key = ?2 WHERE id = ?1",
        params![id, key],
    )?;
    Ok(())
}

/// Every user, oldest first (for `ccjk-cloud user list`).
pub fn list(c: &Connection) -> rusqlite::Result<Vec<User>> {
    c.prepare(&format!("SELECT {COLUMNS} FROM users ORDER BY id"))?
        .query_map([], from_row)?
        .collect()
}

/// What a new account is made of.
pub struct NewUser<'a> {
    /// As typed, trimmed, NFC.
    pub email: &'a str,
    /// `domain::text::email_key(email)`, unique.
    pub email_key: &'a str,
    pub username: Option<&'a str>,
    pub display_name: Option<&'a str>,
    pub password_hash: &'a str,
    /// Its plan (`domain::policy::new_account_plan` decides).
    pub plan: &'a str,
    pub is_admin: bool,
}

/// Is this the first account on the server (no user yet)?
pub fn none_yet(c: &Connection) -> rusqlite::Result<bool> {
    c.query_row("SELECT NOT EXISTS (SELECT 1 FROM users)", [], |r| r.get(0))
}

/// Inserts a user. Errors: 409 `EMAIL_TAKEN` / `USERNAME_TAKEN`; 500 for an unknown plan.
pub fn insert(c: &Connection, u: &NewUser) -> ApiResult<User> {
    let now = time::now();
    let r = c.execute(
        "INSERT INTO users (email, username, display_name, password_hash, plan, is_admin, \
         created_at, updated_at, email_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
        params![
            u.email,
            u.username,
            u.display_name,
            u.password_hash,
            u.plan,
            u.is_admin,
            now,
            u.email_key
        ],
    );
    match r {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => return Err(taken(&e)),
        Err(e) => return Err(e.into()),
    }
    let id = c.last_insert_rowid();
    find(c, id)?.ok_or_else(|| ApiError::internal("inserted user vanished"))
}

fn taken(e: &rusqlite::Error) -> ApiError {
    if e.to_string().contains("username") {
        ApiError::conflict(Code::UsernameTaken, "Username already exists")
    } else {
        ApiError::conflict(Code::EmailTaken, "Email already registered")
    }
}

/// Updates the optional profile fields that are `Some`. Errors: 409 `USERNAME_TAKEN`.
pub fn update_profile(
    c: &Connection,
    id: i64,
    username: Option<&str>,
    display_name: Option<&str>,
    avatar_url: Option<&str>,
    notify_email: Option<bool>,
) -> ApiResult<()> {
    let r = c.execute(
        "UPDATE users SET username = coalesce(?2, username), \
         display_name = coalesce(?3, display_name), avatar_url = coalesce(?4, avatar_url), \
         notify_email = coalesce(?5, notify_email), updated_at = ?6 WHERE id = ?1",
        params![
            id,
            username,
            display_name,
            avatar_url,
            notify_email,
            time::now()
        ],
    );
    match r {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(taken(&e)),
        Err(e) => Err(e.into()),
    }
}

/// Replaces the password hash.
pub fn set_password(c: &Connection, id: i64, hash: &str) -> rusqlite::Result<usize> {
    c.execute(
        "UPDATE users SET password_hash = ?2, failed_logins = 0, locked_until = NULL, \
         updated_at = ?3 WHERE id = ?1",
        params![id, hash, time::now()],
    )
}

/// Records a successful login: clears the failure counter.
pub fn record_login(c: &Connection, id: i64) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE users SET last_login_at = ?2, failed_logins = 0, locked_until = NULL WHERE id = ?1",
    )?
    .execute(params![id, time::now()])?;
    Ok(())
}

/// Records a failed login for an existing account, for admins reading the table
/// (the throttle itself is decided in memory, before any hash: see `throttle.rs`).
pub fn record_failure(c: &Connection, id: i64, locked_until: Option<&str>) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE users SET failed_logins = failed_logins + 1, \
         locked_until = coalesce(?2, locked_until) WHERE id = ?1",
    )?
    .execute(params![id, locked_until])?;
    Ok(())
}

/// Admin flags and plan, by email (CLI). Returns whether a user matched. `plan` must exist.
pub fn set_flag(c: &Connection, email: &str, column: Flag, value: &str) -> ApiResult<bool> {
    let sql = match column {
        Flag::Plan => "UPDATE users SET plan = ?2, updated_at = ?3 WHERE email = ?1",
        Flag::Admin => {
            "UPDATE users SET is_admin = CAST(?2 AS INTEGER), updated_at = ?3 WHERE email = ?1"
        }
        Flag::Active => {
            "UPDATE users SET is_active = CAST(?2 AS INTEGER), updated_at = ?3 WHERE email = ?1"
        }
    };
    match c.execute(sql, params![email, value, time::now()]) {
        Ok(n) => Ok(n == 1),
        Err(rusqlite::Error::SqliteFailure(f, _))
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            Err(ApiError::invalid("plan", format!("unknown plan {value:?}")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Which column `set_flag` changes.
#[derive(Clone, Copy, Debug)]
pub enum Flag {
    Plan,
    Admin,
    Active,
}

/// A user's plan limits (the `plans` table); `None` = unlimited.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    pub max_devices: Option<i64>,
    pub max_tasks_per_day: Option<i64>,
    pub max_concurrent_tasks: Option<i64>,
    pub storage_quota_bytes: Option<i64>,
    pub log_retention_days: Option<i64>,
    pub api_calls_per_minute: Option<i64>,
}

/// The limits of the user's plan.
pub fn limits(c: &Connection, user_id: i64) -> rusqlite::Result<Limits> {
    c.prepare_cached(
        "SELECT p.max_devices, p.max_tasks_per_day, p.max_concurrent_tasks, p.storage_quota_bytes, \
         p.log_retention_days, p.api_calls_per_minute FROM plans p \
         WHERE p.name = (SELECT plan FROM users WHERE id = ?1)",
    )?
    .query_row([user_id], |r| {
        Ok(Limits {
            max_devices: r.get(0)?,
            max_tasks_per_day: r.get(1)?,
            max_concurrent_tasks: r.get(2)?,
            storage_quota_bytes: r.get(3)?,
            log_retention_days: r.get(4)?,
            api_calls_per_minute: r.get(5)?,
        })
    })
    .optional()
    .map(Option::unwrap_or_default)
}
