//! Statistics (README "Backups, logs and statistics"): how many tasks finished and how, how long
//! they ran, per UTC day, how long the devices were online, and what is online and stored now.
//!
//! Definitions, over a period of 24 h, 7, 30 or 90 days ending now:
//! * a task counts on the UTC day of its `completed_at` when that is inside the period:
//!   `completed` is status completed, `failed` is failed or timeout, `cancelled` the rest;
//! * execution time is Σ (completed_at − started_at) of those that started;
//! * the daily breakdown lists every UTC day the period touches, oldest first, zeros included;
//! * uptime is Σ online seconds (`device_uptime`) of the UTC days the period touches, in hours;
//! * devices online and storage used are as they stand now.
//!
//! A device's statistics count the tasks it ran (it held their last attempt), its own uptime and
//! the bytes of its backups and logs.

use crate::db::stats::{self, DayRow};

use crate::domain::Cx;
use crate::domain::policy::{self, DEFAULT_STATS_PERIOD, STATS_PERIODS};
use crate::error::{ApiError, ApiResult};
use crate::time;
use schemars::JsonSchema;
use serde::Serialize;
use std::time::{Duration, SystemTime};

/// A period ending now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub name: &'static str,
    pub length: Duration,
}

impl Period {
    /// Parses `24h`, `7d`, `30d` or `90d` (`None`: the default, 7d). Errors: 422.
    pub fn parse(s: Option<&str>) -> ApiResult<Period> {
        let want = s
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_STATS_PERIOD);
        STATS_PERIODS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(want))
            .map(|&(name, length)| Period { name, length })
            .ok_or_else(|| ApiError::invalid("period", "one of 24h, 7d, 30d, 90d"))
    }
}

/// One UTC day of the breakdown.
#[derive(Serialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct Day {
    /// `2026-01-20`.
    pub date: String,
    /// Tasks that finished that day, whatever their final state.
    pub count: i64,
    pub completed: i64,
    /// Failed or timed out.
    pub failed: i64,
}

/// What a period's statistics say (a user's, or one device's).
#[derive(Serialize, JsonSchema, Clone, Debug)]
pub struct Summary {
    /// `24h`, `7d`, `30d` or `90d`.
    pub period: &'static str,
    /// The period's start and end (RFC 3339 UTC).
    pub since: String,
    pub until: String,
    pub tasks_completed: i64,
    /// Failed or timed out.
    pub tasks_failed: i64,
    pub tasks_cancelled: i64,
    /// Σ (completed_at − started_at), in whole seconds (rounded).
    pub total_execution_time: i64,
    /// The same in milliseconds.
    pub total_execution_time_ms: i64,
    /// Devices not offline now.
    pub devices_online: i64,
    /// Bytes stored now: config backups, daemon logs and KV entries (`policy::storage_used`).
    pub storage_used: i64,
    /// The plan's storage quota in bytes (`null`: unlimited); for a device, its owner's.
    pub storage_quota: Option<i64>,
    /// Online time of the UTC days the period touches, in hours (two decimals).
    pub uptime_hours: f64,
    /// Every UTC day the period touches, oldest first.
    pub daily_breakdown: Vec<Day>,
}

/// The UTC days from `since`'s to `until`'s, oldest first.
fn days(since: SystemTime, until: SystemTime) -> Vec<String> {
    let last = time::day(&time::fmt(until)).to_string();
    let mut out = Vec::new();
    let mut t = since;
    loop {
        let d = time::day(&time::fmt(t)).to_string();
        if d > last {
            break;
        }
        if out.last() != Some(&d) {
            out.push(d);
        }
        t += Duration::from_secs(86_400);
    }
    if out.last() != Some(&last) {
        out.push(last);
    }
    out
}

/// Builds a summary from the rows of the finished-task query and the other figures.
fn build(
    p: Period,
    since: SystemTime,
    until: SystemTime,
    rows: Vec<DayRow>,
    online_seconds: i64,
) -> Summary {
    let mut by_day = rows.into_iter().peekable();
    let mut s = Summary {
        period: p.name,
        since: time::fmt(since),
        until: time::fmt(until),
        tasks_completed: 0,
        tasks_failed: 0,
        tasks_cancelled: 0,
        total_execution_time: 0,
        total_execution_time_ms: 0,
        devices_online: 0,
        storage_used: 0,
        storage_quota: None,
        uptime_hours: (online_seconds as f64 / 36.0).round() / 100.0,
        daily_breakdown: Vec::new(),
    };
    for date in days(since, until) {
        let row = match by_day.peek() {
            Some(r) if r.day == date => by_day.next().unwrap_or_default(),
            _ => DayRow::default(),
        };
        s.tasks_completed += row.completed;
        s.tasks_failed += row.failed;
        s.tasks_cancelled += row.cancelled;
        s.total_execution_time_ms += row.run_ms;
        s.daily_breakdown.push(Day {
            date,
            count: row.count,
            completed: row.completed,
            failed: row.failed,
        });
    }
    s.total_execution_time = (s.total_execution_time_ms + 500) / 1000;
    s
}

/// The period's bounds: (since, until = now by the services' clock).
fn bounds(cx: &Cx, p: Period) -> (SystemTime, SystemTime) {
    let now = cx.svc.clock.now();
    (
        now.checked_sub(p.length).unwrap_or(SystemTime::UNIX_EPOCH),
        now,
    )
}

/// A user's statistics over `p`.
pub fn summary(cx: &Cx, user_id: i64, p: Period) -> ApiResult<Summary> {
    let (since, until) = bounds(cx, p);
    let since_s = time::fmt(since);
    let rows = stats::finished_by_day(cx.reader, user_id, &since_s, None)?;
    let online = stats::online_seconds(cx.reader, user_id, time::day(&since_s), None)?;
    let mut s = build(p, since, until, rows, online);
    s.devices_online = stats::devices_online(cx.reader, user_id)?;
    s.storage_used = policy::storage_used(cx.reader, user_id)?;
    s.storage_quota = crate::db::users::limits(cx.reader, user_id)?.storage_quota_bytes;
    Ok(s)
}

/// One device's statistics over `p`, with the device's public id, name and status.
#[derive(Serialize, JsonSchema, Clone, Debug)]
pub struct DeviceSummary {
    pub device_id: String,
    pub name: String,
    pub status: crate::db::devices::DeviceStatus,
    #[serde(flatten)]
    pub summary: Summary,
}

/// Statistics of the user's device with this public id. Errors: 404.
pub fn device(cx: &Cx, user_id: i64, uuid: &str, p: Period) -> ApiResult<DeviceSummary> {
    let d = crate::domain::devices::get(cx, user_id, uuid)?;
    let (since, until) = bounds(cx, p);
    let since_s = time::fmt(since);
    let rows = stats::finished_by_day(cx.reader, user_id, &since_s, Some(d.id))?;
    let online = stats::online_seconds(cx.reader, user_id, time::day(&since_s), Some(d.id))?;
    let mut s = build(p, since, until, rows, online);
    s.devices_online = i64::from(d.status != crate::db::devices::DeviceStatus::Offline);
    s.storage_used = policy::device_storage_used(cx.reader, d.id)?;
    s.storage_quota = crate::db::users::limits(cx.reader, user_id)?.storage_quota_bytes;
    Ok(DeviceSummary {
        device_id: d.uuid,
        name: d.name,
        status: d.status,
        summary: s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        time::parse(s).expect("a time")
    }

    #[test]
    fn the_breakdown_lists_every_day_the_period_touches() {
        let d = days(at("2026-01-20T10:00:00Z"), at("2026-01-21T10:00:00Z"));
        assert_eq!(d, ["2026-01-20", "2026-01-21"]);
        let d = days(at("2026-01-13T00:00:00Z"), at("2026-01-20T00:00:00Z"));
        assert_eq!(d.len(), 8);
        assert_eq!((d[0].as_str(), d[7].as_str()), ("2026-01-13", "2026-01-20"));
    }

    #[test]
    fn totals_add_up_the_days() {
        let p = Period::parse(Some("24h")).expect("24h");
        let rows = vec![DayRow {
            day: "2026-01-21".into(),
            count: 3,
            completed: 1,
            failed: 1,
            cancelled: 1,
            run_ms: 2500,
        }];
        let s = build(
            p,
            at("2026-01-20T10:00:00Z"),
            at("2026-01-21T10:00:00Z"),
            rows,
            5400,
        );
        assert_eq!(
            (s.tasks_completed, s.tasks_failed, s.tasks_cancelled),
            (1, 1, 1)
        );
        assert_eq!(
            (s.total_execution_time, s.total_execution_time_ms),
            (3, 2500)
        );
        assert_eq!(s.uptime_hours, 1.5);
        assert_eq!(s.daily_breakdown[0].count, 0);
        assert_eq!(s.daily_breakdown[1].count, 3);
        assert!(Period::parse(Some("1y")).is_err());
        assert_eq!(Period::parse(None).expect("default").name, "7d");
    }
}
