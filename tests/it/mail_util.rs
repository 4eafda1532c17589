//! What the mail stories share: the fake relay (`tests/support/relay.rs`, the same one the README's
//! walk-through runs), a server wired to it, waiting for an outbox row's state, signing an
//! inbound webhook body.

use crate::common::*;
use ccjk_cloud::config::{Config, Provider};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::thread;
use std::time::{Duration, Instant};

#[path = "../support/relay.rs"]
#[allow(dead_code)]
mod relay;
pub use relay::{Answer, FakeRelay, Recorded};

/// The inbound webhook secret the mail tests configure.
pub const SECRET: &str = "test-secret-0123456789abcdef";

/// Points `cfg` at `relay` as `provider`, with short retries and the inbound secret.
pub fn use_relay(cfg: &mut Config, relay: &FakeRelay, provider: Provider) {
    cfg.mail.provider = Some(provider);
    cfg.mail.api_key = Some("test-key".into());
    cfg.mail.from = Some("CCJK <ccjk@mail.example.com>".into());
    cfg.mail.api_url = Some(if provider == Provider::Webhook {
        format!("{}/hook", relay.url)
    } else {
        relay.url.clone()
    });
    cfg.mail.backoff_base = Duration::from_millis(100);
    cfg.inbound_secrets = vec![SECRET.into()];
    // `wait_mail` polls every 25 ms, far over the user limit of 100 a minute (whose own tests
    // are in ops_rate_limits).
    cfg.rate_limit_user = 0;
}

/// Polls `GET /v1/email/outbox/{id}` until `done` holds for the mail (panics after `within`).
pub fn wait_mail(
    s: &TestServer,
    token: &str,
    id: i64,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let m = assert_v1_ok(&s.get(&format!("/v1/email/outbox/{id}"), Some(token)), 200)["mail"]
            .clone();
        if done(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "mail never got there: {m}");
        thread::sleep(Duration::from_millis(25));
    }
}

/// Queues a mail to `to` with `POST /v1/email/send`; returns its outbox id.
pub fn send_mail(s: &TestServer, token: &str, to: &str, subject: &str) -> i64 {
    let r = s.post_json(
        "/v1/email/send",
        Some(token),
        serde_json::json!({"to": to, "subject": subject, "text": "hello", "html": "<p>hello</p>"}),
    );
    assert_v1_ok(&r, 202)["mail"]["id"]
        .as_i64()
        .expect("mail id")
}

/// Hex HMAC-SHA256 of `data` under `secret`.
pub fn sign(secret: &str, data: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(data);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Posts `body` to `path` signed with `secret` (over `ts.body` when `ts` is given).
pub fn post_signed(s: &TestServer, path: &str, body: &[u8], secret: &str, ts: Option<i64>) -> Resp {
    let sig = match ts {
        Some(t) => sign(secret, &[format!("{t}.").as_bytes(), body].concat()),
        None => sign(secret, body),
    };
    let ts_s = ts.map(|t| t.to_string());
    let mut h = vec![("X-Email-Signature", sig.as_str())];
    if let Some(t) = &ts_s {
        h.push(("X-Email-Timestamp", t.as_str()));
    }
    s.call("POST", path, &h, Some(("application/json", body.to_vec())))
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}
