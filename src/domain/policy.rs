//! Limits and rules with names: plan quotas, the liveness window of a device, task bounds,
//! the sign-up and first-user rules, pagination bounds, the KV store's limits (docs/limits.md).
//!
//! Everything a reviewer would ask "how many?" or "when?" about lives here once, so the
//! domain, the janitor, the CLI and the docs agree. Quota checks take the writer connection:
//! they run inside the write job that would exceed the limit, so two concurrent requests
//! cannot both pass.

use crate::db::{devices, kv, tasks, users};
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
/// How often heartbeats coalesced in memory are written; a crash loses at most this much of
/// heartbeat times (never a status change, a task or a result).
pub const HEARTBEAT_FLUSH_EVERY: Duration = Duration::from_secs(5);
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

/// Name of the device Lite's `POST /auth` hands out the key of.
pub const PRIMARY_DEVICE_NAME: &str = "default";
/// Plan of the first account on a fresh server (which is also an admin): a self-hoster is
/// never stopped by the hosted service's free tier.
pub const FIRST_ACCOUNT_PLAN: &str = "enterprise";

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

/// Bytes the user's data takes in the plan's storage quota (config backups + logs + KV).
///
/// Merge note: the config-backup and daemon-log terms come with the branch that adds backups
/// and logs (another engineer's work, in parallel); this branch has only the KV term, so this
/// function is the KV part of theirs.
pub fn storage_used(c: &Connection, user_id: i64) -> ApiResult<i64> {
    Ok(kv::user_bytes(c, user_id)?)
}

/// Refuses `adding` more bytes beyond the plan's `storage_quota_bytes` (run inside the write
/// job that adds them). Errors: 403 `QUOTA_EXCEEDED` (`storage`).
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
