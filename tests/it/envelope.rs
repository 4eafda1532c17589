//! What responses look like: `Resp`, the envelope of each API family (`/v1`, Lite,
//! Sessions) as assertion helpers, the rule that no error body shows internals, and parsing
//! of raw HTTP answers read from a bare TCP socket.

use serde_json::{Value, json};
use std::io::Read;
use std::net::TcpStream;

/// Strings that must never appear in an error body (docs/limits.md).
const LEAKS: [&str; 6] = ["sqlite", "select ", "/tmp", "panicked", "src/", "rusqlite"];

/// An HTTP response as the tests see it.
pub struct Resp {
    pub status: u16,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// The raw body text.
    pub text: String,
    /// The body parsed as JSON (`Null` if it is not JSON).
    pub body: Value,
}

impl Resp {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Fails if an error response shows SQL, file paths or panic text (docs/limits.md).
pub fn assert_no_leaks(what: &str, r: &Resp) {
    if r.status < 400 {
        return;
    }
    let lower = r.text.to_lowercase();
    for leak in LEAKS {
        assert!(
            !lower.contains(leak),
            "{what}: error body leaks {leak:?}: {}",
            r.text
        );
    }
}

/// Reads one HTTP response: until its headers and `Content-Length` bytes of body have
/// arrived, the peer closes, or 5 s pass without data. Returns whatever arrived.
pub fn raw_read(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let text = String::from_utf8_lossy(&buf);
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                break;
            }
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The status code of a raw response's status line (0 if there is none).
pub fn raw_status(response: &str) -> u16 {
    response
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn assert_request_id(r: &Resp) -> &str {
    let rid = r
        .header("x-request-id")
        .unwrap_or_else(|| panic!("no X-Request-Id: {}", r.text));
    assert!(!rid.is_empty());
    rid
}

/// A `/v1` success with `status`; returns `data`.
pub fn assert_v1_ok(r: &Resp, status: u16) -> Value {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.body["success"], json!(true), "{}", r.text);
    assert!(r.body["error"].is_null(), "{}", r.text);
    assert_eq!(
        r.body["meta"]["request_id"].as_str(),
        Some(assert_request_id(r))
    );
    r.body["data"].clone()
}

/// A `/v1` error: status, `code`, a message, `data: null`, and the request id in `meta`.
pub fn assert_v1_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.body["success"], json!(false), "{}", r.text);
    assert!(r.body["data"].is_null(), "{}", r.text);
    assert_eq!(r.body["error"]["code"], json!(code), "{}", r.text);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        r.text
    );
    assert_eq!(
        r.body["meta"]["request_id"].as_str(),
        Some(assert_request_id(r))
    );
}

/// A Lite success (200); returns `data`.
pub fn assert_lite_ok(r: &Resp) -> Value {
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["ok"], json!(true), "{}", r.text);
    assert!(r.body["error"].is_null(), "{}", r.text);
    assert_request_id(r);
    r.body["data"].clone()
}

/// A Lite error: `{ok: false, data: null, error: "message", code}`.
pub fn assert_lite_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.body["ok"], json!(false), "{}", r.text);
    assert!(r.body["data"].is_null(), "{}", r.text);
    assert_eq!(r.body["code"], json!(code), "{}", r.text);
    assert!(
        r.body["error"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        r.text
    );
    assert_request_id(r);
}

/// A Sessions error: exactly `{success: false, error: "message"}`; returns the message.
pub fn assert_sessions_error(r: &Resp, status: u16) -> String {
    assert_eq!(r.status, status, "{}", r.text);
    let obj = r
        .body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {}", r.text));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["error", "success"], "{}", r.text);
    assert_eq!(r.body["success"], json!(false));
    assert_request_id(r);
    r.body["error"].as_str().expect("error message").to_string()
}

/// The sorted keys of a JSON object, for exact-shape assertions.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort_unstable();
    k
}
