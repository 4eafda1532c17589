//! `GET /v1/accounts` (docs/vault.md "Lookups"): the caller's accounts by site, by expiry
//! (`expiring_within=7d`: `expiresAt` at or before now + 7 days, already expired ones
//! included, soonest first) and by prop (`prop.<name>=<value>`, every condition must hold).
//!
//! A prop that is secret (in the given site, or in any of the caller's sites without one) is
//! looked up through the blind index: the MAC of the value is computed and compared, never the
//! value; where the same prop may also be plain (another site declares it plain, or keeps any
//! props), both are searched. A plain prop is compared with `json_extract`, through its expression index: the value
//! matches a string prop equal to it, and also a number, boolean (`true`/`false`) or date-time
//! prop of that value.

use super::accounts::answer;
use super::secrets::{AccountView, blind};
use super::values::parse_rfc3339;
use super::{Actor, is_site_key, site_not_found};
use crate::db::vault::accounts::{self as db, PropFilter, PropMatch, Search};
use crate::db::vault::{is_prop_name, sites as db_sites};
use crate::domain::policy::{VAULT_MAX_EXPIRING_WITHIN, VAULT_MAX_PROP_FILTERS};
use crate::domain::{Cx, Page, Paged};
use crate::error::{ApiError, ApiResult};
use rusqlite::types::Value as Sql;

/// What a lookup asks for.
#[derive(Clone, Debug, Default)]
pub struct Lookup {
    /// A site key of the caller's.
    pub site: Option<String>,
    /// A duration (`7d`, `36h`, `90m`).
    pub expiring_within: Option<String>,
    /// `(prop name, value)` pairs from `prop.<name>=<value>`.
    pub props: Vec<(String, String)>,
}

/// The values a plain prop may hold for a lookup value: the text itself, and the number,
/// boolean or stored date-time it spells.
pub fn plain_candidates(value: &str) -> Vec<Sql> {
    let mut v = vec![Sql::Text(value.to_string())];
    match value {
        "true" => v.push(Sql::Integer(1)),
        "false" => v.push(Sql::Integer(0)),
        _ => {}
    }
    if let Ok(n) = value.trim().parse::<f64>()
        && n.is_finite()
        && !value.trim().is_empty()
    {
        if n.fract() == 0.0 && n.abs() < 9.0e15 {
            v.push(Sql::Integer(n as i64));
        } else {
            v.push(Sql::Real(n));
        }
    }
    if let Some(t) = parse_rfc3339(value).map(crate::time::fmt)
        && t != value
    {
        v.push(Sql::Text(t));
    }
    v
}

/// Where the prop `name` may live: `(secret, plain)` — declared secret in the site (or in
/// some site of the user, without one), and possibly held plain (declared plain, or in a site
/// without fields, which keeps any props).
fn prop_kinds(cx: &Cx, user_id: i64, site: Option<&str>, name: &str) -> ApiResult<(bool, bool)> {
    Ok(match site {
        Some(k) => match db_sites::field_secret(cx.reader, user_id, k, name)? {
            Some(secret) => (secret, !secret),
            None => (false, !db_sites::has_fields(cx.reader, user_id, k)?),
        },
        None => match db_sites::field_kinds(cx.reader, user_id, name)? {
            (true, false) => (true, db_sites::has_schemaless_site(cx.reader, user_id)?),
            kinds => kinds,
        },
    })
}

/// Builds the search for `q` (resolving the site inside the caller's own). Errors: 404 for a
/// site the caller does not have; 422 for a bad `expiring_within` or prop name, or too many
/// prop conditions.
pub fn plan(cx: &Cx, user_id: i64, q: &Lookup) -> ApiResult<Search> {
    let mut s = Search::default();
    if let Some(site) = q.site.as_deref().filter(|s| !s.is_empty()) {
        if !is_site_key(site) || db_sites::get(cx.reader, user_id, site)?.is_none() {
            return Err(site_not_found());
        }
        s.site_key = Some(site.to_string());
    }
    if let Some(w) = q.expiring_within.as_deref().filter(|w| !w.is_empty()) {
        let d = humantime::parse_duration(w)
            .ok()
            .filter(|d| *d <= VAULT_MAX_EXPIRING_WITHIN)
            .ok_or_else(|| {
                ApiError::invalid(
                    "expiring_within",
                    "must be a duration such as 7d, 36h or 90m, at most 3650d",
                )
            })?;
        s.expires_before = Some(crate::time::fmt(cx.svc.clock.now() + d));
    }
    if q.props.len() > VAULT_MAX_PROP_FILTERS {
        return Err(ApiError::invalid(
            "prop",
            format!("at most {VAULT_MAX_PROP_FILTERS} prop conditions"),
        ));
    }
    for (name, value) in &q.props {
        if !is_prop_name(name) {
            return Err(ApiError::invalid(
                &format!("prop.{name}"),
                "is not a valid prop name",
            ));
        }
        let (secret, plain) = prop_kinds(cx, user_id, s.site_key.as_deref(), name)?;
        let mac = || blind(&cx.svc.sealer, user_id, name, value).to_vec();
        let matches = match (secret, plain) {
            (true, true) => PropMatch::Either(plain_candidates(value), mac()),
            (true, false) => PropMatch::Secret(mac()),
            (false, _) => PropMatch::Plain(plain_candidates(value)),
        };
        s.props.push(PropFilter {
            field: name.clone(),
            matches,
        });
    }
    Ok(s)
}

/// Runs a lookup: a page of matching accounts, masked unless `show` reveals them (recorded).
pub fn search(
    cx: &Cx,
    user_id: i64,
    q: &Lookup,
    page: Page,
    show: Option<&Actor>,
) -> ApiResult<Paged<AccountView>> {
    let s = plan(cx, user_id, q)?;
    let rows = db::search(cx.reader, user_id, &s, page.limit + 1, page.offset)?;
    let paged = Paged::from_rows(rows, page);
    let items = answer(cx, user_id, &paged.items, show)?;
    Ok(Paged {
        items,
        page: paged.page,
        more: paged.more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_cover_numbers_booleans_and_datetimes() {
        assert_eq!(plain_candidates("abc"), vec![Sql::Text("abc".into())]);
        assert_eq!(
            plain_candidates("100"),
            vec![Sql::Text("100".into()), Sql::Integer(100)]
        );
        assert_eq!(
            plain_candidates("1.5"),
            vec![Sql::Text("1.5".into()), Sql::Real(1.5)]
        );
        assert_eq!(
            plain_candidates("true"),
            vec![Sql::Text("true".into()), Sql::Integer(1)]
        );
        assert_eq!(plain_candidates("NaN"), vec![Sql::Text("NaN".into())]);
        assert_eq!(
            plain_candidates("2026-01-20T18:00:00+08:00")[1],
            Sql::Text("2026-01-20T10:00:00.000Z".into())
        );
    }
}
