//! The Vault (docs/vault.md): per-user sites and the accounts a user rotates between, with
//! schema-checked props, sealed and masked secrets, one active account per site, lookups by
//! prop and a record of every reveal.
//!
//! * `fields` — field schemas and the validation of props; `values` — date-times and regexes;
//! * `secrets` — sealing, opening, masking and the blind index; the account as answered;
//! * `sites` — sites, their fields (with the re-check of stored accounts) and active account;
//! * `accounts` — accounts of a site: create, read, change, delete;
//! * `lookup` — `GET /v1/accounts`: by site, expiry and prop;
//! * `reveals` — who saw which secrets, and the daemon's read of its owner's active accounts;
//! * `transfer` — `ccjk-cloud vault export|import`.
//!
//! Every site key and account id is resolved inside the caller's own rows: another user's
//! answers exactly like a missing one (404). Writes run entirely inside one write job (the
//! sealer is shared with the writer), so validation against a site's fields and the write
//! cannot be separated by a concurrent change of those fields.

pub mod accounts;
pub mod fields;
pub mod lookup;
pub mod reveals;
pub mod secrets;
pub mod sites;
pub mod transfer;
pub mod values;

use crate::db::vault::reveals::Reveal;
use crate::domain::Origin;
use crate::domain::callers::UserCaller;
use crate::error::{ApiError, ApiResult};
use serde::{Deserialize, Deserializer};

/// The scope an API key needs to see a secret unmasked (`?reveal=true`, or a field change
/// that makes a secret prop plain).
pub const REVEAL_SCOPE: &str = "config:read";

/// Who is shown secrets unmasked, for the record of reveals.
#[derive(Clone, Debug)]
pub struct Actor {
    pub kind: ActorKind,
    pub origin: Origin,
}

/// The credential behind a reveal.
#[derive(Clone, Debug)]
pub enum ActorKind {
    Session(i64),
    ApiKey(i64),
    /// A daemon, by its device's uuid.
    Device(String),
    /// `ccjk-cloud vault export --plaintext`.
    Cli,
}

impl Actor {
    /// The actor of a person's call.
    pub fn user(u: &UserCaller, origin: Origin) -> Actor {
        let kind = match (u.session_id, u.api_key_id) {
            (Some(s), _) => ActorKind::Session(s),
            (None, Some(k)) => ActorKind::ApiKey(k),
            (None, None) => ActorKind::Cli,
        };
        Actor { kind, origin }
    }

    /// The record of this actor revealing `account_id` of `site_key` at `now`.
    pub fn reveal(&self, account_id: &str, site_key: &str, now: &str) -> Reveal {
        let mut r = Reveal {
            account_id: account_id.to_string(),
            site_key: site_key.to_string(),
            ip_address: self.origin.ip.clone(),
            user_agent: self.origin.user_agent.clone(),
            created_at: now.to_string(),
            ..Reveal::default()
        };
        r.actor = match &self.kind {
            ActorKind::Session(id) => {
                r.session_id = Some(*id);
                "session"
            }
            ActorKind::ApiKey(id) => {
                r.api_key_id = Some(*id);
                "api_key"
            }
            ActorKind::Device(uuid) => {
                r.device_id = Some(uuid.clone());
                "device"
            }
            ActorKind::Cli => "cli",
        }
        .to_string();
        r
    }
}

/// Checks a new site key: 1–64 characters of `a-z`, `0-9`, `.`, `_`, `-`, starting with a
/// letter or digit. Errors: 422 on `key`.
pub fn check_site_key(key: &str) -> ApiResult<String> {
    if is_site_key(key) {
        Ok(key.to_string())
    } else {
        Err(ApiError::invalid(
            "key",
            "must be 1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
        ))
    }
}

/// Is `key` shaped like a site key? (A path parameter that is not answers 404 like a missing
/// site.)
pub fn is_site_key(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
}

/// Is `id` shaped like an account id (a UUID)?
pub fn is_account_id(id: &str) -> bool {
    id.len() == 36 && uuid::Uuid::parse_str(id).is_ok()
}

/// 404 for a site key the caller does not have (or that is not a site key at all).
pub fn site_not_found() -> ApiError {
    ApiError::not_found("Site")
}

/// 404 for an account id the caller does not have.
pub fn account_not_found() -> ApiError {
    ApiError::not_found("Account")
}

/// Deserializes a field that distinguishes "absent" (`None`) from `null` (`Some(None)`), for
/// PATCH bodies where `null` clears a value. Use with `#[serde(default, deserialize_with)]`.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
