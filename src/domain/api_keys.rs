//! API keys (docs/security.md "Credentials"): create (the key is shown once), list, revoke.
//! Only a session may manage keys, so a narrow key can never mint a wider one.

use crate::crypto::{self, API_KEY_PREFIX, sha256};
use crate::db::api_keys::{self, ApiKey};
use crate::db::effects::Effect;
use crate::domain::callers::{SCOPES, UserCaller};
use crate::domain::text;
use crate::domain::{Cx, Page, Paged};
use crate::error::{ApiError, ApiResult};
use crate::time;
use schemars::JsonSchema;
use serde::Deserialize;

/// A new API key (`POST /v1/api-keys`).
#[derive(Deserialize, JsonSchema, Default)]
pub struct CreateApiKeyRequest {
    /// 1–100 characters.
    pub name: String,
    /// At least one of the scopes listed in the README.
    pub scopes: Vec<String>,
    /// RFC 3339 UTC, in the future; none = never expires.
    pub expires_at: Option<String>,
}

/// Creates a key; returns its row and the key itself (never shown again).
/// Errors: 422 for an empty name, unknown or no scopes, a bad or past `expires_at`.
pub fn create(cx: &Cx, caller: &UserCaller, r: CreateApiKeyRequest) -> ApiResult<(ApiKey, String)> {
    let name = text::name("name", &r.name, 100)?;
    if r.scopes.is_empty() {
        return Err(ApiError::invalid(
            "scopes",
            "at least one scope is required",
        ));
    }
    let mut scopes = Vec::new();
    for s in r.scopes {
        if !SCOPES.contains(&s.as_str()) {
            return Err(ApiError::invalid("scopes", format!("unknown scope {s:?}")));
        }
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    let expires_at = match r.expires_at.as_deref() {
        None => None,
        Some(e) => match time::normalize(e) {
            Some(t) if t > time::now() => Some(t),
            Some(_) => return Err(ApiError::invalid("expires_at", "is in the past")),
            None => return Err(ApiError::invalid("expires_at", "must be RFC 3339 UTC (…Z)")),
        },
    };
    let key = crypto::new_token(API_KEY_PREFIX);
    let (prefix, hash, uid) = (crypto::display_prefix(&key), sha256(&key), caller.user_id());
    let row = cx.write(move |tx| {
        Ok(api_keys::insert(
            tx,
            uid,
            &name,
            &prefix,
            &hash,
            &scopes,
            expires_at.as_deref(),
        )?)
    })?;
    Ok((row, key))
}

/// A page of the caller's keys, newest first.
pub fn list(cx: &Cx, caller: &UserCaller, page: Page) -> ApiResult<Paged<ApiKey>> {
    let rows = api_keys::list(cx.reader, caller.user_id(), page.limit + 1, page.offset)?;
    Ok(Paged::from_rows(rows, page))
}

/// Revokes one of the caller's keys. Errors: 404 (also for another user's id).
pub fn revoke(cx: &Cx, caller: &UserCaller, id: &str) -> ApiResult<()> {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found("API key"))?;
    let uid = caller.user_id();
    let revoked = cx.write(move |tx| {
        let done = api_keys::revoke(tx, uid, id)?;
        tx.after_commit(Effect::CredentialsRevoked(uid));
        Ok(done)
    })?;
    if !revoked {
        return Err(ApiError::not_found("API key"));
    }
    Ok(())
}
