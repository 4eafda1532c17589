//! The clock and timestamp formats (schema.sql, docs/limits.md).
//!
//! Timestamps are RFC 3339 UTC text with milliseconds (`2026-01-20T10:00:00.000Z`), produced
//! and parsed by `humantime`; because every stored timestamp has that exact shape, comparing
//! them as text in SQL compares them as times.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, as stored: `2026-01-20T10:00:00.000Z`.
pub fn now() -> String {
    fmt(SystemTime::now())
}

/// Formats a time as stored (RFC 3339 UTC, milliseconds).
pub fn fmt(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Now plus `d`, formatted.
pub fn after(d: Duration) -> String {
    fmt(SystemTime::now() + d)
}

/// Now minus `d`, formatted (saturating at the epoch).
pub fn before(d: Duration) -> String {
    fmt(SystemTime::now().checked_sub(d).unwrap_or(UNIX_EPOCH))
}

/// Parses an RFC 3339 UTC timestamp (`Z` suffix, optional fraction) from a client.
pub fn parse(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z').trim_end_matches('z')).ok()
}

/// Normalises a client timestamp to the stored form, or `None` if it is not RFC 3339 UTC.
pub fn normalize(s: &str) -> Option<String> {
    if !(s.ends_with('Z') || s.ends_with('z')) {
        return None;
    }
    parse(s).map(fmt)
}

/// Milliseconds between two stored timestamps (`b - a`), if both parse and `b >= a`.
pub fn millis_between(a: &str, b: &str) -> Option<u64> {
    let (a, b) = (parse(a)?, parse(b)?);
    b.duration_since(a).ok().map(|d| d.as_millis() as u64)
}

/// The UTC day (`2026-01-20`) of a stored timestamp.
pub fn day(ts: &str) -> &str {
    ts.get(..10).unwrap_or(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_round_trips_and_sorts() {
        let t = now();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z'));
        assert_eq!(normalize(&t).as_deref(), Some(t.as_str()));
        assert!(before(Duration::from_secs(1)) < t && t < after(Duration::from_secs(1)));
    }

    #[test]
    fn client_forms() {
        assert_eq!(
            normalize("2026-01-20T10:01:30Z").as_deref(),
            Some("2026-01-20T10:01:30.000Z")
        );
        assert_eq!(normalize("2026-01-20T10:01:30+08:00"), None);
        assert_eq!(normalize("yesterday"), None);
        assert_eq!(
            millis_between("2026-01-20T10:00:00.000Z", "2026-01-20T10:00:01.500Z"),
            Some(1500)
        );
        assert_eq!(day("2026-01-20T10:00:00.000Z"), "2026-01-20");
    }
}
