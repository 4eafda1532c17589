//! SQL for `account_reveals` (schema.sql "Vault"): the record of every time an account's
//! secrets were shown unmasked.

use rusqlite::{Connection, params};

/// One reveal, as recorded and as listed.
#[derive(Clone, Debug, Default)]
pub struct Reveal {
    pub id: i64,
    pub account_id: String,
    pub site_key: String,
    /// `session`, `api_key`, `device` or `cli`.
    pub actor: String,
    pub session_id: Option<i64>,
    pub api_key_id: Option<i64>,
    /// The device's uuid.
    pub device_id: Option<String>,
    pub ip_address: String,
    pub user_agent: Option<String>,
    pub created_at: String,
}

/// Records a reveal of one of the user's accounts (`r.id` is ignored).
pub fn insert(c: &Connection, user_id: i64, r: &Reveal) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO account_reveals (user_id, account_id, site_key, actor, session_id, \
         api_key_id, device_id, ip_address, user_agent, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        user_id,
        r.account_id,
        r.site_key,
        r.actor,
        r.session_id,
        r.api_key_id,
        r.device_id,
        r.ip_address,
        r.user_agent,
        r.created_at
    ])?;
    Ok(())
}

/// A page of the user's reveals, newest first; only those of `account_id` when given.
pub fn list(
    c: &Connection,
    user_id: i64,
    account_id: Option<&str>,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<Vec<Reveal>> {
    const COLS: &str = "id, account_id, site_key, actor, session_id, api_key_id, device_id, \
                        ip_address, user_agent, created_at";
    let map = |r: &rusqlite::Row| {
        Ok(Reveal {
            id: r.get(0)?,
            account_id: r.get(1)?,
            site_key: r.get(2)?,
            actor: r.get(3)?,
            session_id: r.get(4)?,
            api_key_id: r.get(5)?,
            device_id: r.get(6)?,
            ip_address: r.get(7)?,
            user_agent: r.get(8)?,
            created_at: r.get(9)?,
        })
    };
    match account_id {
        Some(a) => c
            .prepare_cached(&format!(
                "SELECT {COLS} FROM account_reveals WHERE user_id = ?1 AND account_id = ?2 \
                 ORDER BY id DESC LIMIT ?3 OFFSET ?4"
            ))?
            .query_map(params![user_id, a, limit, offset], map)?
            .collect(),
        None => c
            .prepare_cached(&format!(
                "SELECT {COLS} FROM account_reveals WHERE user_id = ?1 \
                 ORDER BY id DESC LIMIT ?2 OFFSET ?3"
            ))?
            .query_map(params![user_id, limit, offset], map)?
            .collect(),
    }
}

/// Has the user ever had a reveal of `account_id` recorded (an account deleted since still
/// has its history)?
pub fn known_account(c: &Connection, user_id: i64, account_id: &str) -> rusqlite::Result<bool> {
    c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM account_reveals WHERE user_id = ?1 AND account_id = ?2)",
    )?
    .query_row(params![user_id, account_id], |r| r.get(0))
}

/// Are there reveals recorded before `cutoff` (so that the janitor writes only when it must)?
pub fn any_before(c: &Connection, cutoff: &str) -> rusqlite::Result<bool> {
    c.prepare_cached("SELECT EXISTS (SELECT 1 FROM account_reveals WHERE created_at < ?1)")?
        .query_row([cutoff], |r| r.get(0))
}

/// Deletes reveals recorded before `cutoff` (the janitor's retention). Returns how many.
pub fn prune(c: &Connection, cutoff: &str) -> rusqlite::Result<usize> {
    c.execute(
        "DELETE FROM account_reveals WHERE created_at < ?1",
        [cutoff],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_deletes_only_older_records() {
        let c = Connection::open_in_memory().expect("db");
        crate::db::migrations::migrate(&c).expect("schema");
        c.execute_batch(
            "INSERT INTO users (id, email, password_hash, created_at, updated_at) \
             VALUES (1, 'a@b.c', 'x', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
        )
        .expect("user");
        for (account, at) in [
            ("old", "2025-01-01T00:00:00.000Z"),
            ("new", "2026-06-01T00:00:00.000Z"),
        ] {
            let r = Reveal {
                account_id: account.into(),
                site_key: "s".into(),
                actor: "session".into(),
                session_id: Some(1),
                ip_address: "127.0.0.1".into(),
                created_at: at.into(),
                ..Reveal::default()
            };
            insert(&c, 1, &r).expect("insert");
        }
        let cutoff = "2026-01-01T00:00:00.000Z";
        assert!(any_before(&c, cutoff).expect("any"));
        assert_eq!(prune(&c, cutoff).expect("prune"), 1);
        assert!(!any_before(&c, cutoff).expect("any"));
        let left = list(&c, 1, None, 10, 0).expect("list");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].account_id, "new");
        assert!(known_account(&c, 1, "new").expect("known"));
        assert!(!known_account(&c, 2, "new").expect("another user's"));
    }
}
