//! Outbound mail through each relay's documented API (README "Mail"): a fake relay on loopback
//! plays the provider, and each test checks the exact request it received (method, path,
//! headers, body fields) and what the outbox recorded; then the same relay answers 503, 429
//! with `Retry-After`, 400 and a hang, and the tests check retry, backoff bounds, give-up and
//! timeout.

use crate::common::*;
use crate::mail_util::*;
use ccjk_cloud::config::Provider;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// A server sending through a fake relay playing `provider` (answering `answer`), a user
/// (the server's first, so an admin) and one mail sent to their own address. Returns the
/// request the relay got and the mail as the outbox shows it once sent.
fn one_mail(provider: Provider, answer: Answer) -> (Recorded, Value) {
    let relay = FakeRelay::start(answer);
    let s = TestServer::start_with(|c| use_relay(c, &relay, provider));
    let (token, _, _) = s.register("me@example.com");
    let id = send_mail(&s, &token, "me@example.com", "Hello there");
    let m = wait_mail(&s, &token, id, WAIT, |m| m["status"] != "queued");
    assert_eq!(m["status"], "sent", "{m}");
    assert_eq!(m["attempts"], 1);
    assert_eq!(m["provider"], provider.name());
    let reqs = relay.requests();
    assert_eq!(reqs.len(), 1, "one call per mail");
    assert_eq!(reqs[0].method, "POST");
    (reqs[0].clone(), m)
}

#[test]
fn resend_gets_json_with_bearer_and_idempotency_key() {
    let (r, m) = one_mail(
        Provider::Resend,
        Answer::json(200, r#"{"id":"re_49a3999c"}"#),
    );
    assert_eq!(r.path, "/emails");
    assert_eq!(r.header("authorization"), Some("Bearer test-key"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(
        r.header("idempotency-key")
            .is_some_and(|k| k.starts_with("ccjk-"))
    );
    assert_eq!(
        r.json(),
        json!({"from": "CCJK <ccjk@mail.example.com>", "to": ["me@example.com"],
               "subject": "Hello there", "text": "hello", "html": "<p>hello</p>"})
    );
    assert_eq!(m["provider_message_id"], "re_49a3999c");
}

#[test]
fn postmark_gets_its_server_token_and_capitalised_fields() {
    let answer = r#"{"To":"me@example.com","SubmittedAt":"2026-01-20T10:00:00Z","MessageID":"b7bc2f4a-e38e-4336-af7d-e6c392c2f817","ErrorCode":0,"Message":"OK"}"#;
    let (r, m) = one_mail(Provider::Postmark, Answer::json(200, answer));
    assert_eq!(r.path, "/email");
    assert_eq!(r.header("x-postmark-server-token"), Some("test-key"));
    assert_eq!(r.header("accept"), Some("application/json"));
    assert_eq!(r.header("authorization"), None);
    assert_eq!(
        r.json(),
        json!({"From": "CCJK <ccjk@mail.example.com>", "To": "me@example.com",
               "Subject": "Hello there", "TextBody": "hello", "HtmlBody": "<p>hello</p>",
               "MessageStream": "outbound"})
    );
    assert_eq!(
        m["provider_message_id"],
        "b7bc2f4a-e38e-4336-af7d-e6c392c2f817"
    );
}

#[test]
fn mailgun_gets_a_form_with_basic_auth_on_its_domain() {
    let answer = r#"{"id":"<20260120.1@mail.example.com>","message":"Queued. Thank you."}"#;
    let (r, m) = one_mail(Provider::Mailgun, Answer::json(200, answer));
    // The domain comes from the From address when CCJK_EMAIL_DOMAIN is not set.
    assert_eq!(r.path, "/v3/mail.example.com/messages");
    // base64("api:test-key")
    assert_eq!(r.header("authorization"), Some("Basic YXBpOnRlc3Qta2V5"));
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form = r.form();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(field("from"), Some("CCJK <ccjk@mail.example.com>"));
    assert_eq!(field("to"), Some("me@example.com"));
    assert_eq!(field("subject"), Some("Hello there"));
    assert_eq!(field("text"), Some("hello"));
    assert_eq!(field("html"), Some("<p>hello</p>"));
    assert_eq!(m["provider_message_id"], "<20260120.1@mail.example.com>");
}

#[test]
fn sendgrid_gets_personalizations_and_answers_202_with_a_header_id() {
    let answer = Answer::Reply(
        202,
        vec![("X-Message-Id", "sg-W1ndMT9Z".into())],
        String::new(),
    );
    let (r, m) = one_mail(Provider::Sendgrid, answer);
    assert_eq!(r.path, "/v3/mail/send");
    assert_eq!(r.header("authorization"), Some("Bearer test-key"));
    assert_eq!(
        r.json(),
        json!({
            "personalizations": [{"to": [{"email": "me@example.com"}]}],
            "from": {"email": "ccjk@mail.example.com", "name": "CCJK"},
            "subject": "Hello there",
            "content": [{"type": "text/plain", "value": "hello"},
                        {"type": "text/html", "value": "<p>hello</p>"}],
        })
    );
    assert_eq!(m["provider_message_id"], "sg-W1ndMT9Z");
}

#[test]
fn the_generic_webhook_gets_from_to_subject_text_html() {
    let (r, m) = one_mail(Provider::Webhook, Answer::json(200, r#"{"id":"wh-7"}"#));
    assert_eq!(r.path, "/hook", "the webhook URL is used as it is");
    assert_eq!(r.header("authorization"), Some("Bearer test-key"));
    assert!(r.header("idempotency-key").is_some());
    assert_eq!(
        r.json(),
        json!({"from": "CCJK <ccjk@mail.example.com>", "to": "me@example.com",
               "subject": "Hello there", "text": "hello", "html": "<p>hello</p>"})
    );
    assert_eq!(m["provider_message_id"], "wh-7");
}

#[test]
fn server_errors_are_retried_with_backoff_and_the_same_idempotency_key() {
    let relay = FakeRelay::start(Answer::json(200, r#"{"id":"re_ok"}"#));
    relay.script(vec![Answer::json(503, "{}"), Answer::json(502, "{}")]);
    let s = TestServer::start_with(|c| use_relay(c, &relay, Provider::Resend));
    let (token, _, _) = s.register("me@example.com");
    let id = send_mail(&s, &token, "me@example.com", "retry me");
    let m = wait_mail(&s, &token, id, WAIT, |m| m["status"] == "sent");
    assert_eq!(m["attempts"], 3);
    assert_eq!(m["provider_message_id"], "re_ok");
    let r = relay.requests();
    assert_eq!(r.len(), 3);
    let keys: Vec<_> = r.iter().map(|q| q.header("idempotency-key")).collect();
    assert!(
        keys.iter().all(|k| *k == keys[0] && k.is_some()),
        "{keys:?}"
    );
    // Base 100 ms, doubled per attempt, jitter ±20 %: 80–120 ms, then 160–240 ms (plus
    // scheduling slack on a busy machine).
    let g1 = r[1].at - r[0].at;
    let g2 = r[2].at - r[1].at;
    assert!(
        g1 >= Duration::from_millis(80) && g1 < Duration::from_secs(3),
        "{g1:?}"
    );
    assert!(
        g2 >= Duration::from_millis(160) && g2 < Duration::from_secs(3),
        "{g2:?}"
    );
    assert_eq!(
        s.metric("ccjk_email_sends_total{provider=\"resend\",outcome=\"retry\"}"),
        2
    );
    assert_eq!(
        s.metric("ccjk_email_sends_total{provider=\"resend\",outcome=\"sent\"}"),
        1
    );
    assert_eq!(s.metric("ccjk_email_outbox{status=\"sent\"}"), 1);
}

#[test]
fn a_429_is_retried_no_sooner_than_its_retry_after() {
    let relay = FakeRelay::start(Answer::json(200, r#"{"id":"re_ok"}"#));
    relay.script(vec![Answer::Reply(
        429,
        vec![("Retry-After", "2".into())],
        r#"{"message":"Too many requests"}"#.into(),
    )]);
    let s = TestServer::start_with(|c| use_relay(c, &relay, Provider::Resend));
    let (token, _, _) = s.register("me@example.com");
    let id = send_mail(&s, &token, "me@example.com", "later");
    let queued = wait_mail(&s, &token, id, WAIT, |m| {
        m["attempts"] == 1 && m["last_error"].is_string()
    });
    assert!(
        queued["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("429")),
        "{queued}"
    );
    let m = wait_mail(&s, &token, id, WAIT, |m| m["status"] == "sent");
    assert_eq!(m["attempts"], 2);
    let r = relay.requests();
    let gap = r[1].at - r[0].at;
    assert!(
        gap >= Duration::from_millis(1950),
        "Retry-After 2 s honoured (backoff alone is 100 ms): {gap:?}"
    );
}

#[test]
fn a_400_fails_at_once_and_keeps_the_providers_answer() {
    let relay = FakeRelay::start(Answer::json(
        422,
        r#"{"statusCode":422,"message":"Invalid `to` field","name":"validation_error"}"#,
    ));
    let s = TestServer::start_with(|c| use_relay(c, &relay, Provider::Resend));
    let (token, _, _) = s.register("me@example.com");
    let id = send_mail(&s, &token, "me@example.com", "refused");
    let m = wait_mail(&s, &token, id, WAIT, |m| m["status"] != "queued");
    assert_eq!(m["status"], "failed");
    assert_eq!(m["attempts"], 1);
    let err = m["last_error"].as_str().expect("last_error");
    assert!(
        err.contains("422") && err.contains("Invalid `to` field"),
        "{err}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(relay.requests().len(), 1, "never retried");
    assert_eq!(
        s.metric("ccjk_email_sends_total{provider=\"resend\",outcome=\"failed\"}"),
        1
    );
}

#[test]
fn a_hanging_relay_times_out_and_the_mail_is_retried() {
    let relay = FakeRelay::start(Answer::json(200, r#"{"id":"re_late"}"#));
    relay.script(vec![Answer::Hang(Duration::from_secs(15))]);
    let s = TestServer::start_with(|c| {
        use_relay(c, &relay, Provider::Resend);
        c.mail.timeout = Duration::from_secs(1);
    });
    let (token, _, _) = s.register("me@example.com");
    let id = send_mail(&s, &token, "me@example.com", "slow relay");
    let m = wait_mail(&s, &token, id, WAIT, |m| m["status"] == "sent");
    assert_eq!(m["attempts"], 2);
    let r = relay.requests();
    let gap = r[1].at - r[0].at;
    assert!(
        gap >= Duration::from_millis(900) && gap < Duration::from_secs(8),
        "the first call was cut at the 1 s timeout, not at the 15 s hang: {gap:?}"
    );
}

#[test]
fn ten_failed_attempts_give_up() {
    let relay = FakeRelay::start(Answer::json(503, r#"{"error":"down"}"#));
    let s = TestServer::start_with(|c| {
        use_relay(c, &relay, Provider::Webhook);
        c.mail.backoff_base = Duration::from_millis(10);
    });
    let (token, _, _) = s.register("me@example.com");
    let id = send_mail(&s, &token, "me@example.com", "doomed");
    let m = wait_mail(&s, &token, id, Duration::from_secs(40), |m| {
        m["status"] != "queued"
    });
    assert_eq!(m["status"], "failed");
    assert_eq!(m["attempts"], 10);
    assert!(
        m["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("gave up after 10 attempts") && e.contains("down")),
        "{m}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(relay.requests().len(), 10);
}

#[test]
fn without_a_relay_mail_stays_in_the_outbox_as_unsent() {
    let s = TestServer::start();
    let (token, _, _) = s.register("me@example.com");
    let id = send_mail(&s, &token, "me@example.com", "nowhere to go");
    let m = wait_mail(&s, &token, id, WAIT, |m| m["status"] != "queued");
    assert_eq!(m["status"], "unsent");
    assert!(
        m["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("CCJK_EMAIL_PROVIDER"))
    );
    assert_eq!(s.metric("ccjk_email_outbox{status=\"unsent\"}"), 1);
    assert_eq!(s.metric("ccjk_email_outbox{status=\"queued\"}"), 0);
    let list = assert_v1_ok(&s.get("/v1/email/outbox?status=unsent", Some(&token)), 200);
    assert_eq!(list["mails"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["count"], 1);
}

#[test]
fn mail_goes_only_to_own_or_configured_addresses_unless_admin() {
    let relay = FakeRelay::start(Answer::json(200, r#"{"id":"x"}"#));
    let s = TestServer::start_with(|c| use_relay(c, &relay, Provider::Resend));
    let (admin, _, _) = s.register("admin@example.com");
    let (token, _, _) = s.register("user@example.com");
    let stranger = json!({"to": "stranger@example.org", "subject": "hi", "body": "spam"});
    let r = s.post_json("/v1/email/send", Some(&token), stranger.clone());
    assert_v1_error(&r, 403, "FORBIDDEN");
    let key = s.lite_auth("user@example.com", PASSWORD);
    let r = s.call(
        "POST",
        "/email/send",
        &[("X-Device-Key", &key)],
        Some(("application/json", stranger.to_string().into_bytes())),
    );
    assert_lite_error(&r, 403, "FORBIDDEN");
    // A configured address is allowed, and so is anything for an admin.
    assert_v1_ok(
        &s.post_json(
            "/v1/email/config",
            Some(&token),
            json!({"email_address": "Work@Example.org"}),
        ),
        200,
    );
    let ok = json!({"to": "work@example.org", "subject": "hi", "body": "fine"});
    assert_v1_ok(&s.post_json("/v1/email/send", Some(&token), ok), 202);
    assert_v1_ok(&s.post_json("/v1/email/send", Some(&admin), stranger), 202);
    let r = s.post_json(
        "/v1/email/send",
        Some(&token),
        json!({"to": "user@example.com", "subject": "two\nlines", "body": "x"}),
    );
    assert_v1_error(&r, 422, "VALIDATION_FAILED");
    relay.wait_for(2, WAIT);
}
