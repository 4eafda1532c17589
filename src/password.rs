//! Password hashing: argon2id with OWASP parameters (m = 19456 KiB, t = 2, p = 1), PHC strings
//! (docs/security.md).
//!
//! These functions are CPU-heavy (tens of milliseconds, 19 MiB each) and are called only on the
//! `ccjk-hash-*` threads (see `server.rs`: routes that hash are handed over whole to that pool,
//! so at most `hash_threads` hashes run at once and no request worker ever computes one) and by
//! the CLI.

use crate::crypto::random_bytes;
use crate::error::{ApiError, ApiResult};
use std::sync::atomic::{AtomicU64, Ordering};

/// Hashes computed since start (hash + verify), exposed by `GET /metrics` so that tests and
/// admins can see that throttled logins cost no hash.
static COMPUTED: AtomicU64 = AtomicU64::new(0);

/// How many argon2 computations this process has run.
pub fn computed() -> u64 {
    COMPUTED.load(Ordering::Relaxed)
}

/// Shortest accepted password, in bytes.
pub const MIN_LEN: usize = 8;
/// Longest accepted password, in bytes (argon2 accepts more; nobody needs more).
pub const MAX_LEN: usize = 1024;

/// Checks a new password's length. Errors: 422 `VALIDATION_FAILED` on `field`.
pub fn validate(field: &str, pw: &str) -> ApiResult<()> {
    if pw.len() < MIN_LEN || pw.len() > MAX_LEN {
        return Err(ApiError::invalid(
            field,
            format!("must be {MIN_LEN} to {MAX_LEN} bytes"),
        ));
    }
    Ok(())
}

/// Hashes a password with a fresh 16-byte salt; returns the PHC string.
pub fn hash(pw: &str) -> ApiResult<String> {
    let salt = random_bytes::<16>();
    COMPUTED.fetch_add(1, Ordering::Relaxed);
    argon2::hash_encoded(pw.as_bytes(), &salt, &argon2::Config::owasp2())
        .map_err(|e| ApiError::internal(format!("argon2: {e}")))
}

/// Verifies a password against a PHC string; a malformed string is a mismatch.
pub fn verify(phc: &str, pw: &str) -> bool {
    COMPUTED.fetch_add(1, Ordering::Relaxed);
    argon2::verify_encoded(phc, pw.as_bytes()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phc_round_trip_with_owasp_parameters() {
        let h = hash("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify(&h, "correct horse"));
        assert!(!verify(&h, "wrong horse"));
        assert!(!verify("not a phc string", "x"));
        assert_ne!(h, hash("correct horse").expect("hash"), "salted");
        assert!(validate("password", "short").is_err());
        assert!(validate("password", &"x".repeat(1025)).is_err());
    }
}
