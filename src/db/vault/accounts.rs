//! SQL for `accounts` and `account_secret_index` (schema.sql "Vault"), and the lookup query of
//! `GET /v1/accounts` built from a `Search`: by site, by expiry (`accounts_expires_at`), by a
//! plain prop (its expression index) and by a secret prop (the blind index).

use super::prop_path;
use crate::db::OptionalRow;
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, Row, params, params_from_iter};

/// An account row as stored (secrets still sealed), with whether it is its site's active one.
#[derive(Clone, Debug, Default)]
pub struct AccountRow {
    /// UUID v4.
    pub id: String,
    pub site_key: String,
    pub username: Option<String>,
    /// XChaCha20-Poly1305 box of the password.
    pub password_sealed: Option<Vec<u8>>,
    /// The plain props: a JSON object.
    pub extra: String,
    /// The secret props: a JSON object of hex-encoded boxes.
    pub secrets: String,
    pub created_at: String,
    pub updated_at: String,
    /// Read only: the site's active account is this one.
    pub is_active: bool,
}

const COLUMNS: &str = "a.id, a.site_key, a.username, a.password_sealed, a.extra, a.secrets, \
     a.created_at, a.updated_at, EXISTS (SELECT 1 FROM active_accounts aa \
     WHERE aa.user_id = a.user_id AND aa.site_key = a.site_key AND aa.account_id = a.id)";

fn from_row(r: &Row) -> rusqlite::Result<AccountRow> {
    Ok(AccountRow {
        id: r.get(0)?,
        site_key: r.get(1)?,
        username: r.get(2)?,
        password_sealed: r.get(3)?,
        extra: r.get(4)?,
        secrets: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        is_active: r.get(8)?,
    })
}

/// Inserts an account of the user.
pub fn insert(c: &Connection, user_id: i64, a: &AccountRow) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO accounts (id, user_id, site_key, username, password_sealed, extra, secrets, \
         created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        a.id,
        user_id,
        a.site_key,
        a.username,
        a.password_sealed,
        a.extra,
        a.secrets,
        a.created_at,
        a.updated_at
    ])?;
    Ok(())
}

/// Rewrites an account's username, password, props and `updated_at`.
pub fn update(c: &Connection, user_id: i64, a: &AccountRow) -> rusqlite::Result<bool> {
    let n = c
        .prepare_cached(
            "UPDATE accounts SET username = ?3, password_sealed = ?4, extra = ?5, secrets = ?6, \
             updated_at = ?7 WHERE user_id = ?1 AND id = ?2",
        )?
        .execute(params![
            user_id,
            a.id,
            a.username,
            a.password_sealed,
            a.extra,
            a.secrets,
            a.updated_at
        ])?;
    Ok(n == 1)
}

/// The user's account `id`.
pub fn get(c: &Connection, user_id: i64, id: &str) -> rusqlite::Result<Option<AccountRow>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM accounts a WHERE a.id = ?2 AND a.user_id = ?1"
    ))?
    .query_row(params![user_id, id], from_row)
    .optional()
}

/// Deletes the user's account `id` (its blind index goes with it; the site's active mapping
/// becomes NULL if it pointed here). `false` if there was none.
pub fn delete(c: &Connection, user_id: i64, id: &str) -> rusqlite::Result<bool> {
    let n = c.execute(
        "DELETE FROM accounts WHERE id = ?2 AND user_id = ?1",
        params![user_id, id],
    )?;
    Ok(n == 1)
}

/// How many accounts the user has (all sites).
pub fn count(c: &Connection, user_id: i64) -> rusqlite::Result<i64> {
    c.prepare_cached("SELECT count(*) FROM accounts WHERE user_id = ?1")?
        .query_row([user_id], |r| r.get(0))
}

/// A page of a site's accounts, by username.
pub fn of_site(
    c: &Connection,
    user_id: i64,
    site_key: &str,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<Vec<AccountRow>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM accounts a WHERE a.user_id = ?1 AND a.site_key = ?2 \
         ORDER BY a.username, a.rowid LIMIT ?3 OFFSET ?4"
    ))?
    .query_map(params![user_id, site_key, limit, offset], from_row)?
    .collect()
}

/// Deletes one of the user's accounts' blind-index rows (before `insert_secret_index` writes
/// the new ones).
pub fn clear_secret_index(c: &Connection, user_id: i64, account_id: &str) -> rusqlite::Result<()> {
    c.prepare_cached("DELETE FROM account_secret_index WHERE user_id = ?1 AND account_id = ?2")?
        .execute(params![user_id, account_id])?;
    Ok(())
}

/// Adds one blind-index row: `mac` of the account's secret prop `field`.
pub fn insert_secret_index(
    c: &Connection,
    user_id: i64,
    account_id: &str,
    field: &str,
    mac: &[u8],
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT OR IGNORE INTO account_secret_index (user_id, field, mac, account_id) \
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![user_id, field, mac, account_id])?;
    Ok(())
}

/// How a `Search` matches one prop.
#[derive(Clone, Debug)]
pub enum PropMatch {
    /// A plain prop equal to one of these values (`json_extract` of the prop's path, through
    /// its expression index when it has one).
    Plain(Vec<Sql>),
    /// A secret prop whose blind-index MAC is this.
    Secret(Vec<u8>),
    /// Either: a prop secret in some of the user's sites and plain in others.
    Either(Vec<Sql>, Vec<u8>),
}

/// One `prop.<field>=<value>` condition.
#[derive(Clone, Debug)]
pub struct PropFilter {
    /// An `is_prop_name` name (others are refused by `search_sql`).
    pub field: String,
    pub matches: PropMatch,
}

/// What `GET /v1/accounts` filters on; every condition must hold.
#[derive(Clone, Debug, Default)]
pub struct Search {
    pub site_key: Option<String>,
    /// `expiresAt` at or before this stored timestamp (the expiring-soon query; already expired
    /// accounts included). Results then come by `expiresAt`.
    pub expires_before: Option<String>,
    pub props: Vec<PropFilter>,
}

fn placeholders(values: &[Sql], params: &mut Vec<Sql>) -> String {
    let mut p = Vec::with_capacity(values.len());
    for v in values {
        params.push(v.clone());
        p.push(format!("?{}", params.len()));
    }
    p.join(", ")
}

/// The SQL and parameters of a search (also read by the query-plan test). Errors: a prop name
/// that is not an identifier.
pub fn search_sql(
    user_id: i64,
    s: &Search,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<(String, Vec<Sql>)> {
    let mut params: Vec<Sql> = vec![Sql::Integer(user_id)];
    // With a blind-index condition, the few ids it yields drive the query (through the primary
    // key); `+` keeps SQLite from walking all of the user's accounts by `user_id` instead, which
    // it estimates cheaper without statistics.
    let by_id = s
        .props
        .iter()
        .any(|f| !matches!(f.matches, PropMatch::Plain(_)));
    let owner = if by_id { "+a.user_id" } else { "a.user_id" };
    let mut sql = format!("SELECT {COLUMNS} FROM accounts a WHERE {owner} = ?1");
    if let Some(k) = &s.site_key {
        params.push(Sql::Text(k.clone()));
        sql.push_str(&format!(" AND a.site_key = ?{}", params.len()));
    }
    if let Some(t) = &s.expires_before {
        params.push(Sql::Text(t.clone()));
        sql.push_str(&format!(
            " AND json_extract(a.extra, '$.expiresAt') <= ?{}",
            params.len()
        ));
    }
    for f in &s.props {
        let path = prop_path(&f.field)
            .ok_or_else(|| rusqlite::Error::InvalidParameterName(f.field.clone()))?;
        let blind = |mac: &[u8], params: &mut Vec<Sql>| {
            params.push(Sql::Text(f.field.clone()));
            params.push(Sql::Blob(mac.to_vec()));
            format!(
                "SELECT account_id FROM account_secret_index WHERE user_id = ?1 \
                 AND field = ?{} AND mac = ?{}",
                params.len() - 1,
                params.len()
            )
        };
        match &f.matches {
            PropMatch::Plain(values) => {
                let list = placeholders(values, &mut params);
                sql.push_str(&format!(" AND json_extract(a.extra, '{path}') IN ({list})"));
            }
            PropMatch::Secret(mac) => {
                let sub = blind(mac, &mut params);
                sql.push_str(&format!(" AND a.id IN ({sub})"));
            }
            PropMatch::Either(values, mac) => {
                let list = placeholders(values, &mut params);
                let sub = blind(mac, &mut params);
                sql.push_str(&format!(
                    " AND a.id IN (SELECT id FROM accounts WHERE user_id = ?1 \
                     AND json_extract(extra, '{path}') IN ({list}) UNION ALL {sub})"
                ));
            }
        }
    }
    if s.expires_before.is_some() {
        sql.push_str(" ORDER BY json_extract(a.extra, '$.expiresAt'), a.rowid");
    } else if s.props.is_empty() {
        sql.push_str(" ORDER BY a.site_key, a.username, a.rowid");
    } else {
        // The same order, written so that no index can provide it: otherwise SQLite walks
        // the user's accounts in `accounts_site` order (to skip a sort) instead of seeking the
        // few that match through the prop's index.
        sql.push_str(" ORDER BY +a.site_key, +a.username, a.rowid");
    }
    params.push(Sql::Integer(limit));
    params.push(Sql::Integer(offset));
    sql.push_str(&format!(
        " LIMIT ?{} OFFSET ?{}",
        params.len() - 1,
        params.len()
    ));
    Ok((sql, params))
}

/// Runs a search: up to `limit` accounts after `offset`.
pub fn search(
    c: &Connection,
    user_id: i64,
    s: &Search,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<Vec<AccountRow>> {
    let (sql, params) = search_sql(user_id, s, limit, offset)?;
    c.prepare_cached(&sql)?
        .query_map(params_from_iter(params), from_row)?
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::vault::sites::create_prop_index;

    /// The query plan of a search, one line per step.
    fn plan(c: &Connection, s: &Search) -> Vec<String> {
        let (sql, params) = search_sql(1, s, 21, 0).expect("sql");
        crate::db::plans::explain(c, &sql, |_| params)
    }

    #[test]
    fn lookups_use_their_indexes_and_never_scan_accounts() {
        let c = crate::db::plans::fresh();
        create_prop_index(&c, "region").expect("index");
        let text = |s: &str| vec![Sql::Text(s.into())];
        let prop = |field: &str, matches| Search {
            props: vec![PropFilter {
                field: field.into(),
                matches,
            }],
            ..Search::default()
        };
        let cases = [
            (
                Search {
                    expires_before: Some("2026-01-27T00:00:00.000Z".into()),
                    ..Search::default()
                },
                "accounts_expires_at",
            ),
            (
                Search {
                    site_key: Some("openai".into()),
                    expires_before: Some("2026-01-27T00:00:00.000Z".into()),
                    ..Search::default()
                },
                "USING INDEX",
            ),
            (
                prop("token", PropMatch::Plain(text("abc"))),
                "accounts_token",
            ),
            (
                prop("region", PropMatch::Plain(text("eu"))),
                "accounts_prop_region",
            ),
            (
                prop("apiKey", PropMatch::Secret(vec![1; 32])),
                "account_secret_index",
            ),
            (
                prop("region", PropMatch::Either(text("sk"), vec![1; 32])),
                "account_secret_index",
            ),
            (
                Search {
                    site_key: Some("openai".into()),
                    props: vec![
                        PropFilter {
                            field: "apiKey".into(),
                            matches: PropMatch::Secret(vec![1; 32]),
                        },
                        PropFilter {
                            field: "token".into(),
                            matches: PropMatch::Plain(text("t")),
                        },
                    ],
                    ..Search::default()
                },
                "account_secret_index",
            ),
        ];
        for (s, index) in cases {
            let lines = plan(&c, &s);
            let all = lines.join(" | ");
            let walks_accounts = |l: &String| {
                let on_accounts = l.starts_with("SCAN a")
                    || l.starts_with("SEARCH a ")
                    || l.starts_with("SEARCH accounts ");
                // A full scan, or every account of the user (an index used by user_id alone).
                on_accounts && (l.starts_with("SCAN") || l.ends_with("(user_id=?)"))
            };
            assert!(
                !lines.iter().any(walks_accounts),
                "walks the user's accounts: {all}"
            );
            assert!(all.contains(index), "{index} not used: {all}");
        }
    }
}
