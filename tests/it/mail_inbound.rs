//! The inbound-mail webhook (README "Mail"): a signed `[CCJK]` mail becomes exactly one task,
//! a daemon runs it and the result is mailed back to the sender, threaded under their mail;
//! every refusal (wrong or stale signature, unknown sender, no prefix, a replayed message id)
//! creates nothing and is recorded with its reason; a 10 MB body is refused before any HMAC.

use crate::common::*;
use crate::mail_util::*;
use crate::queue_util::{new_device, pending, report};
use ccjk_cloud::config::Provider;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn mail(from: &str, subject: &str, body: &str, id: &str) -> Vec<u8> {
    json!({"from": from, "subject": subject, "body": body, "message_id": id})
        .to_string()
        .into_bytes()
}

/// Every `(status, reason)` recorded in `inbound_emails`, oldest first.
fn recorded(s: &TestServer) -> Vec<(String, Option<String>)> {
    let c = rusqlite::Connection::open(s.db_path()).expect("open the database");
    let mut st = c
        .prepare("SELECT status, reason FROM inbound_emails ORDER BY id")
        .expect("prepare");
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn task_count(s: &TestServer, token: &str) -> usize {
    let l = assert_v1_ok(&s.get("/v1/tasks", Some(token)), 200);
    l["tasks"].as_array().map_or(0, Vec::len)
}

#[test]
fn a_signed_mail_runs_on_a_daemon_and_the_result_is_mailed_back() {
    let relay = FakeRelay::start(Answer::json(200, r#"{"id":"re_reply"}"#));
    let s = TestServer::start_with(|c| use_relay(c, &relay, Provider::Resend));
    let (token, _, _) = s.register("me@example.com");
    let (device, key) = new_device(&s, &token, "laptop");
    let body = mail(
        "Me <Me@Example.com>",
        "[CCJK:laptop] run the tests",
        "echo hi\n\n-- \nMe, sent from my phone",
        "<CAF=abc123@mail.example.com>",
    );
    let r = post_signed(&s, "/email/incoming", &body, SECRET, None);
    let d = assert_lite_ok(&r);
    assert_eq!(
        (d["accepted"].clone(), d["duplicate"].clone()),
        (json!(true), json!(false))
    );
    let task_id = d["task_id"].as_str().expect("task id").to_string();
    let t = assert_v1_ok(&s.get(&format!("/v1/tasks/{task_id}"), Some(&token)), 200);
    assert_eq!(t["task"]["command"], "echo hi");
    assert_eq!(t["task"]["source"], "email");
    assert_eq!(t["task"]["device_id"], json!(device));

    // The daemon claims and runs it.
    let claimed = pending(&s, &key, "limit=5");
    assert_eq!(claimed["tasks"][0]["id"], json!(task_id));
    let r = report(
        &s,
        &key,
        &task_id,
        json!({"status": "completed", "exit_code": 0, "stdout": "hi\n", "stderr": ""}),
    );
    assert_v1_ok(&r, 200);

    // The reply reaches the relay, addressed to the sender and threaded under their mail.
    let reqs = relay.wait_for(1, WAIT);
    let reply = reqs[0].json();
    assert_eq!(reply["to"], json!(["Me@Example.com"]));
    assert_eq!(reply["subject"], "Re: [CCJK:laptop] run the tests");
    assert_eq!(
        reply["headers"]["In-Reply-To"],
        "<CAF=abc123@mail.example.com>"
    );
    let text = reply["text"].as_str().expect("text");
    for want in [
        "completed",
        "Exit code: 0",
        "echo hi",
        "laptop",
        "hi\n",
        "Duration:",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    // Its message says it went out by mail.
    let msgs = crate::queue_util::eventually("sent_via_email", WAIT, || {
        let l = assert_v1_ok(&s.get("/v1/messages", Some(&token)), 200);
        let m = l["messages"][0].clone();
        (m["sent_via_email"] == json!(true)).then_some(m)
    });
    assert_eq!(msgs["task_id"], json!(task_id));
    assert_eq!(msgs["type"], "task_completed");
    assert_eq!(recorded(&s), vec![("accepted".into(), None)]);
}

#[test]
fn refusals_create_nothing_and_are_recorded_with_their_reason() {
    let relay = FakeRelay::start(Answer::json(200, r#"{"id":"x"}"#));
    let s = TestServer::start_with(|c| use_relay(c, &relay, Provider::Resend));
    let (token, _, _) = s.register("me@example.com");
    let good = mail("me@example.com", "[CCJK] ls", "ls -la", "<m1@x>");
    let path = "/v1/email/incoming";

    // Signatures: wrong secret, stale timestamp, none at all.
    let r = post_signed(&s, path, &good, "another-secret-0123456789", None);
    assert_v1_error(&r, 401, "INVALID_SIGNATURE");
    let r = post_signed(&s, path, &good, SECRET, Some(unix_now() - 1000));
    assert_v1_error(&r, 401, "INVALID_SIGNATURE");
    let r = s.call("POST", path, &[], Some(("application/json", good.clone())));
    assert_v1_error(&r, 401, "INVALID_SIGNATURE");
    // Signed over the body, but sent with a timestamp that was not signed.
    let sig = sign(SECRET, &good);
    let ts = unix_now().to_string();
    let r = s.call(
        "POST",
        path,
        &[("X-Email-Signature", &sig), ("X-Email-Timestamp", &ts)],
        Some(("application/json", good.clone())),
    );
    assert_v1_error(&r, 401, "INVALID_SIGNATURE");

    // Signed, but not acceptable.
    let unknown = mail("someone@else.org", "[CCJK] ls", "ls", "<m2@x>");
    let d = assert_v1_ok(&post_signed(&s, path, &unknown, SECRET, None), 200);
    assert_eq!(
        (d["accepted"].clone(), d["reason"].clone()),
        (json!(false), json!("unknown_sender"))
    );
    let no_prefix = mail("me@example.com", "Re: [CCJK] ls", "ls", "<m3@x>");
    let d = assert_v1_ok(&post_signed(&s, path, &no_prefix, SECRET, None), 200);
    assert_eq!(d["reason"], "no_prefix");
    let no_device = mail("me@example.com", "[CCJK:nosuch] ls", "ls", "<m4@x>");
    let d = assert_v1_ok(&post_signed(&s, path, &no_device, SECRET, None), 200);
    assert_eq!(d["reason"], "unknown_device");
    let empty = mail(
        "me@example.com",
        "[CCJK] ls",
        "> quoted\n-- \nsig",
        "<m5@x>",
    );
    let d = assert_v1_ok(&post_signed(&s, path, &empty, SECRET, None), 200);
    assert_eq!(d["reason"], "empty_command");
    let no_id = json!({"from": "me@example.com", "subject": "[CCJK] ls", "body": "ls"});
    let r = post_signed(&s, path, no_id.to_string().as_bytes(), SECRET, None);
    assert_v1_error(&r, 422, "VALIDATION_FAILED");
    assert_eq!(task_count(&s, &token), 0, "no refusal created a task");

    // The good one, with a timestamp, then its redelivery.
    let first = assert_v1_ok(&post_signed(&s, path, &good, SECRET, Some(unix_now())), 200);
    assert_eq!(first["accepted"], true);
    let again = assert_v1_ok(&post_signed(&s, path, &good, SECRET, None), 200);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["accepted"], true, "the first outcome is answered");
    assert_eq!(again["task_id"], first["task_id"]);
    assert_eq!(task_count(&s, &token), 1, "the redelivery created nothing");
    // A redelivery of a refused mail answers the refusal again.
    let d = assert_v1_ok(&post_signed(&s, path, &no_prefix, SECRET, None), 200);
    assert_eq!(
        (d["duplicate"].clone(), d["reason"].clone()),
        (json!(true), json!("no_prefix"))
    );

    let reasons: Vec<(String, Option<String>)> = recorded(&s);
    let want: Vec<(&str, Option<&str>)> = vec![
        ("rejected", Some("bad_signature")),
        ("rejected", Some("stale_timestamp")),
        ("rejected", Some("missing_signature")),
        ("rejected", Some("bad_signature")),
        ("rejected", Some("unknown_sender")),
        ("rejected", Some("no_prefix")),
        ("rejected", Some("unknown_device")),
        ("rejected", Some("empty_command")),
        (
            "rejected",
            Some("bad_json: message_id is required (at most 998 characters)"),
        ),
        ("accepted", None),
    ];
    let got: Vec<(&str, Option<&str>)> = reasons
        .iter()
        .take(want.len())
        .map(|(s, r)| (s.as_str(), r.as_deref()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(reasons.len(), want.len() + 2);
    assert!(reasons[want.len()..].iter().all(|(s, _)| s == "duplicate"));
    // A known sender learns why a mail was not run.
    let l = assert_v1_ok(&s.get("/v1/messages", Some(&token)), 200);
    let kinds: Vec<&str> = l["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["type"].as_str())
        .collect();
    assert_eq!(
        kinds,
        vec!["email_rejected"; 3],
        "no_prefix, unknown_device, empty_command"
    );
}

#[test]
fn a_10_mb_body_is_refused_before_any_signature_is_computed() {
    let relay = FakeRelay::start(Answer::json(200, r#"{"id":"x"}"#));
    let s = TestServer::start_with(|c| use_relay(c, &relay, Provider::Resend));
    let (token, _, _) = s.register("me@example.com");
    assert_eq!(s.metric("ccjk_inbound_signatures_total"), 0);
    let mut huge = b"{\"from\":\"me@example.com\",\"subject\":\"[CCJK] x\",\"body\":\"".to_vec();
    huge.resize(10 * 1024 * 1024, b'a');
    huge.extend_from_slice(b"\",\"message_id\":\"<big@x>\"}");
    let sig = sign(SECRET, &huge);
    let r = s.call(
        "POST",
        "/v1/email/incoming",
        &[("X-Email-Signature", &sig)],
        Some(("application/json", huge)),
    );
    assert_v1_error(&r, 413, "PAYLOAD_TOO_LARGE");
    assert_eq!(
        s.metric("ccjk_inbound_signatures_total"),
        0,
        "no HMAC was computed"
    );
    assert_eq!(task_count(&s, &token), 0);
    // The counter does count: one small signed delivery is one HMAC.
    let small = mail("me@example.com", "[CCJK] true", "true", "<small@x>");
    assert_v1_ok(
        &post_signed(&s, "/v1/email/incoming", &small, SECRET, None),
        200,
    );
    assert_eq!(s.metric("ccjk_inbound_signatures_total"), 1);
}

#[test]
fn every_configured_secret_verifies_and_no_secret_means_no_webhook() {
    let off = TestServer::start();
    let r = off.call(
        "POST",
        "/v1/email/incoming",
        &[("X-Email-Signature", "00")],
        Some(("application/json", b"{}".to_vec())),
    );
    assert_v1_error(&r, 404, "NOT_FOUND");

    let s = TestServer::start_with(|c| {
        c.inbound_secrets = vec![SECRET.into(), "the-new-secret-after-rotation".into()]
    });
    let (token, _, _) = s.register("me@example.com");
    let (device, _) = new_device(&s, &token, "build-box");
    // A configured address of a device sends its commands to that device.
    assert_v1_ok(
        &s.post_json(
            "/v1/email/config",
            Some(&token),
            json!({"device_id": device, "email_address": "ci@corp.example"}),
        ),
        200,
    );
    let m = mail("CI <ci@corp.example>", "[CCJK] make", "make", "<r1@x>");
    let d = assert_v1_ok(
        &post_signed(
            &s,
            "/v1/email/incoming",
            &m,
            "the-new-secret-after-rotation",
            None,
        ),
        200,
    );
    assert_eq!(d["accepted"], true, "{d}");
    let t = assert_v1_ok(
        &s.get(
            &format!("/v1/tasks/{}", d["task_id"].as_str().expect("id")),
            Some(&token),
        ),
        200,
    );
    assert_eq!(t["task"]["device_id"], json!(device));
    assert_eq!(t["task"]["command"], "make");
    let _: Value = t;
}

/// The webhook's limit (README "Rate limits"): 10 verified deliveries a minute per sender,
/// whatever case the address comes in; the 11th is 429 with the rate-limit headers, recorded,
/// and creates nothing; another sender is unaffected, and an unsigned delivery is refused for
/// its signature before it can use up anyone's allowance.
#[test]
fn the_webhook_is_limited_per_sender() {
    let relay = FakeRelay::start(Answer::json(200, r#"{"id":"x"}"#));
    let s = TestServer::start_with(|c| use_relay(c, &relay, Provider::Resend));
    let (token, _, _) = s.register("me@example.com");
    for i in 0..10 {
        let body = mail(
            "me@example.com",
            "no prefix",
            "echo hi",
            &format!("<m{i}@x>"),
        );
        let d = assert_lite_ok(&post_signed(&s, "/email/incoming", &body, SECRET, None));
        assert_eq!(d["accepted"], json!(false), "{d}");
    }
    let unsigned = s.call(
        "POST",
        "/email/incoming",
        &[],
        Some((
            "application/json",
            mail("me@example.com", "[CCJK] x", "echo no", "<unsigned@x>"),
        )),
    );
    assert_lite_error(&unsigned, 401, "INVALID_SIGNATURE");
    let body = mail("Me <ME@Example.com>", "[CCJK] go", "echo late", "<m10@x>");
    let r = post_signed(&s, "/email/incoming", &body, SECRET, None);
    assert_lite_error(&r, 429, "RATE_LIMITED");
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.header("ratelimit-limit"), Some("10"));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    assert_eq!(task_count(&s, &token), 0);
    assert_eq!(
        recorded(&s).last(),
        Some(&("rejected".to_string(), Some("rate_limited".to_string())))
    );
    // The refused mail's id was not kept: once allowed, the same delivery is new, not a duplicate.
    let other = mail("else@example.com", "no prefix", "echo hi", "<m10@x>");
    let d = assert_v1_ok(
        &post_signed(&s, "/v1/email/incoming", &other, SECRET, None),
        200,
    );
    assert_eq!(d["duplicate"], json!(false), "{d}");
}

/// Who may command which device by mail: an address configured for devices reaches those
/// devices only (another device, named, answers as unknown; two of them unnamed are
/// ambiguous), and a device key's Lite config is its own device's.
#[test]
fn a_device_address_reaches_its_own_devices_only() {
    let s = TestServer::start_with(|c| c.inbound_secrets = vec![SECRET.into()]);
    let (token, _, _) = s.register("owner@example.com");
    let (laptop, laptop_key) = new_device(&s, &token, "laptop");
    let (server, _) = new_device(&s, &token, "server");
    let (build, _) = new_device(&s, &token, "build");
    let deliver = |from: &str, subject: &str, id: &str| {
        let r = post_signed(
            &s,
            "/email/incoming",
            &mail(from, subject, "id", id),
            SECRET,
            None,
        );
        assert_lite_ok(&r)
    };
    let device_of = |d: &Value| -> Value {
        let id = d["task_id"].as_str().expect("a task");
        assert_v1_ok(&s.get(&format!("/v1/tasks/{id}"), Some(&token)), 200)["task"]["device_id"]
            .clone()
    };

    // The laptop's key sets the laptop's address through Lite.
    let body = json!({"email": "laptop@corp.example"})
        .to_string()
        .into_bytes();
    let r = s.call(
        "POST",
        "/email/config",
        &[("X-Device-Key", &laptop_key)],
        Some(("application/json", body)),
    );
    assert_eq!(assert_lite_ok(&r)["device_id"], json!(laptop));
    let d = deliver("laptop@corp.example", "[CCJK] go", "<a1@x>");
    assert_eq!(device_of(&d), json!(laptop));
    let d = deliver("laptop@corp.example", "[CCJK:server] go", "<a2@x>");
    assert_eq!(d["accepted"], json!(false), "{d}");

    // One address on two devices: either may be named, the third may not, none is ambiguous.
    for dev in [&server, &build] {
        let body = json!({"device_id": dev, "email_address": "ops@corp.example"});
        assert_v1_ok(&s.post_json("/v1/email/config", Some(&token), body), 200);
    }
    let d = deliver("ops@corp.example", "[CCJK:build] go", "<b1@x>");
    assert_eq!(device_of(&d), json!(build));
    let d = deliver("ops@corp.example", "[CCJK:laptop] go", "<b2@x>");
    assert_eq!(d["accepted"], json!(false), "{d}");
    let d = deliver("ops@corp.example", "[CCJK] go", "<b3@x>");
    assert_eq!(d["accepted"], json!(false), "{d}");

    let reasons: Vec<Option<String>> = recorded(&s).into_iter().map(|(_, r)| r).collect();
    assert_eq!(
        reasons,
        [
            None,
            Some("unknown_device".to_string()),
            None,
            Some("unknown_device".to_string()),
            Some("ambiguous_device".to_string()),
        ]
    );
    assert_eq!(task_count(&s, &token), 2);
}

/// A configured address may mail commands, so an API key that sets one needs `task:create` as
/// well as `user:write`, in `/v1` and in Lite; a refused request stores nothing.
#[test]
fn setting_a_mail_address_needs_the_right_to_create_tasks() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (_, writer) = s.create_api_key(&token, &["user:write"]);
    let (_, both) = s.create_api_key(&token, &["user:write", "task:create"]);
    let body = json!({"email_address": "mine@corp.example"});
    let r = s.post_json("/v1/email/config", Some(&writer), body.clone());
    assert_v1_error(&r, 403, "INSUFFICIENT_SCOPE");
    let auth = format!("Bearer {writer}");
    let lite_body = json!({"email": "mine@corp.example"})
        .to_string()
        .into_bytes();
    let r = s.call(
        "POST",
        "/email/config",
        &[("Authorization", &auth)],
        Some(("application/json", lite_body)),
    );
    assert_lite_error(&r, 403, "INSUFFICIENT_SCOPE");
    let configs = assert_v1_ok(&s.get("/v1/email/config", Some(&token)), 200);
    assert_eq!(configs["configs"], json!([]));
    assert_v1_ok(&s.post_json("/v1/email/config", Some(&both), body), 200);
}

/// Anyone can send a delivery with a wrong signature: each is 401, but only the first 10 a
/// minute from one address become rows of `inbound_emails`.
#[test]
fn unsigned_floods_are_refused_and_only_a_few_are_recorded() {
    let s = TestServer::start_with(|c| c.inbound_secrets = vec![SECRET.into()]);
    let body = mail("me@example.com", "[CCJK] x", "x", "<f@x>");
    for _ in 0..15 {
        let r = post_signed(&s, "/email/incoming", &body, "not-the-secret", None);
        assert_lite_error(&r, 401, "INVALID_SIGNATURE");
    }
    assert_eq!(recorded(&s).len(), 10);
}
