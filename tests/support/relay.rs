//! A tiny e-mail relay for trying the mailer locally, and the fake relay the integration tests
//! use (they include this file as a module): a tiny_http server that records every request
//! (method, path, headers, body, arrival time) and answers from a script, then from a default
//! answer (including answers that hang).
//!
//! `cargo run --example relay [ADDR]` (default `127.0.0.1:8025`) prints each request it gets as
//! one JSON line and answers `200 {"id": "local-N"}`; point the server at it with
//! `CCJK_EMAIL_PROVIDER=webhook CCJK_EMAIL_API_URL=http://127.0.0.1:8025/send` (README
//! "Walk-through: a command by e-mail").

use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8025".into());
    let relay = FakeRelay::bind(&addr, Answer::json(200, ""), true);
    eprintln!("relay listening on {}; Ctrl-C stops it", relay.url);
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

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

    /// The request as one JSON line (the body as JSON when it is JSON).
    pub fn printable(&self) -> Value {
        let body = serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| json!(String::from_utf8_lossy(&self.body)));
        let headers: serde_json::Map<String, Value> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        json!({"method": self.method, "path": self.path, "headers": headers, "body": body})
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
    /// A relay on an ephemeral loopback port answering `default` unless scripted otherwise.
    pub fn start(default: Answer) -> FakeRelay {
        FakeRelay::bind("127.0.0.1:0", default, false)
    }

    /// A relay on `addr`; with `print`, each request is printed as a JSON line on stdout and an
    /// empty default body becomes `{"id": "local-N"}`.
    pub fn bind(addr: &str, default: Answer, print: bool) -> FakeRelay {
        let server = tiny_http::Server::http(addr).expect("bind the fake relay");
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
                let n = {
                    let r = requests.lock().expect("lock");
                    if print && let Some(q) = r.last() {
                        println!("{}", q.printable());
                    }
                    r.len()
                };
                let mut answer = script
                    .lock()
                    .expect("lock")
                    .pop_front()
                    .unwrap_or_else(|| default.lock().expect("lock").clone());
                if let Answer::Reply(200, _, body) = &mut answer
                    && body.is_empty()
                {
                    *body = json!({"id": format!("local-{n}")}).to_string();
                }
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
