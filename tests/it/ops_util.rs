//! Helpers for the tests of what an owner keeps and reads (`ops_*`): multipart bodies, a real
//! gzip file, byte-exact downloads, and direct access to the test server's SQLite file to seed
//! history or move timestamps into the past, as an admin with `sqlite3` could.

use crate::common::TestServer;
use rusqlite::{Connection, params};
use std::time::{Duration, SystemTime};

/// The metadata part of a gzip daemon log upload.
pub const META_GZ: &[u8] = br#"{"type":"daemon","date":"2026-01-20","compressed":true}"#;

/// The multipart boundary the tests use.
pub const BOUNDARY: &str = "ccjk-test-boundary-7MA4YWxkTrZu0gW";

/// A `multipart/form-data` body: `(name, file name, bytes)` per part, closed unless `truncate`.
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])], truncate: bool) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, file, data) in parts {
        let disp = match file {
            Some(f) => format!("form-data; name=\"{name}\"; filename=\"{f}\""),
            None => format!("form-data; name=\"{name}\""),
        };
        b.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: {disp}\r\n\r\n").as_bytes(),
        );
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    if truncate {
        b.truncate(b.len() - 10);
    } else {
        b.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    }
    b
}

/// The content type of `multipart`'s bodies.
pub fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// `n` pseudo-random bytes (xorshift; incompressible, so gzip adds to them).
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// CRC-32 (IEEE), as gzip's trailer carries it.
fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *t = c;
    }
    !data.iter().fold(!0u32, |c, &b| {
        table[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

/// A valid gzip file of `data` in stored (uncompressed) deflate blocks: what `gzip` would send
/// for data that does not compress, made without a compression crate.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    let mut chunks = data.chunks(65_535).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(c) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let len = c.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// An answer read as bytes (downloads are not text).
pub struct Bytes {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Bytes {
    /// A header's value (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` with a bearer token, read as bytes (up to 64 MiB).
pub fn get_bytes(s: &TestServer, path: &str, token: &str) -> Bytes {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build(),
    );
    let mut r = agent
        .get(format!("{}{path}", s.base()))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = r
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .expect("a body");
    Bytes {
        status: r.status().as_u16(),
        headers,
        body,
    }
}

/// A connection to the test server's database (the server keeps running; SQLite's locking
/// and the busy timeout make that safe).
pub fn db(s: &TestServer) -> Connection {
    let c = Connection::open(s.db_path()).expect("open the database");
    c.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    c
}

/// The internal id of the device with this public id.
pub fn device_row_id(c: &Connection, uuid: &str) -> i64 {
    c.query_row("SELECT id FROM devices WHERE uuid = ?1", [uuid], |r| {
        r.get(0)
    })
    .expect("a device row")
}

/// Adds a plan row and moves the user with this email onto it (as an admin would).
pub fn put_on_plan(
    c: &Connection,
    email: &str,
    plan: &str,
    quota: Option<i64>,
    retention: Option<i64>,
) {
    c.execute(
        "INSERT INTO plans (name, max_devices, max_tasks_per_day, max_concurrent_tasks, \
         storage_quota_bytes, log_retention_days, api_calls_per_minute) \
         VALUES (?1, NULL, NULL, 10, ?2, ?3, 1000)",
        params![plan, quota, retention],
    )
    .expect("plan");
    let n = c
        .execute(
            "UPDATE users SET plan = ?2 WHERE email = ?1",
            params![email, plan],
        )
        .expect("set plan");
    assert_eq!(n, 1, "no user {email}");
}

/// A stored timestamp `ago` before now.
pub fn stamp_ago(ago: Duration) -> String {
    humantime::format_rfc3339_millis(SystemTime::now() - ago).to_string()
}
