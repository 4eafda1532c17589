//! `/v1` handlers for the Vault (README "Vault", docs/vault.md): sites, their fields and
//! accounts, the active account of each site, lookups, the record of reveals, and the
//! daemon's read of its owner's active accounts. Each maps the request onto `domain::vault`.
//!
//! `?reveal=true` shows secrets unmasked on any route that answers accounts; it needs the
//! `config:read` scope whatever the route's own scope (403 `INSUFFICIENT_SCOPE` otherwise),
//! and every account it shows is recorded before the answer is sent.

use crate::domain::vault::accounts::{self, AccountInput, AccountPatch};
use crate::domain::vault::fields::FieldDef;
use crate::domain::vault::lookup::{self, Lookup};
use crate::domain::vault::reveals::{self, DaemonSite, RevealView};
use crate::domain::vault::secrets::AccountView;
use crate::domain::vault::sites::{self, FieldsChange, SiteInput, SitePatch, SiteView};
use crate::domain::vault::{Actor, REVEAL_SCOPE};
use crate::error::ApiResult;
use crate::http::route::{Call, Json, Message, PageQuery, Query};
use crate::http::views::PageInfo;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `?reveal=true`: show secrets unmasked (needs `config:read`; recorded).
#[derive(Deserialize, JsonSchema, Default)]
pub struct RevealQuery {
    /// Show passwords and secret props unmasked (needs `config:read`; every reveal is recorded).
    pub reveal: Option<bool>,
}

/// The actor to reveal to, if the call asked for a reveal. Errors: 403 `INSUFFICIENT_SCOPE`
/// without `config:read`.
fn show(call: &Call, q: &RevealQuery) -> ApiResult<Option<Actor>> {
    if q.reveal != Some(true) {
        return Ok(None);
    }
    let u = call.user()?;
    u.require(REVEAL_SCOPE)?;
    Ok(Some(Actor::user(u, call.origin())))
}

fn uid(call: &Call) -> ApiResult<i64> {
    Ok(call.user()?.user_id())
}

/// A page of sites.
#[derive(Serialize, JsonSchema)]
pub struct SiteList {
    pub sites: Vec<SiteView>,
    #[serde(flatten)]
    pub page: PageInfo,
}

/// `GET /v1/sites`.
pub fn list_sites(call: &Call, Query(q): Query<PageQuery>) -> ApiResult<SiteList> {
    let p = sites::list(&call.cx, uid(call)?, q.page()?)?;
    Ok(SiteList {
        page: PageInfo::of(&p),
        sites: p.items,
    })
}

/// A site and its fields.
#[derive(Serialize, JsonSchema)]
pub struct SiteWithFields {
    pub site: SiteView,
    pub fields: Vec<FieldDef>,
}

/// `POST /v1/sites`.
pub fn create_site(call: &Call, Json(b): Json<SiteInput>) -> ApiResult<SiteWithFields> {
    let (site, fields) = sites::create(&call.cx, uid(call)?, b)?;
    Ok(SiteWithFields { site, fields })
}

/// `GET /v1/sites/{key}`.
pub fn get_site(call: &Call, _: ()) -> ApiResult<SiteWithFields> {
    let (site, fields) = sites::get(&call.cx, uid(call)?, call.param("key"))?;
    Ok(SiteWithFields { site, fields })
}

/// A site.
#[derive(Serialize, JsonSchema)]
pub struct SiteOne {
    pub site: SiteView,
}

/// `PATCH /v1/sites/{key}`.
pub fn update_site(call: &Call, Json(b): Json<SitePatch>) -> ApiResult<SiteOne> {
    let site = sites::update(&call.cx, uid(call)?, call.param("key"), b)?;
    Ok(SiteOne { site })
}

/// `DELETE /v1/sites/{key}`.
pub fn delete_site(call: &Call, _: ()) -> ApiResult<Message> {
    sites::delete(&call.cx, uid(call)?, call.param("key"))?;
    Ok(Message::new("Site deleted with its fields and accounts"))
}

/// A site's fields.
#[derive(Serialize, Deserialize, JsonSchema, Default)]
pub struct FieldsBody {
    /// The whole schema, in display order.
    pub fields: Vec<FieldDef>,
}

/// `GET /v1/sites/{key}/fields`.
pub fn get_fields(call: &Call, _: ()) -> ApiResult<FieldsBody> {
    let fields = sites::fields(&call.cx, uid(call)?, call.param("key"))?;
    Ok(FieldsBody { fields })
}

/// `?force=true`.
#[derive(Deserialize, JsonSchema, Default)]
pub struct ForceQuery {
    /// Replace the fields even if stored accounts would no longer validate (they are kept
    /// as they are and listed in the answer).
    pub force: Option<bool>,
}

/// `PUT /v1/sites/{key}/fields`: 409 `CONFLICT` listing the accounts that would no longer
/// validate, unless `force=true`. Making a secret prop plain where an account holds one is a
/// reveal: an API key needs `config:read` (403 `INSUFFICIENT_SCOPE`), and it is recorded.
pub fn put_fields(
    call: &Call,
    (Query(q), Json(b)): (Query<ForceQuery>, Json<FieldsBody>),
) -> ApiResult<FieldsChange> {
    let force = q.force == Some(true);
    let u = call.user()?;
    let reveal_to = u.has(REVEAL_SCOPE).then(|| Actor::user(u, call.origin()));
    sites::put_fields(
        &call.cx,
        u.user_id(),
        call.param("key"),
        b.fields,
        force,
        reveal_to,
    )
}

/// A page of accounts.
#[derive(Serialize, JsonSchema)]
pub struct AccountList {
    pub accounts: Vec<AccountView>,
    #[serde(flatten)]
    pub page: PageInfo,
}

/// `GET /v1/sites/{key}/accounts`.
pub fn site_accounts(
    call: &Call,
    (Query(p), Query(r)): (Query<PageQuery>, Query<RevealQuery>),
) -> ApiResult<AccountList> {
    let who = show(call, &r)?;
    let page = accounts::of_site(
        &call.cx,
        uid(call)?,
        call.param("key"),
        p.page()?,
        who.as_ref(),
    )?;
    Ok(AccountList {
        page: PageInfo::of(&page),
        accounts: page.items,
    })
}

/// An account.
#[derive(Serialize, JsonSchema)]
pub struct AccountOne {
    pub account: AccountView,
}

/// `POST /v1/sites/{key}/accounts`.
pub fn create_account(
    call: &Call,
    (Query(r), Json(b)): (Query<RevealQuery>, Json<AccountInput>),
) -> ApiResult<AccountOne> {
    let who = show(call, &r)?;
    let account = accounts::create(&call.cx, uid(call)?, call.param("key"), b, who.as_ref())?;
    Ok(AccountOne { account })
}

/// `GET /v1/accounts/{id}`.
pub fn get_account(call: &Call, Query(r): Query<RevealQuery>) -> ApiResult<AccountOne> {
    let who = show(call, &r)?;
    let account = accounts::get(&call.cx, uid(call)?, call.param("id"), who.as_ref())?;
    Ok(AccountOne { account })
}

/// `PATCH /v1/accounts/{id}`.
pub fn update_account(
    call: &Call,
    (Query(r), Json(b)): (Query<RevealQuery>, Json<AccountPatch>),
) -> ApiResult<AccountOne> {
    let who = show(call, &r)?;
    let account = accounts::update(&call.cx, uid(call)?, call.param("id"), b, who.as_ref())?;
    Ok(AccountOne { account })
}

/// `DELETE /v1/accounts/{id}`.
pub fn delete_account(call: &Call, _: ()) -> ApiResult<Message> {
    accounts::delete(&call.cx, uid(call)?, call.param("id"))?;
    Ok(Message::new("Account deleted"))
}

/// A site's active account.
#[derive(Serialize, JsonSchema)]
pub struct ActiveAnswer {
    pub site: String,
    /// `null` when none is set (or it was deleted).
    pub account: Option<AccountView>,
}

/// `GET /v1/sites/{key}/active`.
pub fn get_active(call: &Call, Query(r): Query<RevealQuery>) -> ApiResult<ActiveAnswer> {
    let who = show(call, &r)?;
    let key = call.param("key");
    let account = sites::active(&call.cx, uid(call)?, key, who.as_ref())?;
    Ok(ActiveAnswer {
        site: key.to_string(),
        account,
    })
}

/// Which account becomes active.
#[derive(Deserialize, JsonSchema)]
pub struct ActiveBody {
    /// One of the site's accounts.
    pub account_id: String,
}

/// `PUT /v1/sites/{key}/active`.
pub fn set_active(
    call: &Call,
    (Query(r), Json(b)): (Query<RevealQuery>, Json<ActiveBody>),
) -> ApiResult<ActiveAnswer> {
    let who = show(call, &r)?;
    let key = call.param("key");
    let account = sites::set_active(&call.cx, uid(call)?, key, &b.account_id, who.as_ref())?;
    Ok(ActiveAnswer {
        site: key.to_string(),
        account: Some(account),
    })
}

/// `DELETE /v1/sites/{key}/active`.
pub fn clear_active(call: &Call, _: ()) -> ApiResult<Message> {
    sites::clear_active(&call.cx, uid(call)?, call.param("key"))?;
    Ok(Message::new("The site has no active account"))
}

/// Filters of `GET /v1/accounts`; add any number of `prop.<name>=<value>` conditions.
#[derive(Deserialize, JsonSchema, Default)]
pub struct SearchQuery {
    /// Only this site's accounts.
    pub site: Option<String>,
    /// Accounts whose `expiresAt` is at most this far ahead (`7d`, `36h`; already expired
    /// ones included), soonest first.
    pub expiring_within: Option<String>,
}

/// `GET /v1/accounts?site=&expiring_within=&prop.<name>=<value>`.
pub fn search(
    call: &Call,
    (Query(q), (Query(p), Query(r))): (Query<SearchQuery>, (Query<PageQuery>, Query<RevealQuery>)),
) -> ApiResult<AccountList> {
    let who = show(call, &r)?;
    let lookup = Lookup {
        site: q.site,
        expiring_within: q.expiring_within,
        props: call
            .req
            .query
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("prop.")?.to_string(), v.clone())))
            .collect(),
    };
    let page = lookup::search(&call.cx, uid(call)?, &lookup, p.page()?, who.as_ref())?;
    Ok(AccountList {
        page: PageInfo::of(&page),
        accounts: page.items,
    })
}

/// `?account=` of the reveal list.
#[derive(Deserialize, JsonSchema, Default)]
pub struct RevealsQuery {
    /// Only this account's reveals.
    pub account: Option<String>,
}

/// A page of reveals.
#[derive(Serialize, JsonSchema)]
pub struct RevealList {
    pub reveals: Vec<RevealView>,
    #[serde(flatten)]
    pub page: PageInfo,
}

/// `GET /v1/vault/reveals`.
pub fn list_reveals(
    call: &Call,
    (Query(q), Query(p)): (Query<RevealsQuery>, Query<PageQuery>),
) -> ApiResult<RevealList> {
    let account = q.account.as_deref().filter(|a| !a.is_empty());
    let page = reveals::list(&call.cx, uid(call)?, account, p.page()?)?;
    Ok(RevealList {
        page: PageInfo::of(&page),
        reveals: page.items,
    })
}

/// The owner's active accounts, as a daemon reads them.
#[derive(Serialize, JsonSchema)]
pub struct DaemonActive {
    pub sites: Vec<DaemonSite>,
    pub count: usize,
}

/// `GET /v1/daemon/vault/active`: masked, except with `reveal=true` for sites whose owner
/// allowed device reveal.
pub fn daemon_active(call: &Call, Query(r): Query<RevealQuery>) -> ApiResult<DaemonActive> {
    let reveal = r.reveal == Some(true);
    let sites = reveals::for_device(&call.cx, call.device()?, reveal, call.origin())?;
    Ok(DaemonActive {
        count: sites.len(),
        sites,
    })
}
