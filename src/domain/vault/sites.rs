//! Sites (docs/vault.md "Sites"): create, read, change, delete; their fields, replaced as a
//! whole after re-checking the stored accounts; the active account of each; and the prop
//! indexes the fields ask for.

use super::accounts::{self as acc};
use super::fields::{FieldDef, Schema};
use super::reveals;
use super::secrets::{self, AccountView};
use super::{
    Actor, REVEAL_SCOPE, check_site_key, is_account_id, is_site_key, nullable, site_not_found,
};
use crate::db::Tx;
use crate::db::vault::accounts as db_acc;
use crate::db::vault::sites::{self as db, Site, SiteData};
use crate::domain::policy::{VAULT_MAX_PROP_INDEXES, VAULT_MAX_REPORTED, VAULT_MAX_SITES};
use crate::domain::{Cx, Page, Paged, text};
use crate::error::{ApiError, ApiResult, Code};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// A new site.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct SiteInput {
    /// Unique among the caller's sites: 1–64 characters of `a-z 0-9 . _ -`.
    pub key: String,
    /// Display name, 1–100 characters (default: the key).
    pub name: Option<String>,
    /// `http(s)://…`.
    pub login_url: Option<String>,
    /// Daemons of the owner may read the active account's secrets unmasked (default false).
    #[serde(default)]
    pub allow_device_reveal: bool,
    /// The site's field schema (default: none, any props are kept).
    #[serde(default)]
    pub fields: Vec<FieldDef>,
}

/// A change of a site; absent fields stay, `login_url: null` clears it.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
pub struct SitePatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub login_url: Option<Option<String>>,
    pub allow_device_reveal: Option<bool>,
}

/// A site as answered.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct SiteView {
    pub key: String,
    pub name: String,
    pub login_url: Option<String>,
    pub allow_device_reveal: bool,
    pub account_count: i64,
    /// The active account's id, if one is set.
    pub active_account_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Site> for SiteView {
    fn from(s: Site) -> SiteView {
        SiteView {
            key: s.key,
            name: s.name,
            login_url: s.login_url,
            allow_device_reveal: s.allow_device_reveal,
            account_count: s.account_count,
            active_account_id: s.active_account_id,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// A stored account that the new fields would refuse.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct InvalidAccount {
    pub id: String,
    pub username: Option<String>,
    /// Problem by prop (`props.<name>`).
    pub problems: Map<String, Value>,
}

/// The outcome of replacing a site's fields.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct FieldsChange {
    pub fields: Vec<FieldDef>,
    /// Accounts that do not satisfy the new fields (kept as they are; only with `force`).
    pub invalid_accounts: Vec<InvalidAccount>,
}

/// Checks a login URL: `http(s)://…`, at most 2048 bytes; empty means none. Errors: 422.
pub fn check_login_url(u: Option<String>) -> ApiResult<Option<String>> {
    let Some(u) = u.map(|u| u.trim().to_string()).filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let scheme = u.starts_with("https://") || u.starts_with("http://");
    if !scheme || u.len() > 2048 || u.chars().any(|c| c.is_whitespace() || text::is_hidden(c)) {
        return Err(ApiError::invalid(
            "login_url",
            "must be an http(s) URL of at most 2048 bytes",
        ));
    }
    Ok(Some(u))
}

/// The user's site `key` inside a write job. Errors: 404.
pub fn site_in(tx: &Tx, user_id: i64, key: &str) -> ApiResult<Site> {
    if !is_site_key(key) {
        return Err(site_not_found());
    }
    db::get(tx, user_id, key)?.ok_or_else(site_not_found)
}

/// The stored fields of a site, compiled.
pub fn schema_of(c: &rusqlite::Connection, user_id: i64, key: &str) -> ApiResult<Schema> {
    Schema::from_rows(&db::fields(c, user_id, key)?)
}

/// Creates and drops the server-managed prop indexes so that the props some site marks
/// `indexed` have one: at most `VAULT_MAX_PROP_INDEXES`, those marked by the most users first
/// (then by name). A prop past the cap is still found, by reading the caller's accounts, so
/// one user's many indexed props never make another user's site write fail.
pub fn sync_indexes(tx: &Tx) -> ApiResult<()> {
    let mut wanted = db::wanted_prop_indexes(tx)?;
    wanted.truncate(VAULT_MAX_PROP_INDEXES);
    let have = db::existing_prop_indexes(tx)?;
    for (name, field) in &wanted {
        if !have.contains(name) {
            db::create_prop_index(tx, field)?;
        }
    }
    for name in have {
        if !wanted.iter().any(|(n, _)| *n == name) {
            db::drop_prop_index(tx, &name)?;
        }
    }
    Ok(())
}

/// Writes a site's fields (replacing any).
fn write_fields(tx: &Tx, user_id: i64, key: &str, schema: &Schema) -> ApiResult<()> {
    db::clear_fields(tx, user_id, key)?;
    for row in schema.to_rows() {
        db::insert_field(tx, user_id, key, &row)?;
    }
    Ok(())
}

/// Creates a site (and its fields). Errors: 422, 409 `CONFLICT` for a key the caller already
/// has, 403 `QUOTA_EXCEEDED` past `VAULT_MAX_SITES`.
pub fn create(cx: &Cx, user_id: i64, s: SiteInput) -> ApiResult<(SiteView, Vec<FieldDef>)> {
    let key = check_site_key(&s.key)?;
    let data = SiteData {
        name: text::name("name", s.name.as_deref().unwrap_or(&key), 100)?,
        login_url: check_login_url(s.login_url)?,
        allow_device_reveal: s.allow_device_reveal,
        key,
    };
    let schema = Schema::from_defs(s.fields)?;
    let now = cx.svc.clock.stamp();
    let k = data.key.clone();
    cx.write(move |tx| {
        let used = db::count(tx, user_id)?;
        if used >= VAULT_MAX_SITES {
            return Err(ApiError::quota("vault_sites", VAULT_MAX_SITES, used));
        }
        if !db::insert(tx, user_id, &data, &now)? {
            return Err(ApiError::conflict(
                Code::Conflict,
                "You already have a site with this key",
            ));
        }
        write_fields(tx, user_id, &data.key, &schema)?;
        sync_indexes(tx)
    })?;
    get(cx, user_id, &k)
}

/// A site and its fields. Errors: 404.
pub fn get(cx: &Cx, user_id: i64, key: &str) -> ApiResult<(SiteView, Vec<FieldDef>)> {
    if !is_site_key(key) {
        return Err(site_not_found());
    }
    let site = db::get(cx.reader, user_id, key)?.ok_or_else(site_not_found)?;
    Ok((site.into(), schema_of(cx.reader, user_id, key)?.defs()))
}

/// A page of the caller's sites, by key.
pub fn list(cx: &Cx, user_id: i64, page: Page) -> ApiResult<Paged<SiteView>> {
    let rows = db::list(cx.reader, user_id, page.limit + 1, page.offset)?;
    Ok(Paged::from_rows(rows, page).map(SiteView::from))
}

/// Changes a site's name, login URL or device-reveal switch. Errors: 404, 422.
pub fn update(cx: &Cx, user_id: i64, key: &str, p: SitePatch) -> ApiResult<SiteView> {
    let name = text::optional_name("name", p.name.as_deref(), 100)?;
    let login_url = p.login_url.map(check_login_url).transpose()?;
    let (k, now) = (key.to_string(), cx.svc.clock.stamp());
    cx.write(move |tx| {
        let s = site_in(tx, user_id, &k)?;
        let data = SiteData {
            name: name.unwrap_or(s.name),
            login_url: login_url.unwrap_or(s.login_url),
            allow_device_reveal: p.allow_device_reveal.unwrap_or(s.allow_device_reveal),
            key: k.clone(),
        };
        db::update(tx, user_id, &data, &now)?;
        Ok(())
    })?;
    Ok(get(cx, user_id, key)?.0)
}

/// Deletes a site with its fields, accounts and active mapping. Errors: 404.
pub fn delete(cx: &Cx, user_id: i64, key: &str) -> ApiResult<()> {
    let k = key.to_string();
    cx.write(move |tx| {
        site_in(tx, user_id, &k)?;
        db::delete(tx, user_id, &k)?;
        sync_indexes(tx)
    })
}

/// A site's fields. Errors: 404.
pub fn fields(cx: &Cx, user_id: i64, key: &str) -> ApiResult<Vec<FieldDef>> {
    Ok(get(cx, user_id, key)?.1)
}

/// Replaces a site's fields. Every stored account is checked against the new fields first:
/// if some would no longer validate, nothing changes and the answer is 409 `CONFLICT` listing
/// them (`details.invalid_accounts`, at most 100, and `details.count`), unless `force`, which
/// keeps those accounts as they are and reports them. Props that become secret are sealed and
/// blind-indexed; props that stop being secret are stored plain, which shows their values to
/// anyone who reads the account: so when an account holds one, the change is a reveal, made by
/// `reveal_to` (a caller that may reveal, see docs/vault.md) and recorded for each such
/// account. Errors: 404, 422, 409, 403 `INSUFFICIENT_SCOPE` (such a change without `reveal_to`).
pub fn put_fields(
    cx: &Cx,
    user_id: i64,
    key: &str,
    defs: Vec<FieldDef>,
    force: bool,
    reveal_to: Option<Actor>,
) -> ApiResult<FieldsChange> {
    let schema = Schema::from_defs(defs)?;
    let (k, now, sealer) = (key.to_string(), cx.svc.clock.stamp(), cx.svc.sealer.clone());
    cx.write(move |tx| {
        site_in(tx, user_id, &k)?;
        let old = schema_of(tx, user_id, &k)?;
        let rows = db_acc::of_site(tx, user_id, &k, i64::MAX, 0)?;
        let mut invalid = Vec::new();
        let mut opened = Vec::with_capacity(rows.len());
        for row in rows {
            let plain = secrets::open(&sealer, &row)?;
            if let Err(problems) = schema.check(plain.props.clone()) {
                invalid.push(InvalidAccount {
                    id: row.id.clone(),
                    username: row.username.clone(),
                    problems,
                });
            }
            opened.push((row, plain));
        }
        if !invalid.is_empty() && !force {
            let count = invalid.len();
            invalid.truncate(VAULT_MAX_REPORTED);
            return Err(ApiError::conflict(
                Code::Conflict,
                format!("{count} account(s) would no longer validate; fix them or repeat with ?force=true"),
            )
            .with_details(json!({ "invalid_accounts": invalid, "count": count })));
        }
        let secret_set = |s: &Schema| {
            let mut v: Vec<String> = s.fields.iter().filter(|f| f.def.secret).map(|f| f.def.name.clone()).collect();
            v.sort();
            v
        };
        let (was, will_be) = (secret_set(&old), secret_set(&schema));
        let declassified: Vec<&String> = was.iter().filter(|n| !will_be.contains(n)).collect();
        let exposed: Vec<(String, String)> = opened
            .iter()
            .filter(|(_, p)| declassified.iter().any(|n| p.props.contains_key(n.as_str())))
            .map(|(row, _)| (row.id.clone(), k.clone()))
            .collect();
        if !exposed.is_empty() {
            let actor = reveal_to.as_ref().ok_or_else(|| ApiError::insufficient_scope(REVEAL_SCOPE))?;
            reveals::record(tx, user_id, actor, exposed, &now)?;
        }
        write_fields(tx, user_id, &k, &schema)?;
        if was != will_be {
            for (row, plain) in opened {
                acc::store(tx, &sealer, user_id, &schema, &row, &plain, &row.updated_at)?;
            }
        }
        db::touch(tx, user_id, &k, &now)?;
        sync_indexes(tx)?;
        Ok(FieldsChange {
            fields: schema.defs(),
            invalid_accounts: invalid,
        })
    })
}

/// The active account of a site (`None` if none is set), masked unless `show` reveals it
/// (recorded). Errors: 404.
pub fn active(
    cx: &Cx,
    user_id: i64,
    key: &str,
    show: Option<&Actor>,
) -> ApiResult<Option<AccountView>> {
    let site = is_site_key(key)
        .then(|| db::get(cx.reader, user_id, key))
        .transpose()?
        .flatten()
        .ok_or_else(site_not_found)?;
    match site.active_account_id {
        Some(id) => acc::get(cx, user_id, &id, show).map(Some),
        None => Ok(None),
    }
}

/// Makes one of the site's accounts the active one. Errors: 404 for a site or account the
/// caller does not have, 422 for an account of another of the caller's sites.
pub fn set_active(
    cx: &Cx,
    user_id: i64,
    key: &str,
    account_id: &str,
    show: Option<&Actor>,
) -> ApiResult<AccountView> {
    let (k, id, now) = (
        key.to_string(),
        account_id.to_string(),
        cx.svc.clock.stamp(),
    );
    let actor = show.cloned();
    let sealer = cx.svc.sealer.clone();
    let row = cx.write(move |tx| {
        site_in(tx, user_id, &k)?;
        let a = is_account_id(&id)
            .then(|| db_acc::get(tx, user_id, &id))
            .transpose()?
            .flatten()
            .ok_or_else(super::account_not_found)?;
        if a.site_key != k {
            return Err(ApiError::invalid("account_id", "belongs to another site"));
        }
        db::set_active(tx, user_id, &k, Some(&id), &now)?;
        if let Some(actor) = &actor {
            reveals::record(tx, user_id, actor, [(&a.id, &a.site_key)], &now)?;
        }
        Ok(db_acc::AccountRow {
            is_active: true,
            ..a
        })
    })?;
    secrets::view(&sealer, &row, show.is_some())
}

/// Clears a site's active account. Errors: 404.
pub fn clear_active(cx: &Cx, user_id: i64, key: &str) -> ApiResult<()> {
    let (k, now) = (key.to_string(), cx.svc.clock.stamp());
    cx.write(move |tx| {
        site_in(tx, user_id, &k)?;
        db::set_active(tx, user_id, &k, None, &now)?;
        Ok(())
    })
}
