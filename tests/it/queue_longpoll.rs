//! Long-polls (docs/tasks.md, README "Behind nginx or Caddy"): a poll with
//! `wait` is answered as soon as work for its device arrives (a queued task, a cancel of a task
//! it runs, a slot freed by a result), with an empty list when its wait runs out, and with 401
//! when its key was rotated meanwhile; parked polls leave the worker threads free, so a server
//! with two workers still answers `/health` and logins while six polls are parked.
//!
//! A poll cannot be observed parking from outside; the tests give it a moment (which only
//! matters for speed: work that arrives before the poll parks is claimed at once anyway, except
//! a cancel, which a poll reports only when it was requested while the poll waited).

use crate::common::{PASSWORD, TestServer, assert_v1_error, assert_v1_ok};
use crate::queue_util::*;
use serde_json::json;
use std::thread::{self, JoinHandle, sleep};
use std::time::{Duration, Instant};

/// Time given to a poll to reach the parking lot.
const SETTLE: Duration = Duration::from_millis(800);

/// Starts `GET /v1/daemon/tasks/pending?{query}` on a thread of its own; the handle yields the
/// response and how long it took.
fn poll_in_background(
    s: &TestServer,
    key: &str,
    query: &str,
) -> JoinHandle<(crate::common::Resp, Duration)> {
    let (c, key, path) = (
        Client::new(s),
        key.to_string(),
        format!("/v1/daemon/tasks/pending?{query}"),
    );
    let h = thread::spawn(move || {
        let t0 = Instant::now();
        let r = c.bearer("GET", &path, &key, None);
        (r, t0.elapsed())
    });
    sleep(SETTLE);
    h
}

#[test]
fn a_parked_poll_answers_as_soon_as_a_task_is_queued() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "box");
    let poll = poll_in_background(&s, &key, "limit=5&wait=30");
    let id = queue_cmd(&s, &token, &dev, "echo woke");
    let (r, took) = poll.join().expect("poll thread");
    let d = assert_v1_ok(&r, 200);
    assert_eq!(ids(&d, "tasks"), [id.as_str()]);
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    assert_eq!(task(&s, &token, &id)["status"], json!("running"));
}

/// A daemon whose connection dropped mid-poll polls again while its old request is still
/// parked: the work goes to the newer poll (the old one's socket may be dead, and a task handed
/// to it would wait for its lease to expire). Found by the fleet benchmark re-running its phase
/// against the same server: 131 of 400 tasks went to the first run's closed connections.
#[test]
fn work_goes_to_the_newest_parked_poll_of_a_device() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "box");
    let older = poll_in_background(&s, &key, "limit=5&wait=3");
    let newer = poll_in_background(&s, &key, "limit=5&wait=30");
    let id = queue_cmd(&s, &token, &dev, "echo newest");
    let (r, took) = newer.join().expect("newer poll");
    assert_eq!(ids(&assert_v1_ok(&r, 200), "tasks"), [id.as_str()]);
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    let (r, took) = older.join().expect("older poll");
    let d = assert_v1_ok(&r, 200);
    assert_no_tasks(&d);
    assert!(
        took >= Duration::from_millis(2900),
        "older answered after {took:?}"
    );
}

#[test]
fn an_empty_poll_waits_its_time_and_returns_nothing() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (_, key) = new_device(&s, &token, "box");
    let t0 = Instant::now();
    let d = pending(&s, &key, "limit=5&wait=1");
    let took = t0.elapsed();
    assert_no_tasks(&d);
    assert!(
        took >= Duration::from_millis(900),
        "returned after {took:?}"
    );
    assert!(took < Duration::from_secs(6), "returned after {took:?}");
    let bad = s.get("/v1/daemon/tasks/pending?wait=soon", Some(&key));
    assert_v1_error(&bad, 400, "BAD_REQUEST");
}

#[test]
fn a_parked_poll_is_woken_by_a_cancel_of_a_running_task() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "box");
    let id = queue_cmd(&s, &token, &dev, "sleep 600");
    assert_eq!(ids(&pending(&s, &key, "limit=5"), "tasks"), [id.as_str()]);
    let poll = poll_in_background(&s, &key, "limit=5&wait=30");
    let c = s.post_json(&format!("/v1/tasks/{id}/cancel"), Some(&token), json!({}));
    assert_v1_ok(&c, 200);
    let (r, took) = poll.join().expect("poll thread");
    let d = assert_v1_ok(&r, 200);
    assert_eq!(
        (d["tasks"].clone(), d["cancel_tasks"].clone()),
        (json!([]), json!([id]))
    );
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
}

#[test]
fn a_parked_poll_at_capacity_is_woken_when_a_result_frees_a_slot() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "box");
    set_config(&s, &token, &dev, json!({"max_concurrent_tasks": 1}));
    let first = queue_cmd(&s, &token, &dev, "echo first");
    let second = queue_cmd(&s, &token, &dev, "echo second");
    assert_eq!(
        ids(&pending(&s, &key, "limit=5"), "tasks"),
        [first.as_str()]
    );
    let poll = poll_in_background(&s, &key, "limit=5&wait=12");
    assert_v1_ok(&report(&s, &key, &first, json!({"exit_code": 0})), 200);
    let (r, took) = poll.join().expect("poll thread");
    assert_eq!(ids(&assert_v1_ok(&r, 200), "tasks"), [second]);
    assert!(
        took < Duration::from_secs(8),
        "the second task became claimable when the first finished, but the parked poll \
         only got it after {took:?}"
    );
}

#[test]
fn parked_polls_do_not_hold_workers() {
    let s = TestServer::start_with(|cfg| cfg.workers = 2);
    let (token, _, _) = s.register("owner@example.com");
    let (_, key) = new_device(&s, &token, "box");
    let polls: Vec<_> = (0..6)
        .map(|_| {
            let (c, key) = (Client::new(&s), key.clone());
            thread::spawn(move || {
                let t0 = Instant::now();
                let r = c.bearer("GET", "/v1/daemon/tasks/pending?wait=10", &key, None);
                (r, t0.elapsed())
            })
        })
        .collect();
    sleep(SETTLE);
    let t0 = Instant::now();
    let h = s.get("/health", None);
    assert_eq!(h.status, 200, "{}", h.text);
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "/health took {:?}",
        t0.elapsed()
    );
    let t0 = Instant::now();
    assert_v1_ok(&s.login("owner@example.com", PASSWORD), 200);
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "login took {:?}",
        t0.elapsed()
    );
    for p in polls {
        let (r, took) = p.join().expect("poll thread");
        assert_eq!(assert_v1_ok(&r, 200)["count"], json!(0));
        assert!(
            took >= Duration::from_secs(9),
            "a poll returned early: {took:?}"
        );
    }
}

#[test]
fn a_parked_poll_of_a_rotated_key_gets_401_not_new_work() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, old) = new_device(&s, &token, "box");
    let poll = poll_in_background(&s, &old, "limit=5&wait=30");
    let r = s.post_json(
        &format!("/v1/devices/{dev}/rotate-key"),
        Some(&token),
        json!({}),
    );
    let new = assert_v1_ok(&r, 200)["device_key"]
        .as_str()
        .expect("key")
        .to_string();
    let id = queue_cmd(&s, &token, &dev, "cat ~/.ssh/id_ed25519");
    let (r, took) = poll.join().expect("poll thread");
    assert_v1_error(&r, 401, "UNAUTHORIZED");
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    assert_eq!(task(&s, &token, &id)["status"], json!("pending"));
    assert_eq!(ids(&pending(&s, &new, "limit=5"), "tasks"), [id]);
}

#[test]
fn a_device_less_task_wakes_every_parked_device_and_goes_to_one() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (_, k1) = new_device(&s, &token, "one");
    let (_, k2) = new_device(&s, &token, "two");
    let polls = [
        poll_in_background(&s, &k1, "limit=5&wait=4"),
        poll_in_background(&s, &k2, "limit=5&wait=4"),
    ];
    let id = queue(&s, &token, json!({"command": "echo anywhere"}));
    let got: Vec<(Vec<String>, Duration)> = polls
        .into_iter()
        .map(|p| {
            let (r, took) = p.join().expect("poll thread");
            (ids(&assert_v1_ok(&r, 200), "tasks"), took)
        })
        .collect();
    let winners: Vec<_> = got.iter().filter(|(t, _)| !t.is_empty()).collect();
    assert_eq!(winners.len(), 1, "exactly one device gets it: {got:?}");
    assert_eq!(winners[0].0, [id]);
    assert!(
        winners[0].1 < Duration::from_millis(3_500),
        "answered after {:?}",
        winners[0].1
    );
    let loser = got
        .iter()
        .find(|(t, _)| t.is_empty())
        .expect("the other poll");
    assert!(
        loser.1 >= Duration::from_millis(3_500),
        "the other poll re-parked: {:?}",
        loser.1
    );
}
