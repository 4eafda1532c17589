//! The outbox survives a crash (README "Mail"): `kill -9` of the real binary with mail queued
//! and the relay down, then a restart with the relay back delivers every mail, once each.
//! And the admin's mail commands: `ccjk-cloud email test TO`, `ccjk-cloud outbox [list|retry]`,
//! and the start-up errors that name the variable at fault.

use crate::common::*;
use crate::mail_util::*;
use ccjk_cloud::config::Provider;
use std::collections::BTreeMap;
use std::time::Duration;

#[test]
fn kill_9_with_mail_queued_and_the_relay_down_loses_nothing() {
    let relay = FakeRelay::start(Answer::json(503, r#"{"error":"relay down"}"#));
    let url = format!("{}/hook", relay.url);
    let mut s = TestServer::spawn_binary(&[
        ("CCJK_EMAIL_PROVIDER", "webhook"),
        ("CCJK_EMAIL_API_KEY", "test-key"),
        ("CCJK_EMAIL_FROM", "CCJK <ccjk@mail.example.com>"),
        ("CCJK_EMAIL_API_URL", &url),
        ("CCJK_EMAIL_RETRY_BASE", "300ms"),
    ]);
    let (token, _, _) = s.register("me@example.com");
    let ids: Vec<i64> = (0..5)
        .map(|i| send_mail(&s, &token, "me@example.com", &format!("mail {i}")))
        .collect();
    // Every mail was tried against the dead relay at least once before the crash.
    relay.wait_for(5, Duration::from_secs(20));
    s.kill9();
    let tried = relay.requests().len();
    relay.set_default(Answer::json(200, r#"{"id":"wh-ok"}"#));

    let (db, key_file) = (s.db_path(), s.dir().join("ccjk.key"));
    let after = TestServer::start_with(|c| {
        c.db_path = db;
        c.secret_key_file = Some(key_file);
        use_relay(c, &relay, Provider::Webhook);
    });
    for id in &ids {
        let m = wait_mail(&after, &token, *id, Duration::from_secs(30), |m| {
            m["status"] == "sent"
        });
        assert_eq!(m["provider_message_id"], "wh-ok");
    }
    std::thread::sleep(Duration::from_millis(500));
    // After the restart, each mail reached the relay exactly once.
    let mut per_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &relay.requests()[tried..] {
        let key = r.header("idempotency-key").expect("a key").to_string();
        per_key
            .entry(key)
            .or_default()
            .push(r.json()["subject"].as_str().expect("subject").to_string());
    }
    assert_eq!(per_key.len(), 5, "{per_key:?}");
    let mut subjects: Vec<String> = per_key
        .values()
        .map(|v| {
            assert_eq!(v.len(), 1, "delivered once: {v:?}");
            v[0].clone()
        })
        .collect();
    subjects.sort();
    let want: Vec<String> = (0..5).map(|i| format!("mail {i}")).collect();
    assert_eq!(subjects, want);
}

#[test]
fn email_test_prints_the_providers_answer_and_bad_settings_name_the_variable() {
    let relay = FakeRelay::start(Answer::json(200, r#"{"id":"re_cli_1"}"#));
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("ccjk.db");
    let out = binary()
        .args(["email", "test", "me@example.com"])
        .env("CCJK_DB", &db)
        .env("CCJK_EMAIL_PROVIDER", "resend")
        .env("CCJK_EMAIL_API_KEY", "re_key")
        .env("CCJK_EMAIL_FROM", "ccjk@mail.example.com")
        .env("CCJK_EMAIL_API_URL", &relay.url)
        .output()
        .expect("run ccjk-cloud");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("provider message id: re_cli_1"), "{stdout}");
    let r = relay.wait_for(1, Duration::from_secs(5));
    assert_eq!(r[0].path, "/emails");
    assert_eq!(r[0].header("authorization"), Some("Bearer re_key"));
    assert_eq!(r[0].json()["to"], serde_json::json!(["me@example.com"]));

    for (vars, named) in [
        (
            vec![("CCJK_EMAIL_PROVIDER", "carrier-pigeon")],
            "CCJK_EMAIL_PROVIDER",
        ),
        (
            vec![
                ("CCJK_EMAIL_PROVIDER", "postmark"),
                ("CCJK_EMAIL_FROM", "a@b.example"),
            ],
            "CCJK_EMAIL_API_KEY",
        ),
    ] {
        let out = binary()
            .arg("serve")
            .env("CCJK_DB", &db)
            .env("CCJK_LISTEN", "127.0.0.1:0")
            .envs(vars)
            .output()
            .expect("run ccjk-cloud");
        assert!(!out.status.success(), "refused to start");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{stderr}");
    }
}

#[test]
fn outbox_list_and_retry_from_the_command_line() {
    let s = TestServer::start();
    let (token, _, _) = s.register("me@example.com");
    let id = send_mail(&s, &token, "me@example.com", "stuck without a relay");
    let before = wait_mail(&s, &token, id, Duration::from_secs(20), |m| {
        m["status"] == "unsent"
    });
    let run = |args: &[&str]| {
        let out = binary()
            .args(args)
            .env("CCJK_DB", s.db_path())
            .output()
            .expect("run ccjk-cloud");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let list = run(&["outbox", "list"]);
    assert!(
        list.contains("unsent") && list.contains("stuck without a relay"),
        "{list}"
    );
    assert!(run(&["outbox", "retry", &id.to_string()]).contains("queued again"));
    // The running server's mailer sees it again (within its idle check) and, still without a
    // relay, leaves it unsent once more.
    let again = wait_mail(&s, &token, id, Duration::from_secs(30), |m| {
        m["status"] == "unsent" && m["updated_at"] != before["updated_at"]
    });
    assert_eq!(again["attempts"], 0);
    let out = binary()
        .args(["outbox", "retry", "999999"])
        .env("CCJK_DB", s.db_path())
        .output()
        .expect("run");
    assert!(!out.status.success());
}
