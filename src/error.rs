//! `ApiError`: the one error type route functions return, and the catalog of codes (SPEC §5).
//!
//! An error carries the HTTP status, a stable SCREAMING_SNAKE code, a message that is safe to
//! show the client, optional structured `details`, and a `detail` for the log only. Conversions
//! from rusqlite and io errors become `INTERNAL` with the original text kept for the log: no
//! error body ever contains SQL, file paths or panic text. This module never logs; the server
//! logs once per request.

use serde_json::{Value, json};
use std::fmt;

/// Result of a route or domain function.
pub type ApiResult<T> = Result<T, ApiError>;

/// An error reported to the client. See the README's error-code table.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// HTTP status, meaningful in every API family.
    pub status: u16,
    /// Stable code from SPEC §5, e.g. `NOT_FOUND`.
    pub code: &'static str,
    /// Human-readable, safe to show.
    pub message: String,
    /// Structured details (`VALIDATION_FAILED` fields, quota `{limit, used}`); `{}` if none.
    pub details: Value,
    /// `Retry-After` seconds for 429 and 503.
    pub retry_after: Option<u64>,
    /// Internal context for the log line; never sent.
    pub log: Option<String>,
}

impl ApiError {
    /// Any error with a status, code and message.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: json!({}),
            retry_after: None,
            log: None,
        }
    }
    /// Adds structured details.
    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = details;
        self
    }
    /// Adds internal context for the log.
    pub fn with_log(mut self, log: impl Into<String>) -> ApiError {
        self.log = Some(log.into());
        self
    }
    /// 400 `BAD_REQUEST`: malformed JSON, a bad query parameter.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BAD_REQUEST", message)
    }
    /// 422 `VALIDATION_FAILED` with one field's problem in `details`.
    pub fn invalid(field: &str, problem: impl Into<String>) -> ApiError {
        let problem = problem.into();
        ApiError::new(422, "VALIDATION_FAILED", format!("{field}: {problem}"))
            .with_details(json!({ field: problem }))
    }
    /// 401 `UNAUTHORIZED`: missing, unknown, revoked or wrong-kind credential.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(401, "UNAUTHORIZED", message)
    }
    /// 401 `INVALID_CREDENTIALS`: always the same message, whatever was wrong (SPEC §8.1).
    pub fn invalid_credentials() -> ApiError {
        ApiError::new(401, "INVALID_CREDENTIALS", "Invalid credentials")
    }
    /// 403 `FORBIDDEN`.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, "FORBIDDEN", message)
    }
    /// 403 `INSUFFICIENT_SCOPE`: an API key without the route's scope.
    pub fn insufficient_scope(scope: &str) -> ApiError {
        ApiError::new(
            403,
            "INSUFFICIENT_SCOPE",
            format!("This credential lacks the {scope} scope"),
        )
        .with_details(json!({ "required_scope": scope }))
    }
    /// 404 `NOT_FOUND`, also for another user's ids (SPEC §5).
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(404, "NOT_FOUND", format!("{what} not found"))
    }
    /// 409 `CONFLICT` or a more specific 409 code.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(409, code, message)
    }
    /// 403 `QUOTA_EXCEEDED` with `{limit, used}` (SPEC §7.3).
    pub fn quota(what: &str, limit: i64, used: i64) -> ApiError {
        ApiError::new(
            403,
            "QUOTA_EXCEEDED",
            format!("{what} quota exceeded ({used}/{limit})"),
        )
        .with_details(json!({ "quota": what, "limit": limit, "used": used }))
    }
    /// 429 `RATE_LIMITED` with `Retry-After`.
    pub fn rate_limited(retry_after: u64) -> ApiError {
        let mut e = ApiError::new(429, "RATE_LIMITED", "Too many attempts; try again later");
        e.retry_after = Some(retry_after.max(1));
        e
    }
    /// 413 `PAYLOAD_TOO_LARGE`.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            413,
            "PAYLOAD_TOO_LARGE",
            format!("Body exceeds {limit} bytes"),
        )
        .with_details(json!({ "limit": limit }))
    }
    /// 415 `UNSUPPORTED_MEDIA_TYPE`.
    pub fn unsupported_media_type() -> ApiError {
        ApiError::new(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "Content-Type must be application/json",
        )
    }
    /// 503 `SERVICE_UNAVAILABLE` with `Retry-After`.
    pub fn unavailable(message: impl Into<String>, retry_after: u64) -> ApiError {
        let mut e = ApiError::new(503, "SERVICE_UNAVAILABLE", message);
        e.retry_after = Some(retry_after);
        e
    }
    /// 500 `INTERNAL`; `log` says what happened, the client sees only a generic message.
    pub fn internal(log: impl Into<String>) -> ApiError {
        ApiError::new(500, "INTERNAL", "Internal server error").with_log(log)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)?;
        if let Some(l) = &self.log {
            write!(f, " ({l})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> ApiError {
        if let rusqlite::Error::SqliteFailure(f, _) = &e
            && matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            )
        {
            return ApiError::unavailable("Database busy, retry shortly", 1)
                .with_log(e.to_string());
        }
        ApiError::internal(format!("sqlite: {e}"))
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> ApiError {
        ApiError::internal(format!("io: {e}"))
    }
}

/// Did a statement fail on a UNIQUE constraint? (The `db` function that knows what the
/// constraint means turns it into the right 409.)
pub fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}
