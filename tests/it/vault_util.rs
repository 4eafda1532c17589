//! Helpers for the Vault tests: sites and accounts made over HTTP, `PUT` requests, reads of the
//! database file beside the server (read-only), and its raw bytes (main file, `-wal`, `-shm`).

use crate::common::{Resp, TestServer, assert_v1_ok};
use serde_json::{Value, json};

/// `PUT path` with a JSON body.
pub fn put(s: &TestServer, path: &str, token: Option<&str>, body: Value) -> Resp {
    s.json("PUT", path, token, Some(&body))
}

/// Creates a site (asserting 201); returns `data`.
pub fn site(s: &TestServer, token: &str, body: Value) -> Value {
    assert_v1_ok(&s.post_json("/v1/sites", Some(token), body), 201)
}

/// Creates an account on site `key` (asserting 201); returns the account.
pub fn account(s: &TestServer, token: &str, key: &str, body: Value) -> Value {
    let r = s.post_json(&format!("/v1/sites/{key}/accounts"), Some(token), body);
    assert_v1_ok(&r, 201)["account"].clone()
}

/// The id of an account answer.
pub fn id(account: &Value) -> String {
    account["id"].as_str().expect("account id").to_string()
}

/// A site `openai` with a secret `apiKey`, a plain `token`, a numbered `quota` and an
/// `expiresAt`, the shape most tests use.
pub fn openai(s: &TestServer, token: &str) -> Value {
    site(
        s,
        token,
        json!({"key": "openai", "name": "OpenAI", "fields": [
            {"name": "apiKey", "type": "string", "secret": true, "regex": "^sk-"},
            {"name": "token", "type": "string"},
            {"name": "quota", "type": "number", "default": 100},
            {"name": "expiresAt", "type": "datetime"}
        ]}),
    )
}

/// A read-only connection to the server's database file.
pub fn db(s: &TestServer) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(s.db_path(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the database read-only")
}

/// One integer from the database.
pub fn count(s: &TestServer, sql: &str) -> i64 {
    db(s).query_row(sql, [], |r| r.get(0)).expect(sql)
}

/// The bytes of the database file and of its `-wal` and `-shm` files (those that exist).
pub fn file_bytes(s: &TestServer) -> Vec<(String, Vec<u8>)> {
    let base = s.db_path();
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| {
            let p = format!("{}{suffix}", base.display());
            std::fs::read(&p).ok().map(|b| (p, b))
        })
        .collect()
}

/// Does `needle` occur in `hay`?
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Now plus `days`, as an RFC 3339 UTC string.
pub fn iso_in_days(days: u64) -> String {
    let t = std::time::SystemTime::now() + std::time::Duration::from_secs(days * 86_400);
    humantime::format_rfc3339_seconds(t).to_string()
}
