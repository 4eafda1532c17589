//! SQL for the per-device key-value store (schema.sql: `kv_entries`, `kv_usage`).
//!
//! Every statement names the device, whose id always comes from a credential the domain has
//! already checked (an app token, or an owner's device looked up inside their own devices).
//! Reads take `now` and hide entries whose `expires_at` has passed, so an expired key is
//! invisible before the janitor deletes it. `kv_usage` is kept by triggers (keys, bytes); the
//! write path only bumps its `revision`.

use super::OptionalRow;
use rusqlite::{Connection, Row, params};

/// An entry without its value: what listings and `…/metadata` show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub key: String,
    pub content_type: String,
    /// Bytes of key + value.
    pub size_bytes: i64,
    /// The device's revision at the entry's last write.
    pub version: i64,
    pub expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

const META_COLUMNS: &str =
    "key, content_type, size_bytes, version, expires_at, created_at, updated_at";

fn meta_row(r: &Row) -> rusqlite::Result<Meta> {
    Ok(Meta {
        key: r.get(0)?,
        content_type: r.get(1)?,
        size_bytes: r.get(2)?,
        version: r.get(3)?,
        expires_at: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

/// A value as stored, with what its reply needs.
#[derive(Clone, Debug)]
pub struct Stored {
    pub value: Vec<u8>,
    pub content_type: String,
    pub version: i64,
}

/// The live value of `key` (the hot read: one indexed lookup).
pub fn get(
    c: &Connection,
    device_id: i64,
    key: &str,
    now: &str,
) -> rusqlite::Result<Option<Stored>> {
    c.prepare_cached(
        "SELECT value, content_type, version FROM kv_entries \
         WHERE device_id = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
    )?
    .query_row(params![device_id, key, now], |r| {
        Ok(Stored {
            value: r.get(0)?,
            content_type: r.get(1)?,
            version: r.get(2)?,
        })
    })
    .optional()
}

/// The metadata of the live entry `key`.
pub fn meta(
    c: &Connection,
    device_id: i64,
    key: &str,
    now: &str,
) -> rusqlite::Result<Option<Meta>> {
    c.prepare_cached(&format!(
        "SELECT {META_COLUMNS} FROM kv_entries \
         WHERE device_id = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)"
    ))?
    .query_row(params![device_id, key, now], meta_row)
    .optional()
}

/// Which live keys a listing covers: from `lower` (included, or excluded when it is the last
/// key of the previous page) up to `until` (excluded).
#[derive(Clone, Copy, Debug)]
pub struct Range<'a> {
    pub lower: &'a str,
    pub lower_excluded: bool,
    pub until: &'a str,
}

impl Range<'_> {
    /// The range condition on `key` (two forms, so that SQLite seeks straight to the bound).
    fn sql(&self) -> &'static str {
        if self.lower_excluded {
            "key > ?2 AND key < ?3"
        } else {
            "key >= ?2 AND key < ?3"
        }
    }
}

/// Up to `limit` live entries of the range, in key order (byte order).
pub fn list(
    c: &Connection,
    device_id: i64,
    r: Range,
    now: &str,
    limit: i64,
) -> rusqlite::Result<Vec<Meta>> {
    c.prepare_cached(&format!(
        "SELECT {META_COLUMNS} FROM kv_entries WHERE device_id = ?1 AND {} \
         AND (expires_at IS NULL OR expires_at > ?4) ORDER BY key LIMIT ?5",
        r.sql()
    ))?
    .query_map(params![device_id, r.lower, r.until, now, limit], meta_row)?
    .collect()
}

/// Up to `limit` live keys of the range, in key order.
pub fn list_keys(
    c: &Connection,
    device_id: i64,
    r: Range,
    now: &str,
    limit: i64,
) -> rusqlite::Result<Vec<String>> {
    c.prepare_cached(&format!(
        "SELECT key FROM kv_entries WHERE device_id = ?1 AND {} \
         AND (expires_at IS NULL OR expires_at > ?4) ORDER BY key LIMIT ?5",
        r.sql()
    ))?
    .query_map(params![device_id, r.lower, r.until, now, limit], |row| {
        row.get(0)
    })?
    .collect()
}

/// What a write needs to know about the stored row of `key`, live or expired.
#[derive(Clone, Debug)]
pub struct StoredRow {
    pub version: i64,
    pub size_bytes: i64,
    pub expires_at: Option<String>,
    pub created_at: String,
}

impl StoredRow {
    /// Whether the row is visible at `now` (not expired).
    pub fn live(&self, now: &str) -> bool {
        self.expires_at.as_deref().is_none_or(|e| e > now)
    }
}

/// The stored row of `key`, live or expired (inside a write job: compare-and-swap and the
/// quota delta).
pub fn stored(c: &Connection, device_id: i64, key: &str) -> rusqlite::Result<Option<StoredRow>> {
    c.prepare_cached(
        "SELECT version, size_bytes, expires_at, created_at FROM kv_entries \
         WHERE device_id = ?1 AND key = ?2",
    )?
    .query_row(params![device_id, key], |r| {
        Ok(StoredRow {
            version: r.get(0)?,
            size_bytes: r.get(1)?,
            expires_at: r.get(2)?,
            created_at: r.get(3)?,
        })
    })
    .optional()
}

/// Bumps the device's KV revision and returns it: the version of the write being made.
pub fn next_revision(c: &Connection, device_id: i64) -> rusqlite::Result<i64> {
    c.prepare_cached(
        "INSERT INTO kv_usage (device_id, revision) VALUES (?1, 1) \
         ON CONFLICT (device_id) DO UPDATE SET revision = revision + 1 RETURNING revision",
    )?
    .query_row([device_id], |r| r.get(0))
}

/// What a write stores.
pub struct Write<'a> {
    pub key: &'a str,
    pub value: &'a [u8],
    pub content_type: &'a str,
    pub size_bytes: i64,
    pub version: i64,
    pub expires_at: Option<&'a str>,
}

/// Creates or replaces an entry. A replaced entry that had expired starts a new life
/// (`created_at` = now).
pub fn upsert(c: &Connection, device_id: i64, w: &Write, now: &str) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO kv_entries (device_id, key, value, content_type, size_bytes, version, \
         expires_at, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) \
         ON CONFLICT (device_id, key) DO UPDATE SET value = excluded.value, \
         content_type = excluded.content_type, size_bytes = excluded.size_bytes, \
         version = excluded.version, expires_at = excluded.expires_at, \
         updated_at = excluded.updated_at, created_at = CASE WHEN kv_entries.expires_at IS NOT NULL \
         AND kv_entries.expires_at <= excluded.updated_at THEN excluded.created_at \
         ELSE kv_entries.created_at END",
    )?
    .execute(params![
        device_id,
        w.key,
        w.value,
        w.content_type,
        w.size_bytes,
        w.version,
        w.expires_at,
        now
    ])?;
    Ok(())
}

/// Deletes an entry (live or expired). Returns whether a row went.
pub fn delete(c: &Connection, device_id: i64, key: &str) -> rusqlite::Result<bool> {
    Ok(
        c.prepare_cached("DELETE FROM kv_entries WHERE device_id = ?1 AND key = ?2")?
            .execute(params![device_id, key])?
            == 1,
    )
}

/// `(keys, bytes)` stored for the device, expired entries not yet deleted included.
pub fn usage(c: &Connection, device_id: i64) -> rusqlite::Result<(i64, i64)> {
    c.prepare_cached("SELECT keys, bytes FROM kv_usage WHERE device_id = ?1")?
        .query_row([device_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map(Option::unwrap_or_default)
}

/// Bytes of KV entries over all of the user's devices. A correlated subquery, not a join: see
/// `db::apps::find_token` on re-prepared joins.
pub fn user_bytes(c: &Connection, user_id: i64) -> rusqlite::Result<i64> {
    c.prepare_cached(
        "SELECT coalesce(sum((SELECT bytes FROM kv_usage u WHERE u.device_id = d.id)), 0) \
         FROM devices d WHERE d.user_id = ?1",
    )?
    .query_row([user_id], |r| r.get(0))
}

/// Deletes the device's expired entries (a write that would pass a quota first frees what has
/// expired). Returns how many went.
pub fn delete_expired_of_device(
    c: &Connection,
    device_id: i64,
    now: &str,
) -> rusqlite::Result<usize> {
    c.prepare_cached(
        "DELETE FROM kv_entries WHERE device_id = ?1 AND expires_at IS NOT NULL AND expires_at <= ?2",
    )?
    .execute(params![device_id, now])
}

/// Deletes up to `limit` expired entries of any device (the janitor). Returns how many went.
pub fn delete_expired(c: &Connection, now: &str, limit: i64) -> rusqlite::Result<usize> {
    c.prepare_cached(
        "DELETE FROM kv_entries WHERE rowid IN (SELECT rowid FROM kv_entries \
         WHERE expires_at IS NOT NULL AND expires_at <= ?1 LIMIT ?2)",
    )?
    .execute(params![now, limit])
}

/// Whether any entry has expired by `now` (a cheap look before queueing a write job).
pub fn any_expired(c: &Connection, now: &str) -> rusqlite::Result<bool> {
    c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM kv_entries WHERE expires_at IS NOT NULL AND expires_at <= ?1)",
    )?
    .query_row([now], |r| r.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A migrated in-memory database with one user and two devices (ids 1 and 2).
    fn db() -> Connection {
        let c = Connection::open_in_memory().expect("db");
        c.execute_batch("PRAGMA foreign_keys = ON").expect("fk");
        crate::db::migrations::migrate(&c).expect("schema");
        c.execute_batch(
            "INSERT INTO users (id, email, password_hash, created_at, updated_at) \
             VALUES (1, 'a@x.org', 'x', 't', 't'); \
             INSERT INTO devices (id, uuid, user_id, name, key_prefix, key_hash, key_sealed, created_at, updated_at) \
             VALUES (1, 'u1', 1, 'one', 'p', x'01', x'01', 't', 't'), (2, 'u2', 1, 'two', 'p', x'02', x'02', 't', 't');",
        )
        .expect("rows");
        c
    }

    fn put(c: &Connection, dev: i64, key: &str, value: &[u8], expires_at: Option<&str>) {
        let version = next_revision(c, dev).expect("revision");
        let w = Write {
            key,
            value,
            content_type: "text/plain",
            size_bytes: (key.len() + value.len()) as i64,
            version,
            expires_at,
        };
        upsert(c, dev, &w, "2026-01-01T00:00:00.000Z").expect("upsert");
    }

    #[test]
    fn usage_follows_every_statement_and_versions_never_repeat() {
        let c = db();
        put(&c, 1, "a", b"12345", None);
        put(&c, 1, "b", b"1", Some("2026-01-01T00:00:01.000Z"));
        put(&c, 2, "a", b"xy", None);
        assert_eq!(usage(&c, 1).expect("usage"), (2, 6 + 2));
        assert_eq!(user_bytes(&c, 1).expect("bytes"), 8 + 3);
        put(&c, 1, "a", b"1", None);
        assert_eq!(
            usage(&c, 1).expect("usage"),
            (2, 2 + 2),
            "a replacement resizes"
        );
        let v_a = stored(&c, 1, "a").expect("row").expect("a").version;
        assert!(delete(&c, 1, "a").expect("delete"));
        put(&c, 1, "a", b"1", None);
        let v_again = stored(&c, 1, "a").expect("row").expect("a").version;
        assert!(
            v_again > v_a,
            "a key written again gets a version never seen before"
        );
        // The expired entry is invisible, then deleted (by the janitor's statement).
        let now = "2026-01-01T00:00:02.000Z";
        assert!(get(&c, 1, "b", now).expect("get").is_none());
        assert!(meta(&c, 1, "b", now).expect("meta").is_none());
        assert!(any_expired(&c, now).expect("any"));
        assert_eq!(delete_expired(&c, now, 10).expect("expire"), 1);
        assert_eq!(usage(&c, 1).expect("usage"), (1, 2));
        // Deleting the device takes its entries and totals along.
        c.execute("DELETE FROM devices WHERE id = 1", [])
            .expect("device");
        assert_eq!(usage(&c, 1).expect("usage"), (0, 0));
        assert_eq!(usage(&c, 2).expect("usage"), (1, 3));
    }

    #[test]
    fn ranges_seek_from_the_prefix_or_past_the_cursor() {
        let c = db();
        for k in ["a", "p/1", "p/2", "p/3", "q"] {
            put(&c, 1, k, b"v", None);
        }
        let now = "2026-01-01T00:00:00.500Z";
        let r = Range {
            lower: "p/",
            lower_excluded: false,
            until: "p0",
        };
        let keys = list_keys(&c, 1, r, now, 10).expect("list");
        assert_eq!(keys, ["p/1", "p/2", "p/3"]);
        let r = Range {
            lower: "p/1",
            lower_excluded: true,
            until: "p0",
        };
        let page: Vec<String> = list(&c, 1, r, now, 1)
            .expect("list")
            .into_iter()
            .map(|m| m.key)
            .collect();
        assert_eq!(page, ["p/2"]);
        assert!(
            list_keys(&c, 2, r, now, 10).expect("list").is_empty(),
            "per device"
        );
    }
}
