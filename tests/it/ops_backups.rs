//! Config backups (README "Backups, logs and statistics"): a document round-trips byte for
//! byte in `/v1` and Lite; another user's backup answers 404 everywhere; a device key reaches
//! only its own device's backups; automatic backups keep the newest 10 per device; bad input is
//! 415/422; scopes are enforced; a backup that would pass the storage quota is refused and
//! stores nothing.

use crate::common::{TestServer, assert_lite_error, assert_lite_ok, assert_v1_error, assert_v1_ok};
use crate::ops_util::{db, put_on_plan};
use crate::queue_util::new_device;
use serde_json::{Value, json};

/// A document whose exact bytes a re-serializing server would change: odd spacing, key order,
/// number forms, escapes, non-ASCII, nesting.
const DOC: &str = "{\"z\" : 1,\"a\":[1, 2.50, 1e3, -0, \"\\u00e9\\n\\/\", \"caf\u{e9}\"],  \"nested\":{\"k\":null,\"t\":true}}";

fn backup_body(device: Option<&str>, name: &str, doc: &str, auto: bool) -> Vec<u8> {
    let device = device.map_or("null".to_string(), |d| format!("\"{d}\""));
    format!(
        "{{\"device_id\":{device},\"config_name\":\"{name}\",\"config_data\":{doc},\"is_auto\":{auto}}}"
    )
    .into_bytes()
}

fn post_raw(s: &TestServer, path: &str, token: &str, body: Vec<u8>) -> crate::common::Resp {
    let auth = format!("Bearer {token}");
    s.call(
        "POST",
        path,
        &[("Authorization", &auth)],
        Some(("application/json", body)),
    )
}

/// The exact text of `"field":<value>` in a response, with the value as sent.
fn assert_raw_field(text: &str, field: &str, doc: &str) {
    let needle = format!("\"{field}\":{doc}");
    assert!(text.contains(&needle), "{needle} not in {text}");
}

#[test]
fn a_backup_restores_byte_for_byte_and_only_for_its_owner() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, _key) = new_device(&s, &token, "laptop");
    let r = post_raw(
        &s,
        "/v1/config/backup",
        &token,
        backup_body(Some(&dev), "claude-code-config", DOC, false),
    );
    let d = assert_v1_ok(&r, 201);
    let id = d["backup"]["id"].as_i64().expect("id");
    assert_eq!(d["backup"]["device_id"], json!(dev));
    assert_eq!(d["backup"]["size_bytes"], json!(DOC.len()));
    assert_eq!(d["backup"]["config_name"], json!("claude-code-config"));

    let r = s.json(
        "POST",
        &format!("/v1/config/restore/{id}"),
        Some(&token),
        None,
    );
    assert_v1_ok(&r, 200);
    assert_raw_field(&r.text, "config_data", DOC);
    let again = s.get(&format!("/v1/config/backups/{id}"), Some(&token));
    assert_raw_field(&again.text, "config_data", DOC);
    let parsed: Value = serde_json::from_str(DOC).expect("the document is JSON");
    assert_eq!(r.body["data"]["config_data"], parsed);

    let list = assert_v1_ok(&s.get("/v1/config/backups", Some(&token)), 200);
    assert_eq!(list["backups"].as_array().map(Vec::len), Some(1));
    let by_dev = s.get(&format!("/v1/config/backups?device_id={dev}"), Some(&token));
    assert_eq!(assert_v1_ok(&by_dev, 200)["count"], json!(1));

    // Another user: every id of the owner's answers like a missing one.
    let (other, _, _) = s.register("other@example.com");
    for (m, p) in [
        ("POST", format!("/v1/config/restore/{id}")),
        ("GET", format!("/v1/config/backups/{id}")),
        ("DELETE", format!("/v1/config/backups/{id}")),
        ("GET", format!("/v1/config/backups?device_id={dev}")),
    ] {
        assert_v1_error(&s.json(m, &p, Some(&other), None), 404, "NOT_FOUND");
    }
    let theirs = assert_v1_ok(&s.get("/v1/config/backups", Some(&other)), 200);
    assert_eq!(theirs["backups"], json!([]));
    let r = post_raw(
        &s,
        "/v1/config/backup",
        &other,
        backup_body(Some(&dev), "x", "{}", false),
    );
    assert_v1_error(&r, 404, "NOT_FOUND");
    for bad in ["999999", "abc", "-1"] {
        let r = s.json(
            "POST",
            &format!("/v1/config/restore/{bad}"),
            Some(&token),
            None,
        );
        assert_v1_error(&r, 404, "NOT_FOUND");
    }

    // The owner deletes it; then it is gone.
    let r = s.delete(&format!("/v1/config/backups/{id}"), Some(&token));
    assert_v1_ok(&r, 200);
    let r = s.json(
        "POST",
        &format!("/v1/config/restore/{id}"),
        Some(&token),
        None,
    );
    assert_v1_error(&r, 404, "NOT_FOUND");
}

#[test]
fn a_device_key_reaches_its_own_device_only_and_lite_round_trips() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev_a, key_a) = new_device(&s, &token, "a");
    let (dev_b, key_b) = new_device(&s, &token, "b");
    // The daemon backs up its own config with its key, naming no device.
    let r = post_raw(
        &s,
        "/v1/config/backup",
        &key_a,
        backup_body(None, "a-conf", DOC, false),
    );
    let a_id = assert_v1_ok(&r, 201)["backup"]["id"].as_i64().expect("id");
    assert_eq!(r.body["data"]["backup"]["device_id"], json!(dev_a));
    let r = post_raw(
        &s,
        "/v1/config/backup",
        &key_b,
        backup_body(None, "b-conf", "[1,2]", false),
    );
    let b_id = assert_v1_ok(&r, 201)["backup"]["id"].as_i64().expect("id");
    // Naming another device with a device key is 404.
    let r = post_raw(
        &s,
        "/v1/config/backup",
        &key_a,
        backup_body(Some(&dev_b), "x", "{}", false),
    );
    assert_v1_error(&r, 404, "NOT_FOUND");
    // Device A sees and restores only its own.
    let list = assert_v1_ok(&s.get("/v1/config/backups", Some(&key_a)), 200);
    let ids: Vec<i64> = list["backups"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|b| b["id"].as_i64())
        .collect();
    assert_eq!(ids, vec![a_id]);
    let r = s.json(
        "POST",
        &format!("/v1/config/restore/{b_id}"),
        Some(&key_a),
        None,
    );
    assert_v1_error(&r, 404, "NOT_FOUND");
    let r = s.json(
        "POST",
        &format!("/v1/config/restore/{a_id}"),
        Some(&key_a),
        None,
    );
    assert_raw_field(&r.text, "config_data", DOC);
    // The owner sees both.
    let all = assert_v1_ok(&s.get("/v1/config/backups", Some(&token)), 200);
    assert_eq!(all["count"], json!(2));

    // Lite: {name, config} with X-Device-Key, in Lite's envelope.
    let body = format!("{{\"name\":\"lite-conf\",\"config\":{DOC}}}").into_bytes();
    let r = s.call(
        "POST",
        "/config/backup",
        &[("X-Device-Key", &key_a)],
        Some(("application/json", body)),
    );
    let lite_id = assert_lite_ok(&r)["backup_id"].as_i64().expect("backup_id");
    let r = s.call("GET", "/config/backups", &[("X-Device-Key", &key_a)], None);
    let names: Vec<String> = assert_lite_ok(&r)["backups"]
        .as_array()
        .expect("backups")
        .iter()
        .filter_map(|b| b["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(names, ["lite-conf", "a-conf"]);
    let r = s.call(
        "POST",
        &format!("/config/restore/{lite_id}"),
        &[("X-Device-Key", &key_a)],
        None,
    );
    assert_lite_ok(&r);
    assert_raw_field(&r.text, "config", DOC);
    let r = s.call(
        "POST",
        &format!("/config/restore/{b_id}"),
        &[("X-Device-Key", &key_a)],
        None,
    );
    crate::common::assert_lite_error(&r, 404, "NOT_FOUND");
}

#[test]
fn automatic_backups_keep_the_newest_ten_per_device() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "laptop");
    let manual = post_raw(
        &s,
        "/v1/config/backup",
        &key,
        backup_body(None, "keep-me", "{}", false),
    );
    assert_v1_ok(&manual, 201);
    for i in 0..12 {
        let doc = format!("{{\"n\":{i}}}");
        let r = post_raw(
            &s,
            "/v1/config/backup",
            &key,
            backup_body(None, &format!("auto-{i}"), &doc, true),
        );
        assert_v1_ok(&r, 201);
    }
    let list = assert_v1_ok(
        &s.get(
            &format!("/v1/config/backups?device_id={dev}&limit=50"),
            Some(&token),
        ),
        200,
    );
    let names: Vec<&str> = list["backups"]
        .as_array()
        .expect("backups")
        .iter()
        .filter_map(|b| b["config_name"].as_str())
        .collect();
    let autos: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.starts_with("auto-"))
        .collect();
    assert_eq!(autos.len(), 10, "{names:?}");
    assert_eq!((autos[0], autos[9]), ("auto-11", "auto-2"), "{names:?}");
    assert!(
        names.contains(&"keep-me"),
        "a backup made by hand stays: {names:?}"
    );
}

#[test]
fn bad_backups_are_refused_and_scopes_hold() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let post = |body: &str| post_raw(&s, "/v1/config/backup", &token, body.as_bytes().to_vec());
    assert_v1_error(&post(r#"{"config_name":"x"}"#), 422, "VALIDATION_FAILED");
    assert_v1_error(
        &post(r#"{"config_name":"x","config_data":null}"#),
        422,
        "VALIDATION_FAILED",
    );
    assert_v1_error(
        &post(r#"{"config_name":"  ","config_data":{}}"#),
        422,
        "VALIDATION_FAILED",
    );
    let long = "n".repeat(101);
    let body = format!(r#"{{"config_name":"{long}","config_data":{{}}}}"#);
    let r = post(&body);
    assert_v1_error(&r, 422, "VALIDATION_FAILED");
    assert!(r.text.contains("config_name"), "{}", r.text);
    // Lite's errors name Lite's fields.
    let lite = |body: &str| {
        let auth = format!("Bearer {token}");
        let body = Some(("application/json", body.as_bytes().to_vec()));
        s.call("POST", "/config/backup", &[("Authorization", &auth)], body)
    };
    let r = lite(&format!(r#"{{"name":"{long}","config":{{}}}}"#));
    assert_lite_error(&r, 422, "VALIDATION_FAILED");
    assert!(
        r.text.contains("name") && !r.text.contains("config_name"),
        "{}",
        r.text
    );
    let r = lite(r#"{"name":"x","config":null}"#);
    assert_lite_error(&r, 422, "VALIDATION_FAILED");
    assert!(
        r.text.contains("config") && !r.text.contains("config_data"),
        "{}",
        r.text
    );
    assert_v1_error(
        &post(r#"{"config_name":"x","config_data":{"a":}"#),
        400,
        "BAD_REQUEST",
    );
    let auth = format!("Bearer {token}");
    let r = s.call(
        "POST",
        "/v1/config/backup",
        &[("Authorization", &auth)],
        Some((
            "text/plain",
            br#"{"config_name":"x","config_data":{}}"#.to_vec(),
        )),
    );
    assert_v1_error(&r, 415, "UNSUPPORTED_MEDIA_TYPE");
    // Scopes: a read-only key reads but cannot write or delete.
    let ok = post(r#"{"config_name":"x","config_data":{"v":1}}"#);
    let id = assert_v1_ok(&ok, 201)["backup"]["id"].as_i64().expect("id");
    let (_, reader) = s.create_api_key(&token, &["config:read"]);
    assert_v1_ok(&s.get("/v1/config/backups", Some(&reader)), 200);
    let r = post_raw(
        &s,
        "/v1/config/backup",
        &reader,
        br#"{"config_name":"y","config_data":1}"#.to_vec(),
    );
    assert_v1_error(&r, 403, "INSUFFICIENT_SCOPE");
    let r = s.delete(&format!("/v1/config/backups/{id}"), Some(&reader));
    assert_v1_error(&r, 403, "INSUFFICIENT_SCOPE");
    let (_, no_scope) = s.create_api_key(&token, &["task:read"]);
    assert_v1_error(
        &s.get("/v1/config/backups", Some(&no_scope)),
        403,
        "INSUFFICIENT_SCOPE",
    );
}

#[test]
fn a_backup_over_the_storage_quota_stores_nothing() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    put_on_plan(&db(&s), "owner@example.com", "tiny", Some(100), Some(7));
    let doc60 = format!("{{\"pad\":\"{}\"}}", "x".repeat(50));
    assert_eq!(doc60.len(), 60);
    let r = post_raw(
        &s,
        "/v1/config/backup",
        &token,
        backup_body(None, "first", &doc60, false),
    );
    assert_v1_ok(&r, 201);
    let r = post_raw(
        &s,
        "/v1/config/backup",
        &token,
        backup_body(None, "second", &doc60, false),
    );
    assert_v1_error(&r, 403, "QUOTA_EXCEEDED");
    assert_eq!(
        r.body["error"]["details"],
        json!({"quota": "storage", "limit": 100, "used": 60})
    );
    let list = assert_v1_ok(&s.get("/v1/config/backups", Some(&token)), 200);
    assert_eq!(list["count"], json!(1), "the refused backup was not stored");
    let stats = assert_v1_ok(&s.get("/v1/stats/summary", Some(&token)), 200);
    assert_eq!(stats["storage_used"], json!(60));
    assert_eq!(stats["storage_quota"], json!(100));
}
