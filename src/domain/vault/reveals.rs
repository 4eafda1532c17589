//! Reveals (docs/vault.md "Reveals"): every answer that shows an account's secrets unmasked
//! is recorded first (who, when, which account, from where) and listable by the owner; and the
//! daemon's read of its owner's active accounts, unmasked only for sites that allow it.

use super::accounts::row;
use super::secrets::{self, AccountView};
use super::{Actor, ActorKind, account_not_found, is_account_id};
use crate::db::Tx;
use crate::db::vault::reveals::{self as db, Reveal};
use crate::db::vault::{accounts as db_acc, sites as db_sites};
use crate::domain::callers::DeviceCaller;
use crate::domain::{Cx, Origin, Page, Paged};
use crate::error::ApiResult;
use schemars::JsonSchema;
use serde::Serialize;

/// Records that `actor` was shown the secrets of each (account id, site key) at `now`.
pub fn record<I, A, S>(tx: &Tx, user_id: i64, actor: &Actor, items: I, now: &str) -> ApiResult<()>
where
    I: IntoIterator<Item = (A, S)>,
    A: AsRef<str>,
    S: AsRef<str>,
{
    for (a, s) in items {
        db::insert(tx, user_id, &actor.reveal(a.as_ref(), s.as_ref(), now))?;
    }
    Ok(())
}

/// One recorded reveal.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct RevealView {
    pub id: i64,
    pub account_id: String,
    pub site: String,
    /// `session`, `api_key`, `device` or `cli` (a plaintext export).
    pub actor: String,
    pub session_id: Option<i64>,
    pub api_key_id: Option<i64>,
    /// The device's id (uuid), for a daemon.
    pub device_id: Option<String>,
    /// The client address (`cli` for an export).
    pub ip_address: String,
    pub user_agent: Option<String>,
    pub created_at: String,
}

impl From<Reveal> for RevealView {
    fn from(r: Reveal) -> RevealView {
        RevealView {
            id: r.id,
            account_id: r.account_id,
            site: r.site_key,
            actor: r.actor,
            session_id: r.session_id,
            api_key_id: r.api_key_id,
            device_id: r.device_id,
            ip_address: r.ip_address,
            user_agent: r.user_agent,
            created_at: r.created_at,
        }
    }
}

/// A page of the caller's reveals, newest first; of one account when `account_id` is given
/// (one of the caller's accounts, or one deleted since that has reveals). Errors: 404.
pub fn list(
    cx: &Cx,
    user_id: i64,
    account_id: Option<&str>,
    page: Page,
) -> ApiResult<Paged<RevealView>> {
    if let Some(a) = account_id {
        let known = is_account_id(a)
            && (db_acc::get(cx.reader, user_id, a)?.is_some()
                || db::known_account(cx.reader, user_id, a)?);
        if !known {
            return Err(account_not_found());
        }
    }
    let rows = db::list(cx.reader, user_id, account_id, page.limit + 1, page.offset)?;
    Ok(Paged::from_rows(rows, page).map(RevealView::from))
}

/// A site's active account as a daemon reads it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct DaemonSite {
    pub site: String,
    pub name: String,
    pub login_url: Option<String>,
    /// Whether the owner lets daemons reveal this site's secrets.
    pub allow_device_reveal: bool,
    pub account: AccountView,
}

/// The active account of each of the device owner's sites that has one. Secrets are masked,
/// except with `reveal` for sites whose owner allowed it (each such reveal recorded with the
/// device as the actor).
pub fn for_device(
    cx: &Cx,
    d: &DeviceCaller,
    reveal: bool,
    origin: Origin,
) -> ApiResult<Vec<DaemonSite>> {
    let user_id = d.user_id;
    let actor = Actor {
        kind: ActorKind::Device(d.uuid.clone()),
        origin,
    };
    let sites = db_sites::all(cx.reader, user_id)?;
    let mut picked = Vec::new();
    for site in &sites {
        let Some(id) = &site.active_account_id else {
            continue;
        };
        match row(cx, user_id, id) {
            Ok(r) => picked.push((site, r, reveal && site.allow_device_reveal)),
            Err(e) if e.status() == 404 => continue,
            Err(e) => return Err(e),
        }
    }
    let shown: Vec<(String, String)> = picked
        .iter()
        .filter(|(_, _, show)| *show)
        .map(|(_, r, _)| (r.id.clone(), r.site_key.clone()))
        .collect();
    if !shown.is_empty() {
        let now = cx.svc.clock.stamp();
        cx.write(move |tx| record(tx, user_id, &actor, shown, &now))?;
    }
    let mut out = Vec::with_capacity(picked.len());
    for (site, r, show) in picked {
        out.push(DaemonSite {
            site: site.key.clone(),
            name: site.name.clone(),
            login_url: site.login_url.clone(),
            allow_device_reveal: site.allow_device_reveal,
            account: secrets::view(&cx.svc.sealer, &r, show)?,
        });
    }
    Ok(out)
}
