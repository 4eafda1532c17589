//! Export and import of a user's vault (docs/vault.md "Export and import"; the admin's
//! `ccjk-cloud vault export|import`).
//!
//! An export is one JSON document: every site with its fields, active account and accounts.
//! By default passwords and secret props stay sealed (hex boxes under the server key), so the
//! file alone reveals nothing and can be restored only on a server with the same
//! `CCJK_SECRET_KEY_FILE`. A plaintext export shows them; each account it shows is recorded as
//! a reveal (actor `cli`). Import restores a document into a user's vault: every account gets
//! a new id (sealed values are opened with their old ids and sealed again under the new ones),
//! props are stored as exported (fields are not re-checked, so an account kept invalid by a
//! forced field change survives a round trip), and a site the user already has is refused
//! unless `replace`, which deletes it first.

use super::accounts::store;
use super::fields::{FieldDef, Schema};
use super::secrets::{self, Plain, open_secret, password_ad};
use super::sites::{check_login_url, sync_indexes};
use super::{Actor, ActorKind, check_site_key, reveals};
use crate::crypto::hex;
use crate::crypto::unhex;
use crate::db::vault::accounts::{self as db_acc, AccountRow};
use crate::db::vault::{is_prop_name, sites as db_sites};
use crate::domain::policy::{VAULT_MAX_ACCOUNTS, VAULT_MAX_SITES};
use crate::domain::{Cx, Origin, text};
use crate::error::{ApiError, ApiResult, Code};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `format` of an export document.
pub const FORMAT: &str = "ccjk-vault";

/// A user's vault as a document.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Export {
    /// `ccjk-vault`.
    pub format: String,
    /// 1.
    pub version: u32,
    /// `true`: passwords and secret props are sealed under the server key.
    pub sealed: bool,
    pub exported_at: String,
    pub sites: Vec<ExportSite>,
}

/// A site in an export.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportSite {
    pub key: String,
    pub name: String,
    pub login_url: Option<String>,
    #[serde(default)]
    pub allow_device_reveal: bool,
    #[serde(default)]
    pub fields: Vec<FieldDef>,
    /// The id (in this document) of the active account.
    pub active_account_id: Option<String>,
    #[serde(default)]
    pub accounts: Vec<ExportAccount>,
}

/// An account in an export.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ExportAccount {
    pub id: String,
    pub username: Option<String>,
    /// Plaintext exports only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Sealed exports only: the hex box (bound to `id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_sealed: Option<String>,
    /// Plain props (plaintext exports: every prop).
    #[serde(default)]
    pub props: Map<String, Value>,
    /// Sealed exports only: secret prop → hex box (bound to `id`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub secrets_sealed: Map<String, Value>,
    pub created_at: String,
    pub updated_at: String,
}

/// Exports the user's vault; `plaintext` opens every secret (and records the reveals).
pub fn export(cx: &Cx, user_id: i64, plaintext: bool) -> ApiResult<Export> {
    let mut sites = Vec::new();
    let mut shown: Vec<(String, String)> = Vec::new();
    for s in db_sites::all(cx.reader, user_id)? {
        let fields = Schema::from_rows(&db_sites::fields(cx.reader, user_id, &s.key)?)?.defs();
        let mut accounts = Vec::new();
        for r in db_acc::of_site(cx.reader, user_id, &s.key, i64::MAX, 0)? {
            let mut a = ExportAccount {
                id: r.id.clone(),
                username: r.username.clone(),
                created_at: r.created_at.clone(),
                updated_at: r.updated_at.clone(),
                ..ExportAccount::default()
            };
            if plaintext {
                let p = secrets::open(&cx.svc.sealer, &r)?;
                (a.password, a.props) = (p.password, p.props);
                shown.push((r.id.clone(), r.site_key.clone()));
            } else {
                a.password_sealed = r.password_sealed.as_deref().map(hex);
                a.props = parse(&r.extra)?;
                a.secrets_sealed = parse(&r.secrets)?;
            }
            accounts.push(a);
        }
        sites.push(ExportSite {
            key: s.key,
            name: s.name,
            login_url: s.login_url,
            allow_device_reveal: s.allow_device_reveal,
            fields,
            active_account_id: s.active_account_id,
            accounts,
        });
    }
    if !shown.is_empty() {
        let actor = Actor {
            kind: ActorKind::Cli,
            origin: Origin::cli(),
        };
        let now = cx.svc.clock.stamp();
        cx.write(move |tx| reveals::record(tx, user_id, &actor, shown, &now))?;
    }
    Ok(Export {
        format: FORMAT.into(),
        version: 1,
        sealed: !plaintext,
        exported_at: cx.svc.clock.stamp(),
        sites,
    })
}

fn parse(s: &str) -> ApiResult<Map<String, Value>> {
    serde_json::from_str(s).map_err(|e| ApiError::internal(format!("stored JSON: {e}")))
}

/// What an import restored.
#[derive(Clone, Debug, Serialize)]
pub struct Imported {
    pub sites: usize,
    pub accounts: usize,
}

/// An account of a document in plaintext, opened with its id in the document.
fn plain_of(cx: &Cx, sealed: bool, a: &ExportAccount) -> ApiResult<Plain> {
    let bad = |what: &str| ApiError::invalid("accounts", format!("account {}: {what}", a.id));
    let mut props = a.props.clone();
    if let Some(k) = props.keys().find(|k| !is_prop_name(k)) {
        return Err(bad(&format!("{k:?} is not a valid prop name")));
    }
    let password = if sealed {
        for (k, v) in &a.secrets_sealed {
            let s = open_secret(&cx.svc.sealer, &a.id, k, v)
                .map_err(|_| bad("a sealed prop does not open under this server's key"))?;
            props.insert(k.clone(), Value::String(s));
        }
        a.password_sealed
            .as_deref()
            .map(|h| {
                unhex(h)
                    .and_then(|b| cx.svc.sealer.open_string(&password_ad(&a.id), &b))
                    .ok_or_else(|| bad("the sealed password does not open under this server's key"))
            })
            .transpose()?
    } else {
        a.password.clone()
    };
    Ok(Plain {
        username: a.username.clone(),
        password,
        props,
    })
}

/// Restores `doc` into the user's vault in one transaction. Errors: 422 for a document that
/// is not an export or does not open under this server's key, 409 `CONFLICT` for a site the
/// user has (without `replace`), 403 `QUOTA_EXCEEDED`.
pub fn import(cx: &Cx, user_id: i64, doc: Export, replace: bool) -> ApiResult<Imported> {
    if doc.format != FORMAT || doc.version != 1 {
        return Err(ApiError::invalid(
            "format",
            "is not a ccjk-vault version 1 export",
        ));
    }
    let mut prepared = Vec::with_capacity(doc.sites.len());
    for s in doc.sites {
        let data = db_sites::SiteData {
            key: check_site_key(&s.key)?,
            name: text::name("name", &s.name, 100)?,
            login_url: check_login_url(s.login_url.clone())?,
            allow_device_reveal: s.allow_device_reveal,
        };
        let schema = Schema::from_defs(s.fields.clone())?;
        let accounts = s
            .accounts
            .iter()
            .map(|a| Ok((a.clone(), plain_of(cx, doc.sealed, a)?)))
            .collect::<ApiResult<Vec<_>>>()?;
        prepared.push((data, s.active_account_id, schema, accounts));
    }
    let sealer = cx.svc.sealer.clone();
    let now = cx.svc.clock.stamp();
    cx.write(move |tx| {
        let mut n = Imported {
            sites: 0,
            accounts: 0,
        };
        for (data, active_id, schema, accounts) in prepared {
            if db_sites::get(tx, user_id, &data.key)?.is_some() {
                if !replace {
                    return Err(ApiError::conflict(
                        Code::Conflict,
                        format!("the user already has a site {:?} (use --replace)", data.key),
                    ));
                }
                db_sites::delete(tx, user_id, &data.key)?;
            }
            let sites_used = db_sites::count(tx, user_id)?;
            let accounts_used = db_acc::count(tx, user_id)?;
            if sites_used >= VAULT_MAX_SITES {
                return Err(ApiError::quota("vault_sites", VAULT_MAX_SITES, sites_used));
            }
            if accounts_used + accounts.len() as i64 > VAULT_MAX_ACCOUNTS {
                return Err(ApiError::quota(
                    "vault_accounts",
                    VAULT_MAX_ACCOUNTS,
                    accounts_used,
                ));
            }
            db_sites::insert(tx, user_id, &data, &now)?;
            for row in schema.to_rows() {
                db_sites::insert_field(tx, user_id, &data.key, &row)?;
            }
            let mut active = None;
            for (a, plain) in accounts {
                let fresh = AccountRow {
                    id: uuid::Uuid::new_v4().to_string(),
                    site_key: data.key.clone(),
                    created_at: a.created_at.clone(),
                    ..AccountRow::default()
                };
                let row = store(tx, &sealer, user_id, &schema, &fresh, &plain, &a.updated_at)?;
                if active_id.as_deref() == Some(a.id.as_str()) {
                    active = Some(row.id);
                }
                n.accounts += 1;
            }
            if let Some(id) = active {
                db_sites::set_active(tx, user_id, &data.key, Some(&id), &now)?;
            }
            n.sites += 1;
        }
        sync_indexes(tx)?;
        Ok(n)
    })
}
