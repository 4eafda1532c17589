//! Accounts of a site (docs/vault.md "Accounts"): base fields (username, password) plus props
//! checked against the site's fields on every write, stored with their secrets sealed; read
//! masked, or revealed (and recorded).

use super::fields::{Problems, Schema};
use super::reveals;
use super::secrets::{self, AccountView, Plain};
use super::sites::{schema_of, site_in};
use super::{Actor, account_not_found, is_account_id, is_site_key, nullable, site_not_found};
use crate::crypto::Sealer;
use crate::db::Tx;
use crate::db::vault::accounts::{self as db, AccountRow};
use crate::db::vault::sites as db_sites;
use crate::domain::policy::{VAULT_MAX_ACCOUNTS, VAULT_MAX_SECRET_BYTES, VAULT_MAX_USERNAME_BYTES};
use crate::domain::{Cx, Page, Paged, text};
use crate::error::{ApiError, ApiResult};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// A new account.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
pub struct AccountInput {
    /// Up to 512 bytes, no control or invisible characters.
    pub username: Option<String>,
    /// Up to 8 KiB; sealed at rest, masked in answers.
    pub password: Option<String>,
    /// Checked against the site's fields (any props when it has none).
    #[serde(default)]
    pub props: Map<String, Value>,
}

/// A change of an account: absent fields stay, `null` clears `username` or `password`;
/// `props` are merged into the stored ones (`null` removes a prop).
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
pub struct AccountPatch {
    #[serde(default, deserialize_with = "nullable")]
    pub username: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub password: Option<Option<String>>,
    pub props: Option<Map<String, Value>>,
}

/// Checks the base fields; empty strings mean none.
fn check_base(plain: &mut Plain, p: &mut Problems) {
    if let Some(u) = plain.username.take().filter(|u| !u.is_empty()) {
        if u.len() > VAULT_MAX_USERNAME_BYTES || u.chars().any(text::is_hidden) {
            p.insert(
                "username".into(),
                json!(format!(
                    "must be at most {VAULT_MAX_USERNAME_BYTES} bytes of visible characters"
                )),
            );
        }
        plain.username = Some(u);
    }
    if let Some(pw) = plain.password.take().filter(|pw| !pw.is_empty()) {
        if pw.len() > VAULT_MAX_SECRET_BYTES {
            p.insert(
                "password".into(),
                json!(format!("must be at most {VAULT_MAX_SECRET_BYTES} bytes")),
            );
        }
        plain.password = Some(pw);
    }
}

/// Validates `plain` against `schema` (base fields and props). Returns it normalized.
/// Errors: 422 with every problem.
pub fn validate(schema: &Schema, mut plain: Plain) -> ApiResult<Plain> {
    let mut p = Problems::new();
    check_base(&mut plain, &mut p);
    match schema.check(std::mem::take(&mut plain.props)) {
        Ok(props) => plain.props = props,
        Err(more) => p.extend(more),
    }
    if p.is_empty() {
        Ok(plain)
    } else {
        Err(ApiError::invalid_fields(p))
    }
}

/// Seals `plain` as account `row.id` (keeping `row`'s site and creation time) and writes it
/// with its blind index: inserted when `row.updated_at` is empty, else rewritten with
/// `updated_at`. Returns the stored row.
pub fn store(
    tx: &Tx,
    sealer: &Sealer,
    user_id: i64,
    schema: &Schema,
    row: &AccountRow,
    plain: &Plain,
    updated_at: &str,
) -> ApiResult<AccountRow> {
    let s = secrets::seal(sealer, user_id, &row.id, schema, plain);
    let new = AccountRow {
        username: plain.username.clone(),
        password_sealed: s.password_sealed,
        extra: s.extra,
        secrets: s.secrets,
        updated_at: updated_at.to_string(),
        ..row.clone()
    };
    if row.updated_at.is_empty() {
        db::insert(tx, user_id, &new)?;
    } else {
        db::update(tx, user_id, &new)?;
        db::clear_secret_index(tx, user_id, &new.id)?;
    }
    for (field, mac) in &s.macs {
        db::insert_secret_index(tx, user_id, &new.id, field, mac)?;
    }
    Ok(new)
}

/// Creates an account on one of the caller's sites; answered masked unless `show` reveals it
/// (recorded). Errors: 404, 422, 403 `QUOTA_EXCEEDED` past `VAULT_MAX_ACCOUNTS`.
pub fn create(
    cx: &Cx,
    user_id: i64,
    site_key: &str,
    input: AccountInput,
    show: Option<&Actor>,
) -> ApiResult<AccountView> {
    let (k, now, sealer) = (
        site_key.to_string(),
        cx.svc.clock.stamp(),
        cx.svc.sealer.clone(),
    );
    let actor = show.cloned();
    let row = cx.write(move |tx| {
        site_in(tx, user_id, &k)?;
        let schema = schema_of(tx, user_id, &k)?;
        let plain = validate(
            &schema,
            Plain {
                username: input.username,
                password: input.password,
                props: input.props,
            },
        )?;
        let used = db::count(tx, user_id)?;
        if used >= VAULT_MAX_ACCOUNTS {
            return Err(ApiError::quota("vault_accounts", VAULT_MAX_ACCOUNTS, used));
        }
        let fresh = AccountRow {
            id: uuid::Uuid::new_v4().to_string(),
            site_key: k.clone(),
            created_at: now.clone(),
            ..AccountRow::default()
        };
        let row = store(tx, &sealer, user_id, &schema, &fresh, &plain, &now)?;
        if let Some(a) = &actor {
            reveals::record(tx, user_id, a, [(&row.id, &row.site_key)], &now)?;
        }
        Ok(row)
    })?;
    secrets::view(&cx.svc.sealer, &row, show.is_some())
}

/// The caller's account `id` as stored (the reader's view). Errors: 404.
pub fn row(cx: &Cx, user_id: i64, id: &str) -> ApiResult<AccountRow> {
    if !is_account_id(id) {
        return Err(account_not_found());
    }
    db::get(cx.reader, user_id, id)?.ok_or_else(account_not_found)
}

/// Answers stored rows: masked, or revealed to `show` once the reveals are recorded.
pub fn answer(
    cx: &Cx,
    user_id: i64,
    rows: &[AccountRow],
    show: Option<&Actor>,
) -> ApiResult<Vec<AccountView>> {
    if let Some(actor) = show
        && !rows.is_empty()
    {
        let items: Vec<(String, String)> = rows
            .iter()
            .map(|r| (r.id.clone(), r.site_key.clone()))
            .collect();
        let (actor, now) = (actor.clone(), cx.svc.clock.stamp());
        cx.write(move |tx| {
            reveals::record(tx, user_id, &actor, items.iter().map(|(a, s)| (a, s)), &now)
        })?;
    }
    rows.iter()
        .map(|r| secrets::view(&cx.svc.sealer, r, show.is_some()))
        .collect()
}

/// One of the caller's accounts. Errors: 404.
pub fn get(cx: &Cx, user_id: i64, id: &str, show: Option<&Actor>) -> ApiResult<AccountView> {
    let r = row(cx, user_id, id)?;
    Ok(answer(cx, user_id, std::slice::from_ref(&r), show)?.remove(0))
}

/// A page of a site's accounts, by username. Errors: 404.
pub fn of_site(
    cx: &Cx,
    user_id: i64,
    site_key: &str,
    page: Page,
    show: Option<&Actor>,
) -> ApiResult<Paged<AccountView>> {
    if !is_site_key(site_key) || db_sites::get(cx.reader, user_id, site_key)?.is_none() {
        return Err(site_not_found());
    }
    let rows = db::of_site(cx.reader, user_id, site_key, page.limit + 1, page.offset)?;
    let paged = Paged::from_rows(rows, page);
    let views = answer(cx, user_id, &paged.items, show)?;
    Ok(Paged {
        items: views,
        page: paged.page,
        more: paged.more,
    })
}

/// Changes an account: the merged result is checked against its site's fields as a new
/// account would be. Errors: 404, 422.
pub fn update(
    cx: &Cx,
    user_id: i64,
    id: &str,
    patch: AccountPatch,
    show: Option<&Actor>,
) -> ApiResult<AccountView> {
    if !is_account_id(id) {
        return Err(account_not_found());
    }
    let (id, now, sealer) = (id.to_string(), cx.svc.clock.stamp(), cx.svc.sealer.clone());
    let actor = show.cloned();
    let row = cx.write(move |tx| {
        let old = db::get(tx, user_id, &id)?.ok_or_else(account_not_found)?;
        let schema = schema_of(tx, user_id, &old.site_key)?;
        let mut plain = secrets::open(&sealer, &old)?;
        if let Some(u) = patch.username {
            plain.username = u;
        }
        if let Some(p) = patch.password {
            plain.password = p;
        }
        for (k, v) in patch.props.unwrap_or_default() {
            if v.is_null() {
                plain.props.remove(&k);
            } else {
                plain.props.insert(k, v);
            }
        }
        let plain = validate(&schema, plain)?;
        let row = store(tx, &sealer, user_id, &schema, &old, &plain, &now)?;
        if let Some(a) = &actor {
            reveals::record(tx, user_id, a, [(&old.id, &old.site_key)], &now)?;
        }
        Ok(row)
    })?;
    secrets::view(&cx.svc.sealer, &row, show.is_some())
}

/// Deletes an account; if it was its site's active one, the site has none afterwards.
/// Errors: 404.
pub fn delete(cx: &Cx, user_id: i64, id: &str) -> ApiResult<()> {
    if !is_account_id(id) {
        return Err(account_not_found());
    }
    let id = id.to_string();
    cx.write(move |tx| {
        if db::delete(tx, user_id, &id)? {
            Ok(())
        } else {
            Err(account_not_found())
        }
    })
}
