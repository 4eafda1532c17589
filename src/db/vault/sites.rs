//! SQL for `sites`, `site_fields` and `active_accounts` (schema.sql "Vault"), and the prop
//! indexes the server creates for fields marked `indexed`.

use super::is_prop_name;
use crate::db::OptionalRow;
use crate::error::is_unique_violation;
use rusqlite::{Connection, Row, params};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// A site as listed: its row, how many accounts it has and which one is active.
#[derive(Clone, Debug)]
pub struct Site {
    pub key: String,
    pub name: String,
    pub login_url: Option<String>,
    pub allow_device_reveal: bool,
    pub created_at: String,
    pub updated_at: String,
    pub account_count: i64,
    pub active_account_id: Option<String>,
}

const SITE_COLUMNS: &str = "s.key, s.name, s.login_url, s.allow_device_reveal, s.created_at, \
     s.updated_at, \
     (SELECT count(*) FROM accounts a WHERE a.user_id = s.user_id AND a.site_key = s.key), \
     (SELECT account_id FROM active_accounts aa WHERE aa.user_id = s.user_id AND aa.site_key = s.key)";

fn site_row(r: &Row) -> rusqlite::Result<Site> {
    Ok(Site {
        key: r.get(0)?,
        name: r.get(1)?,
        login_url: r.get(2)?,
        allow_device_reveal: r.get(3)?,
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
        account_count: r.get(6)?,
        active_account_id: r.get(7)?,
    })
}

/// What a site row is written from.
#[derive(Clone, Debug)]
pub struct SiteData {
    pub key: String,
    pub name: String,
    pub login_url: Option<String>,
    pub allow_device_reveal: bool,
}

/// Inserts a site; `false` if the user already has one with that key.
pub fn insert(c: &Connection, user_id: i64, s: &SiteData, now: &str) -> rusqlite::Result<bool> {
    let r = c.execute(
        "INSERT INTO sites (user_id, key, name, login_url, allow_device_reveal, created_at, \
         updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![
            user_id,
            s.key,
            s.name,
            s.login_url,
            s.allow_device_reveal,
            now
        ],
    );
    match r {
        Ok(_) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The user's site with `key`.
pub fn get(c: &Connection, user_id: i64, key: &str) -> rusqlite::Result<Option<Site>> {
    c.prepare_cached(&format!(
        "SELECT {SITE_COLUMNS} FROM sites s WHERE s.user_id = ?1 AND s.key = ?2"
    ))?
    .query_row(params![user_id, key], site_row)
    .optional()
}

/// A page of the user's sites, by key.
pub fn list(c: &Connection, user_id: i64, limit: i64, offset: i64) -> rusqlite::Result<Vec<Site>> {
    c.prepare_cached(&format!(
        "SELECT {SITE_COLUMNS} FROM sites s WHERE s.user_id = ?1 ORDER BY s.key LIMIT ?2 OFFSET ?3"
    ))?
    .query_map(params![user_id, limit, offset], site_row)?
    .collect()
}

/// Every site of the user, by key (export, the daemon's view).
pub fn all(c: &Connection, user_id: i64) -> rusqlite::Result<Vec<Site>> {
    list(c, user_id, i64::MAX, 0)
}

/// How many sites the user has.
pub fn count(c: &Connection, user_id: i64) -> rusqlite::Result<i64> {
    c.prepare_cached("SELECT count(*) FROM sites WHERE user_id = ?1")?
        .query_row([user_id], |r| r.get(0))
}

/// Rewrites a site's name, login URL and device-reveal switch; `false` if it does not exist.
pub fn update(c: &Connection, user_id: i64, s: &SiteData, now: &str) -> rusqlite::Result<bool> {
    let n = c.execute(
        "UPDATE sites SET name = ?3, login_url = ?4, allow_device_reveal = ?5, updated_at = ?6 \
         WHERE user_id = ?1 AND key = ?2",
        params![
            user_id,
            s.key,
            s.name,
            s.login_url,
            s.allow_device_reveal,
            now
        ],
    )?;
    Ok(n == 1)
}

/// Marks a site changed (its fields were replaced).
pub fn touch(c: &Connection, user_id: i64, key: &str, now: &str) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE sites SET updated_at = ?3 WHERE user_id = ?1 AND key = ?2",
        params![user_id, key, now],
    )?;
    Ok(())
}

/// Deletes a site; its fields, accounts (with their blind index) and active mapping go with
/// it. `false` if it did not exist.
pub fn delete(c: &Connection, user_id: i64, key: &str) -> rusqlite::Result<bool> {
    let n = c.execute(
        "DELETE FROM sites WHERE user_id = ?1 AND key = ?2",
        params![user_id, key],
    )?;
    Ok(n == 1)
}

/// One field schema row.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldRow {
    pub field: String,
    /// `string`, `number`, `boolean`, `datetime` or `json`.
    pub kind: String,
    pub required: bool,
    /// JSON text.
    pub default_value: Option<String>,
    pub regex: Option<String>,
    /// A JSON array, as text.
    pub choices: Option<String>,
    pub secret: bool,
    pub indexed: bool,
    pub sort_order: i64,
    pub ui_hint: Option<String>,
}

/// A site's fields, in display order.
pub fn fields(c: &Connection, user_id: i64, key: &str) -> rusqlite::Result<Vec<FieldRow>> {
    c.prepare_cached(
        "SELECT field, type, required, default_value, regex, choices, secret, indexed, \
         sort_order, ui_hint FROM site_fields WHERE user_id = ?1 AND site_key = ?2 \
         ORDER BY sort_order, field",
    )?
    .query_map(params![user_id, key], |r| {
        Ok(FieldRow {
            field: r.get(0)?,
            kind: r.get(1)?,
            required: r.get(2)?,
            default_value: r.get(3)?,
            regex: r.get(4)?,
            choices: r.get(5)?,
            secret: r.get(6)?,
            indexed: r.get(7)?,
            sort_order: r.get(8)?,
            ui_hint: r.get(9)?,
        })
    })?
    .collect()
}

/// Deletes a site's fields (before `insert_field` writes the new set).
pub fn clear_fields(c: &Connection, user_id: i64, key: &str) -> rusqlite::Result<()> {
    c.execute(
        "DELETE FROM site_fields WHERE user_id = ?1 AND site_key = ?2",
        params![user_id, key],
    )?;
    Ok(())
}

/// Inserts one field of a site.
pub fn insert_field(c: &Connection, user_id: i64, key: &str, f: &FieldRow) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO site_fields (user_id, site_key, field, type, required, default_value, \
         regex, choices, secret, indexed, sort_order, ui_hint) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        user_id,
        key,
        f.field,
        f.kind,
        f.required,
        f.default_value,
        f.regex,
        f.choices,
        f.secret,
        f.indexed,
        f.sort_order,
        f.ui_hint
    ])?;
    Ok(())
}

/// Whether the user's site `key` declares `field`, and if so whether it is secret.
pub fn field_secret(
    c: &Connection,
    user_id: i64,
    key: &str,
    field: &str,
) -> rusqlite::Result<Option<bool>> {
    c.prepare_cached(
        "SELECT secret FROM site_fields WHERE user_id = ?1 AND site_key = ?2 AND field = ?3",
    )?
    .query_row(params![user_id, key, field], |r| r.get(0))
    .optional()
}

/// Does the user's site `key` declare any field (if not, it keeps any props)?
pub fn has_fields(c: &Connection, user_id: i64, key: &str) -> rusqlite::Result<bool> {
    c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM site_fields WHERE user_id = ?1 AND site_key = ?2)",
    )?
    .query_row(params![user_id, key], |r| r.get(0))
}

/// Over all the user's sites: is `field` declared secret somewhere, and plain somewhere?
pub fn field_kinds(c: &Connection, user_id: i64, field: &str) -> rusqlite::Result<(bool, bool)> {
    c.prepare_cached(
        "SELECT coalesce(max(secret), 0), coalesce(min(secret), 1) = 0 FROM site_fields \
         WHERE user_id = ?1 AND field = ?2",
    )?
    .query_row(params![user_id, field], |r| Ok((r.get(0)?, r.get(1)?)))
}

/// Has the user a site without fields (one that keeps any props)?
pub fn has_schemaless_site(c: &Connection, user_id: i64) -> rusqlite::Result<bool> {
    c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM sites s WHERE s.user_id = ?1 AND NOT EXISTS \
         (SELECT 1 FROM site_fields f WHERE f.user_id = s.user_id AND f.site_key = s.key))",
    )?
    .query_row([user_id], |r| r.get(0))
}

/// Makes `account_id` the active account of the site (the caller checked that it is one of
/// the site's accounts).
pub fn set_active(
    c: &Connection,
    user_id: i64,
    key: &str,
    account_id: Option<&str>,
    now: &str,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO active_accounts (user_id, site_key, account_id, updated_at) \
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (user_id, site_key) \
         DO UPDATE SET account_id = excluded.account_id, updated_at = excluded.updated_at",
        params![user_id, key, account_id, now],
    )?;
    Ok(())
}

/// The name of the index the server keeps for the indexed prop `field`:
/// `accounts_prop_<field>_<8 hex of its SHA-256>` (SQLite names are case-insensitive; the
/// hash keeps `Region` and `region` apart).
pub fn prop_index_name(field: &str) -> String {
    let h = Sha256::digest(field.as_bytes());
    format!("accounts_prop_{field}_{}", crate::crypto::hex(&h[..4]))
}

/// Props with an index of their own in schema.sql (no server-managed index is made for them).
pub const STATIC_INDEXED: [&str; 2] = ["token", "expiresAt"];

/// The prop indexes the fields ask for (every `indexed` field of any site, but the static
/// ones), those marked by the most users first, then by name: index name → field.
pub fn wanted_prop_indexes(c: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let fields: Vec<String> = c
        .prepare_cached(
            "SELECT field FROM site_fields WHERE indexed = 1 \
             GROUP BY field ORDER BY count(DISTINCT user_id) DESC, field",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(fields
        .into_iter()
        .filter(|f| is_prop_name(f) && !STATIC_INDEXED.contains(&f.as_str()))
        .map(|f| (prop_index_name(&f), f))
        .collect())
}

/// The server-managed prop indexes that exist.
pub fn existing_prop_indexes(c: &Connection) -> rusqlite::Result<BTreeSet<String>> {
    c.prepare_cached(
        "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'accounts' \
         AND name LIKE 'accounts\\_prop\\_%' ESCAPE '\\'",
    )?
    .query_map([], |r| r.get(0))?
    .collect()
}

/// Creates the expression index of `field` (an `is_prop_name` name; refused otherwise).
pub fn create_prop_index(c: &Connection, field: &str) -> rusqlite::Result<()> {
    if !is_prop_name(field) {
        return Err(rusqlite::Error::InvalidParameterName(field.to_string()));
    }
    c.execute_batch(&format!(
        "CREATE INDEX IF NOT EXISTS \"{}\" ON accounts(user_id, json_extract(extra, '$.{field}'))",
        prop_index_name(field)
    ))
}

/// Drops a server-managed prop index (a name from `existing_prop_indexes`).
pub fn drop_prop_index(c: &Connection, name: &str) -> rusqlite::Result<()> {
    if !name.starts_with("accounts_prop_") || name.contains('"') {
        return Err(rusqlite::Error::InvalidParameterName(name.to_string()));
    }
    c.execute_batch(&format!("DROP INDEX IF EXISTS \"{name}\""))
}
