//! A fake e-mail relay for the mail tests: a tiny_http server on an ephemeral loopback port
//! that records every request (method, path, headers, body, arrival time) and answers from a
//! script (then from a default answer), including answers that hang. Plus the helpers the
//! mail stories share: a server wired to the relay, waiting for an outbox row's state, signing
//! an inbound webhook body.

use crate::common::*;
use ccjk_cloud::config::{Config, Provider};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The inbound webhook secret the mail tests configure.
pub const SECRET: &str = "test-secret-0123456789abcdef";

/// One request the relay received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Names lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Recorded {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// The body as form fields.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

/// How the relay answers one request.
#[derive(Clone, Debug)]
pub enum Answer {
    /// Status, extra headers, body.
    Reply(u16, Vec<(&'static str, String)>, String),
    /// Hold the request this long without answering, then drop it.
    Hang(Duration),
}

impl Answer {
    /// A JSON answer.
    pub fn json(status: u16, body: &str) -> Answer {
        Answer::Reply(status, vec![], body.to_string())
    }
}

/// A running fake relay. Stops when dropped.
pub struct FakeRelay {
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    default: Arc<Mutex<Answer>>,
    stop: Arc<AtomicBool>,
}

impl FakeRelay {
    /// A relay answering `default` unless scripted otherwise.
    pub fn start(default: Answer) -> FakeRelay {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind the fake relay");
        let addr = server.server_addr().to_ip().expect("an IP address");
        let relay = FakeRelay {
            url: format!("http://{addr}"),
            requests: Arc::default(),
            script: Arc::default(),
            default: Arc::new(Mutex::new(default)),
            stop: Arc::default(),
        };
        let (requests, script, default, stop) = (
            relay.requests.clone(),
            relay.script.clone(),
            relay.default.clone(),
            relay.stop.clone(),
        );
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let Ok(Some(mut rq)) = server.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                let mut body = Vec::new();
                let _ = rq.as_reader().read_to_end(&mut body);
                requests.lock().expect("lock").push(Recorded {
                    method: rq.method().as_str().to_string(),
                    path: rq.url().to_string(),
                    headers: rq
                        .headers()
                        .iter()
                        .map(|h| {
                            (
                                h.field.as_str().as_str().to_ascii_lowercase(),
                                h.value.as_str().to_string(),
                            )
                        })
                        .collect(),
                    body,
                    at: Instant::now(),
                });
                let answer = script
                    .lock()
                    .expect("lock")
                    .pop_front()
                    .unwrap_or_else(|| default.lock().expect("lock").clone());
                match answer {
                    Answer::Reply(status, headers, body) => {
                        let mut resp = tiny_http::Response::from_string(body)
                            .with_status_code(status)
                            .with_header(
                                tiny_http::Header::from_bytes("Content-Type", "application/json")
                                    .expect("header"),
                            );
                        for (k, v) in headers {
                            resp.add_header(
                                tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes())
                                    .expect("header"),
                            );
                        }
                        let _ = rq.respond(resp);
                    }
                    Answer::Hang(d) => {
                        thread::spawn(move || {
                            thread::sleep(d);
                            drop(rq);
                        });
                    }
                }
            }
        });
        relay
    }

    /// Answers the next requests with `answers`, in order.
    pub fn script(&self, answers: Vec<Answer>) {
        self.script.lock().expect("lock").extend(answers);
    }

    /// Changes the answer given when the script is empty.
    pub fn set_default(&self, a: Answer) {
        *self.default.lock().expect("lock") = a;
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }

    /// Waits until at least `n` requests arrived (panics after `within`).
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + within;
        loop {
            let r = self.requests();
            if r.len() >= n {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "the relay got {} request(s), expected {n}",
                r.len()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for FakeRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

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
