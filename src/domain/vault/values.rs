//! Values of vault props that need more than a type check: date-times (RFC 3339 with `Z` or
//! an offset, stored in UTC with milliseconds) and field regexes, compiled with bounds by
//! `regex-lite`: the `regex` crate's syntax and linear-time guarantee from the same project,
//! without the Unicode tables and DFA machinery that cost the release binary half a megabyte
//! (\w, \d, \s and `(?i)` are ASCII; other characters match themselves).

use crate::domain::policy::{VAULT_MAX_REGEX, VAULT_REGEX_NEST_LIMIT, VAULT_REGEX_SIZE_LIMIT};
use regex_lite::{Regex, RegexBuilder};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Compiles a field regex within `VAULT_MAX_REGEX` bytes of pattern and
/// `VAULT_REGEX_SIZE_LIMIT` of compiled program. Errors: the problem, for a 422 detail.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    if pattern.len() > VAULT_MAX_REGEX {
        return Err(format!("must be at most {VAULT_MAX_REGEX} bytes"));
    }
    RegexBuilder::new(pattern)
        .size_limit(VAULT_REGEX_SIZE_LIMIT)
        .nest_limit(VAULT_REGEX_NEST_LIMIT)
        .build()
        .map_err(|e| {
            if e.to_string().contains("size limit") {
                "is too complex".to_string()
            } else {
                "is not a valid regular expression".to_string()
            }
        })
}

/// A date-time prop value: an RFC 3339 string, returned in the stored form
/// (`2026-01-20T10:00:00.000Z`).
pub fn datetime(v: &Value) -> Result<String, String> {
    const WHY: &str = "must be an RFC 3339 date-time (2026-01-20T10:00:00Z)";
    let s = v.as_str().ok_or(WHY)?;
    parse_rfc3339(s)
        .map(crate::time::fmt)
        .ok_or_else(|| WHY.to_string())
}

/// Parses RFC 3339 with `Z` or a `±HH:MM` offset (and an optional fraction) into a UTC time.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let (base, offset_secs): (&str, i64) =
        if let Some(b) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
            (b, 0)
        } else {
            let cut = s.len().checked_sub(6)?;
            let (b, z) = (s.get(..cut)?, s.get(cut..)?.as_bytes());
            let sign = match z[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let two = |x: &[u8]| -> Option<i64> {
                (x.len() == 2 && x.iter().all(u8::is_ascii_digit))
                    .then(|| i64::from((x[0] - b'0') * 10 + (x[1] - b'0')))
            };
            let (h, m) = (two(&z[1..3])?, two(&z[4..6])?);
            if z[3] != b':' || h > 23 || m > 59 {
                return None;
            }
            (b, sign * (h * 3600 + m * 60))
        };
    if !matches!(base.as_bytes().get(10), Some(b'T' | b't')) {
        return None;
    }
    let local = humantime::parse_rfc3339_weak(base).ok()?;
    let secs = local.duration_since(UNIX_EPOCH).ok()?;
    let utc = secs.as_secs() as i64 - offset_secs;
    (utc >= 0).then(|| UNIX_EPOCH + Duration::new(utc as u64, secs.subsec_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_with_offsets() {
        let f = |s: &str| parse_rfc3339(s).map(crate::time::fmt);
        assert_eq!(
            f("2026-01-20T10:00:00Z").as_deref(),
            Some("2026-01-20T10:00:00.000Z")
        );
        assert_eq!(
            f("2026-01-20T18:00:00.5+08:00").as_deref(),
            Some("2026-01-20T10:00:00.500Z")
        );
        assert_eq!(
            f("2026-01-20T05:30:00-04:30").as_deref(),
            Some("2026-01-20T10:00:00.000Z")
        );
        for bad in [
            "2026-01-20",
            "2026-01-20 10:00:00Z",
            "2026-01-20T10:00:00",
            "tomorrow",
            "2026-01-20T10:00:00+8:00",
            "2026-13-01T00:00:00Z",
            "2026-01-20T10:00:00+24:00",
            "é",
        ] {
            assert_eq!(f(bad), None, "{bad}");
        }
    }

    #[test]
    fn regexes_are_ascii_and_bounded() {
        let m = |p: &str, s: &str| compile(p).expect("compiles").is_match(s);
        assert!(m("^sk-[a-z0-9]+$", "sk-abc123"));
        assert!(!m("^sk-[a-z0-9]+$", "sk-ABC"));
        assert!(m("(?i)^sk-[a-z]+$", "SK-ABC"));
        assert!(m(r"^\d{3}$", "123") && !m(r"^\d{3}$", "١٢٣"));
        assert!(m(r"^\w+@\w+$", "me@host"));
        assert!(m("^.{2}$", "密码"), "`.` is one character");
        assert!(compile(&format!("{}a{}", "(".repeat(100), ")".repeat(100))).is_err());
        assert!(
            m("^密码-.+$", "密码-x"),
            "other characters match themselves"
        );
        assert!(compile("^sk-[a-z0-9]+$").is_ok());
        assert!(compile(&"a".repeat(VAULT_MAX_REGEX + 1)).is_err());
        assert_eq!(
            compile("(").err().as_deref(),
            Some("is not a valid regular expression")
        );
        assert_eq!(
            compile(r"\w{1000}{1000}").err().as_deref(),
            Some("is too complex")
        );
    }
}
