//! Limits and rules with names: plan quotas (devices, tasks per day, storage), the liveness
//! window of a device, task bounds, the sign-up and first-user rules, pagination bounds, rate
//! limits, retention, statistics periods and the KV store's limits (docs/limits.md; README
//! "Backups, logs and statistics", "Rate limits", "Apps and the KV store").
//!
//! Everything a reviewer would ask "how many?" or "when?" about lives here once, so the
//! domain, the janitor, the CLI and the docs agree. Quota checks take the writer connection:
//! they run inside the write job that would exceed the limit, so two concurrent requests
//! cannot both pass.

use crate::db::{backups, devices, kv, logs, tasks, users};
use crate::error::{ApiError, ApiResult};
use crate::time;
use rusqlite::Connection;
use std::ops::RangeInclusive;
use std::time::Duration;

/// A device is online while a heartbeat arrived within this many heartbeat intervals.
pub const ONLINE_WINDOW_INTERVALS: i64 = 3;
/// A heartbeat credits at most this many intervals of online time for the gap before it.
pub const UPTIME_CREDIT_INTERVALS: i64 = 2;
/// A heartbeat that omits a task the device has held for longer than this many intervals gives
/// the task back.
pub const OMITTED_TASK_INTERVALS: i64 = 1;
/// `heartbeat_interval` of a device whose config does not say (seconds).
pub const DEFAULT_HEARTBEAT_INTERVAL: i64 = 30;
/// `max_concurrent_tasks` of a device whose config does not say.
pub const DEFAULT_DEVICE_CONCURRENCY: i64 = 3;
/// How long a cached device row (heartbeat view) is trusted.
pub const DEVICE_ROW_TTL: Duration = Duration::from_secs(5);
/// How long a device key is cached before SQLite is asked again.
pub const DEVICE_KEY_TTL: Duration = Duration::from_secs(60);
/// How stale a session's or API key's `last_used_at` may get before a request writes it.
pub const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// Settings a device's owner may change with `PATCH /v1/devices/{id}/config`, and their ranges
/// (`None` = a boolean).
pub const DEVICE_SETTINGS: [(&str, Option<RangeInclusive<i64>>); 4] = [
    ("heartbeat_interval", Some(5..=3600)),
    ("task_check_interval", Some(1..=3600)),
    ("max_concurrent_tasks", Some(1..=100)),
    ("log_upload_enabled", None),
];

/// Longest command accepted, in bytes.
pub const MAX_COMMAND: usize = 64 * 1024;
/// Longest `cwd`, in bytes.
pub const MAX_CWD: usize = 4096;
/// Most environment variables per task.
pub const MAX_ENV_VARS: usize = 256;
/// Most tasks in one batch.
pub const MAX_BATCH: usize = 100;
/// Task timeout when none is given, and the accepted range (milliseconds).
pub const DEFAULT_TIMEOUT_MS: i64 = 300_000;
pub const TIMEOUT_RANGE: RangeInclusive<i64> = 1_000..=86_400_000;
/// Task priority when none is given, and the accepted range.
pub const DEFAULT_PRIORITY: i64 = 5;
pub const PRIORITY_RANGE: RangeInclusive<i64> = 1..=10;
/// Automatic retries after an expired lease when none is given, and the accepted range.
pub const DEFAULT_MAX_RETRIES: i64 = 3;
pub const MAX_RETRIES_RANGE: RangeInclusive<i64> = 0..=10;
/// How much of a task's stdout and stderr the head of a capped stream keeps.
pub const OUTPUT_HEAD: usize = 64 * 1024;
/// Longest `Idempotency-Key`, in bytes.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Longest long-poll (`wait`), in seconds.
pub const MAX_POLL_WAIT: u64 = 60;
/// Tasks a poll claims when it does not say, and the most it may ask for.
pub const DEFAULT_POLL_LIMIT: i64 = 10;
pub const MAX_POLL_LIMIT: i64 = 50;
/// Tasks a heartbeat of Lite or Control claims at most.
pub const HEARTBEAT_CLAIM_LIMIT: i64 = 50;

/// Page size when a list request does not say, and the largest accepted (larger is clamped).
pub const DEFAULT_PAGE: i64 = 20;
pub const MAX_PAGE: i64 = 200;

/// Event streams (`GET /v1/events`, docs/events.md). The ping interval, the per-user stream
/// cap and the buffer's event count are settings (`src/config.rs`); these are fixed.
/// Recent events kept for `Last-Event-ID` resumes, over all users: at most this many bytes
/// of them (and at most `event_buffer_frames` of them).
pub const EVENT_BUFFER_BYTES: usize = 4 * 1024 * 1024;
/// Task output carried by one event (`task.updated`'s new output, `task.completed`'s tail):
/// at most this many bytes of each stream, the end kept.
pub const EVENT_OUTPUT_TAIL: usize = 16 * 1024;
/// A flush of an event stream that blocks longer than this (the client stopped reading and
/// its socket buffer is full) ends that stream; the client resumes with `Last-Event-ID`. Long
/// enough that a busy core's scheduling delays never pass for a stalled client.
pub const EVENT_SLOW_WRITE: Duration = Duration::from_secs(1);
/// The `retry:` (milliseconds) sent to a new stream: how long `EventSource` waits before it
/// reconnects.
pub const EVENT_RETRY_MS: u64 = 3000;

/// Attempts to hand one mail to the relay before it is marked `failed` (README "Mail").
pub const MAIL_MAX_ATTEMPTS: i64 = 10;
/// Jitter of a retry delay: each delay is the doubled base times a random factor within
/// 1 ± this.
pub const MAIL_BACKOFF_JITTER: f64 = 0.2;
/// The longest `Retry-After` of a relay that is honoured as given (longer ones are cut to it).
pub const MAIL_MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);
/// How often the mailer looks at the outbox when nothing woke it (rows queued by another
/// process, such as `ccjk-cloud outbox retry`).
pub const MAILER_IDLE_CHECK: Duration = Duration::from_secs(15);
/// Mails the mailer takes per round.
pub const MAILER_BATCH: i64 = 20;
/// Finished outbox rows and inbound deliveries are deleted this long after their last change.
pub const MAIL_RETENTION: Duration = Duration::from_secs(90 * 86_400);
/// How much of a task's stdout and of its stderr a result mail carries (the end of each).
pub const MAIL_OUTPUT_TAIL: usize = 2000;
/// Longest subject of `POST /v1/email/send` (RFC 5322's line limit).
pub const MAX_MAIL_SUBJECT: usize = 998;
/// Largest text + html of `POST /v1/email/send`, in bytes.
pub const MAX_MAIL_BODY: usize = 256 * 1024;
/// Mails a non-admin may queue with `POST /v1/email/send` per UTC day.
pub const MAX_SENDS_PER_DAY: i64 = 50;
/// How far `X-Email-Timestamp` of an inbound webhook may be from the server's clock.
pub const INBOUND_MAX_SKEW: Duration = Duration::from_secs(300);

/// Deliveries of the inbound-mail webhook per sender per minute (README "Rate limits"),
/// counted once a delivery's signature verified.
pub const WEBHOOK_PER_SENDER_PER_MINUTE: u32 = 10;
/// Inbound-mail deliveries refused for their signature that are recorded in `inbound_emails`
/// per client address per minute (README "Mail"); past it they are refused unrecorded, so an
/// anonymous flood cannot grow the database or hold the writer.
pub const WEBHOOK_REFUSALS_RECORDED_PER_MINUTE: u32 = 10;

/// The delay before attempt `attempt + 1` of a mail (`attempt` ≥ 1 just failed): `base`
/// doubled per earlier attempt, times `jitter` (a factor in 1 ± `MAIL_BACKOFF_JITTER`). With
/// the default base of 3 minutes, ten attempts span about 25 hours.
pub fn mail_backoff(base: Duration, attempt: i64, jitter: f64) -> Duration {
    let doublings = (attempt.max(1) - 1).min(20) as i32;
    let j = jitter.clamp(1.0 - MAIL_BACKOFF_JITTER, 1.0 + MAIL_BACKOFF_JITTER);
    base.mul_f64(2f64.powi(doublings) * j)
}
/// Vault (docs/vault.md): most sites per user.
pub const VAULT_MAX_SITES: i64 = 1_000;
/// Vault: most accounts per user, over all sites.
pub const VAULT_MAX_ACCOUNTS: i64 = 50_000;
/// Vault: most fields in a site's schema, and most props on one account.
pub const VAULT_MAX_FIELDS: usize = 64;
pub const VAULT_MAX_PROPS: usize = 64;
/// Vault: largest props object of an account (plain and secret props, as JSON), in bytes.
pub const VAULT_MAX_PROPS_BYTES: usize = 32 * 1024;
/// Vault: longest password or secret prop, and longest username, in bytes.
pub const VAULT_MAX_SECRET_BYTES: usize = 8 * 1024;
pub const VAULT_MAX_USERNAME_BYTES: usize = 512;
/// Vault: longest field regex (bytes of pattern) and the most memory its compiled form may
/// take. The regex engine runs in linear time; these bound compile time and memory.
pub const VAULT_MAX_REGEX: usize = 512;
pub const VAULT_REGEX_SIZE_LIMIT: usize = 256 * 1024;
pub const VAULT_REGEX_NEST_LIMIT: u32 = 32;
/// Vault: most `choices` of a field.
pub const VAULT_MAX_CHOICES: usize = 100;
/// Vault: most fields marked `indexed` in one site, and most server-managed prop indexes in
/// all (each is an index over every account on the server, kept on every account write).
pub const VAULT_MAX_INDEXED_PER_SITE: usize = 8;
pub const VAULT_MAX_PROP_INDEXES: usize = 64;
/// Vault: a secret shorter than this many characters is masked as `••••` alone; longer ones
/// show their last 4 characters (`••••abcd`), so a mask never shows most of a short secret.
pub const VAULT_MASK_MIN_CHARS: usize = 12;
/// Vault: most `prop.<field>=` conditions in one lookup, and the longest `expiring_within`.
pub const VAULT_MAX_PROP_FILTERS: usize = 8;
pub const VAULT_MAX_EXPIRING_WITHIN: Duration = Duration::from_secs(3650 * 86_400);
/// Vault: how long the record of reveals is kept (the janitor deletes older rows).
pub const VAULT_REVEAL_RETENTION: Duration = Duration::from_secs(365 * 86_400);
/// Vault: most accounts reported by a refused `PUT /v1/sites/{key}/fields`.
pub const VAULT_MAX_REPORTED: usize = 100;

/// Name of the device Lite's `POST /auth` hands out the key of.
pub const PRIMARY_DEVICE_NAME: &str = "default";
/// Plan of the first account on a fresh server (which is also an admin): a self-hoster is
/// never stopped by the hosted service's free tier.
pub const FIRST_ACCOUNT_PLAN: &str = "enterprise";

/// Automatic config backups (`is_auto`) kept per device: making one more deletes the oldest
/// beyond this many. Backups made by hand are kept until their owner deletes them.
pub const AUTO_BACKUPS_KEPT: i64 = 10;
/// Longest config backup name, in characters.
pub const MAX_BACKUP_NAME: usize = 100;
/// Longest log `type`, in bytes (letters, digits, `.`, `_`, `-`).
pub const MAX_LOG_TYPE: usize = 64;
/// Room for multipart framing and the `metadata` part above `CCJK_MAX_LOG_UPLOAD` in a log
/// upload's body; the `log_file` part itself is held to `CCJK_MAX_LOG_UPLOAD`.
pub const LOG_UPLOAD_OVERHEAD: usize = 64 * 1024;

/// How long a finished task keeps its stdout and stderr; the janitor then clears them (the task
/// row stays, for its owner's history and statistics).
pub const TASK_OUTPUT_RETENTION: Duration = Duration::from_secs(30 * 86_400);
/// Rows one retention write job changes at most: small jobs never hold the writer for long.
pub const RETENTION_BATCH: i64 = 200;
/// Log bytes one retention write job deletes at most (freeing a BLOB reads its pages).
pub const RETENTION_BATCH_BYTES: i64 = 32 * 1024 * 1024;
/// Retention write jobs one janitor round runs at most; the rest waits for the next round.
pub const RETENTION_JOBS_PER_ROUND: usize = 25;

/// The rate-limit window: limits are requests per this window, counted per key from the key's
/// first request in it (the seed's `RATE_LIMIT_TTL=60`).
pub const RATE_WINDOW: Duration = Duration::from_secs(60);
// The limits per window are settings: `CCJK_RATE_LIMIT_USER` (100 requests of a person using
// session tokens, per user) and `CCJK_RATE_LIMIT_DAEMON` (1000 per device), defaults in
// `config.rs`; API keys follow their plan's `api_calls_per_minute`, shared by the user's keys.

/// Statistics periods (`?period=`), and the one used when none is given.
pub const STATS_PERIODS: [(&str, Duration); 4] = [
    ("24h", Duration::from_secs(86_400)),
    ("7d", Duration::from_secs(7 * 86_400)),
    ("30d", Duration::from_secs(30 * 86_400)),
    ("90d", Duration::from_secs(90 * 86_400)),
];
pub const DEFAULT_STATS_PERIOD: &str = "7d";

/// The plan and admin flag of a new account: the first account on the server is an admin on
/// `FIRST_ACCOUNT_PLAN`; every later one gets `CCJK_DEFAULT_PLAN` and no admin rights.
pub fn new_account_plan(is_first: bool, default_plan: &str) -> (&str, bool) {
    if is_first {
        (FIRST_ACCOUNT_PLAN, true)
    } else {
        (default_plan, false)
    }
}

/// Sign-ups: open unless `CCJK_SIGNUPS=closed` (then only admins create accounts).
/// Errors: 403 `FORBIDDEN`.
pub fn check_signups(open: bool) -> ApiResult<()> {
    if open {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "Sign-ups are closed; ask an admin for an account",
        ))
    }
}

/// Refuses one more device beyond the plan's `max_devices`. Errors: 403 `QUOTA_EXCEEDED`.
pub fn check_device_quota(c: &Connection, user_id: i64) -> ApiResult<()> {
    if let Some(limit) = users::limits(c, user_id)?.max_devices {
        let used = devices::count(c, user_id)?;
        if used >= limit {
            return Err(ApiError::quota("devices", limit, used));
        }
    }
    Ok(())
}

/// Refuses `n` more tasks today (UTC) beyond the plan's `max_tasks_per_day`.
/// Errors: 403 `QUOTA_EXCEEDED`.
pub fn check_daily_tasks(c: &Connection, user_id: i64, n: i64) -> ApiResult<()> {
    if let Some(limit) = users::limits(c, user_id)?.max_tasks_per_day {
        let today = format!("{}T00:00:00.000Z", time::day(&time::now()));
        let used = tasks::count_created_since(c, user_id, &today)?;
        if used + n > limit {
            return Err(ApiError::quota("tasks_per_day", limit, used));
        }
    }
    Ok(())
}

/// Bytes the user stores, counted against the plan's `storage_quota_bytes`: one term per area
/// that keeps a user's bytes (config backups, daemon logs, KV values; an area added later adds
/// its term here and in `device_storage_used`, and nothing else changes).
pub fn storage_used(c: &Connection, user_id: i64) -> rusqlite::Result<i64> {
    let terms = [
        backups::bytes_used(c, user_id)?,
        logs::bytes_used(c, user_id)?,
        kv::user_bytes(c, user_id)?,
    ];
    Ok(terms.iter().sum())
}

/// Bytes one device's data takes in that count (its backups, logs and KV entries): the same
/// areas as `storage_used`, for `GET /v1/stats/device/{id}`.
pub fn device_storage_used(c: &Connection, device_id: i64) -> rusqlite::Result<i64> {
    let terms = [
        backups::device_bytes(c, device_id)?,
        logs::device_bytes(c, device_id)?,
        kv::usage(c, device_id)?.1,
    ];
    Ok(terms.iter().sum())
}

/// Refuses `adding` more stored bytes beyond the plan's `storage_quota_bytes`. Run it inside the
/// write job that stores them. Errors: 403 `QUOTA_EXCEEDED` with `{quota: "storage", limit,
/// used}` (`used` as it stands, without `adding`). A write that frees bytes (`adding <= 0`, a KV
/// value replaced by a smaller one) always passes.
pub fn check_storage(c: &Connection, user_id: i64, adding: i64) -> ApiResult<()> {
    if adding <= 0 {
        return Ok(());
    }
    if let Some(limit) = users::limits(c, user_id)?.storage_quota_bytes {
        let used = storage_used(c, user_id)?;
        if used + adding > limit {
            return Err(ApiError::quota("storage", limit, used));
        }
    }
    Ok(())
}

/// How many more tasks a device may claim now: at most `asked`, within the device's
/// `max_concurrent_tasks` and the plan's `max_concurrent_tasks` (concurrency shapes claims
/// instead of failing them).
pub fn claim_room(
    asked: i64,
    device_max: i64,
    device_running: i64,
    plan_max: Option<i64>,
    user_running: i64,
) -> i64 {
    let mut n = asked.min(device_max - device_running);
    if let Some(p) = plan_max {
        n = n.min(p - user_running);
    }
    n.max(0)
}

/// Longest KV key, in bytes (README "Apps and the KV store").
pub const KV_MAX_KEY: usize = 512;
/// Entries a page of a KV listing holds when it does not say, and at most (larger is clamped).
pub const KV_DEFAULT_PAGE: i64 = 100;
pub const KV_MAX_PAGE: i64 = 1000;
/// Most entries in one `POST /kv/_batchimport` (one write job: the writer is not held long).
pub const KV_MAX_BATCH: usize = 1000;
/// Longest `ttl` a write may ask for (ten years), in seconds.
pub const KV_MAX_TTL_SECS: u64 = 10 * 365 * 86_400;
/// Expired KV entries the janitor deletes per write job, and per round at most.
pub const KV_EXPIRE_BATCH: i64 = 1000;
pub const KV_EXPIRE_ROUND: i64 = 20_000;
/// App installs (tokens) one device may hold.
pub const MAX_INSTALLS_PER_DEVICE: i64 = 100;
/// Longest note on an app authorisation, in characters.
pub const MAX_INSTALL_NOTE: usize = 200;

/// A device's KV totals before and after a write: `(before, after)` of its key count and of
/// its bytes.
#[derive(Clone, Copy, Debug)]
pub struct KvGrowth {
    pub keys: (i64, i64),
    pub bytes: (i64, i64),
}

/// Refuses a KV write that would leave the device holding more than `max_keys` keys or
/// `max_bytes` bytes (`CCJK_KV_MAX_KEYS`, `CCJK_KV_MAX_BYTES`); a write that does not grow a
/// total passes, so a device over a lowered limit can still shrink.
/// Errors: 403 `QUOTA_EXCEEDED` (`kv_keys`, `kv_bytes`).
pub fn check_kv_device(g: KvGrowth, max_keys: i64, max_bytes: i64) -> ApiResult<()> {
    let ((used_keys, new_keys), (used_bytes, new_bytes)) = (g.keys, g.bytes);
    if new_keys > used_keys && new_keys > max_keys {
        return Err(ApiError::quota("kv_keys", max_keys, used_keys));
    }
    if new_bytes > used_bytes && new_bytes > max_bytes {
        return Err(ApiError::quota("kv_bytes", max_bytes, used_bytes));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_account_is_an_enterprise_admin() {
        assert_eq!(new_account_plan(true, "free"), ("enterprise", true));
        assert_eq!(new_account_plan(false, "free"), ("free", false));
    }

    #[test]
    fn ten_mail_attempts_span_about_a_day() {
        let base = Duration::from_secs(180);
        let total: Duration = (1..MAIL_MAX_ATTEMPTS)
            .map(|a| mail_backoff(base, a, 1.0))
            .sum();
        assert!((20..=30).contains(&(total.as_secs() / 3600)), "{total:?}");
        assert_eq!(mail_backoff(base, 1, 1.0), base);
        assert_eq!(mail_backoff(base, 3, 1.0), base * 4);
        assert_eq!(
            mail_backoff(base, 1, 5.0),
            base.mul_f64(1.2),
            "jitter is bounded"
        );
    }

    #[test]
    fn kv_device_quota_refuses_only_growth_past_a_limit() {
        let g = |keys, bytes| KvGrowth { keys, bytes };
        assert!(check_kv_device(g((9, 10), (0, 100)), 10, 1000).is_ok());
        let e = check_kv_device(g((10, 11), (0, 100)), 10, 1000).expect_err("keys");
        assert_eq!(e.details["quota"], "kv_keys");
        let e = check_kv_device(g((1, 1), (900, 1001)), 10, 1000).expect_err("bytes");
        assert_eq!(e.details["quota"], "kv_bytes");
        // A device already over a lowered limit may still shrink or replace in place.
        assert!(check_kv_device(g((20, 20), (5000, 4000)), 10, 1000).is_ok());
    }

    #[test]
    fn claim_room_takes_the_tightest_limit() {
        assert_eq!(claim_room(10, 3, 1, None, 5), 2);
        assert_eq!(claim_room(10, 3, 0, Some(1), 1), 0);
        assert_eq!(claim_room(1, 3, 0, Some(10), 0), 1);
        assert_eq!(claim_room(5, 3, 4, None, 0), 0, "never negative");
    }
}
