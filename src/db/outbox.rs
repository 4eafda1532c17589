//! SQL for `email_outbox` (schema.sql): the durable outbound mail queue. Rows are inserted by
//! the write job of the event that caused them; the mailer claims a due row (one attempt, with
//! its next attempt already scheduled so a crash mid-send retries later), then records the
//! outcome. Every lookup by id for a person names the owner.

use super::OptionalRow;
use crate::time;
use rusqlite::{Connection, Row, params};

/// A mail to queue.
#[derive(Clone, Debug, Default)]
pub struct NewMail {
    pub user_id: Option<i64>,
    pub task_id: Option<String>,
    /// The notification this mail carries.
    pub message_id: Option<i64>,
    /// `task_result`, `email_reply`, `device_offline`, `test` or `send`.
    pub kind: &'static str,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// Message-ID of the mail this one answers.
    pub in_reply_to: Option<String>,
}

/// An outbox row.
#[derive(Clone, Debug)]
pub struct Mail {
    pub id: i64,
    pub user_id: Option<i64>,
    pub task_id: Option<String>,
    pub message_id: Option<i64>,
    pub kind: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub in_reply_to: Option<String>,
    pub idempotency_key: String,
    /// `queued`, `sent`, `failed` or `unsent`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub last_error: Option<String>,
    pub provider: Option<String>,
    pub provider_message_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub sent_at: Option<String>,
}

const COLUMNS: &str = "id, user_id, task_id, message_id, kind, to_address, subject, text, html, \
    in_reply_to, idempotency_key, status, attempts, next_attempt_at, last_error, provider, \
    provider_message_id, created_at, updated_at, sent_at";

fn from_row(r: &Row) -> rusqlite::Result<Mail> {
    Ok(Mail {
        id: r.get(0)?,
        user_id: r.get(1)?,
        task_id: r.get(2)?,
        message_id: r.get(3)?,
        kind: r.get(4)?,
        to: r.get(5)?,
        subject: r.get(6)?,
        text: r.get(7)?,
        html: r.get(8)?,
        in_reply_to: r.get(9)?,
        idempotency_key: r.get(10)?,
        status: r.get(11)?,
        attempts: r.get(12)?,
        next_attempt_at: r.get(13)?,
        last_error: r.get(14)?,
        provider: r.get(15)?,
        provider_message_id: r.get(16)?,
        created_at: r.get(17)?,
        updated_at: r.get(18)?,
        sent_at: r.get(19)?,
    })
}

/// Every status a row can have, for `/metrics` (which lists zeros too).
pub const STATUSES: [&str; 4] = ["queued", "sent", "failed", "unsent"];

/// Queues a mail, due now, with a fresh idempotency key; returns its id.
pub fn insert(c: &Connection, m: &NewMail) -> rusqlite::Result<i64> {
    let now = time::now();
    let key = format!("ccjk-{}", uuid::Uuid::new_v4());
    c.prepare_cached(
        "INSERT INTO email_outbox (user_id, task_id, message_id, kind, to_address, subject, text, \
         html, in_reply_to, idempotency_key, next_attempt_at, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?11)",
    )?
    .execute(params![
        m.user_id,
        m.task_id,
        m.message_id,
        m.kind,
        m.to,
        m.subject,
        m.text,
        m.html,
        m.in_reply_to,
        key,
        now
    ])?;
    Ok(c.last_insert_rowid())
}

/// A row by id, whoever owns it (the mailer and the CLI).
pub fn get(c: &Connection, id: i64) -> rusqlite::Result<Option<Mail>> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM email_outbox WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

/// The user's row by id.
pub fn get_for_user(c: &Connection, user_id: i64, id: i64) -> rusqlite::Result<Option<Mail>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM email_outbox WHERE id = ?1 AND user_id = ?2"
    ))?
    .query_row(params![id, user_id], from_row)
    .optional()
}

/// The user's mails, newest first, optionally of one status.
pub fn list_for_user(
    c: &Connection,
    user_id: i64,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<Vec<Mail>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM email_outbox WHERE user_id = ?1 AND (?2 IS NULL OR status = ?2) \
         ORDER BY id DESC LIMIT ?3 OFFSET ?4"
    ))?
    .query_map(params![user_id, status, limit, offset], from_row)?
    .collect()
}

/// The newest rows of everyone, for `ccjk-cloud outbox list`.
pub fn list_recent(c: &Connection, limit: i64) -> rusqlite::Result<Vec<Mail>> {
    c.prepare(&format!(
        "SELECT {COLUMNS} FROM email_outbox ORDER BY id DESC LIMIT ?1"
    ))?
    .query_map([limit], from_row)?
    .collect()
}

/// Queued rows due at `now`, oldest due first.
pub fn due(c: &Connection, now: &str, limit: i64) -> rusqlite::Result<Vec<Mail>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM email_outbox WHERE status = 'queued' AND next_attempt_at <= ?1 \
         ORDER BY next_attempt_at, id LIMIT ?2"
    ))?
    .query_map(params![now, limit], from_row)?
    .collect()
}

/// When the next queued row is due, if any.
pub fn next_due(c: &Connection) -> rusqlite::Result<Option<String>> {
    c.prepare_cached("SELECT min(next_attempt_at) FROM email_outbox WHERE status = 'queued'")?
        .query_row([], |r| r.get(0))
}

/// Starts attempt `attempts + 1` of a queued row whose attempt count is still `attempts`,
/// scheduling the next one at `next` already (so a crash while sending retries then). Whether
/// the row was claimed (false: it changed meanwhile, e.g. `outbox retry`).
pub fn claim(c: &Connection, id: i64, attempts: i64, next: &str) -> rusqlite::Result<bool> {
    Ok(c.prepare_cached(
        "UPDATE email_outbox SET attempts = attempts + 1, next_attempt_at = ?3, updated_at = ?4 \
         WHERE id = ?1 AND attempts = ?2 AND status = 'queued'",
    )?
    .execute(params![id, attempts, next, time::now()])?
        == 1)
}

/// Records a delivery: `sent`, with the relay and its message id.
pub fn mark_sent(
    c: &Connection,
    id: i64,
    provider: &str,
    provider_id: Option<&str>,
) -> rusqlite::Result<()> {
    let now = time::now();
    c.prepare_cached(
        "UPDATE email_outbox SET status = 'sent', provider = ?2, provider_message_id = ?3, \
         last_error = NULL, sent_at = ?4, updated_at = ?4 WHERE id = ?1",
    )?
    .execute(params![id, provider, provider_id, now])?;
    Ok(())
}

/// Records a failed attempt to retry at `next`.
pub fn mark_retry(
    c: &Connection,
    id: i64,
    provider: &str,
    error: &str,
    next: &str,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE email_outbox SET provider = ?2, last_error = ?3, next_attempt_at = ?4, \
         updated_at = ?5 WHERE id = ?1 AND status = 'queued'",
    )?
    .execute(params![id, provider, error, next, time::now()])?;
    Ok(())
}

/// Gives a row up: `failed` with the reason.
pub fn mark_failed(
    c: &Connection,
    id: i64,
    provider: Option<&str>,
    error: &str,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE email_outbox SET status = 'failed', provider = coalesce(?2, provider), \
         last_error = ?3, updated_at = ?4 WHERE id = ?1",
    )?
    .execute(params![id, provider, error, time::now()])?;
    Ok(())
}

/// Marks every queued row `unsent` (no relay is configured); returns how many.
pub fn park_unsent(c: &Connection, why: &str) -> rusqlite::Result<usize> {
    c.prepare_cached(
        "UPDATE email_outbox SET status = 'unsent', last_error = ?1, updated_at = ?2 \
         WHERE status = 'queued'",
    )?
    .execute(params![why, time::now()])
}

/// Queues a row again from scratch (any status but `sent`): due now, attempts reset.
/// Whether it existed and was not sent.
pub fn requeue(c: &Connection, id: i64) -> rusqlite::Result<bool> {
    let now = time::now();
    Ok(c.prepare_cached(
        "UPDATE email_outbox SET status = 'queued', attempts = 0, next_attempt_at = ?2, \
         updated_at = ?2 WHERE id = ?1 AND status <> 'sent'",
    )?
    .execute(params![id, now])?
        == 1)
}

/// Rows per status over everyone (`/metrics`).
pub fn count_by_status(c: &Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    c.prepare_cached("SELECT status, count(*) FROM email_outbox GROUP BY status")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// Mails the user asked for (free-form `send` and `test` mails) queued since `since`: the
/// daily cap of `POST /v1/email/send` and `/v1/email/test`.
pub fn requested_since(c: &Connection, user_id: i64, since: &str) -> rusqlite::Result<i64> {
    c.prepare_cached(
        "SELECT count(*) FROM email_outbox WHERE user_id = ?1 AND kind IN ('send', 'test') \
         AND created_at >= ?2",
    )?
    .query_row(params![user_id, since], |r| r.get(0))
}

/// Deletes finished rows (sent, failed, unsent) last changed before `cutoff`; how many.
pub fn delete_finished_before(c: &Connection, cutoff: &str) -> rusqlite::Result<usize> {
    c.prepare_cached("DELETE FROM email_outbox WHERE status <> 'queued' AND updated_at < ?1")?
        .execute([cutoff])
}
