//! Secrets at rest and on the wire (docs/vault.md "Secrets").
//!
//! An account's password and each of its secret props are sealed separately with the server
//! key (XChaCha20-Poly1305, random nonce); the associated data names the column or prop and the
//! account (`accounts.password_sealed:<id>`, `accounts.secrets.<prop>:<id>`), so a box cannot be
//! moved to another prop or another account. Secret props also get a blind-index MAC:
//! HMAC-SHA256 under a key derived from the server key over (user id, prop name, value), so
//! equal values in different users' vaults or different props do not share a MAC. Answers show
//! secrets masked (`••••abcd`, the last 4 characters, for secrets of 12 characters or more;
//! `••••` alone for shorter ones) unless revealed.

use crate::crypto::{Sealer, hex};
use crate::db::vault::accounts::AccountRow;
use crate::domain::policy::VAULT_MASK_MIN_CHARS;
use crate::domain::vault::fields::Schema;
use crate::error::{ApiError, ApiResult};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

/// Associated data of an account's sealed password.
pub fn password_ad(account_id: &str) -> String {
    format!("accounts.password_sealed:{account_id}")
}

/// Associated data of an account's sealed secret prop.
pub fn secret_ad(field: &str, account_id: &str) -> String {
    format!("accounts.secrets.{field}:{account_id}")
}

/// The blind-index MAC of `value` in the user's secret prop `field`.
pub fn blind(sealer: &Sealer, user_id: i64, field: &str, value: &str) -> [u8; 32] {
    sealer.blind_index(&[&user_id.to_be_bytes(), field.as_bytes(), value.as_bytes()])
}

/// A secret as answered without a reveal.
pub fn mask(secret: &str) -> String {
    let n = secret.chars().count();
    if n < VAULT_MASK_MIN_CHARS {
        return "••••".to_string();
    }
    let tail: String = secret.chars().skip(n - 4).collect();
    format!("••••{tail}")
}

/// An account's content in plaintext: only ever in memory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plain {
    pub username: Option<String>,
    pub password: Option<String>,
    /// Plain and secret props together.
    pub props: Map<String, Value>,
}

/// What `seal` makes of an account for storage.
pub struct Sealed {
    pub password_sealed: Option<Vec<u8>>,
    /// Plain props (`accounts.extra`).
    pub extra: String,
    /// Secret props: prop → hex box (`accounts.secrets`).
    pub secrets: String,
    /// Blind index: (prop, MAC).
    pub macs: Vec<(String, [u8; 32])>,
}

/// Splits an account's props by `schema` (secret ones sealed and blind-indexed, the rest
/// plain) and seals its password, for the account `id` of `user_id`.
pub fn seal(sealer: &Sealer, user_id: i64, id: &str, schema: &Schema, p: &Plain) -> Sealed {
    let (mut extra, mut secrets, mut macs) = (Map::new(), Map::new(), Vec::new());
    for (k, v) in &p.props {
        if schema.is_secret(k) {
            let s = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            let boxed = sealer.seal(&secret_ad(k, id), s.as_bytes());
            secrets.insert(k.clone(), Value::String(hex(&boxed)));
            macs.push((k.clone(), blind(sealer, user_id, k, &s)));
        } else {
            extra.insert(k.clone(), v.clone());
        }
    }
    Sealed {
        password_sealed: p
            .password
            .as_ref()
            .map(|pw| sealer.seal(&password_ad(id), pw.as_bytes())),
        extra: Value::Object(extra).to_string(),
        secrets: Value::Object(secrets).to_string(),
        macs,
    }
}

fn object(s: &str, what: &str) -> ApiResult<Map<String, Value>> {
    serde_json::from_str(s).map_err(|e| ApiError::internal(format!("stored {what}: {e}")))
}

/// Opens one stored secret prop box (hex) of account `id`.
pub fn open_secret(sealer: &Sealer, id: &str, field: &str, boxed: &Value) -> ApiResult<String> {
    boxed
        .as_str()
        .and_then(crate::crypto::unhex)
        .and_then(|b| sealer.open_string(&secret_ad(field, id), &b))
        .ok_or_else(|| ApiError::internal(format!("secret {field} of {id} does not open")))
}

/// Opens a stored account: its password and every prop, in plaintext. Errors: 500 if a box
/// does not open under the server key.
pub fn open(sealer: &Sealer, row: &AccountRow) -> ApiResult<Plain> {
    let mut props = object(&row.extra, "extra")?;
    for (k, v) in object(&row.secrets, "secrets")? {
        props.insert(
            k.clone(),
            Value::String(open_secret(sealer, &row.id, &k, &v)?),
        );
    }
    let password = row
        .password_sealed
        .as_ref()
        .map(|b| {
            sealer
                .open_string(&password_ad(&row.id), b)
                .ok_or_else(|| ApiError::internal(format!("password of {} does not open", row.id)))
        })
        .transpose()?;
    Ok(Plain {
        username: row.username.clone(),
        password,
        props,
    })
}

/// An account as answered.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct AccountView {
    /// UUID.
    pub id: String,
    /// The site's key.
    pub site: String,
    pub username: Option<String>,
    /// Masked (`••••abcd`) unless revealed; `null` when the account has none.
    pub password: Option<String>,
    /// Plain props as stored, secret ones masked unless revealed.
    pub props: Map<String, Value>,
    /// Which props are secret (sealed at rest).
    pub secret_props: Vec<String>,
    /// The active account of its site.
    pub is_active: bool,
    /// Whether secrets are shown unmasked in this answer.
    pub revealed: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// The answer for a stored account: secrets masked, or revealed when `reveal`.
pub fn view(sealer: &Sealer, row: &AccountRow, reveal: bool) -> ApiResult<AccountView> {
    let plain = open(sealer, row)?;
    let secret_props: Vec<String> = object(&row.secrets, "secrets")?.keys().cloned().collect();
    let mut props = plain.props;
    let show = |s: String| if reveal { s } else { mask(&s) };
    if !reveal {
        for k in &secret_props {
            if let Some(Value::String(s)) = props.get_mut(k) {
                *s = mask(s);
            }
        }
    }
    Ok(AccountView {
        id: row.id.clone(),
        site: row.site_key.clone(),
        username: plain.username,
        password: plain.password.map(show),
        props,
        secret_props,
        is_active: row.is_active,
        revealed: reveal,
        created_at: row.created_at.clone(),
        updated_at: row.updated_at.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::vault::fields::{FieldDef, FieldType};

    fn schema() -> Schema {
        let f = |name: &str, secret| FieldDef {
            name: name.into(),
            kind: FieldType::String,
            required: false,
            default: None,
            regex: None,
            choices: None,
            secret,
            indexed: false,
            order: None,
            ui_hint: None,
        };
        Schema::from_defs(vec![f("token", false), f("apiKey", true)]).expect("schema")
    }

    #[test]
    fn masks_show_at_most_the_last_four_of_long_secrets() {
        assert_eq!(mask("sk-live-0123456789abcd"), "••••abcd");
        assert_eq!(mask("short"), "••••");
        assert_eq!(mask("elevenchars"), "••••");
        assert_eq!(mask("密码密码密码密码密码密码"), "••••密码密码");
    }

    #[test]
    fn sealing_round_trips_and_keeps_secrets_out_of_the_row() {
        let s = Sealer::from_key(&[3u8; 32]).expect("key");
        let mut props = Map::new();
        props.insert("token".into(), Value::from("plain-token"));
        props.insert("apiKey".into(), Value::from("sk-secret-value-123"));
        let p = Plain {
            username: Some("me".into()),
            password: Some("hunter2-hunter2".into()),
            props,
        };
        let id = "6f1c1b9e-0000-4000-8000-000000000001";
        let sealed = seal(&s, 7, id, &schema(), &p);
        assert!(sealed.extra.contains("plain-token"));
        assert!(!sealed.extra.contains("sk-secret") && !sealed.secrets.contains("sk-secret"));
        assert_eq!(sealed.macs.len(), 1);
        assert_eq!(
            sealed.macs[0].1,
            blind(&s, 7, "apiKey", "sk-secret-value-123")
        );
        assert_ne!(
            sealed.macs[0].1,
            blind(&s, 8, "apiKey", "sk-secret-value-123"),
            "per user"
        );
        let row = AccountRow {
            id: id.into(),
            username: Some("me".into()),
            password_sealed: sealed.password_sealed.clone(),
            extra: sealed.extra.clone(),
            secrets: sealed.secrets.clone(),
            ..AccountRow::default()
        };
        assert_eq!(open(&s, &row).expect("opens"), p);
        let moved = AccountRow {
            id: "6f1c1b9e-0000-4000-8000-000000000002".into(),
            ..row.clone()
        };
        assert!(open(&s, &moved).is_err(), "a box is bound to its account");
        let v = view(&s, &row, false).expect("view");
        assert_eq!(v.password.as_deref(), Some("••••ter2"));
        assert_eq!(v.props["apiKey"], Value::from("••••-123"));
        assert_eq!(v.props["token"], Value::from("plain-token"));
        let r = view(&s, &row, true).expect("view");
        assert_eq!(r.props["apiKey"], Value::from("sk-secret-value-123"));
        assert_eq!(crate::crypto::unhex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(crate::crypto::unhex("0g"), None);
    }
}
