//! The per-device key-value store (README "Apps and the KV store"): keys, values, listings
//! by prefix with an opaque cursor, compare-and-swap on versions, expiry, batch import, and the
//! per-device and plan quotas.
//!
//! A `Store` is one device's keys as a caller reaches them: an app token names its device, an
//! owner names one of their own devices. Every read hides entries whose `expires_at` has
//! passed (at once; the janitor deletes them later, in batches). Every write is one write job
//! that reads the entry's current version, checks the precondition and the quotas and writes,
//! so two writers with the same `If-Match` cannot both win and two writes cannot together pass
//! a quota. Versions are the device's KV revision at the write, never reused.

use crate::db::kv::{self, Meta, Range, Stored};
use crate::db::{Tx, devices};
use crate::domain::callers::AppCaller;
use crate::domain::policy::{
    self, KV_DEFAULT_PAGE, KV_EXPIRE_BATCH, KV_EXPIRE_ROUND, KV_MAX_BATCH, KV_MAX_KEY, KV_MAX_PAGE,
    KV_MAX_TTL_SECS, KvGrowth,
};
use crate::domain::{Cx, Services};
use crate::error::{ApiError, ApiResult};
use crate::time;
use std::time::Duration;

/// Content type of values sent without one.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
/// Content type of values that arrive as JSON values (`{"token", "value"}`, batch import).
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// One past the last character a key may hold: the end of a listing without a prefix.
const END: &str = "\u{7f}";

/// One device's keys, as a caller reaches them.
#[derive(Clone, Copy, Debug)]
pub struct Store {
    pub device_id: i64,
    /// The device's owner (the plan's storage quota is theirs).
    pub user_id: i64,
}

impl Store {
    /// The store an app token reaches.
    pub fn of(app: &AppCaller) -> Store {
        Store {
            device_id: app.device_id,
            user_id: app.user_id,
        }
    }

    /// The store of one of the user's own devices. Errors: 404 (another user's device too).
    pub fn owned(cx: &Cx, user_id: i64, device_uuid: &str) -> ApiResult<Store> {
        let d = devices::get(cx.reader, user_id, device_uuid)?
            .ok_or_else(|| ApiError::not_found("Device"))?;
        Ok(Store {
            device_id: d.id,
            user_id,
        })
    }
}

/// May `c` appear in a key? Printable ASCII except space and `"#%&'<>?[\]^`{|}` (characters
/// that URLs, shells or proxies treat specially).
fn key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.~/:@+=,!*()$;".contains(c)
}

/// Checks a key: 1–512 bytes of letters, digits and `-_.~/:@+=,!*()$;`, not starting with `_`
/// (reserved for `_keys` and `_batchimport`) and not `.` or `..`. Errors: 422 on `field`.
pub fn check_key(field: &str, key: &str) -> ApiResult<()> {
    if key.is_empty() || key.len() > KV_MAX_KEY {
        return Err(ApiError::invalid(
            field,
            format!("must be 1-{KV_MAX_KEY} bytes"),
        ));
    }
    if !key.chars().all(key_char) {
        return Err(ApiError::invalid(
            field,
            "may hold only letters, digits and -_.~/:@+=,!*()$; (send / as %2F in a path)",
        ));
    }
    if key.starts_with('_') || key == "." || key == ".." {
        return Err(ApiError::invalid(
            field,
            "must not start with _ or be . or ..",
        ));
    }
    Ok(())
}

/// The first string after every key that starts with `prefix` (prefixes are checked to hold
/// key characters only, all below U+007E, so the last byte can be raised by one).
fn prefix_end(prefix: &str) -> String {
    let mut b = prefix.as_bytes().to_vec();
    match b.last_mut() {
        Some(last) => {
            *last += 1;
            String::from_utf8(b).unwrap_or_else(|_| END.to_string())
        }
        None => END.to_string(),
    }
}

/// The opaque cursor after `key`.
fn cursor_of(key: &str) -> String {
    crate::crypto::hex(key.as_bytes())
}

/// The key a cursor stands for. Errors: 400 for a cursor that is not one of ours or not of
/// this listing's prefix.
fn key_of_cursor(cursor: &str, prefix: &str) -> ApiResult<String> {
    let bad = || ApiError::bad_request("cursor is not a cursor of this listing");
    if cursor.len() % 2 != 0 || cursor.len() > 2 * KV_MAX_KEY {
        return Err(bad());
    }
    let bytes: Option<Vec<u8>> = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok())
        .collect();
    let key = bytes
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad)?;
    if check_key("cursor", &key).is_err() || !key.starts_with(prefix) {
        return Err(bad());
    }
    Ok(key)
}

/// Which part of a store a listing shows.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Entries per page: default 100, at most 1000 (larger is clamped).
    pub limit: Option<u64>,
}

/// One page of a listing.
#[derive(Clone, Debug)]
pub struct KvPage<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Reads one page of `l` with `read(range, limit + 1)`. Errors: 422 for a bad prefix, 400 for
/// a bad cursor.
fn page<T>(
    l: &Listing,
    key: impl Fn(&T) -> &str,
    read: impl FnOnce(Range, i64) -> ApiResult<Vec<T>>,
) -> ApiResult<KvPage<T>> {
    let prefix = l.prefix.as_deref().unwrap_or("");
    if !prefix.is_empty() && (prefix.len() > KV_MAX_KEY || !prefix.chars().all(key_char)) {
        return Err(ApiError::invalid(
            "prefix",
            "may hold only characters keys may hold",
        ));
    }
    let limit = l
        .limit
        .map_or(KV_DEFAULT_PAGE, |n| n.clamp(1, KV_MAX_PAGE as u64) as i64);
    let after = l
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| key_of_cursor(c, prefix))
        .transpose()?;
    let until = prefix_end(prefix);
    let range = match &after {
        Some(a) => Range {
            lower: a,
            lower_excluded: true,
            until: &until,
        },
        None => Range {
            lower: prefix,
            lower_excluded: false,
            until: &until,
        },
    };
    let mut items = read(range, limit + 1)?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_cursor = if more {
        items.last().map(|t| cursor_of(key(t)))
    } else {
        None
    };
    Ok(KvPage { items, next_cursor })
}

/// Live entries of a store with their metadata, in key order.
pub fn list(cx: &Cx, s: Store, l: &Listing) -> ApiResult<KvPage<Meta>> {
    let now = cx.svc.clock.stamp();
    page(
        l,
        |m: &Meta| m.key.as_str(),
        |r, n| Ok(kv::list(cx.reader, s.device_id, r, &now, n)?),
    )
}

/// Live keys of a store, in key order.
pub fn list_keys(cx: &Cx, s: Store, l: &Listing) -> ApiResult<KvPage<String>> {
    let now = cx.svc.clock.stamp();
    page(
        l,
        |k: &String| k.as_str(),
        |r, n| Ok(kv::list_keys(cx.reader, s.device_id, r, &now, n)?),
    )
}

/// The value of a live key as stored. Errors: 422 for a bad key, 404.
pub fn get(cx: &Cx, s: Store, key: &str) -> ApiResult<Stored> {
    check_key("key", key)?;
    kv::get(cx.reader, s.device_id, key, &cx.svc.clock.stamp())?
        .ok_or_else(|| ApiError::not_found("Key"))
}

/// The metadata of a live key. Errors: 422 for a bad key, 404.
pub fn metadata(cx: &Cx, s: Store, key: &str) -> ApiResult<Meta> {
    check_key("key", key)?;
    kv::meta(cx.reader, s.device_id, key, &cx.svc.clock.stamp())?
        .ok_or_else(|| ApiError::not_found("Key"))
}

/// What a write requires of the key's current state (`If-Match`, `If-None-Match`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precondition {
    /// Nothing.
    #[default]
    None,
    /// The key exists with this version (`If-Match: "7"`).
    Version(i64),
    /// The key exists (`If-Match: *`).
    Exists,
    /// The key does not exist (`If-None-Match: *`).
    Absent,
}

impl Precondition {
    /// Reads `If-Match` (`"7"`, `7`, `W/"7"`, `*`) and `If-None-Match` (`*` only). Errors: 400
    /// for anything else or both at once.
    pub fn parse(if_match: Option<&str>, if_none_match: Option<&str>) -> ApiResult<Precondition> {
        match (if_match.map(str::trim), if_none_match.map(str::trim)) {
            (None, None) => Ok(Precondition::None),
            (Some(_), Some(_)) => Err(ApiError::bad_request(
                "send If-Match or If-None-Match, not both",
            )),
            (None, Some("*")) => Ok(Precondition::Absent),
            (None, Some(_)) => Err(ApiError::bad_request(
                "If-None-Match takes only * on writes",
            )),
            (Some("*"), None) => Ok(Precondition::Exists),
            (Some(v), None) => {
                let v = v.strip_prefix("W/").unwrap_or(v);
                v.trim_matches('"')
                    .parse::<i64>()
                    .map(Precondition::Version)
                    .map_err(|_| {
                        ApiError::bad_request("If-Match must be a version from an ETag, or *")
                    })
            }
        }
    }

    /// Checks the current version (`None` = no live key). Errors: 412 `PRECONDITION_FAILED`.
    fn check(self, current: Option<i64>) -> ApiResult<()> {
        let ok = match (self, current) {
            (Precondition::None, _) => true,
            (Precondition::Version(v), Some(c)) => v == c,
            (Precondition::Exists, c) => c.is_some(),
            (Precondition::Absent, c) => c.is_none(),
            (Precondition::Version(_), None) => false,
        };
        if ok {
            Ok(())
        } else {
            Err(ApiError::new(
                crate::error::Code::PreconditionFailed,
                match current {
                    Some(v) => format!("The key is at version {v}"),
                    None => "The key does not exist".into(),
                },
            ))
        }
    }
}

/// When a written value expires: `ttl` seconds from now, or at `expires_at` (RFC 3339 UTC),
/// or never. Errors: 422 for both at once, a ttl out of 1 s–10 years, or a time that is not
/// RFC 3339 UTC or not in the future.
pub fn expiry(cx: &Cx, ttl: Option<u64>, expires_at: Option<&str>) -> ApiResult<Option<String>> {
    let now = cx.svc.clock.now();
    match (ttl, expires_at) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(ApiError::invalid("ttl", "give ttl or expires_at, not both")),
        (Some(t), None) if (1..=KV_MAX_TTL_SECS).contains(&t) => {
            Ok(Some(time::fmt(now + Duration::from_secs(t))))
        }
        (Some(_), None) => Err(ApiError::invalid(
            "ttl",
            format!("must be 1 to {KV_MAX_TTL_SECS} seconds"),
        )),
        (None, Some(at)) => {
            let bad = |why: &str| ApiError::invalid("expires_at", why.to_string());
            let t = time::normalize(at)
                .and_then(|s| time::parse(&s))
                .ok_or_else(|| bad("must be an RFC 3339 UTC time such as 2030-01-01T00:00:00Z"))?;
            if t <= now || t > now + Duration::from_secs(KV_MAX_TTL_SECS) {
                return Err(bad("must be in the future, within ten years"));
            }
            Ok(Some(time::fmt(t)))
        }
    }
}

/// Checks a content type to store and echo later: up to 255 bytes of printable ASCII.
/// Errors: 422.
pub fn check_content_type(ct: &str) -> ApiResult<String> {
    let ct = ct.trim();
    if ct.is_empty() {
        return Ok(DEFAULT_CONTENT_TYPE.into());
    }
    if ct.len() > 255 || !ct.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            "content-type",
            "must be up to 255 bytes of printable ASCII",
        ));
    }
    Ok(ct.to_string())
}

/// One value to write.
#[derive(Clone, Debug)]
pub struct Put {
    pub key: String,
    pub value: Vec<u8>,
    pub content_type: String,
    pub expires_at: Option<String>,
}

/// What a write did.
#[derive(Clone, Debug)]
pub struct Written {
    pub meta: Meta,
    /// No live key existed before.
    pub created: bool,
}

/// Checks a value's size against `CCJK_MAX_KV_VALUE`. Errors: 413.
fn check_value(cx: &Cx, v: &[u8]) -> ApiResult<()> {
    let max = cx.cfg().max_kv_value;
    if v.len() > max {
        return Err(ApiError::too_large(max));
    }
    Ok(())
}

/// The per-device limits: (`CCJK_KV_MAX_KEYS`, `CCJK_KV_MAX_BYTES`).
fn kv_limits(cx: &Cx) -> (i64, i64) {
    let c = cx.cfg();
    (
        i64::try_from(c.kv_max_keys).unwrap_or(i64::MAX),
        i64::try_from(c.kv_max_bytes).unwrap_or(i64::MAX),
    )
}

/// A write's size and the size of the row it replaces (live or expired), if any.
type Sizes = Vec<(i64, Option<i64>)>;

impl Put {
    /// The bytes an entry takes in the quota: key and value.
    fn size(&self) -> i64 {
        (self.key.len() + self.value.len()) as i64
    }
}

/// The sizes of `puts` against what is stored now.
fn sizes_of(tx: &Tx, device_id: i64, puts: &[Put]) -> ApiResult<Sizes> {
    puts.iter()
        .map(|p| {
            let old = kv::stored(tx, device_id, &p.key)?.map(|r| r.size_bytes);
            Ok((p.size(), old))
        })
        .collect()
}

/// Checks that writing `puts` (whose sizes against what is stored are `sizes`) keeps the store
/// within its quotas; a store over a limit first frees its expired entries, then the sizes are
/// read anew. `limits` = (`CCJK_KV_MAX_KEYS`, `CCJK_KV_MAX_BYTES`). Errors: 403
/// `QUOTA_EXCEEDED`.
fn check_quotas(
    tx: &Tx,
    limits: (i64, i64),
    s: Store,
    now: &str,
    puts: &[Put],
    sizes: Sizes,
) -> ApiResult<()> {
    let growth = |tx: &Tx, sizes: &Sizes| -> ApiResult<(KvGrowth, i64)> {
        let (keys, bytes) = kv::usage(tx, s.device_id)?;
        let new_keys = keys + sizes.iter().filter(|(_, old)| old.is_none()).count() as i64;
        let delta: i64 = sizes.iter().map(|(new, old)| new - old.unwrap_or(0)).sum();
        let g = KvGrowth {
            keys: (keys, new_keys),
            bytes: (bytes, bytes + delta),
        };
        Ok((g, delta))
    };
    let (max_keys, max_bytes) = limits;
    let within = |(g, delta): (KvGrowth, i64)| {
        policy::check_kv_device(g, max_keys, max_bytes)
            .and_then(|_| policy::check_storage(tx, s.user_id, delta))
    };
    let first = within(growth(tx, &sizes)?);
    // Refused: expired entries not yet deleted may be what stands in the way; nothing expired,
    // the first answer stands (not computed again).
    if first.is_ok() || kv::delete_expired_of_device(tx, s.device_id, now)? == 0 {
        return first;
    }
    let sizes = sizes_of(tx, s.device_id, puts)?;
    within(growth(tx, &sizes)?)
}

/// Writes one value if `pre` holds, within the quotas. Errors: 422 (key), 413 (value), 412
/// `PRECONDITION_FAILED`, 403 `QUOTA_EXCEEDED`.
pub fn put(cx: &Cx, s: Store, p: Put, pre: Precondition) -> ApiResult<Written> {
    check_key("key", &p.key)?;
    check_value(cx, &p.value)?;
    let now = cx.svc.clock.stamp();
    let limits = kv_limits(cx);
    cx.write(move |tx| {
        let stored = kv::stored(tx, s.device_id, &p.key)?;
        let before = stored.as_ref().filter(|r| r.live(&now));
        pre.check(before.map(|r| r.version))?;
        let sizes = vec![(p.size(), stored.as_ref().map(|r| r.size_bytes))];
        check_quotas(tx, limits, s, &now, std::slice::from_ref(&p), sizes)?;
        let version = kv::next_revision(tx, s.device_id)?;
        let w = kv::Write {
            key: &p.key,
            value: &p.value,
            content_type: &p.content_type,
            size_bytes: p.size(),
            version,
            expires_at: p.expires_at.as_deref(),
        };
        kv::upsert(tx, s.device_id, &w, &now)?;
        // What `kv::upsert` stored: a live entry keeps its creation time, a new one (or one
        // that had expired) starts now.
        let meta = Meta {
            created_at: before.map_or_else(|| now.clone(), |r| r.created_at.clone()),
            size_bytes: p.size(),
            key: p.key,
            content_type: p.content_type,
            version,
            expires_at: p.expires_at,
            updated_at: now.clone(),
        };
        Ok(Written {
            meta,
            created: before.is_none(),
        })
    })
}

/// Deletes a live key if `pre` holds. Errors: 422 (key), 404, 412 `PRECONDITION_FAILED`.
pub fn delete(cx: &Cx, s: Store, key: &str, pre: Precondition) -> ApiResult<()> {
    check_key("key", key)?;
    let (key, now) = (key.to_string(), cx.svc.clock.stamp());
    cx.write(move |tx| {
        let current = kv::stored(tx, s.device_id, &key)?.filter(|r| r.live(&now));
        pre.check(current.as_ref().map(|r| r.version))?;
        if current.is_none() {
            return Err(ApiError::not_found("Key"));
        }
        kv::delete(tx, s.device_id, &key)?;
        Ok(())
    })
}

/// Writes every entry or none (one write job; all get the same version). Errors: 422 naming
/// the first bad key or too many entries, 413 for a value over `CCJK_MAX_KV_VALUE`, 403
/// `QUOTA_EXCEEDED`. Returns how many entries were written.
pub fn import(cx: &Cx, s: Store, puts: Vec<Put>) -> ApiResult<usize> {
    if puts.len() > KV_MAX_BATCH {
        return Err(ApiError::invalid(
            "entries",
            format!("at most {KV_MAX_BATCH} per import"),
        ));
    }
    for p in &puts {
        check_key(&format!("entries.{}", p.key), &p.key)?;
        check_value(cx, &p.value)?;
    }
    let now = cx.svc.clock.stamp();
    let limits = kv_limits(cx);
    cx.write(move |tx| {
        let sizes = sizes_of(tx, s.device_id, &puts)?;
        check_quotas(tx, limits, s, &now, &puts, sizes)?;
        if puts.is_empty() {
            return Ok(0);
        }
        let version = kv::next_revision(tx, s.device_id)?;
        for p in &puts {
            let w = kv::Write {
                key: &p.key,
                value: &p.value,
                content_type: &p.content_type,
                size_bytes: p.size(),
                version,
                expires_at: p.expires_at.as_deref(),
            };
            kv::upsert(tx, s.device_id, &w, &now)?;
        }
        Ok(puts.len())
    })
}

/// Deletes expired entries in batches of `KV_EXPIRE_BATCH` (each its own write job, so the
/// writer is never held long), up to `KV_EXPIRE_ROUND` per call (the janitor's round).
/// Returns how many went.
pub fn expire(svc: &Services, reader: &rusqlite::Connection) -> ApiResult<usize> {
    let now = svc.clock.stamp();
    if !kv::any_expired(reader, &now)? {
        return Ok(0);
    }
    let mut total = 0usize;
    loop {
        let at = now.clone();
        let n = svc
            .db
            .write(move |tx| Ok(kv::delete_expired(tx, &at, KV_EXPIRE_BATCH)?))?;
        total += n;
        if (n as i64) < KV_EXPIRE_BATCH || total as i64 >= KV_EXPIRE_ROUND {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        for ok in [
            "a",
            "settings/theme",
            "A-Z_0.9~:@+=,!*()$;",
            &"k".repeat(512),
        ] {
            assert!(check_key("key", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "_keys",
            "_batchimport",
            ".",
            "..",
            "a b",
            "a%2Fb",
            "a?b",
            "a#b",
            "é",
            "a\nb",
            &"k".repeat(513),
        ] {
            assert!(check_key("key", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prefix_ranges_and_cursors() {
        assert_eq!(prefix_end("app1/"), "app10");
        assert_eq!(prefix_end("a~"), "a\u{7f}");
        assert_eq!(prefix_end(""), END);
        let c = cursor_of("app1/k07");
        assert_eq!(key_of_cursor(&c, "app1/").ok().as_deref(), Some("app1/k07"));
        assert!(key_of_cursor(&c, "app2/").is_err(), "another prefix");
        assert!(key_of_cursor("zz", "").is_err());
        assert!(key_of_cursor("5f6b657973", "").is_err(), "_keys is no key");
    }

    #[test]
    fn preconditions() {
        let p = |m, n| Precondition::parse(m, n);
        assert_eq!(p(Some("\"7\""), None).ok(), Some(Precondition::Version(7)));
        assert_eq!(
            p(Some("W/\"7\""), None).ok(),
            Some(Precondition::Version(7))
        );
        assert_eq!(p(Some("*"), None).ok(), Some(Precondition::Exists));
        assert_eq!(p(None, Some("*")).ok(), Some(Precondition::Absent));
        assert!(p(Some("abc"), None).is_err());
        assert!(p(Some("1"), Some("*")).is_err());
        assert!(Precondition::Version(7).check(Some(7)).is_ok());
        let e = Precondition::Version(7).check(Some(8)).expect_err("412");
        assert_eq!(e.status(), 412);
        assert!(Precondition::Version(7).check(None).is_err());
        assert!(Precondition::Absent.check(Some(1)).is_err());
        assert!(Precondition::Exists.check(None).is_err());
    }

    #[test]
    fn content_types() {
        assert_eq!(
            check_content_type("").ok().as_deref(),
            Some(DEFAULT_CONTENT_TYPE)
        );
        assert_eq!(
            check_content_type("text/plain; charset=utf-8")
                .ok()
                .as_deref(),
            Some("text/plain; charset=utf-8")
        );
        assert!(check_content_type("text/plain\r\nX-Evil: 1").is_err());
    }
}
