//! `ApiError` and the closed catalog of error codes (README "Errors").
//!
//! Every error a client can see carries one `Code`: a stable SCREAMING_SNAKE name, the HTTP
//! status it always travels with, and a default message. The README's error table is checked
//! against `Code::ALL` by a test, so the two cannot drift. An error also carries a message that
//! is safe to show, optional structured `details`, an optional `Retry-After`, and a `log`
//! string for the log only: conversions from rusqlite and io errors become `INTERNAL` with the
//! original text kept for the log, so no error body ever contains SQL, file paths or panic
//! text. This module never logs; the server logs once per request.

use serde_json::{Value, json};
use std::fmt;

/// Result of a route or domain function.
pub type ApiResult<T> = Result<T, ApiError>;

/// Every error code a client can receive, with its HTTP status (README "Errors").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    BadRequest,
    ValidationFailed,
    Unauthorized,
    InvalidCredentials,
    Forbidden,
    InsufficientScope,
    QuotaExceeded,
    NotFound,
    Conflict,
    EmailTaken,
    UsernameTaken,
    TaskNotCancellable,
    IdempotencyKeyReused,
    TaskNotRunning,
    StaleAttempt,
    RequestTimeout,
    PreconditionFailed,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    InvalidSignature,
    Internal,
    RelayError,
    ServiceUnavailable,
}

impl Code {
    /// The whole catalog, in the README's order.
    pub const ALL: [Code; 24] = [
        Code::BadRequest,
        Code::ValidationFailed,
        Code::Unauthorized,
        Code::InvalidCredentials,
        Code::Forbidden,
        Code::InsufficientScope,
        Code::QuotaExceeded,
        Code::NotFound,
        Code::Conflict,
        Code::EmailTaken,
        Code::UsernameTaken,
        Code::TaskNotCancellable,
        Code::IdempotencyKeyReused,
        Code::TaskNotRunning,
        Code::StaleAttempt,
        Code::RequestTimeout,
        Code::PreconditionFailed,
        Code::PayloadTooLarge,
        Code::UnsupportedMediaType,
        Code::RateLimited,
        Code::InvalidSignature,
        Code::Internal,
        Code::RelayError,
        Code::ServiceUnavailable,
    ];

    /// The code as clients see it, e.g. `NOT_FOUND`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::BadRequest => "BAD_REQUEST",
            Code::ValidationFailed => "VALIDATION_FAILED",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::InvalidCredentials => "INVALID_CREDENTIALS",
            Code::Forbidden => "FORBIDDEN",
            Code::InsufficientScope => "INSUFFICIENT_SCOPE",
            Code::QuotaExceeded => "QUOTA_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::Conflict => "CONFLICT",
            Code::EmailTaken => "EMAIL_TAKEN",
            Code::UsernameTaken => "USERNAME_TAKEN",
            Code::TaskNotCancellable => "TASK_NOT_CANCELLABLE",
            Code::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Code::TaskNotRunning => "TASK_NOT_RUNNING",
            Code::StaleAttempt => "STALE_ATTEMPT",
            Code::RequestTimeout => "REQUEST_TIMEOUT",
            Code::PreconditionFailed => "PRECONDITION_FAILED",
            Code::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Code::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Code::RateLimited => "RATE_LIMITED",
            Code::InvalidSignature => "INVALID_SIGNATURE",
            Code::Internal => "INTERNAL",
            Code::RelayError => "RELAY_ERROR",
            Code::ServiceUnavailable => "SERVICE_UNAVAILABLE",
        }
    }

    /// The HTTP status this code always travels with.
    pub const fn status(self) -> u16 {
        match self {
            Code::BadRequest => 400,
            Code::ValidationFailed => 422,
            Code::Unauthorized | Code::InvalidCredentials | Code::InvalidSignature => 401,
            Code::Forbidden | Code::InsufficientScope | Code::QuotaExceeded => 403,
            Code::NotFound => 404,
            Code::Conflict
            | Code::EmailTaken
            | Code::UsernameTaken
            | Code::TaskNotCancellable
            | Code::IdempotencyKeyReused
            | Code::TaskNotRunning
            | Code::StaleAttempt => 409,
            Code::RequestTimeout => 408,
            Code::PreconditionFailed => 412,
            Code::PayloadTooLarge => 413,
            Code::UnsupportedMediaType => 415,
            Code::RateLimited => 429,
            Code::Internal => 500,
            Code::RelayError => 502,
            Code::ServiceUnavailable => 503,
        }
    }

    /// What the code means, as the README's table says it (also the OpenAPI description).
    pub const fn meaning(self) -> &'static str {
        match self {
            Code::BadRequest => "malformed JSON, JSON nested too deep, a bad query parameter",
            Code::ValidationFailed => "a field is missing or out of range; `details` names it",
            Code::Unauthorized => {
                "missing, unknown, revoked or expired credential, or one of the wrong kind"
            }
            Code::InvalidCredentials => "wrong email/username or password",
            Code::Forbidden => "not allowed (sign-ups closed, disabled account, metrics)",
            Code::InsufficientScope => "the API key lacks the route's scope",
            Code::QuotaExceeded => "a plan limit; `details {quota, limit, used}`",
            Code::NotFound => "no such route or id — including another user's id",
            Code::Conflict => "the resource is in the wrong state",
            Code::EmailTaken => "the email is already registered",
            Code::UsernameTaken => "the username is already taken",
            Code::TaskNotCancellable => "the task is already final",
            Code::IdempotencyKeyReused => {
                "a device key replayed an Idempotency-Key used for another device's task"
            }
            Code::TaskNotRunning => "a result or progress for a task that is not running",
            Code::StaleAttempt => "a result for an attempt that no longer holds the task",
            Code::RequestTimeout => "the request body did not arrive in time",
            Code::PreconditionFailed => "an If-Match version did not match",
            Code::PayloadTooLarge => "body over the cap",
            Code::UnsupportedMediaType => "not application/json",
            Code::RateLimited => "throttled; see Retry-After",
            Code::InvalidSignature => "a webhook signature did not verify",
            Code::Internal => "a bug; the log has the details under the request id",
            Code::RelayError => "the e-mail relay refused or failed",
            Code::ServiceUnavailable => "busy or shutting down; see Retry-After",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error reported to the client. See the README's error-code table.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// The code; its status is the HTTP status.
    pub code: Code,
    /// Human-readable, safe to show.
    pub message: String,
    /// Structured details (`VALIDATION_FAILED` fields, quota `{quota, limit, used}`); `{}` if none.
    pub details: Value,
    /// `Retry-After` seconds for 429 and 503.
    pub retry_after: Option<u64>,
    /// Internal context for the log line; never sent.
    pub log: Option<String>,
}

impl ApiError {
    /// Any error with a code and message.
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            details: json!({}),
            retry_after: None,
            log: None,
        }
    }
    /// The HTTP status (the code's).
    pub fn status(&self) -> u16 {
        self.code.status()
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
        ApiError::new(Code::BadRequest, message)
    }
    /// 422 `VALIDATION_FAILED` with one field's problem in `details`.
    pub fn invalid(field: &str, problem: impl Into<String>) -> ApiError {
        let problem = problem.into();
        ApiError::new(Code::ValidationFailed, format!("{field}: {problem}"))
            .with_details(json!({ field: problem }))
    }
    /// 422 `VALIDATION_FAILED` with several fields' problems in `details`.
    pub fn invalid_fields(problems: serde_json::Map<String, Value>) -> ApiError {
        let summary: Vec<String> = problems
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or("invalid")))
            .collect();
        ApiError::new(Code::ValidationFailed, summary.join("; "))
            .with_details(Value::Object(problems))
    }
    /// 401 `UNAUTHORIZED`: missing, unknown, revoked or wrong-kind credential.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::Unauthorized, message)
    }
    /// 401 `INVALID_CREDENTIALS`: always the same message, whatever was wrong.
    pub fn invalid_credentials() -> ApiError {
        ApiError::new(Code::InvalidCredentials, "Invalid credentials")
    }
    /// 403 `FORBIDDEN`.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::Forbidden, message)
    }
    /// 403 `INSUFFICIENT_SCOPE`: an API key without the route's scope.
    pub fn insufficient_scope(scope: &str) -> ApiError {
        ApiError::new(
            Code::InsufficientScope,
            format!("This credential lacks the {scope} scope"),
        )
        .with_details(json!({ "required_scope": scope }))
    }
    /// 404 `NOT_FOUND`, also for another user's ids.
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(Code::NotFound, format!("{what} not found"))
    }
    /// 409 `CONFLICT` or one of the more specific 409 codes.
    pub fn conflict(code: Code, message: impl Into<String>) -> ApiError {
        debug_assert_eq!(code.status(), 409, "{code} is not a conflict");
        ApiError::new(code, message)
    }
    /// 403 `QUOTA_EXCEEDED` with `{quota, limit, used}` (README "Plans and quotas").
    pub fn quota(what: &str, limit: i64, used: i64) -> ApiError {
        ApiError::new(
            Code::QuotaExceeded,
            format!("{what} quota exceeded ({used}/{limit})"),
        )
        .with_details(json!({ "quota": what, "limit": limit, "used": used }))
    }
    /// 429 `RATE_LIMITED` with `Retry-After`.
    pub fn rate_limited(retry_after: u64) -> ApiError {
        let mut e = ApiError::new(Code::RateLimited, "Too many attempts; try again later");
        e.retry_after = Some(retry_after.max(1));
        e
    }
    /// 413 `PAYLOAD_TOO_LARGE`.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(Code::PayloadTooLarge, format!("Body exceeds {limit} bytes"))
            .with_details(json!({ "limit": limit }))
    }
    /// 415 `UNSUPPORTED_MEDIA_TYPE`.
    pub fn unsupported_media_type() -> ApiError {
        ApiError::new(
            Code::UnsupportedMediaType,
            "Content-Type must be application/json",
        )
    }
    /// 503 `SERVICE_UNAVAILABLE` with `Retry-After`.
    pub fn unavailable(message: impl Into<String>, retry_after: u64) -> ApiError {
        let mut e = ApiError::new(Code::ServiceUnavailable, message);
        e.retry_after = Some(retry_after);
        e
    }
    /// 500 `INTERNAL`; `log` says what happened, the client sees only a generic message.
    pub fn internal(log: impl Into<String>) -> ApiError {
        ApiError::new(Code::Internal, "Internal server error").with_log(log)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status(), self.code, self.message)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_statuses_are_errors() {
        let mut names: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Code::ALL.len());
        for c in Code::ALL {
            assert!((400..600).contains(&c.status()), "{c}");
            assert!(!c.meaning().is_empty());
        }
    }

    #[test]
    fn the_readme_table_is_the_catalog() {
        let readme = include_str!("../README.md");
        let table: Vec<(String, u16)> = readme
            .split("\n## Errors\n")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("README has an Errors section")
            .lines()
            .filter(|l| l.starts_with("| `"))
            .flat_map(|l| {
                let cols: Vec<&str> = l.split('|').map(str::trim).collect();
                let status: u16 = cols[2].parse().expect("a status column");
                cols[1]
                    .split(',')
                    .map(|c| c.trim().trim_matches('`').to_string())
                    .map(move |c| (c, status))
                    .collect::<Vec<_>>()
            })
            .collect();
        let catalog: Vec<(String, u16)> = Code::ALL
            .iter()
            .map(|c| (c.as_str().to_string(), c.status()))
            .collect();
        assert_eq!(table, catalog, "README error table and Code::ALL differ");
    }
}
