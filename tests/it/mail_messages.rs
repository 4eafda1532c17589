//! Messages, notification mails and e-mail configs (README "Mail"): a finished task is a
//! message, mailed to an owner with `notify_email` on, and `sent_via_email` says whether the
//! relay took it; messages are listed, read and deleted; configs keep their password sealed;
//! another user's config, message and outbox ids answer 404.

use crate::common::*;
use crate::mail_util::*;
use crate::queue_util::{eventually, new_device, pending, queue_cmd, report};
use ccjk_cloud::config::Provider;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// Queues `command` on a new device, runs it to `exit_code` and returns the task id.
fn run_task(s: &TestServer, token: &str, name: &str, command: &str, exit_code: i64) -> String {
    let (device, key) = new_device(s, token, name);
    let id = queue_cmd(s, token, &device, command);
    pending(s, &key, "limit=1");
    let r = report(
        s,
        &key,
        &id,
        json!({"exit_code": exit_code, "stdout": "out\n", "stderr": "err\n"}),
    );
    assert_v1_ok(&r, 200);
    id
}

fn messages(s: &TestServer, token: &str, query: &str) -> Value {
    assert_v1_ok(&s.get(&format!("/v1/messages{query}"), Some(token)), 200)
}

#[test]
fn results_are_mailed_to_owners_who_want_them_and_sent_via_email_tells_the_truth() {
    let relay = FakeRelay::start(Answer::json(200, r#"{"id":"re_n"}"#));
    let s = TestServer::start_with(|c| use_relay(c, &relay, Provider::Resend));
    let (token, _, _) = s.register("owner@example.com");

    // notify_email off: a message, no mail.
    run_task(&s, &token, "quiet", "true", 0);
    std::thread::sleep(Duration::from_millis(300));
    assert!(relay.requests().is_empty(), "no mail without notify_email");
    let l = messages(&s, &token, "");
    assert_eq!(l["messages"][0]["sent_via_email"], false);

    // notify_email on: the failure is mailed, and the message says so once the relay took it.
    let me = s.patch_json("/v1/auth/me", Some(&token), json!({"notify_email": true}));
    assert_eq!(assert_v1_ok(&me, 200)["user"]["notify_email"], true);
    let id = run_task(&s, &token, "loud", "make test", 2);
    let r = relay.wait_for(1, WAIT);
    let m = r[0].json();
    assert_eq!(m["to"], json!(["owner@example.com"]));
    assert_eq!(m["subject"], "Task failed: make test");
    let text = m["text"].as_str().expect("text");
    assert!(
        text.contains("Exit code: 2") && text.contains("out\n") && text.contains("err\n"),
        "{text}"
    );
    let msg = eventually("sent_via_email", WAIT, || {
        let l = messages(&s, &token, "");
        let m = l["messages"][0].clone();
        (m["sent_via_email"] == json!(true)).then_some(m)
    });
    assert_eq!(
        (msg["task_id"].clone(), msg["type"].clone()),
        (json!(id), json!("task_failed"))
    );
    let outbox = assert_v1_ok(&s.get("/v1/email/outbox", Some(&token)), 200);
    assert_eq!(outbox["mails"][0]["kind"], "task_result");
    assert_eq!(outbox["mails"][0]["task_id"], json!(id));

    // A relay that refuses: the message stays not sent by mail.
    relay.set_default(Answer::json(400, r#"{"message":"no"}"#));
    run_task(&s, &token, "refused", "echo", 0);
    relay.wait_for(2, WAIT);
    let failed = eventually("failed mail", WAIT, || {
        let o = assert_v1_ok(&s.get("/v1/email/outbox?status=failed", Some(&token)), 200);
        (o["count"] == 1).then_some(o)
    });
    assert_eq!(failed["mails"][0]["kind"], "task_result");
    let l = messages(&s, &token, "");
    assert_eq!(l["messages"][0]["type"], "task_completed");
    assert_eq!(l["messages"][0]["sent_via_email"], false);
}

#[test]
fn messages_are_listed_read_and_deleted() {
    let s = TestServer::start();
    let (token, _, _) = s.register("reader@example.com");
    run_task(&s, &token, "a", "one", 0);
    run_task(&s, &token, "b", "two", 1);
    let l = messages(&s, &token, "?unread=true&limit=1");
    assert_eq!(l["unread_count"], 2);
    assert_eq!(l["count"], 1);
    assert_eq!(l["next_cursor"], "1");
    assert_eq!(l["messages"][0]["type"], "task_failed", "newest first");
    let first = l["messages"][0]["id"].as_i64().expect("id");
    let r = assert_v1_ok(
        &s.post_json(
            &format!("/v1/messages/{first}/read"),
            Some(&token),
            json!({}),
        ),
        200,
    );
    assert_eq!(r["message"]["read"], true);
    let l = messages(&s, &token, "?unread=true");
    assert_eq!(
        (l["unread_count"].clone(), l["count"].clone()),
        (json!(1), json!(1))
    );
    let r = assert_v1_ok(
        &s.post_json("/v1/messages/read-all", Some(&token), json!({})),
        200,
    );
    assert_eq!(r["updated"], 1);
    assert_eq!(messages(&s, &token, "?unread=true")["count"], 0);
    assert_eq!(messages(&s, &token, "")["count"], 2);
    assert_v1_ok(
        &s.delete(&format!("/v1/messages/{first}"), Some(&token)),
        200,
    );
    assert_v1_error(
        &s.delete(&format!("/v1/messages/{first}"), Some(&token)),
        404,
        "NOT_FOUND",
    );
    assert_v1_error(
        &s.delete("/v1/messages/not-a-number", Some(&token)),
        404,
        "NOT_FOUND",
    );
    assert_eq!(messages(&s, &token, "")["count"], 1);
    // Scopes: a key with user:read lists but cannot change.
    let (_, key) = s.create_api_key(&token, &["user:read"]);
    assert_v1_ok(&s.get("/v1/messages", Some(&key)), 200);
    let r = s.post_json("/v1/messages/read-all", Some(&key), json!({}));
    assert_v1_error(&r, 403, "INSUFFICIENT_SCOPE");
}

#[test]
fn another_users_configs_messages_and_mails_answer_404() {
    let s = TestServer::start();
    let (alice, _, _) = s.register("alice@example.com");
    let (bob, _, _) = s.register("bob@example.com");
    let (device, _) = new_device(&s, &alice, "alice-box");
    let c = assert_v1_ok(
        &s.post_json(
            "/v1/email/config",
            Some(&alice),
            json!({"device_id": device, "email_address": "alice@work.example",
                   "imap_host": "imap.work.example", "imap_port": 993,
                   "password": "hunter2-app-password"}),
        ),
        200,
    );
    assert_eq!(c["config"]["has_password"], true);
    assert!(
        !c.to_string().contains("hunter2"),
        "the password is never returned"
    );
    run_task(&s, &alice, "alice-2", "ls", 0);
    let msg = messages(&s, &alice, "")["messages"][0]["id"]
        .as_i64()
        .expect("message id");
    let mail = send_mail(&s, &alice, "alice@example.com", "mine");

    let cfg_path = format!("/v1/email/config/{device}");
    assert_v1_ok(&s.get(&cfg_path, Some(&alice)), 200);
    assert_v1_error(&s.get(&cfg_path, Some(&bob)), 404, "NOT_FOUND");
    assert_v1_error(&s.delete(&cfg_path, Some(&bob)), 404, "NOT_FOUND");
    let r = s.post_json(
        "/v1/email/config",
        Some(&bob),
        json!({"device_id": device, "email_address": "bob@evil.example"}),
    );
    assert_v1_error(&r, 404, "NOT_FOUND");
    let r = s.post_json("/v1/email/test", Some(&bob), json!({"device_id": device}));
    assert_v1_error(&r, 404, "NOT_FOUND");
    assert_v1_error(
        &s.post_json(&format!("/v1/messages/{msg}/read"), Some(&bob), json!({})),
        404,
        "NOT_FOUND",
    );
    assert_v1_error(
        &s.delete(&format!("/v1/messages/{msg}"), Some(&bob)),
        404,
        "NOT_FOUND",
    );
    assert_v1_error(
        &s.get(&format!("/v1/email/outbox/{mail}"), Some(&bob)),
        404,
        "NOT_FOUND",
    );
    assert_eq!(messages(&s, &bob, "")["count"], 0);
    let o = assert_v1_ok(&s.get("/v1/email/outbox", Some(&bob)), 200);
    assert_eq!(o["count"], 0);
    assert_eq!(
        assert_v1_ok(&s.get("/v1/email/config", Some(&bob)), 200)["configs"],
        json!([])
    );
    // Alice still has everything, and deletes her config.
    assert_v1_ok(
        &s.get(&format!("/v1/email/outbox/{mail}"), Some(&alice)),
        200,
    );
    assert_v1_ok(&s.delete(&cfg_path, Some(&alice)), 200);
    assert_v1_error(&s.get(&cfg_path, Some(&alice)), 404, "NOT_FOUND");
}

#[test]
fn config_passwords_are_sealed_at_rest_and_lite_sets_the_account_or_device_config() {
    let s = TestServer::start();
    let (token, _, _) = s.register("lite@example.com");
    let key = s.lite_auth("lite@example.com", PASSWORD);
    let body = json!({"email": "lite@gmail.example", "imap_host": "imap.gmail.com",
                      "smtp_host": "smtp.gmail.com", "password": "plaintext-app-password-42"});
    let lite = |cred: (&str, &str)| {
        let r = s.call(
            "POST",
            "/email/config",
            &[cred],
            Some(("application/json", body.to_string().into_bytes())),
        );
        assert_lite_ok(&r)
    };
    // A device key sets its own device's config: it may not speak for the other devices.
    let d = lite(("X-Device-Key", &key));
    assert_eq!(d["email_address"], "lite@gmail.example");
    let device = d["device_id"].as_str().expect("the device key's device");
    let c = assert_v1_ok(
        &s.get(&format!("/v1/email/config/{device}"), Some(&token)),
        200,
    );
    assert_eq!(c["config"]["email_address"], "lite@gmail.example");
    assert_v1_error(
        &s.get("/v1/email/config/account", Some(&token)),
        404,
        "NOT_FOUND",
    );
    // A person's credential sets the account's own config (Lite keeps one per account).
    let bearer = format!("Bearer {token}");
    let d = lite(("Authorization", &bearer));
    assert_eq!(d["device_id"], Value::Null, "{d}");
    let c = assert_v1_ok(&s.get("/v1/email/config/account", Some(&token)), 200);
    assert_eq!(c["config"]["imap_host"], "imap.gmail.com");
    assert_eq!(c["config"]["has_password"], true);
    // Neither the database nor its WAL holds the password.
    for f in ["ccjk.db", "ccjk.db-wal"] {
        let bytes = std::fs::read(s.dir().join(f)).unwrap_or_default();
        assert!(
            !bytes.windows(25).any(|w| w == b"plaintext-app-password-42"),
            "{f} holds the password in plaintext"
        );
    }
    let r = s.post_json(
        "/v1/email/config",
        Some(&token),
        json!({"email_address": "not an address"}),
    );
    assert_v1_error(&r, 422, "VALIDATION_FAILED");
    let r = s.post_json(
        "/v1/email/config",
        Some(&token),
        json!({"email_address": "a@b.example", "smtp_port": 70000}),
    );
    assert_v1_error(&r, 422, "VALIDATION_FAILED");
}

#[test]
fn a_device_going_offline_is_mailed_to_an_owner_who_wants_it() {
    let relay = FakeRelay::start(Answer::json(200, r#"{"id":"re_off"}"#));
    let s = TestServer::start_with(|c| use_relay(c, &relay, Provider::Resend));
    let (token, _, _) = s.register("owner@example.com");
    let (_, key) = new_device(&s, &token, "build-box");
    let beat = |status: &str| {
        assert_v1_ok(
            &s.post_json(
                "/v1/daemon/heartbeat",
                Some(&key),
                json!({"status": status, "current_tasks": []}),
            ),
            200,
        )
    };
    beat("online");
    assert_v1_ok(
        &s.post_json("/v1/daemon/offline", Some(&key), json!({})),
        200,
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(relay.requests().is_empty(), "not without notify_email");
    s.patch_json("/v1/auth/me", Some(&token), json!({"notify_email": true}));
    beat("online");
    assert_v1_ok(
        &s.post_json("/v1/daemon/offline", Some(&key), json!({})),
        200,
    );
    let r = relay.wait_for(1, WAIT);
    let m = r[0].json();
    assert_eq!(m["subject"], "Device build-box is offline");
    assert_eq!(m["to"], json!(["owner@example.com"]));
    let kinds = eventually("sent offline message", WAIT, || {
        let l = messages(&s, &token, "");
        let first = l["messages"][0].clone();
        (first["sent_via_email"] == json!(true)).then_some(first)
    });
    assert_eq!(kinds["type"], "device_offline");
    assert_eq!(relay.requests().len(), 1, "coming online is not mailed");
}

/// Configured addresses are not verified, so the mails a person asks for (free-form and test
/// mails together) are capped at 50 a UTC day; the refused one queues nothing.
#[test]
fn sends_and_test_mails_share_the_daily_cap() {
    let s = TestServer::start();
    s.register("first@example.com"); // the first account is the admin, who has no cap
    let (token, _, _) = s.register("busy@example.com");
    let send = json!({"to": "busy@example.com", "subject": "hi", "text": "hello"});
    for _ in 0..25 {
        assert_v1_ok(
            &s.post_json("/v1/email/send", Some(&token), send.clone()),
            202,
        );
        assert_v1_ok(&s.post_json("/v1/email/test", Some(&token), json!({})), 202);
    }
    let r = s.post_json("/v1/email/test", Some(&token), json!({}));
    assert_v1_error(&r, 403, "QUOTA_EXCEEDED");
    let r = s.post_json("/v1/email/send", Some(&token), send);
    assert_v1_error(&r, 403, "QUOTA_EXCEEDED");
    let outbox = assert_v1_ok(&s.get("/v1/email/outbox?limit=100", Some(&token)), 200);
    assert_eq!(outbox["count"], json!(50), "{outbox}");
}
