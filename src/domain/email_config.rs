//! A user's e-mail settings (README "Mail"): one config for the account and one per device,
//! each with an address, optional IMAP/SMTP settings for daemons that read mail themselves, and
//! a password sealed under the server key that is never returned. A configured address is one
//! the user may mail commands from (the inbound webhook) and may have mail sent to.
//!
//! Devices are named by their public id inside the caller's own data (404 otherwise); the
//! account's own config is named `account` where a path needs a name.

use crate::db::devices;
use crate::db::email_configs::{self, ConfigInput, EmailConfig};
use crate::domain::{Cx, text};
use crate::error::{ApiError, ApiResult};
use schemars::JsonSchema;
use serde::Deserialize;

/// The path name of the account's own config (not a device's).
pub const ACCOUNT: &str = "account";
/// Associated data of sealed config passwords.
const SEALED_AD: &str = "email_configs.password_sealed";

/// `POST /v1/email/config` (Full's fields; Lite sends `email`).
#[derive(Deserialize, JsonSchema, Default, Debug, Clone)]
pub struct ConfigRequest {
    /// A device's public id; absent: the account's own config.
    pub device_id: Option<String>,
    /// The address (Lite calls it `email`).
    #[serde(alias = "email")]
    pub email_address: String,
    pub imap_host: Option<String>,
    /// 1–65535.
    pub imap_port: Option<i64>,
    /// Default true.
    pub imap_secure: Option<bool>,
    pub smtp_host: Option<String>,
    /// 1–65535.
    pub smtp_port: Option<i64>,
    /// Default true.
    pub smtp_secure: Option<bool>,
    pub username: Option<String>,
    /// Sealed at rest, never returned; absent keeps the stored one.
    pub password: Option<String>,
    /// Seconds between mailbox checks, 10–86400 (default 30).
    pub check_interval: Option<i64>,
    /// Default true.
    pub is_active: Option<bool>,
}

fn host(field: &str, v: Option<String>) -> ApiResult<Option<String>> {
    match v.map(|h| h.trim().to_string()).filter(|h| !h.is_empty()) {
        Some(h)
            if h.len() > 253
                || !h.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')
                }) =>
        {
            Err(ApiError::invalid(field, "is not a host name"))
        }
        h => Ok(h),
    }
}

fn port(field: &str, v: Option<i64>) -> ApiResult<Option<i64>> {
    match v {
        Some(p) if !(1..=65535).contains(&p) => Err(ApiError::invalid(field, "must be 1 to 65535")),
        p => Ok(p),
    }
}

/// The scope an API key needs, besides `user:write`, to set a config: a configured address may
/// mail commands to the devices the config covers.
pub const COMMAND_SCOPE: &str = "task:create";

/// The device a request names, inside the user's data: `None` for the account's config.
/// Errors: 404.
pub(crate) fn device_of(cx: &Cx, user_id: i64, name: Option<&str>) -> ApiResult<Option<i64>> {
    match name
        .map(str::trim)
        .filter(|n| !n.is_empty() && *n != ACCOUNT)
    {
        None => Ok(None),
        Some(uuid) => Ok(Some(
            devices::get(cx.reader, user_id, uuid)?
                .ok_or_else(|| ApiError::not_found("Device"))?
                .id,
        )),
    }
}

/// Creates or replaces the user's config for the request's device (or their own).
/// Errors: 422 per field, 404 for a device that is not theirs.
pub fn set(cx: &Cx, user_id: i64, r: ConfigRequest) -> ApiResult<EmailConfig> {
    let email_address = text::email(&r.email_address)
        .map_err(|_| ApiError::invalid("email_address", "is not an email address"))?;
    let check_interval = r.check_interval.unwrap_or(30);
    if !(10..=86_400).contains(&check_interval) {
        return Err(ApiError::invalid(
            "check_interval",
            "must be 10 to 86400 seconds",
        ));
    }
    let username = match r
        .username
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
    {
        Some(u) if u.len() > 320 || u.chars().any(char::is_control) => {
            return Err(ApiError::invalid(
                "username",
                "at most 320 characters of text",
            ));
        }
        u => u,
    };
    let password_sealed = match r.password.filter(|p| !p.is_empty()) {
        Some(p) if p.len() > 1024 => {
            return Err(ApiError::invalid("password", "at most 1024 bytes"));
        }
        Some(p) => Some(cx.svc.sealer.seal(SEALED_AD, p.as_bytes())),
        None => None,
    };
    let input = ConfigInput {
        email_address,
        imap_host: host("imap_host", r.imap_host)?,
        imap_port: port("imap_port", r.imap_port)?,
        imap_secure: r.imap_secure.unwrap_or(true),
        smtp_host: host("smtp_host", r.smtp_host)?,
        smtp_port: port("smtp_port", r.smtp_port)?,
        smtp_secure: r.smtp_secure.unwrap_or(true),
        username,
        password_sealed,
        check_interval,
        is_active: r.is_active.unwrap_or(true),
    };
    let device_id = device_of(cx, user_id, r.device_id.as_deref())?;
    cx.write(move |tx| {
        // The device may have been deleted since it was looked up: the foreign key refuses it.
        if let Some(d) = device_id
            && devices::get_by_id(tx, d)?.is_none_or(|d| d.user_id != user_id)
        {
            return Err(ApiError::not_found("Device"));
        }
        email_configs::upsert(tx, user_id, device_id, &input)?;
        email_configs::get(tx, user_id, device_id)?
            .ok_or_else(|| ApiError::internal("saved e-mail config vanished"))
    })
}

/// The user's config for `device` (a device's public id, or `account`). Errors: 404.
pub fn get(cx: &Cx, user_id: i64, device: &str) -> ApiResult<EmailConfig> {
    let d = device_of(cx, user_id, Some(device))?;
    email_configs::get(cx.reader, user_id, d)?.ok_or_else(|| ApiError::not_found("E-mail config"))
}

/// Every config of the user, their own first.
pub fn list(cx: &Cx, user_id: i64) -> ApiResult<Vec<EmailConfig>> {
    Ok(email_configs::list(cx.reader, user_id)?)
}

/// Deletes the user's config for `device` (a device's public id, or `account`).
/// Errors: 404.
pub fn delete(cx: &Cx, user_id: i64, device: &str) -> ApiResult<()> {
    let d = device_of(cx, user_id, Some(device))?;
    let found = cx.write(move |tx| Ok(email_configs::delete(tx, user_id, d)?))?;
    if found {
        Ok(())
    } else {
        Err(ApiError::not_found("E-mail config"))
    }
}
