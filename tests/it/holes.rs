//! The smaller holes an adversarial probe found (docs/security.md, docs/limits.md), one test
//! each: throttling that a success reset, timing that told which accounts exist, an idle timeout
//! that logged out a session in use, a key logged under an encoded name, validation gaps,
//! world-readable files, a contradictory 409, and a README walk-through that failed when run
//! twice.

use crate::common::*;
use crate::queue_util::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[test]
fn a_login_to_ones_own_account_does_not_reset_the_address_throttle() {
    let s = TestServer::start();
    s.register("admin@example.com");
    s.register("attacker@example.com");
    for i in 0..10 {
        s.register(&format!("victim{i}@example.com"));
    }
    let (mut throttled, mut own_logins) = (0, 0);
    for i in 0..10 {
        let r = s.login(&format!("victim{i}@example.com"), "guess guess guess");
        if r.status == 429 {
            throttled += 1;
        } else {
            assert_v1_error(&r, 401, "INVALID_CREDENTIALS");
        }
        // The attacker's own login in between: it succeeds until the address is throttled.
        let own = s.login("attacker@example.com", PASSWORD);
        match own.status {
            200 => own_logins += 1,
            429 => {}
            _ => panic!("the attacker's own login: {}", own.text),
        }
    }
    assert!(
        own_logins >= 1,
        "no successful login ever tried to reset the throttle"
    );
    assert!(
        throttled >= 4,
        "guesses across accounts from one address were throttled only {throttled} times"
    );
}

#[test]
fn a_failed_login_to_a_real_account_does_not_wait_for_the_writer() {
    let s = TestServer::start();
    s.register("real@example.com");
    // Hold the writer for a second, as a burst of writes or a slow disk would.
    let db = s.services().db.clone();
    let busy = std::thread::spawn(move || {
        db.write(|_| {
            std::thread::sleep(Duration::from_millis(1500));
            Ok(())
        })
    });
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    let r = s.login("real@example.com", "wrong wrong wrong");
    assert_v1_error(&r, 401, "INVALID_CREDENTIALS");
    let known = t.elapsed();
    busy.join().expect("busy writer").expect("write");
    assert!(
        known < Duration::from_millis(1000),
        "a wrong password for a real account waited for the writer ({known:?}), which an unknown account never does"
    );
}

#[test]
fn a_session_used_every_five_seconds_outlives_a_one_minute_idle_timeout() {
    let s = TestServer::start_with(|c| c.session_idle_ttl = Some(Duration::from_secs(60)));
    let (token, _, _) = s.register("busy@example.com");
    let clock = &s.services().clock;
    for step in 0..30 {
        clock.advance(Duration::from_secs(5));
        let r = s.get("/v1/auth/me", Some(&token));
        assert_eq!(
            r.status,
            200,
            "step {step} ({} s): {}",
            5 * (step + 1),
            r.text
        );
        // The touch is queued behind the answer; the test clock runs ahead of real time, so
        // let the writer (first in, first out) land it before the clock moves on.
        s.services().db.write(|_| Ok(())).expect("writer");
    }
    clock.advance(Duration::from_secs(61));
    assert_v1_error(&s.get("/v1/auth/me", Some(&token)), 401, "UNAUTHORIZED");
}

#[test]
fn a_device_key_under_an_encoded_parameter_name_is_not_logged() {
    let s = TestServer::spawn_binary(&[("RUST_LOG", "info")]);
    let key = s.lite_auth("logs@example.com", PASSWORD);
    let r = s.get(&format!("/auth/verify?device%5Fkey={key}"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s.get(&format!("/auth/verify?DEVICE_KEY={key}"), None);
    assert_eq!(
        r.status, 401,
        "the parameter name is case-sensitive: {}",
        r.text
    );
    // Access log lines are written after the answers are sent: wait for both.
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = std::fs::read_to_string(s.dir().join("server.log")).expect("server log");
        if log.matches("/auth/verify").count() >= 2 || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        log.matches("/auth/verify").count(),
        2,
        "the access log is on: {log}"
    );
    assert!(
        !log.contains(&key[5..]),
        "the device key appears in the log:\n{log}"
    );
}

#[test]
fn names_paths_and_addresses_are_validated() {
    let s = TestServer::start();
    let (token, _, _) = s.register("valid@example.com");
    let (dev, key) = new_device(&s, &token, "box");
    // Control's register: the same name rules as /v1.
    for name in ["bad\u{0}name", "bad\u{1b}[31mname", &"x".repeat(160)] {
        let r = s.call(
            "POST",
            "/api/control/devices/register",
            &[("X-Device-Token", &key)],
            Some((
                "application/json",
                json!({"name": name}).to_string().into_bytes(),
            )),
        );
        assert_eq!(
            (r.status, r.body["success"].clone()),
            (422, json!(false)),
            "{name:?}: {}",
            r.text
        );
    }
    // NUL in a task's working directory or environment.
    for body in [
        json!({"device_id": dev, "command": "ls", "cwd": "/tmp\u{0}x"}),
        json!({"device_id": dev, "command": "ls", "env": {"A": "b\u{0}c"}}),
        json!({"device_id": dev, "command": "ls", "args": {"cwd": "/tmp\u{0}"}}),
    ] {
        assert_v1_error(
            &s.post_json("/v1/tasks", Some(&token), body),
            422,
            "VALIDATION_FAILED",
        );
    }
    // Control characters in session, API-key and display names; a javascript: avatar.
    let bad = "evil\u{202e}name";
    assert_v1_error(
        &s.post_json("/v1/sessions", Some(&token), json!({"name": bad})),
        422,
        "VALIDATION_FAILED",
    );
    assert_v1_error(
        &s.post_json(
            "/v1/api-keys",
            Some(&token),
            json!({"name": bad, "scopes": ["task:read"]}),
        ),
        422,
        "VALIDATION_FAILED",
    );
    for patch in [
        json!({"display_name": "a\u{7}b"}),
        json!({"avatar_url": "javascript:alert(1)"}),
    ] {
        assert_v1_error(
            &s.patch_json("/v1/auth/me", Some(&token), patch),
            422,
            "VALIDATION_FAILED",
        );
    }
    // A result with no known field is not silently a failure.
    let id = queue_cmd(&s, &token, &dev, "true");
    pending(&s, &key, "limit=1");
    assert_v1_error(
        &report(&s, &key, &id, json!({"outcome": "done"})),
        422,
        "VALIDATION_FAILED",
    );
    assert_eq!(task(&s, &token, &id)["status"], json!("running"));
}

#[test]
fn look_alike_addresses_are_one_account() {
    let s = TestServer::start();
    s.register("\u{00fc}ser@example.com");
    for twin in [
        "\u{00dc}SER@example.com",
        "u\u{0308}ser@example.com",
        "\u{ff55}\u{0308}ser@example.com",
    ] {
        let r = s.post_json(
            "/v1/auth/register",
            None,
            json!({"email": twin, "password": PASSWORD}),
        );
        assert_v1_error(&r, 409, "EMAIL_TAKEN");
    }
    s.register("acct@example.com");
    let r = s.post_json(
        "/v1/auth/register",
        None,
        json!({"email": "ac\u{0441}t@example.com", "password": PASSWORD}),
    );
    assert_v1_error(&r, 409, "EMAIL_TAKEN");
    for hidden in ["a\u{200b}cct@example.com", "acct@exa\u{202e}mple.com"] {
        let r = s.post_json(
            "/v1/auth/register",
            None,
            json!({"email": hidden, "password": PASSWORD}),
        );
        assert_v1_error(&r, 422, "VALIDATION_FAILED");
    }
    assert_v1_ok(&s.login("\u{00dc}SER@EXAMPLE.COM", PASSWORD), 200);
}

#[test]
fn the_database_its_wal_and_backups_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let s = TestServer::spawn_binary(&[]);
    s.register("files@example.com");
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let db = s.db_path();
    for p in [
        db.clone(),
        db.with_extension("db-wal"),
        db.with_extension("db-shm"),
        s.dir().join("ccjk.key"),
    ] {
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    let copy = s.dir().join("copy.db");
    let out = binary()
        .args(["backup", copy.to_str().expect("utf-8 path")])
        .env("CCJK_DB", &db)
        .output()
        .expect("run backup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&copy), 0o600);
}

#[test]
fn a_task_held_by_another_device_is_not_found_for_this_one() {
    let s = TestServer::start();
    let (token, _, _) = s.register("two@example.com");
    let (_, key1) = new_device(&s, &token, "one");
    let (_, key2) = new_device(&s, &token, "two");
    let id = queue(&s, &token, json!({"command": "make"}));
    assert_eq!(
        ids(&pending(&s, &key2, "limit=1"), "tasks"),
        vec![id.clone()]
    );
    assert_v1_error(
        &report(&s, &key1, &id, json!({"exit_code": 0})),
        404,
        "NOT_FOUND",
    );
    let r = s.post_json(
        &format!("/v1/daemon/tasks/{id}/progress"),
        Some(&key1),
        json!({"progress": 50}),
    );
    assert_v1_error(&r, 404, "NOT_FOUND");
    assert_eq!(task(&s, &token, &id)["status"], json!("running"));
}

/// The shell blocks of the README's walk-through, in order, with the server's address.
fn walkthrough(base: &str) -> String {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Walk-through")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Walk-through section");
    let blocks: Vec<&str> = section
        .split("```sh\n")
        .skip(1)
        .filter_map(|b| b.split("\n```").next())
        .collect();
    assert!(blocks.len() >= 3, "the walk-through has its three loops");
    blocks
        .join("\n")
        .replace("S=http://127.0.0.1:3000", &format!("S={base}"))
}

#[test]
fn the_readme_walkthrough_runs_and_runs_again_on_the_same_database() {
    let s = TestServer::start();
    let script = walkthrough(s.base());
    for run in 1..=2 {
        let stdout = run_bash(&script);
        assert!(
            stdout.contains("\"stdout\": \"hello\\n\""),
            "run {run}:\n{stdout}"
        );
    }
    let tasks = assert_v1_ok(&s.login("me@example.com", "correct horse"), 200);
    let token = tasks["token"].as_str().expect("token");
    let list: Value = assert_v1_ok(&s.get("/v1/tasks?status=completed", Some(token)), 200);
    assert!(list["count"].as_u64().unwrap_or(0) >= 4, "{list}");
}

#[test]
fn a_body_sent_to_no_route_is_not_waited_for() {
    use std::io::{Read, Write};
    let s = TestServer::start();
    let mut c = std::net::TcpStream::connect(s.addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // A body over 1 KiB is read off the workers; only 10 of its 2,000 bytes ever come.
    let head = "POST /v1/no-such-route HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n0123456789";
    c.write_all(head.as_bytes()).expect("send");
    let mut got = [0u8; 12];
    c.read_exact(&mut got)
        .expect("an answer without the rest of the body");
    assert_eq!(&got, b"HTTP/1.1 404", "{}", String::from_utf8_lossy(&got));
}
