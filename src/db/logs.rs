//! SQL for `daemon_logs` (schema.sql "Config backups, daemon logs, statistics"): insert an
//! upload, list a device's logs, read one with its content inside the owner's data, the bytes a
//! user stores, and the retention batches the janitor deletes.

use super::OptionalRow;
use crate::time;
use rusqlite::{Connection, Row, params};

/// A log row without its content.
#[derive(Clone, Debug)]
pub struct Log {
    pub id: i64,
    pub user_id: i64,
    pub device_id: i64,
    pub device_uuid: String,
    pub log_type: String,
    pub log_date: String,
    pub compressed: bool,
    pub content_type: String,
    pub size_bytes: i64,
    pub created_at: String,
}

const COLUMNS: &str = "l.id, l.user_id, l.device_id, (SELECT uuid FROM devices WHERE id = l.device_id), \
    l.log_type, l.log_date, l.compressed, l.content_type, l.size_bytes, l.created_at";

fn from_row(r: &Row) -> rusqlite::Result<Log> {
    Ok(Log {
        id: r.get(0)?,
        user_id: r.get(1)?,
        device_id: r.get(2)?,
        device_uuid: r.get(3)?,
        log_type: r.get(4)?,
        log_date: r.get(5)?,
        compressed: r.get(6)?,
        content_type: r.get(7)?,
        size_bytes: r.get(8)?,
        created_at: r.get(9)?,
    })
}

/// What an upload is made of.
pub struct NewLog<'a> {
    pub user_id: i64,
    pub device_id: i64,
    pub log_type: &'a str,
    pub log_date: &'a str,
    pub compressed: bool,
    pub content_type: &'a str,
    pub content: &'a [u8],
}

/// Inserts an upload and returns its id.
pub fn insert(c: &Connection, l: &NewLog) -> rusqlite::Result<i64> {
    c.prepare_cached(
        "INSERT INTO daemon_logs (user_id, device_id, log_type, log_date, compressed, content_type, \
         size_bytes, created_at, content) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        l.user_id,
        l.device_id,
        l.log_type,
        l.log_date,
        l.compressed,
        l.content_type,
        l.content.len() as i64,
        time::now(),
        l.content
    ])?;
    Ok(c.last_insert_rowid())
}

/// A page of a device's logs, newest first.
pub fn list(c: &Connection, device_id: i64, limit: i64, offset: i64) -> rusqlite::Result<Vec<Log>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM daemon_logs l WHERE l.device_id = ?1 \
         ORDER BY l.created_at DESC, l.id DESC LIMIT ?2 OFFSET ?3"
    ))?
    .query_map(params![device_id, limit, offset], from_row)?
    .collect()
}

/// The user's log with this id (without its content).
pub fn get(c: &Connection, user_id: i64, id: i64) -> rusqlite::Result<Option<Log>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM daemon_logs l WHERE l.id = ?1 AND l.user_id = ?2"
    ))?
    .query_row(params![id, user_id], from_row)
    .optional()
}

/// The user's log with this id and its content.
pub fn get_with_content(
    c: &Connection,
    user_id: i64,
    id: i64,
) -> rusqlite::Result<Option<(Log, Vec<u8>)>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS}, l.content FROM daemon_logs l WHERE l.id = ?1 AND l.user_id = ?2"
    ))?
    .query_row(params![id, user_id], |r| Ok((from_row(r)?, r.get(10)?)))
    .optional()
}

/// Bytes of the user's logs (a term of `domain::policy::storage_used`).
pub fn bytes_used(c: &Connection, user_id: i64) -> rusqlite::Result<i64> {
    c.prepare_cached("SELECT coalesce(sum(size_bytes), 0) FROM daemon_logs WHERE user_id = ?1")?
        .query_row([user_id], |r| r.get(0))
}

/// Bytes of one device's logs (its statistics).
pub fn device_bytes(c: &Connection, device_id: i64) -> rusqlite::Result<i64> {
    c.prepare_cached("SELECT coalesce(sum(size_bytes), 0) FROM daemon_logs WHERE device_id = ?1")?
        .query_row([device_id], |r| r.get(0))
}

/// Logs past their owner's plan retention at `now`, oldest first per user: (id, size_bytes),
/// at most `limit`. Plans with no retention (NULL) keep logs forever. Reads each user's index
/// range below its cutoff, so logs still inside their retention are never visited.
pub fn expired(c: &Connection, now: &str, limit: i64) -> rusqlite::Result<Vec<(i64, i64)>> {
    c.prepare_cached(EXPIRED)?
        .query_map(params![now, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// CROSS JOIN fixes the order (users, their plan, their logs): SQLite would otherwise walk every
/// log and look its owner up.
const EXPIRED: &str = "SELECT l.id, l.size_bytes FROM users u CROSS JOIN plans p ON p.name = u.plan \
    CROSS JOIN daemon_logs l ON l.user_id = u.id \
      AND l.created_at < strftime('%Y-%m-%dT%H:%M:%fZ', ?1, '-' || p.log_retention_days || ' days') \
    WHERE p.log_retention_days IS NOT NULL LIMIT ?2";

/// Deletes logs by id (a retention batch). Returns how many went.
pub fn delete_ids(c: &Connection, ids: &[i64]) -> rusqlite::Result<usize> {
    let mut st = c.prepare_cached("DELETE FROM daemon_logs WHERE id = ?1")?;
    let mut n = 0;
    for id in ids {
        n += st.execute([id])?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    /// The plan of `sql` with dates bound, as the server's readers plan.
    fn plan(c: &Connection, sql: &str) -> Vec<String> {
        let date = rusqlite::types::Value::Text("2026-01-20T00:00:00.000Z".into());
        crate::db::plans::explain(c, sql, |n| vec![date; n])
    }

    #[test]
    fn retention_reads_indexes_and_never_a_whole_log_or_task_table() {
        let c = crate::db::plans::fresh();
        // The users are walked (one seek per user); their logs and old tasks by index.
        let logs = plan(&c, super::EXPIRED);
        assert!(
            logs.iter().any(|l| l.starts_with("SEARCH l")
                && l.contains("daemon_logs_user (user_id=? AND created_at<?)")),
            "{logs:?}"
        );
        assert!(!logs.iter().any(|l| l.starts_with("SCAN l")), "{logs:?}");
        let tasks = plan(&c, crate::db::tasks::OLD_OUTPUT);
        assert!(
            tasks.iter().all(|l| l.contains("tasks_output_age")),
            "{tasks:?}"
        );
    }
}
