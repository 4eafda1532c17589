//! Leases and give-back (docs/tasks.md): an attempt whose daemon goes silent is given
//! back by the janitor when its lease (timeout + `lease_grace`) expires — pending again while
//! retries remain, then `timeout` — and results of attempts that no longer hold the task are
//! 409 `STALE_ATTEMPT`; a heartbeat that stops listing a task gives it back only once the task
//! was held longer than one heartbeat interval; `POST /v1/daemon/offline` gives everything
//! back; and a device that stops heartbeating is marked offline after three intervals.
//!
//! The servers here run with a 1 s lease grace and a 200 ms janitor so leases expire quickly.

use crate::common::{TestServer, assert_v1_error, assert_v1_ok};
use crate::queue_util::*;
use serde_json::{Value, json};
use std::thread::sleep;
use std::time::{Duration, Instant};

fn fast() -> TestServer {
    TestServer::start_with(|cfg| {
        cfg.lease_grace = Duration::from_secs(1);
        cfg.janitor_interval = Duration::from_millis(200);
    })
}

fn wait_for_status(s: &TestServer, token: &str, id: &str, status: &str) -> Value {
    eventually(
        &format!("task {id} becomes {status}"),
        Duration::from_secs(10),
        || {
            let t = task(s, token, id);
            (t["status"] == json!(status)).then_some(t)
        },
    )
}

#[test]
fn an_expired_lease_is_retried_then_times_out_and_late_results_are_stale() {
    let s = fast();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "box");
    let body = json!({"device_id": dev, "command": "hang", "timeout": 1000, "max_retries": 1});
    let id = queue(&s, &token, body);
    let p = pending(&s, &key, "limit=1");
    assert_eq!(
        (ids(&p, "tasks"), p["tasks"][0]["attempt"].clone()),
        (vec![id.clone()], json!(1))
    );
    assert_eq!(task(&s, &token, &id)["status"], json!("running"));

    let t = wait_for_status(&s, &token, &id, "pending");
    assert_eq!(
        (t["retry_count"].clone(), t["attempt"].clone()),
        (json!(1), json!(1)),
        "{t}"
    );
    let early = report(&s, &key, &id, json!({"exit_code": 0, "stdout": "too late"}));
    assert_v1_error(&early, 409, "STALE_ATTEMPT");
    let p = pending(&s, &key, "limit=1");
    assert_eq!(
        (ids(&p, "tasks"), p["tasks"][0]["attempt"].clone()),
        (vec![id.clone()], json!(2))
    );
    let stale = report(
        &s,
        &key,
        &id,
        json!({"exit_code": 0, "stdout": "one", "attempt": 1}),
    );
    assert_v1_error(&stale, 409, "STALE_ATTEMPT");
    let t = task(&s, &token, &id);
    assert_eq!(
        (t["status"].clone(), t["stdout"].clone()),
        (json!("running"), Value::Null),
        "{t}"
    );

    let t = wait_for_status(&s, &token, &id, "timeout");
    assert_eq!(t["retry_count"], json!(1));
    assert!(
        t["completed_at"].is_string() && t["lease_expires_at"].is_null(),
        "{t}"
    );
    let late = report(
        &s,
        &key,
        &id,
        json!({"exit_code": 0, "stdout": "two", "attempt": 2}),
    );
    assert_eq!(
        (late.status, late.body["success"].clone()),
        (409, json!(false)),
        "{}",
        late.text
    );
    let after = task(&s, &token, &id);
    assert_eq!(
        (after["status"].clone(), after["stdout"].clone()),
        (json!("timeout"), Value::Null)
    );
    assert_eq!(pending(&s, &key, "limit=5")["count"], json!(0));
}

#[test]
fn a_heartbeat_gives_back_tasks_it_stops_listing_after_one_interval() {
    let s = fast();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "box");
    set_config(&s, &token, &dev, json!({"heartbeat_interval": 5}));
    let kept = queue_cmd(&s, &token, &dev, "echo kept");
    let dropped = queue_cmd(&s, &token, &dev, "echo dropped");
    assert_eq!(pending(&s, &key, "limit=5")["count"], json!(2));
    let claimed_at = Instant::now();
    heartbeat(&s, &key, json!({"status": "online", "current_tasks": []}));
    for id in [&kept, &dropped] {
        assert_eq!(
            task(&s, &token, id)["status"],
            json!("running"),
            "just claimed: kept"
        );
    }
    sleep(Duration::from_millis(5_600).saturating_sub(claimed_at.elapsed()));
    heartbeat(&s, &key, json!({"status": "online"}));
    assert_eq!(
        task(&s, &token, &dropped)["status"],
        json!("running"),
        "no list, no give-back"
    );
    let hb = heartbeat(
        &s,
        &key,
        json!({"status": "online", "current_tasks": [kept]}),
    );
    assert_eq!(hb["pending_count"], json!(1), "{hb}");
    assert_eq!(task(&s, &token, &kept)["status"], json!("running"));
    let t = task(&s, &token, &dropped);
    assert_eq!(
        (t["status"].clone(), t["retry_count"].clone()),
        (json!("pending"), json!(1))
    );
    let p = pending(&s, &key, "limit=5");
    assert_eq!(
        (ids(&p, "tasks"), p["tasks"][0]["attempt"].clone()),
        (vec![dropped], json!(2))
    );
}

#[test]
fn going_offline_gives_running_tasks_back() {
    let s = fast();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "box");
    let id = queue_cmd(&s, &token, &dev, "make");
    assert_eq!(ids(&pending(&s, &key, "limit=5"), "tasks"), [id.as_str()]);
    let r = s.post_json("/v1/daemon/offline", Some(&key), json!({}));
    assert_eq!(assert_v1_ok(&r, 200)["device_status"], json!("offline"));
    let t = task(&s, &token, &id);
    assert_eq!(
        (t["status"].clone(), t["retry_count"].clone()),
        (json!("pending"), json!(1))
    );
    let d = assert_v1_ok(&s.get(&format!("/v1/devices/{dev}"), Some(&token)), 200);
    assert_eq!(
        (
            d["device"]["status"].clone(),
            d["device"]["current_tasks"].clone()
        ),
        (json!("offline"), json!(0))
    );
    let old = report(&s, &key, &id, json!({"exit_code": 0}));
    assert_v1_error(&old, 409, "STALE_ATTEMPT");
    let p = pending(&s, &key, "limit=5");
    assert_eq!(
        (ids(&p, "tasks"), p["tasks"][0]["attempt"].clone()),
        (vec![id], json!(2))
    );
}

#[test]
fn a_silent_device_goes_offline_after_three_intervals() {
    let s = fast();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "box");
    set_config(&s, &token, &dev, json!({"heartbeat_interval": 5}));
    let hb = heartbeat(&s, &key, json!({"status": "online"}));
    let beat = Instant::now();
    assert_eq!(
        (
            hb["device_status"].clone(),
            hb["config"]["heartbeat_interval"].clone()
        ),
        (json!("online"), json!(5))
    );
    let status = || {
        let d = assert_v1_ok(&s.get(&format!("/v1/devices/{dev}"), Some(&token)), 200);
        d["device"]["status"].clone()
    };
    sleep(Duration::from_secs(10));
    assert_eq!(
        status(),
        json!("online"),
        "two intervals of silence are tolerated"
    );
    eventually("the device goes offline", Duration::from_secs(12), || {
        (status() == json!("offline")).then_some(())
    });
    assert!(
        beat.elapsed() >= Duration::from_millis(14_500),
        "offline after {:?}",
        beat.elapsed()
    );
    let hb = heartbeat(&s, &key, json!({"status": "online"}));
    assert_eq!(hb["device_status"], json!("online"));
    assert_eq!(status(), json!("online"));
}
