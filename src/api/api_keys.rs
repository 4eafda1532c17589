//! API keys (SPEC §6.1 API keys row, §5 scopes): create (the key is shown once), list, revoke.
//! Only a session may manage keys, so a narrow key can never mint a wider one.

use crate::app::Ctx;
use crate::auth::{SCOPES, UserCaller};
use crate::crypto::{self, API_KEY_PREFIX, sha256};
use crate::db::api_keys::{self, ApiKey};
use crate::error::{ApiError, ApiResult};
use crate::time;
use serde::Deserialize;
use serde_json::{Value, json};

/// `POST /v1/api-keys` body.
#[derive(Deserialize, Default)]
pub struct CreateApiKeyRequest {
    pub name: String,
    pub scopes: Vec<String>,
    /// RFC 3339 UTC, in the future.
    pub expires_at: Option<String>,
}

/// Creates a key; returns its row and the key itself (never shown again).
/// Errors: 422 for an empty name, unknown or no scopes, a bad or past `expires_at`.
pub fn create(
    cx: &Ctx,
    caller: &UserCaller,
    r: CreateApiKeyRequest,
) -> ApiResult<(ApiKey, String)> {
    let name = r.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid("name", "must be 1-100 characters"));
    }
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
    let row = cx.write(move |c| {
        Ok(api_keys::insert(
            c,
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

/// The caller's keys.
pub fn list(cx: &Ctx, caller: &UserCaller) -> ApiResult<Vec<ApiKey>> {
    Ok(api_keys::list(cx.db, caller.user_id())?)
}

/// Revokes one of the caller's keys. Errors: 404 (also for another user's id).
pub fn revoke(cx: &Ctx, caller: &UserCaller, id: &str) -> ApiResult<()> {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found("API key"))?;
    let uid = caller.user_id();
    if !cx.write(move |c| Ok(api_keys::revoke(c, uid, id)?))? {
        return Err(ApiError::not_found("API key"));
    }
    Ok(())
}

/// JSON of a key row (no secret).
pub fn key_json(k: &ApiKey) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "key_prefix": k.key_prefix,
        "scopes": k.scopes,
        "last_used_at": k.last_used_at,
        "expires_at": k.expires_at,
        "created_at": k.created_at,
        "revoked_at": k.revoked_at,
    })
}
