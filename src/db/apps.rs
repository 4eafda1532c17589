//! SQL for apps and their installs (schema.sql: `apps`, `app_installs`), and for the device
//! column that lets apps be authorised without the owner's session (`devices.kv_password_hash`).
//!
//! An install is one app token: only its SHA-256 is stored. Lookups of installs by an id a
//! person sent always name the owner (through the device), so another user's install id
//! behaves exactly like a missing one.

use super::OptionalRow;
use crate::time;
use rusqlite::{Connection, Row, params};

/// An app row.
#[derive(Clone, Debug)]
pub struct App {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub developer_name: String,
    pub developer_link: Option<String>,
    pub homepage_link: Option<String>,
    pub icon_hash: Option<String>,
    /// A JSON document, if any.
    pub metadata: Option<String>,
    pub site_key: String,
    pub created_at: String,
    pub updated_at: String,
}

const APP_COLUMNS: &str = "id, name, description, developer_name, developer_link, homepage_link, \
    icon_hash, metadata, site_key, created_at, updated_at";

fn app_row(r: &Row) -> rusqlite::Result<App> {
    Ok(App {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        developer_name: r.get(3)?,
        developer_link: r.get(4)?,
        homepage_link: r.get(5)?,
        icon_hash: r.get(6)?,
        metadata: r.get(7)?,
        site_key: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

/// What an admin registers.
pub struct NewApp<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub developer_name: &'a str,
    pub developer_link: Option<&'a str>,
    pub homepage_link: Option<&'a str>,
    pub site_key: &'a str,
}

/// Inserts an app and returns its id.
pub fn insert(c: &Connection, a: &NewApp) -> rusqlite::Result<i64> {
    c.execute(
        "INSERT INTO apps (name, description, developer_name, developer_link, homepage_link, \
         site_key, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![
            a.name,
            a.description,
            a.developer_name,
            a.developer_link,
            a.homepage_link,
            a.site_key,
            time::now()
        ],
    )?;
    Ok(c.last_insert_rowid())
}

/// An app by id.
pub fn get(c: &Connection, id: i64) -> rusqlite::Result<Option<App>> {
    c.prepare_cached(&format!("SELECT {APP_COLUMNS} FROM apps WHERE id = ?1"))?
        .query_row([id], app_row)
        .optional()
}

/// A page of apps, oldest first.
pub fn list(c: &Connection, limit: i64, offset: i64) -> rusqlite::Result<Vec<App>> {
    c.prepare_cached(&format!(
        "SELECT {APP_COLUMNS} FROM apps ORDER BY id LIMIT ?1 OFFSET ?2"
    ))?
    .query_map(params![limit, offset], app_row)?
    .collect()
}

/// Every app with how many installs (tokens) it has, for the admin's `app list`.
pub fn list_with_tokens(c: &Connection) -> rusqlite::Result<Vec<(App, i64)>> {
    c.prepare(&format!(
        "SELECT {APP_COLUMNS}, (SELECT count(*) FROM app_installs i WHERE i.app_id = apps.id) \
         FROM apps ORDER BY id"
    ))?
    .query_map([], |r| Ok((app_row(r)?, r.get(11)?)))?
    .collect()
}

/// Deletes an app (its installs go with it). Returns whether it existed.
pub fn delete(c: &Connection, id: i64) -> rusqlite::Result<bool> {
    Ok(c.execute("DELETE FROM apps WHERE id = ?1", [id])? == 1)
}

/// An install as listings show it (no token material beyond its display prefix).
#[derive(Clone, Debug)]
pub struct Install {
    pub id: String,
    pub app_id: i64,
    pub app_name: String,
    pub device_uuid: String,
    pub device_name: String,
    pub token_prefix: String,
    pub read_only: bool,
    pub note: Option<String>,
    pub installed_at: String,
    pub last_used_at: Option<String>,
}

const INSTALL_COLUMNS: &str = "i.id, i.app_id, a.name, d.uuid, d.name, i.token_prefix, \
    i.read_only, i.note, i.installed_at, i.last_used_at";
const INSTALL_JOIN: &str =
    "app_installs i JOIN apps a ON a.id = i.app_id JOIN devices d ON d.id = i.device_id";

fn install_row(r: &Row) -> rusqlite::Result<Install> {
    Ok(Install {
        id: r.get(0)?,
        app_id: r.get(1)?,
        app_name: r.get(2)?,
        device_uuid: r.get(3)?,
        device_name: r.get(4)?,
        token_prefix: r.get(5)?,
        read_only: r.get(6)?,
        note: r.get(7)?,
        installed_at: r.get(8)?,
        last_used_at: r.get(9)?,
    })
}

/// What an authorisation stores.
pub struct NewInstall<'a> {
    pub id: &'a str,
    pub device_id: i64,
    pub app_id: i64,
    pub token_prefix: &'a str,
    pub token_hash: &'a [u8],
    pub read_only: bool,
    pub note: Option<&'a str>,
    pub now: &'a str,
}

/// Inserts an install.
pub fn insert_install(c: &Connection, i: &NewInstall) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO app_installs (id, device_id, app_id, token_prefix, token_hash, read_only, \
         note, installed_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        params![
            i.id,
            i.device_id,
            i.app_id,
            i.token_prefix,
            i.token_hash,
            i.read_only,
            i.note,
            i.now
        ],
    )?;
    Ok(())
}

/// How many installs a device holds.
pub fn count_installs(c: &Connection, device_id: i64) -> rusqlite::Result<i64> {
    c.prepare_cached("SELECT count(*) FROM app_installs WHERE device_id = ?1")?
        .query_row([device_id], |r| r.get(0))
}

/// A page of a device's installs, oldest first.
pub fn installs_of_device(
    c: &Connection,
    device_id: i64,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<Vec<Install>> {
    c.prepare_cached(&format!(
        "SELECT {INSTALL_COLUMNS} FROM {INSTALL_JOIN} WHERE i.device_id = ?1 \
         ORDER BY i.installed_at, i.id LIMIT ?2 OFFSET ?3"
    ))?
    .query_map(params![device_id, limit, offset], install_row)?
    .collect()
}

/// A page of an app's installs on the user's own devices, oldest first.
pub fn installs_of_app_for_user(
    c: &Connection,
    app_id: i64,
    user_id: i64,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<Vec<Install>> {
    c.prepare_cached(&format!(
        "SELECT {INSTALL_COLUMNS} FROM {INSTALL_JOIN} WHERE i.app_id = ?1 AND d.user_id = ?2 \
         ORDER BY i.installed_at, i.id LIMIT ?3 OFFSET ?4"
    ))?
    .query_map(params![app_id, user_id, limit, offset], install_row)?
    .collect()
}

/// What an app token resolves to: the install, its app's site key, its device and the owner.
#[derive(Clone, Debug)]
pub struct TokenRow {
    pub install_id: String,
    pub app_id: i64,
    pub site_key: String,
    pub device_id: i64,
    pub user_id: i64,
    pub read_only: bool,
    pub last_used_at: Option<String>,
    /// The owner's account is active.
    pub owner_active: bool,
}

/// The install whose token hashes to `hash`: one indexed lookup, the rest by primary key.
///
/// Written with scalar subqueries rather than joins on purpose: the bundled SQLite is built
/// with `SQLITE_ENABLE_STAT4`, which re-prepares a cached statement every time a parameter
/// its join plan could depend on is bound (measured: 29 µs a lookup as a four-way join,
/// 2–5 µs like this). This runs on every KV request.
pub fn find_token(c: &Connection, hash: &[u8]) -> rusqlite::Result<Option<TokenRow>> {
    c.prepare_cached(
        "SELECT i.id, i.app_id, (SELECT site_key FROM apps WHERE id = i.app_id), i.device_id, \
         (SELECT user_id FROM devices WHERE id = i.device_id), i.read_only, i.last_used_at, \
         (SELECT is_active FROM users WHERE id = (SELECT user_id FROM devices WHERE id = i.device_id)) \
         FROM app_installs i WHERE i.token_hash = ?1",
    )?
    .query_row([hash], |r| {
        // The foreign keys keep the app and the device; a row without them is no token.
        let site_key: Option<String> = r.get(2)?;
        let user_id: Option<i64> = r.get(4)?;
        let (install_id, app_id, device_id): (String, i64, i64) = (r.get(0)?, r.get(1)?, r.get(3)?);
        let (read_only, last_used_at): (bool, Option<String>) = (r.get(5)?, r.get(6)?);
        let owner_active = r.get::<_, Option<bool>>(7)?.unwrap_or(false);
        Ok(site_key.zip(user_id).map(|(site_key, user_id)| TokenRow {
            install_id,
            app_id,
            site_key,
            device_id,
            user_id,
            read_only,
            last_used_at,
            owner_active,
        }))
    })
    .optional()
    .map(Option::flatten)
}

/// Records that an install's token was used now.
pub fn touch_install(c: &Connection, id: &str) -> rusqlite::Result<()> {
    c.prepare_cached("UPDATE app_installs SET last_used_at = ?2 WHERE id = ?1")?
        .execute(params![id, time::now()])?;
    Ok(())
}

/// Deletes the install whose token hashes to `hash`. Returns whether it existed.
pub fn delete_install_by_hash(c: &Connection, hash: &[u8]) -> rusqlite::Result<bool> {
    Ok(c.execute("DELETE FROM app_installs WHERE token_hash = ?1", [hash])? == 1)
}

/// Deletes the install `id` if it is on one of the user's devices. Returns whether it did.
pub fn delete_install_for_user(c: &Connection, id: &str, user_id: i64) -> rusqlite::Result<bool> {
    Ok(c.execute(
        "DELETE FROM app_installs WHERE id = ?1 \
         AND device_id IN (SELECT id FROM devices WHERE user_id = ?2)",
        params![id, user_id],
    )? == 1)
}

/// A device as an authorisation sees it, by public uuid, whoever owns it (the caller proves
/// the right to it with the owner's session or the device's KV password).
#[derive(Clone, Debug)]
pub struct AuthorizeTarget {
    pub id: i64,
    pub uuid: String,
    pub user_id: i64,
    pub name: String,
    /// argon2id PHC string, if the owner set a KV password.
    pub kv_password_hash: Option<String>,
}

/// The device with this public uuid, for an authorisation.
pub fn authorize_target(c: &Connection, uuid: &str) -> rusqlite::Result<Option<AuthorizeTarget>> {
    c.prepare_cached(
        "SELECT id, uuid, user_id, name, kv_password_hash FROM devices WHERE uuid = ?1",
    )?
    .query_row([uuid], |r| {
        Ok(AuthorizeTarget {
            id: r.get(0)?,
            uuid: r.get(1)?,
            user_id: r.get(2)?,
            name: r.get(3)?,
            kv_password_hash: r.get(4)?,
        })
    })
    .optional()
}

/// Sets (or, with `None`, clears) a device's KV password hash.
pub fn set_kv_password(
    c: &Connection,
    device_id: i64,
    hash: Option<&str>,
) -> rusqlite::Result<bool> {
    Ok(c.execute(
        "UPDATE devices SET kv_password_hash = ?2, updated_at = ?3 WHERE id = ?1",
        params![device_id, hash, time::now()],
    )? == 1)
}
