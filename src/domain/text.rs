//! Rules for text people type (docs/security.md "Names and e-mail addresses"): names without
//! control, invisible or bidi characters, and e-mail addresses compared the way a person reads
//! them.
//!
//! An e-mail address is stored as typed (NFC, trimmed) and also as a comparison key: NFKC,
//! then Unicode default case folding, then the UTS #39 confusable skeleton. Two addresses with
//! the same key are the same account, so `ÜSER@x.org` and `üser@x.org`, a composed and a
//! decomposed `é`, full-width letters, or a Cyrillic `с` standing in for a Latin `c` cannot
//! register twice, and any of them logs in. Invisible and bidi characters are refused outright.
//! The Unicode tables come from well-kept crates (`unicode-normalization`, `caseless`,
//! `unicode-security`, `unicode-properties`).

use crate::error::{ApiError, ApiResult};
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Is `c` a control character, or one that shows nothing or reorders text (format characters
/// such as zero-width spaces and bidi overrides, and the invisible fillers)?
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || c.general_category() == GeneralCategory::Format
        || matches!(
            c,
            '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' | '\u{2800}'
        )
}

/// Checks a name (device, session, API key, display name): trimmed, 1 to `max` characters,
/// nothing hidden. Returns it trimmed and in NFC. Errors: 422 on `field`.
pub fn name(field: &str, value: &str, max: usize) -> ApiResult<String> {
    let v: String = value.trim().nfc().collect();
    if v.is_empty() || v.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("must be 1-{max} characters"),
        ));
    }
    if v.chars().any(is_hidden) {
        return Err(ApiError::invalid(
            field,
            "must not contain control, invisible or bidi characters",
        ));
    }
    Ok(v)
}

/// Like `name`, for an optional field; `None` stays `None`.
pub fn optional_name(field: &str, value: Option<&str>, max: usize) -> ApiResult<Option<String>> {
    value.map(|v| name(field, v, max)).transpose()
}

/// An e-mail address as it is stored: trimmed, in NFC. Errors: 422 on `email` for a shape
/// that is not an address, or hidden characters.
pub fn email(value: &str) -> ApiResult<String> {
    let e: String = value.trim().nfc().collect();
    let bad = || ApiError::invalid("email", "is not an email address");
    if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || is_hidden(c)) {
        return Err(bad());
    }
    match e.split_once('@') {
        Some((l, d))
            if !l.is_empty()
                && d.contains('.')
                && !d.starts_with('.')
                && !d.ends_with('.')
                && !d.contains('@') =>
        {
            Ok(e)
        }
        _ => Err(bad()),
    }
}

/// The comparison key of an e-mail address (or of a login name that may be one): NFKC, case
/// folded, then the confusable skeleton. Equal keys mean the same account.
pub fn email_key(value: &str) -> String {
    let folded = caseless::default_case_fold_str(&value.trim().nfkc().collect::<String>());
    let skeleton: String = unicode_security::skeleton(&folded).collect();
    skeleton.nfc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alike_addresses_share_a_key() {
        let base = email_key("user@example.com");
        for same in [
            "USER@example.com",
            "user@EXAMPLE.COM",
            "u\u{0455}er@example.com", // Cyrillic dze looks like s
            "us\u{0435}r@example.com", // Cyrillic ie
            "\u{FF55}ser@example.com", // full-width u
        ] {
            assert_eq!(email_key(same), base, "{same}");
        }
        assert_eq!(
            email_key("\u{00DC}SER@x.org"),
            email_key("\u{00FC}ser@x.org")
        );
        assert_eq!(email_key("e\u{0301}@x.org"), email_key("\u{00E9}@x.org"));
        assert_eq!(email_key("ac\u{0441}t@x.org"), email_key("acct@x.org"));
        assert_ne!(email_key("other@example.com"), base);
    }

    #[test]
    fn hidden_characters_are_refused() {
        for bad in [
            "a\u{200B}b@x.org",
            "a\u{202E}b@x.org",
            "a\u{2066}b@x.org",
            "a\u{0000}b@x.org",
            "ab@x\u{FEFF}.org",
        ] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
        assert!(email("ab@x.org").is_ok());
        assert!(name("name", "laptop\u{1b}[31m", 100).is_err());
        assert!(name("name", "my\u{200D}box", 100).is_err());
        assert_eq!(
            name("name", "  caf\u{0065}\u{0301} ", 100).ok().as_deref(),
            Some("caf\u{00E9}")
        );
        assert!(name("name", &"x".repeat(101), 100).is_err());
        assert!(name("name", "   ", 100).is_err());
    }
}
