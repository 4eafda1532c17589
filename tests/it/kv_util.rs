//! Helpers for the KV tests (`kv_*`): an app registered by the admin (through the CLI binary
//! or the library), a device with an app token, requests that carry the token in each of its
//! three places, a byte-exact client for values, and the KV family's error shape.

use crate::common::{Resp, TestServer, assert_v1_ok, binary, keys, send};
use ccjk_cloud::config::Synchronous;
use ccjk_cloud::db::Db;
use ccjk_cloud::domain::apps::{self, AppInput};
use serde_json::{Value, json};
use std::time::Duration;

/// An app as the admin sees it.
pub struct AppReg {
    pub id: i64,
    pub site_key: String,
}

/// Registers an app with `ccjk-cloud app create`, as an admin would, and reads the id and site
/// key it prints.
pub fn cli_app(s: &TestServer, name: &str) -> AppReg {
    let out = binary()
        .args([
            "app",
            "create",
            "--name",
            name,
            "--developer",
            "Acme Tools",
            "--homepage",
            "https://acme.example/dash",
        ])
        .env("CCJK_DB", s.db_path())
        .output()
        .expect("run ccjk-cloud app create");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("app ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no app id in {text:?}"));
    let site_key = text
        .lines()
        .find_map(|l| l.strip_prefix("site key: "))
        .unwrap_or_else(|| panic!("no site key in {text:?}"))
        .trim()
        .to_string();
    AppReg { id, site_key }
}

/// Registers an app through the library (quicker than the CLI, for tests about other things).
pub fn app(s: &TestServer, name: &str) -> AppReg {
    let db = Db::open(&s.db_path(), Synchronous::Full).expect("open db");
    let input = AppInput {
        name: name.into(),
        developer_name: "Tests".into(),
        ..AppInput::default()
    };
    let a = apps::create(&db, &input).expect("create app");
    AppReg {
        id: a.id,
        site_key: a.site_key,
    }
}

/// `POST /v1/devices` {name}: the device's uuid.
pub fn device(s: &TestServer, session: &str, name: &str) -> String {
    let r = s.post_json("/v1/devices", Some(session), json!({ "name": name }));
    assert_v1_ok(&r, 201)["device"]["id"]
        .as_str()
        .expect("device id")
        .to_string()
}

/// `POST /apps/{app}/authorize` with `body` and optional session token.
pub fn authorize_with(s: &TestServer, app: i64, session: Option<&str>, body: Value) -> Resp {
    s.json(
        "POST",
        &format!("/apps/{app}/authorize"),
        session,
        Some(&body),
    )
}

/// The owner authorises `app` on `device`; returns the app token.
pub fn authorize(s: &TestServer, app: i64, session: &str, device: &str, read_only: bool) -> String {
    let r = authorize_with(
        s,
        app,
        Some(session),
        json!({"deviceUuid": device, "readOnly": read_only, "note": "tests"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let t = r.body["token"].as_str().expect("token").to_string();
    assert!(t.starts_with("cca_"), "{t}");
    t
}

/// A KV error: exactly `{error, code}` with the status.
pub fn assert_kv_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(keys(&r.body), ["code", "error"], "{}", r.text);
    assert_eq!(r.body["code"], json!(code), "{}", r.text);
    assert!(r.body["error"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(r.header("x-request-id").is_some());
}

/// A KV request with the token as `Authorization: Bearer`, extra headers, and an optional
/// body `(content type, bytes)`.
pub fn kv(
    s: &TestServer,
    method: &str,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> Resp {
    let auth = format!("Bearer {token}");
    let mut h = vec![("Authorization", auth.as_str())];
    h.extend_from_slice(headers);
    s.call(method, path, &h, body)
}

/// `POST /kv/{key}` of a text value with the bearer token.
pub fn put_text(s: &TestServer, token: &str, key: &str, value: &str) -> Resp {
    kv(
        s,
        "POST",
        &format!("/kv/{key}"),
        token,
        &[],
        Some(("text/plain", value.as_bytes().to_vec())),
    )
}

/// `GET /kv/{key}` with the bearer token.
pub fn get_value(s: &TestServer, token: &str, key: &str) -> Resp {
    kv(s, "GET", &format!("/kv/{key}"), token, &[], None)
}

/// `GET path` with the bearer token, reading the body as bytes: (status, content type, body).
pub fn get_bytes(s: &TestServer, path: &str, token: &str) -> (u16, String, Vec<u8>) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build(),
    );
    let mut r = agent
        .get(format!("{}{path}", s.base()))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .expect("GET");
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let status = r.status().as_u16();
    (status, ct, r.body_mut().read_to_vec().expect("body"))
}

/// `POST /kv/{key}` of raw bytes with the bearer token, through a client of its own.
pub fn put_bytes(s: &TestServer, token: &str, key: &str, ct: &str, bytes: Vec<u8>) -> Resp {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build(),
    );
    let auth = format!("Bearer {token}");
    send(
        &agent,
        s.base(),
        "POST",
        &format!("/kv/{key}"),
        &[("Authorization", &auth)],
        Some((ct, bytes)),
    )
}

/// Runs SQL on the server's database file from outside the server (as an admin with sqlite3).
pub fn sql<T: rusqlite::types::FromSql>(s: &TestServer, query: &str) -> T {
    let c = rusqlite::Connection::open(s.db_path()).expect("open db");
    c.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    c.query_row(query, [], |r| r.get(0)).expect("query")
}
