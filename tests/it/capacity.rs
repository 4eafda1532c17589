//! A poll parked at the plan's concurrency limit is woken as soon as a running slot is freed:
//! by a cancel, and also when the device or the session holding the running tasks is deleted
//! (docs/tasks.md "Cancel"). Before after-commit effects, the two deletions forgot to free the
//! slot and such a poll waited out its deadline.

use crate::common::*;
use crate::queue_util::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// A pro account (3 running tasks at once) where device `a` runs three tasks created with
/// `creator`'s token, and a fourth task waits for device `b`.
struct AtTheLimit {
    s: TestServer,
    token: String,
    a: String,
    key_b: String,
    running: Vec<String>,
    fourth: String,
}

fn at_the_limit(separate_session: bool) -> (AtTheLimit, Option<i64>) {
    let s = TestServer::start_with(|c| c.default_plan = "pro".into());
    s.register("admin@example.com");
    let (token, _, _) = s.register("pro@example.com");
    let (creator, session) = if separate_session {
        let n = assert_v1_ok(
            &s.post_json("/v1/sessions", Some(&token), json!({"name": "ci"})),
            201,
        );
        (
            n["token"].as_str().expect("token").to_string(),
            n["session"]["id"].as_i64(),
        )
    } else {
        (token.clone(), None)
    };
    let (a, key_a) = new_device(&s, &token, "a");
    let (b, key_b) = new_device(&s, &token, "b");
    for i in 0..3 {
        queue(
            &s,
            &creator,
            json!({"device_id": a, "command": format!("sleep {i}")}),
        );
    }
    let running = ids(&pending(&s, &key_a, "limit=5"), "tasks");
    assert_eq!(running.len(), 3);
    let fourth = queue(&s, &token, json!({"device_id": b, "command": "make"}));
    assert_no_tasks(&pending(&s, &key_b, "limit=5"));
    let t = AtTheLimit {
        s,
        token,
        a,
        key_b,
        running,
        fourth,
    };
    (t, session)
}

/// Parks device b's poll for up to 20 s, runs `free` once the poll is parked, and asserts that
/// the poll got the fourth task well before its deadline.
fn woken_by(t: &AtTheLimit, free: impl FnOnce()) {
    let c = Client::new(&t.s);
    let key = t.key_b.clone();
    let poll = std::thread::spawn(move || {
        let started = Instant::now();
        let r = c.bearer(
            "GET",
            "/v1/daemon/tasks/pending?limit=5&wait=20",
            &key,
            None,
        );
        (ids(&assert_v1_ok(&r, 200), "tasks"), started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    free();
    let (got, waited) = poll.join().expect("poll thread");
    assert_eq!(got, vec![t.fourth.clone()]);
    assert!(
        waited < Duration::from_secs(5),
        "the poll waited {waited:?}"
    );
}

#[test]
fn deleting_the_busy_device_wakes_a_poll_parked_at_the_plan_limit() {
    let (t, _) = at_the_limit(false);
    woken_by(&t, || {
        assert_v1_ok(
            &t.s.delete(&format!("/v1/devices/{}", t.a), Some(&t.token)),
            200,
        );
    });
}

#[test]
fn deleting_the_session_of_the_running_tasks_wakes_a_poll_parked_at_the_plan_limit() {
    let (t, session) = at_the_limit(true);
    let id = session.expect("a session");
    woken_by(&t, || {
        assert_v1_ok(
            &t.s.delete(&format!("/v1/sessions/{id}"), Some(&t.token)),
            200,
        );
    });
}

#[test]
fn cancelling_a_running_task_wakes_a_poll_parked_at_the_plan_limit() {
    let (t, _) = at_the_limit(false);
    let first = t.running[0].clone();
    woken_by(&t, || {
        let r = t.s.post_json(
            &format!("/v1/tasks/{first}/cancel"),
            Some(&t.token),
            json!({}),
        );
        assert_v1_ok(&r, 200);
    });
}
