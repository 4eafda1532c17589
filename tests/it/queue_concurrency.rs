//! Claims under contention (docs/tasks.md, docs/limits.md shape claims): twenty pollers, each with its own client,
//! drain two hundred tasks from one device while reporting results to free the plan's ten
//! running slots, and every task is delivered exactly once; cancelled tasks never are; and a
//! device key that was rotated away or whose device was deleted is refused (401) at its next
//! poll and heartbeat.

use crate::common::{TestServer, assert_v1_error, assert_v1_ok};
use crate::queue_util::*;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const TASKS: usize = 200;
const POLLERS: usize = 20;

/// Queues `n` tasks for `device` (none = any device) in parallel batches of at most 100;
/// returns their ids.
fn queue_many(s: &TestServer, token: &str, device: Option<&str>, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let k = (n - out.len()).min(100);
        let tasks: Vec<Value> = (0..k)
            .map(|i| json!({"device_id": device, "command": format!("echo {}", out.len() + i)}))
            .collect();
        let r = s.post_json(
            "/v1/tasks/batch",
            Some(token),
            json!({"mode": "parallel", "tasks": tasks}),
        );
        let d = assert_v1_ok(&r, 201);
        out.extend(ids(&d, "tasks"));
    }
    out
}

/// Runs `POLLERS` threads, each with its own client and the device key `keys[i % len]`, that
/// poll `limit=10` and report a result for every task they get until `expect` results were
/// reported. Returns every id handed out (with repeats) and the most tasks held at once as the
/// pollers saw it (counted after a claim answers, uncounted before its result is sent, so never
/// more than the server counted as running).
fn drain(s: &TestServer, keys: &[String], expect: usize) -> (Vec<String>, usize) {
    let claimed = Mutex::new(Vec::<String>::new());
    let (done, held, max_held) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    thread::scope(|scope| {
        for i in 0..POLLERS {
            let (key, claimed, done, held, max_held) =
                (&keys[i % keys.len()], &claimed, &done, &held, &max_held);
            scope.spawn(move || {
                let c = Client::new(s);
                while done.load(Ordering::SeqCst) < expect && Instant::now() < deadline {
                    let r = c.bearer("GET", "/v1/daemon/tasks/pending?limit=10", key, None);
                    let got = ids(&assert_v1_ok(&r, 200), "tasks");
                    if got.is_empty() {
                        thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    claimed.lock().expect("lock").extend(got.iter().cloned());
                    let now = held.fetch_add(got.len(), Ordering::SeqCst) + got.len();
                    max_held.fetch_max(now, Ordering::SeqCst);
                    for id in got {
                        held.fetch_sub(1, Ordering::SeqCst);
                        let body = json!({"exit_code": 0, "stdout": id, "attempt": 1});
                        let path = format!("/v1/daemon/tasks/{id}/result");
                        let r = c.bearer("POST", &path, key, Some(&body));
                        assert_eq!(assert_v1_ok(&r, 200)["status"], json!("completed"));
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    (
        claimed.into_inner().expect("lock"),
        max_held.load(Ordering::SeqCst),
    )
}

/// Every id in `queued` was handed out exactly once and nothing else was; each completed on its
/// first attempt with the output its poller reported; at most 10 were held at once.
fn assert_exactly_once(
    s: &TestServer,
    token: &str,
    queued: &[String],
    claimed: &[String],
    max_held: usize,
) {
    let unique: HashSet<&String> = claimed.iter().collect();
    assert_eq!(unique.len(), claimed.len(), "a task was claimed twice");
    let expected: HashSet<&String> = queued.iter().collect();
    assert_eq!(unique, expected, "every queued task claimed, nothing else");
    assert!(
        max_held <= 10,
        "{max_held} held at once; the plan allows 10 running"
    );
    let done = assert_v1_ok(
        &s.get("/v1/tasks?status=completed&limit=200", Some(token)),
        200,
    );
    assert_eq!(done["count"], json!(queued.len()));
    for t in done["tasks"].as_array().expect("tasks") {
        assert_eq!((&t["attempt"], &t["stdout"]), (&json!(1), &t["id"]), "{t}");
    }
}

#[test]
fn twenty_pollers_claim_two_hundred_tasks_exactly_once() {
    let s = TestServer::start();
    let (token, _, _) = s.register("fleet@example.com");
    let (dev, key) = new_device(&s, &token, "worker");
    set_config(&s, &token, &dev, json!({"max_concurrent_tasks": 100}));
    let queued = queue_many(&s, &token, Some(&dev), TASKS);
    let doomed = queue_many(&s, &token, Some(&dev), 5);
    for id in &doomed {
        let r = s.post_json(&format!("/v1/tasks/{id}/cancel"), Some(&token), json!({}));
        assert_v1_ok(&r, 200);
    }
    let (claimed, max_held) = drain(&s, std::slice::from_ref(&key), TASKS);
    assert_exactly_once(&s, &token, &queued, &claimed, max_held);
    for id in &doomed {
        assert!(!claimed.contains(id), "cancelled task {id} was delivered");
        assert_eq!(task(&s, &token, id)["status"], json!("cancelled"));
    }
    assert_eq!(pending(&s, &key, "limit=50")["count"], json!(0));
}

#[test]
fn four_devices_share_device_less_tasks_exactly_once() {
    let s = TestServer::start();
    let (token, _, _) = s.register("fleet@example.com");
    let keys: Vec<String> = (0..4)
        .map(|i| new_device(&s, &token, &format!("w{i}")).1)
        .collect();
    let queued = queue_many(&s, &token, None, 100);
    let (claimed, max_held) = drain(&s, &keys, 100);
    assert_exactly_once(&s, &token, &queued, &claimed, max_held);
}

#[test]
fn concurrent_creates_with_one_idempotency_key_make_one_task() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let answers: Vec<(u16, String)> = thread::scope(|scope| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let (c, token) = (Client::new(&s), &token);
                scope.spawn(move || {
                    let auth = format!("Bearer {token}");
                    let h = [
                        ("Authorization", auth.as_str()),
                        ("Idempotency-Key", "nightly-build"),
                    ];
                    let r = c.call(
                        "POST",
                        "/v1/tasks",
                        &h,
                        Some(&json!({"command": format!("make {i}")})),
                    );
                    let id = r.body["data"]["task_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    (r.status, id)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let created = answers.iter().filter(|(st, _)| *st == 201).count();
    assert_eq!(created, 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|(st, id)| [200, 201].contains(st) && *id == answers[0].1),
        "{answers:?}"
    );
    assert_eq!(
        assert_v1_ok(&s.get("/v1/tasks", Some(&token)), 200)["count"],
        json!(1)
    );
}

#[test]
fn claims_stop_at_the_plans_running_limit_and_resume_on_results() {
    let s = TestServer::start();
    let (token, _, _) = s.register("fleet@example.com");
    let (dev, key) = new_device(&s, &token, "worker");
    set_config(&s, &token, &dev, json!({"max_concurrent_tasks": 100}));
    queue_many(&s, &token, Some(&dev), 15);
    let first = ids(&pending(&s, &key, "limit=50"), "tasks");
    assert_eq!(first.len(), 10, "enterprise runs 10 tasks at once");
    assert_eq!(pending(&s, &key, "limit=50")["count"], json!(0));
    assert_v1_ok(&report(&s, &key, &first[0], json!({"exit_code": 0})), 200);
    assert_eq!(pending(&s, &key, "limit=50")["count"], json!(1));
    set_config(&s, &token, &dev, json!({"max_concurrent_tasks": 3}));
    for id in &first[1..] {
        assert_v1_ok(&report(&s, &key, id, json!({"exit_code": 0})), 200);
    }
    assert_eq!(
        pending(&s, &key, "limit=50")["count"],
        json!(2),
        "the device allows 3"
    );
}

#[test]
fn a_rotated_key_is_refused_at_its_next_poll() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, old) = new_device(&s, &token, "box");
    assert_eq!(pending(&s, &old, "limit=5")["count"], json!(0));
    let r = s.post_json(
        &format!("/v1/devices/{dev}/rotate-key"),
        Some(&token),
        json!({}),
    );
    let d = assert_v1_ok(&r, 200);
    let new = d["device_key"].as_str().expect("device_key").to_string();
    assert_ne!(new, old);
    assert_eq!(d["device"]["id"], json!(dev));
    let id = queue_cmd(&s, &token, &dev, "whoami");
    let stale = s.get("/v1/daemon/tasks/pending?limit=5", Some(&old));
    assert_v1_error(&stale, 401, "UNAUTHORIZED");
    let hb = s.post_json(
        "/v1/daemon/heartbeat",
        Some(&old),
        json!({"status": "online"}),
    );
    assert_v1_error(&hb, 401, "UNAUTHORIZED");
    assert_eq!(task(&s, &token, &id)["status"], json!("pending"));
    assert_eq!(ids(&pending(&s, &new, "limit=5"), "tasks"), [id]);
}

#[test]
fn a_deleted_device_key_is_refused() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "box");
    let held = queue_cmd(&s, &token, &dev, "sleep 60");
    pending(&s, &key, "limit=1");
    let waiting = queue_cmd(&s, &token, &dev, "echo never");
    assert_v1_ok(&s.delete(&format!("/v1/devices/{dev}"), Some(&token)), 200);
    let r = s.get("/v1/daemon/tasks/pending?limit=5", Some(&key));
    assert_v1_error(&r, 401, "UNAUTHORIZED");
    let hb = s.post_json(
        "/v1/daemon/heartbeat",
        Some(&key),
        json!({"status": "online"}),
    );
    assert_v1_error(&hb, 401, "UNAUTHORIZED");
    let res = report(&s, &key, &held, json!({"exit_code": 0}));
    assert_v1_error(&res, 401, "UNAUTHORIZED");
    for id in [&held, &waiting] {
        let t = task(&s, &token, id);
        assert_eq!(
            (&t["status"], &t["device_id"]),
            (&json!("cancelled"), &Value::Null),
            "{t}"
        );
    }
}
