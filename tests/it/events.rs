//! `GET /v1/events` (docs/events.md): an event for each state change of a task and a device,
//! `Last-Event-ID` resumes without a gap, `events.lost` past the buffer, isolation between
//! users, streams that end when their session is revoked, the per-user cap, pings, and the
//! credential in `?token=`.

use crate::common::{TestServer, assert_v1_ok};
use crate::queue_util::{heartbeat, new_device, pending, queue_cmd, report};
use crate::sse::{self, Opened};
use serde_json::{Value, json};
use std::time::Duration;

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn stream(s: &TestServer, token: &str) -> sse::Sse {
    let auth = bearer(token);
    sse::open(s.addr, "/v1/events", &[("Authorization", &auth)]).stream()
}

fn seq(id: &Option<String>) -> u64 {
    id.as_deref()
        .and_then(|i| i.rsplit_once('-'))
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or_else(|| panic!("not an event id: {id:?}"))
}

#[test]
fn every_state_change_of_a_task_and_a_device_is_an_event() {
    let s = TestServer::start();
    let (token, _, _) = s.register("ev@example.com");
    let (dev, key) = new_device(&s, &token, "laptop");
    let mut es = stream(&s, &token);

    let id = queue_cmd(&s, &token, &dev, "echo hello");
    let e = es.expect("task.created");
    assert_eq!(
        (
            &e.payload()["task_id"],
            &e.payload()["status"],
            &e.payload()["device_id"]
        ),
        (&json!(id), &json!("pending"), &json!(dev))
    );
    assert_eq!(e.payload()["command"], json!("echo hello"));

    heartbeat(&s, &key, json!({"status": "online", "current_tasks": []}));
    let on = es.expect("device.online");
    assert_eq!(
        (&on.payload()["device_id"], &on.payload()["status"]),
        (&json!(dev), &json!("online"))
    );
    let m = es.expect("message.new");
    assert_eq!(m.payload()["type"], json!("device_online"));
    assert!(m.payload()["message_id"].as_i64().is_some(), "{m:?}");

    pending(&s, &key, "limit=1");
    let claimed = es.expect("task.updated");
    assert_eq!(
        (&claimed.payload()["status"], &claimed.payload()["attempt"]),
        (&json!("running"), &json!(1))
    );

    let progress = |p: i64, out: &str| {
        let r = s.post_json(
            &format!("/v1/daemon/tasks/{id}/progress"),
            Some(&key),
            json!({"progress": p, "stdout": out}),
        );
        assert_v1_ok(&r, 200);
    };
    progress(40, "hel");
    let p1 = es.expect("task.updated");
    assert_eq!(
        (
            &p1.payload()["progress"],
            &p1.payload()["stdout"],
            &p1.payload()["stdout_reset"]
        ),
        (&json!(40), &json!("hel"), &json!(true)),
        "the first output replaces what a client shows"
    );
    progress(80, "hello\n");
    let p2 = es.expect("task.updated");
    assert_eq!(
        (&p2.payload()["stdout"], &p2.payload()["stdout_reset"]),
        (&json!("lo\n"), &json!(false)),
        "only the new tail of stdout travels"
    );

    let r = report(
        &s,
        &key,
        &id,
        json!({"status": "completed", "exit_code": 0, "stdout": "hello\n", "stderr": ""}),
    );
    assert_v1_ok(&r, 200);
    let done = es.expect("task.completed");
    assert_eq!(
        (
            &done.payload()["status"],
            &done.payload()["exit_code"],
            &done.payload()["stdout"]
        ),
        (&json!("completed"), &json!(0), &json!("hello\n"))
    );
    assert_eq!(
        es.expect("message.new").payload()["type"],
        json!("task_completed")
    );

    // A cancel is final: task.completed with status cancelled (and no message: the owner asked).
    let other = queue_cmd(&s, &token, &dev, "sleep 100");
    es.expect("task.created");
    let r = s.post_json(
        &format!("/v1/tasks/{other}/cancel"),
        Some(&token),
        json!({}),
    );
    assert_v1_ok(&r, 200);
    let c = es.expect("task.completed");
    assert_eq!(
        (&c.payload()["task_id"], &c.payload()["status"]),
        (&json!(other), &json!("cancelled"))
    );

    // Going offline requeues what the device holds (task.updated pending) and is device.offline.
    let third = queue_cmd(&s, &token, &dev, "make");
    es.expect("task.created");
    pending(&s, &key, "limit=1");
    es.expect("task.updated");
    let r = s.post_json("/v1/daemon/offline", Some(&key), json!({}));
    assert_v1_ok(&r, 200);
    let mut seen: Vec<(String, Value)> = Vec::new();
    for _ in 0..3 {
        let e = es.next("offline's events");
        seen.push((e.event.clone(), e.payload().clone()));
    }
    assert!(
        seen.iter()
            .any(|(k, p)| k == "device.offline" && p["device_id"] == json!(dev)),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|(k, p)| k == "task.updated"
            && p["task_id"] == json!(third)
            && p["status"] == json!("pending")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|(k, p)| k == "message.new" && p["type"] == json!("device_offline")),
        "{seen:?}"
    );

    // A retry is a new task.
    let r = s.post_json(&format!("/v1/tasks/{id}/retry"), Some(&token), json!({}));
    let retried = assert_v1_ok(&r, 201)["task_id"].clone();
    let e = es.expect("task.created");
    assert_eq!(
        (&e.payload()["task_id"], &e.payload()["parent_task_id"]),
        (&retried, &json!(id))
    );
}

#[test]
fn a_write_that_fails_publishes_nothing() {
    let s = TestServer::start();
    let (token, _, _) = s.register("rollback@example.com");
    let (dev, _) = new_device(&s, &token, "d");
    let mut es = stream(&s, &token);
    // Refused inside its write job: a command for a device that is not the caller's, a bad
    // priority, a batch whose second task is invalid (the first was valid: nothing of it stays).
    let r = s.post_json(
        "/v1/tasks/batch",
        Some(&token),
        json!({"tasks": [{"device_id": dev, "command": "ok"}, {"device_id": dev, "command": ""}]}),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    let r = s.post_json(
        "/v1/tasks",
        Some(&token),
        json!({"device_id": "00000000-0000-0000-0000-000000000000", "command": "x"}),
    );
    assert_eq!(r.status, 404, "{}", r.text);
    let marker = queue_cmd(&s, &token, &dev, "marker");
    let e = es.expect("task.created");
    assert_eq!(
        e.payload()["task_id"],
        json!(marker),
        "nothing came before it"
    );
}

#[test]
fn a_resume_with_last_event_id_has_no_gap_and_no_repeat() {
    let s = TestServer::start();
    let (token, _, _) = s.register("resume@example.com");
    let (dev, _) = new_device(&s, &token, "d");
    let mut first = stream(&s, &token);
    let a = queue_cmd(&s, &token, &dev, "a");
    let seen = first.expect("task.created");
    assert_eq!(seen.payload()["task_id"], json!(a));
    drop(first);
    let mut missed = Vec::new();
    for c in ["b", "c", "d"] {
        missed.push(queue_cmd(&s, &token, &dev, c));
    }
    let auth = bearer(&token);
    let last = seen.id.clone().expect("an id");
    let mut es = sse::open(
        s.addr,
        "/v1/events",
        &[("Authorization", &auth), ("Last-Event-ID", &last)],
    )
    .stream();
    let mut prev = seq(&seen.id);
    for want in &missed {
        let e = es.expect("task.created");
        assert_eq!(&e.payload()["task_id"], &json!(want), "in order");
        assert!(seq(&e.id) > prev, "ids increase");
        prev = seq(&e.id);
    }
    // Then live ones, without a repeat.
    let live = queue_cmd(&s, &token, &dev, "e");
    assert_eq!(es.expect("task.created").payload()["task_id"], json!(live));
    // The query parameter resumes the same way (for a first connection of a reloaded page).
    let path = format!("/v1/events?last_event_id={last}");
    let mut q = sse::open(s.addr, &path, &[("Authorization", &auth)]).stream();
    assert_eq!(
        q.expect("task.created").payload()["task_id"],
        json!(missed[0])
    );
}

#[test]
fn a_resume_from_past_the_buffer_gets_events_lost_first() {
    let s = TestServer::start_with(|c| c.event_buffer_frames = 4);
    let (token, _, _) = s.register("lost@example.com");
    let (dev, _) = new_device(&s, &token, "d");
    let mut first = stream(&s, &token);
    queue_cmd(&s, &token, &dev, "first");
    let last = first.expect("task.created").id.expect("an id");
    drop(first);
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(queue_cmd(&s, &token, &dev, &format!("t{i}")));
    }
    let auth = bearer(&token);
    let mut es = sse::open(
        s.addr,
        "/v1/events",
        &[("Authorization", &auth), ("Last-Event-ID", &last)],
    )
    .stream();
    let lost = es.expect("events.lost");
    assert_eq!(lost.payload()["last_event_id"], json!(last));
    assert_eq!(lost.payload()["reason"], json!("buffer"));
    // Then what the buffer still holds: the last four, in order.
    for want in &ids[4..] {
        assert_eq!(es.expect("task.created").payload()["task_id"], json!(want));
    }
    // Resuming from the lost event's id is complete: no second events.lost.
    let mut again = sse::open(
        s.addr,
        "/v1/events",
        &[
            ("Authorization", &auth),
            ("Last-Event-ID", lost.id.as_deref().expect("lost has an id")),
        ],
    )
    .stream();
    assert_eq!(
        again.expect("task.created").payload()["task_id"],
        json!(ids[4])
    );
    // An id from another process is a gap too.
    let mut other = sse::open(
        s.addr,
        "/v1/events",
        &[("Authorization", &auth), ("Last-Event-ID", "deadbeef-3")],
    )
    .stream();
    assert_eq!(
        other.expect("events.lost").payload()["reason"],
        json!("restart")
    );
}

#[test]
fn another_users_events_never_arrive() {
    let s = TestServer::start();
    let (alice, _, _) = s.register("alice@example.com");
    let (bob, _, _) = s.register("bob@example.com");
    let (a_dev, _) = new_device(&s, &alice, "a");
    let (b_dev, b_key) = new_device(&s, &bob, "b");
    let mut es = stream(&s, &alice);
    // Bob's whole story: a task created, claimed, reported; his device online and offline.
    let t = queue_cmd(&s, &bob, &b_dev, "secret");
    heartbeat(&s, &b_key, json!({"status": "online"}));
    pending(&s, &b_key, "limit=1");
    assert_v1_ok(
        &report(&s, &b_key, &t, json!({"exit_code": 0, "stdout": "bob's"})),
        200,
    );
    assert_v1_ok(
        &s.post_json("/v1/daemon/offline", Some(&b_key), json!({})),
        200,
    );
    // Alice's own event is the first she hears.
    let mine = queue_cmd(&s, &alice, &a_dev, "mine");
    let e = es.expect("task.created");
    assert_eq!(e.payload()["task_id"], json!(mine));
    assert!(
        es.next_within(Duration::from_millis(300)).is_none(),
        "nothing else"
    );
    assert!(es.is_open(), "silence, not an ended stream");
    // Bob's id as Last-Event-ID does not replay his events either.
    let mut bs = stream(&s, &bob);
    let b2 = queue_cmd(&s, &bob, &b_dev, "x");
    bs.expect("task.created");
    let auth = bearer(&alice);
    let mut replay = sse::open(
        s.addr,
        "/v1/events",
        &[("Authorization", &auth), ("Last-Event-ID", "x-0")],
    )
    .stream();
    replay.expect("events.lost");
    let e = replay.expect("task.created");
    assert_eq!(
        e.payload()["task_id"],
        json!(mine),
        "only Alice's: not {b2}"
    );
    assert!(replay.next_within(Duration::from_millis(300)).is_none());
    assert!(replay.is_open(), "silence, not an ended stream");
}

#[test]
fn a_stream_ends_when_its_session_is_revoked() {
    let s = TestServer::start();
    let (token, _, _) = s.register("revoke@example.com");
    let r = s.post_json("/v1/sessions", Some(&token), json!({"name": "tab"}));
    let d = assert_v1_ok(&r, 201);
    let (other, other_id) = (
        d["token"].as_str().expect("token").to_string(),
        d["session"]["id"].as_i64().expect("id"),
    );
    let mut es = stream(&s, &other);
    let mut keeps = stream(&s, &token);
    let r = s.delete(&format!("/v1/sessions/{other_id}"), Some(&token));
    assert_v1_ok(&r, 200);
    assert!(
        es.ends_within(Duration::from_secs(3)),
        "the revoked session's stream ended"
    );
    // The stream of the session that is still live goes on.
    let (dev, _) = new_device(&s, &token, "d");
    queue_cmd(&s, &token, &dev, "x");
    keeps.expect("task.created");
    // Logout ends its own stream too, and the revoked token cannot open a new one.
    let r = s.post_json("/v1/auth/logout", Some(&token), json!({}));
    assert_v1_ok(&r, 200);
    assert!(keeps.ends_within(Duration::from_secs(3)));
    let auth = bearer(&other);
    match sse::open(s.addr, "/v1/events", &[("Authorization", &auth)]) {
        Opened::Refused(status, _) => assert_eq!(status, 401),
        Opened::Stream(_) => panic!("a revoked token opened a stream"),
    }
}

#[test]
fn a_revoked_api_key_stream_ends_at_the_ping_check_too() {
    let s = TestServer::start_with(|c| c.event_ping = Duration::from_millis(300));
    let (token, _, _) = s.register("ping@example.com");
    let (key_id, key) = s.create_api_key(&token, &["task:read"]);
    let mut es = stream(&s, &key);
    assert!(es.pinged_within(Duration::from_secs(3)), "a comment ping");
    // Revoked by another process (the admin's CLI): no effect reaches this server, the next
    // ping's check ends the stream.
    let db = ccjk_cloud::db::Db::open(&s.db_path(), ccjk_cloud::config::Synchronous::Full)
        .expect("open db");
    db.write(move |tx| {
        Ok(tx.execute(
            "UPDATE api_keys SET revoked_at = '2026-01-01T00:00:00.000Z' WHERE id = ?1",
            [key_id],
        )?)
    })
    .expect("revoke");
    assert!(es.ends_within(Duration::from_secs(3)));
}

#[test]
fn scopes_and_credentials_of_a_stream() {
    let s = TestServer::start_with(|c| c.event_streams_per_user = 2);
    let (token, _, _) = s.register("cap@example.com");
    // A key without task:read cannot open one; a device key neither.
    let (_, narrow) = s.create_api_key(&token, &["device:read"]);
    let auth = bearer(&narrow);
    match sse::open(s.addr, "/v1/events", &[("Authorization", &auth)]) {
        Opened::Refused(st, body) => assert_eq!(st, 403, "{body}"),
        Opened::Stream(_) => panic!("no task:read"),
    }
    let (dev, key) = new_device(&s, &token, "d");
    let dauth = bearer(&key);
    match sse::open(s.addr, "/v1/events", &[("Authorization", &dauth)]) {
        Opened::Refused(st, _) => assert_eq!(st, 401),
        Opened::Stream(_) => panic!("a device key opened a stream"),
    }
    // ?token= works (EventSource cannot send headers); a task:read key hears task events only.
    let (_, tasks_only) = s.create_api_key(&token, &["task:read"]);
    let mut es = sse::open(s.addr, &format!("/v1/events?token={tasks_only}"), &[]).stream();
    heartbeat(&s, &key, json!({"status": "online"}));
    let t = queue_cmd(&s, &token, &dev, "x");
    let e = es.expect("task.created");
    assert_eq!(
        e.payload()["task_id"],
        json!(t),
        "device.online and message.new were not heard"
    );
    // The cap: two open, the third is 429.
    let _second = stream(&s, &token);
    match sse::open(s.addr, "/v1/events", &[("Authorization", &bearer(&token))]) {
        Opened::Refused(st, body) => {
            assert_eq!(st, 429, "{body}");
            assert!(body.contains("RATE_LIMITED"), "{body}");
        }
        Opened::Stream(_) => panic!("over the cap"),
    }
    // Closing one frees its place (found at the next write, at the latest the ping).
    drop(es);
    let s2 = s.post_json(
        "/v1/tasks",
        Some(&token),
        json!({"device_id": dev, "command": "y"}),
    );
    assert_v1_ok(&s2, 201);
    crate::queue_util::eventually("a place under the cap", Duration::from_secs(5), || {
        match sse::open(s.addr, "/v1/events", &[("Authorization", &bearer(&token))]) {
            Opened::Stream(st) => Some(st),
            Opened::Refused(..) => {
                // Writes to the closed stream reveal it: make one.
                let r = s.post_json(
                    "/v1/tasks",
                    Some(&token),
                    json!({"device_id": dev, "command": "z"}),
                );
                assert_v1_ok(&r, 201);
                None
            }
        }
    });
}

#[test]
fn the_janitors_changes_are_events_too() {
    let s = TestServer::start_with(|c| {
        c.janitor_interval = Duration::from_millis(200);
        c.lease_grace = Duration::ZERO;
    });
    let (token, _, _) = s.register("janitor@example.com");
    let (dev, key) = new_device(&s, &token, "silent");
    let mut es = stream(&s, &token);
    heartbeat(&s, &key, json!({"status": "online", "current_tasks": []}));
    es.expect("device.online");
    es.expect("message.new");
    // An expired lease with no retries left: the janitor times the task out.
    let r = s.post_json(
        "/v1/tasks",
        Some(&token),
        json!({"device_id": dev, "command": "hang", "timeout": 1000, "max_retries": 0}),
    );
    let id = assert_v1_ok(&r, 201)["task_id"].clone();
    es.expect("task.created");
    pending(&s, &key, "limit=1");
    es.expect("task.updated");
    let e = es
        .next_within(Duration::from_secs(5))
        .expect("the janitor's timeout");
    assert_eq!(
        (
            e.event.as_str(),
            &e.payload()["task_id"],
            &e.payload()["status"]
        ),
        ("task.completed", &id, &json!("timeout"))
    );
    assert_eq!(
        es.expect("message.new").payload()["type"],
        json!("task_failed")
    );
    // A device whose last heartbeat is long past: the janitor marks it offline.
    let db = ccjk_cloud::db::Db::open(&s.db_path(), ccjk_cloud::config::Synchronous::Full)
        .expect("open db");
    db.write(|tx| {
        Ok(tx.execute(
            "UPDATE devices SET last_heartbeat_at = '2000-01-01T00:00:00.000Z'",
            [],
        )?)
    })
    .expect("age the heartbeat");
    let off = es.expect("device.offline");
    assert_eq!(off.payload()["device_id"], json!(dev));
    assert_eq!(
        es.expect("message.new").payload()["type"],
        json!("device_offline")
    );
}
