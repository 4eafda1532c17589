//! What heartbeats leave behind for an admin reading the SQLite file (docs/tasks.md): one
//! `device_online` / `device_offline` message per transition (not per heartbeat), and online
//! seconds per device and UTC day in `device_uptime`, written from memory by the flush thread
//! and at shutdown.

use crate::common::*;
use crate::queue_util::{heartbeat, new_device};
use serde_json::json;
use std::time::Duration;

fn beat(s: &TestServer, key: &str) {
    heartbeat(s, key, json!({"status": "online", "current_tasks": []}));
}

#[test]
fn transitions_are_recorded_once_and_uptime_accrues_per_day() {
    // No periodic flush during the test: what the coalesced heartbeats leave in the file can
    // only have been written by a status change or by the flush at shutdown.
    let mut s = TestServer::start_with(|c| c.heartbeat_flush_every = Duration::from_secs(3600));
    let (token, _, _) = s.register("beats@example.com");
    let (uuid, key) = new_device(&s, &token, "box");

    // Three heartbeats 1.2 s apart: one transition to online, about 2 s of uptime.
    beat(&s, &key);
    std::thread::sleep(Duration::from_millis(1200));
    beat(&s, &key);
    std::thread::sleep(Duration::from_millis(1200));
    beat(&s, &key);
    // Offline, then online again: one more of each.
    assert_v1_ok(
        &s.post_json("/v1/daemon/offline", Some(&key), json!({})),
        200,
    );
    beat(&s, &key);
    let dev = assert_v1_ok(&s.get(&format!("/v1/devices/{uuid}"), Some(&token)), 200);
    assert_eq!(dev["device"]["status"], json!("online"));
    assert_eq!(s.metric("ccjk_devices_online"), 1);
    // A heartbeat that changes nothing is only kept in memory ...
    let written_before_stop = dev["device"]["last_heartbeat_at"]
        .as_str()
        .expect("the status change wrote its time")
        .to_string();
    std::thread::sleep(Duration::from_millis(20));
    beat(&s, &key);
    let still = assert_v1_ok(&s.get(&format!("/v1/devices/{uuid}"), Some(&token)), 200);
    assert_eq!(
        still["device"]["last_heartbeat_at"].as_str(),
        Some(written_before_stop.as_str()),
        "a coalesced heartbeat is not written at once"
    );
    // ... until the shutdown flush.
    s.stop();

    let c = rusqlite::Connection::open(s.db_path()).expect("open the database");
    let count = |kind: &str| -> i64 {
        c.query_row(
            "SELECT count(*) FROM messages m JOIN devices d ON d.id = m.device_id \
             WHERE d.uuid = ?1 AND m.type = ?2",
            rusqlite::params![uuid, kind],
            |r| r.get(0),
        )
        .expect("count messages")
    };
    assert_eq!(count("device_online"), 2, "one per transition to online");
    assert_eq!(count("device_offline"), 1, "one per transition to offline");
    let (days, seconds): (i64, i64) = c
        .query_row(
            "SELECT count(*), coalesce(sum(online_seconds), 0) FROM device_uptime u \
             JOIN devices d ON d.id = u.device_id WHERE d.uuid = ?1",
            [&uuid],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("uptime");
    assert!(days >= 1, "uptime is kept per UTC day");
    assert!(
        (2..=4).contains(&seconds),
        "about 2.4 s online between the first three beats (the time offline does not count): {seconds}"
    );
    let last: String = c
        .query_row(
            "SELECT last_heartbeat_at FROM devices WHERE uuid = ?1",
            [&uuid],
            |r| r.get(0),
        )
        .expect("last heartbeat");
    assert!(
        last > written_before_stop,
        "the coalesced heartbeat after the last status change was written at shutdown: \
         {last} vs {written_before_stop}"
    );
}
