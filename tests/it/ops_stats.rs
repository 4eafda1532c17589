//! Statistics (README "Backups, logs and statistics") over a seeded history: tasks finished
//! across days and devices (and one outside the period, and another user's), uptime rows,
//! compared with a hand computation for the user's summary, one device's, and Lite's `/stats`;
//! periods other than 24h/7d/30d/90d are 422; another user's device is 404.

use crate::common::{TestServer, assert_lite_ok, assert_v1_error, assert_v1_ok};
use crate::ops_util::{db, device_row_id};
use crate::queue_util::{heartbeat, new_device};
use rusqlite::params;
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY: u64 = 86_400;

/// The start of today (UTC).
fn midnight() -> SystemTime {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(now - now % DAY)
}

fn stamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn day(t: SystemTime) -> String {
    stamp(t)[..10].to_string()
}

/// Noon `n` days before today: inside a 7-day period for 1 ≤ n ≤ 6 whatever the time now.
fn noon_days_ago(n: u64) -> SystemTime {
    midnight() - Duration::from_secs(n * DAY) + Duration::from_secs(DAY / 2)
}

#[test]
fn summaries_match_a_hand_computation_over_a_seeded_history() {
    let s = TestServer::start();
    let (token, _, user) = s.register("owner@example.com");
    let (dev_a, key_a) = new_device(&s, &token, "a");
    let (dev_b, _) = new_device(&s, &token, "b");
    let (other_token, _, other) = s.register("other@example.com");
    let (other_dev, _) = new_device(&s, &other_token, "theirs");
    let c = db(&s);
    let (a, b, x) = (
        device_row_id(&c, &dev_a),
        device_row_id(&c, &dev_b),
        device_row_id(&c, &other_dev),
    );
    // (user, device, status, days ago, ran for ms; None = never started)
    let history: [(i64, i64, &str, u64, Option<u64>); 9] = [
        (user, a, "completed", 1, Some(1_500)),
        (user, a, "completed", 1, Some(2_500)),
        (user, b, "failed", 1, Some(10_000)),
        (user, a, "timeout", 3, Some(300_000)),
        (user, b, "completed", 3, Some(4_000)),
        (user, a, "cancelled", 6, None),
        (user, a, "completed", 10, Some(99_000)),
        (other, x, "completed", 1, Some(7_000)),
        (other, x, "failed", 3, Some(1_000)),
    ];
    for (i, (u, d, status, ago, ran)) in history.iter().enumerate() {
        let end = noon_days_ago(*ago);
        let start = ran.map(|ms| stamp(end - Duration::from_millis(ms)));
        c.execute(
            "INSERT INTO tasks (id, user_id, device_id, claimed_by, command, status, started_at, \
             completed_at, created_at, updated_at) VALUES (?1, ?2, ?3, ?3, 'true', ?4, ?5, ?6, ?6, ?6)",
            params![format!("seed-{i}"), u, d, status, start, stamp(end)],
        )
        .expect("seed a task");
    }
    // Uptime: (device, days ago, seconds); 10 days ago is outside 7d.
    for (d, ago, secs) in [
        (a, 1, 3_600),
        (b, 1, 1_800),
        (a, 3, 7_200),
        (a, 10, 11_111),
        (x, 1, 500),
    ] {
        c.execute(
            "INSERT INTO device_uptime (device_id, day, online_seconds) VALUES (?1, ?2, ?3)",
            params![d, day(noon_days_ago(ago)), secs],
        )
        .expect("seed uptime");
    }
    heartbeat(&s, &key_a, json!({"status": "online"}));

    let sum = assert_v1_ok(&s.get("/v1/stats/summary?period=7d", Some(&token)), 200);
    // By hand: inside 7d, the user's tasks are the first six rows.
    assert_eq!(sum["period"], json!("7d"));
    assert_eq!(sum["tasks_completed"], json!(3));
    assert_eq!(sum["tasks_failed"], json!(2), "failed + timeout");
    assert_eq!(sum["tasks_cancelled"], json!(1));
    let ms = 1_500 + 2_500 + 10_000 + 300_000 + 4_000;
    assert_eq!(sum["total_execution_time_ms"], json!(ms));
    assert_eq!(sum["total_execution_time"], json!(318));
    assert_eq!(sum["uptime_hours"], json!(3.5), "(3600 + 1800 + 7200) s");
    assert_eq!(sum["devices_online"], json!(1));
    assert_eq!(sum["storage_used"], json!(0));
    let days = sum["daily_breakdown"].as_array().expect("days");
    assert_eq!(days.len(), 8, "every UTC day the 7 days touch: {days:?}");
    assert_eq!(days[7]["date"], json!(day(SystemTime::now())));
    let on = |ago: u64| {
        days.iter()
            .find(|d| d["date"] == json!(day(noon_days_ago(ago))))
            .cloned()
            .unwrap_or_else(|| panic!("no day {ago} in {days:?}"))
    };
    assert_eq!(
        on(1),
        json!({"date": day(noon_days_ago(1)), "count": 3, "completed": 2, "failed": 1})
    );
    assert_eq!(
        on(3),
        json!({"date": day(noon_days_ago(3)), "count": 2, "completed": 1, "failed": 1})
    );
    assert_eq!(
        on(6),
        json!({"date": day(noon_days_ago(6)), "count": 1, "completed": 0, "failed": 0})
    );
    assert_eq!(on(2)["count"], json!(0));
    let counted: i64 = days.iter().filter_map(|d| d["count"].as_i64()).sum();
    assert_eq!(counted, 6);

    // 30 days takes the 10-day-old task and uptime in too.
    let m = assert_v1_ok(&s.get("/v1/stats/summary?period=30d", Some(&token)), 200);
    assert_eq!(m["tasks_completed"], json!(4));
    assert_eq!(m["total_execution_time_ms"], json!(ms + 99_000));
    assert_eq!(
        m["uptime_hours"],
        json!(6.59),
        "(12600 + 11111) s / 3600, two decimals"
    );
    assert_eq!(m["daily_breakdown"].as_array().map(Vec::len), Some(31));
    // 24 hours: only what finished since this time yesterday.
    let h = assert_v1_ok(&s.get("/v1/stats/summary?period=24h", Some(&token)), 200);
    assert_eq!(h["daily_breakdown"].as_array().map(Vec::len), Some(2));

    // Device A alone: the tasks it ran and its own uptime.
    let d = assert_v1_ok(
        &s.get(&format!("/v1/stats/device/{dev_a}?period=7d"), Some(&token)),
        200,
    );
    assert_eq!(d["device_id"], json!(dev_a));
    assert_eq!(
        (d["tasks_completed"].clone(), d["tasks_failed"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(d["total_execution_time_ms"], json!(1_500 + 2_500 + 300_000));
    assert_eq!(d["uptime_hours"], json!(3.0));
    assert_eq!(d["devices_online"], json!(1));
    let d = assert_v1_ok(
        &s.get(&format!("/v1/stats/device/{dev_b}?period=7d"), Some(&token)),
        200,
    );
    assert_eq!(d["uptime_hours"], json!(0.5));
    assert_eq!(d["devices_online"], json!(0));

    // Lite: the device key sees its device; a session token the user.
    let r = s.call("GET", "/stats?period=7d", &[("X-Device-Key", &key_a)], None);
    assert_eq!(
        assert_lite_ok(&r),
        json!({"period": "7d", "tasks_completed": 2, "tasks_failed": 1, "uptime_hours": 3.0})
    );
    let auth = format!("Bearer {token}");
    let r = s.call("GET", "/stats", &[("Authorization", &auth)], None);
    assert_eq!(
        assert_lite_ok(&r)["tasks_completed"],
        json!(3),
        "7d by default"
    );

    // Errors: another user's device, a period that is not one of the four.
    assert_v1_error(
        &s.get(&format!("/v1/stats/device/{other_dev}"), Some(&token)),
        404,
        "NOT_FOUND",
    );
    assert_v1_error(
        &s.get("/v1/stats/summary?period=1y", Some(&token)),
        422,
        "VALIDATION_FAILED",
    );
    let theirs = assert_v1_ok(&s.get("/v1/stats/summary", Some(&other_token)), 200);
    assert_eq!(
        (
            theirs["tasks_completed"].clone(),
            theirs["tasks_failed"].clone()
        ),
        (json!(1), json!(1))
    );
    let (_, no_scope) = s.create_api_key(&token, &["task:read"]);
    assert_v1_error(
        &s.get("/v1/stats/summary", Some(&no_scope)),
        403,
        "INSUFFICIENT_SCOPE",
    );
}
