//! The key-value store beyond the seed (README "Apps and the KV store"): compare-and-swap on
//! versions (two writers with the same `If-Match`, exactly one wins), expiry (invisible at
//! once, deleted by the janitor), atomic batch import, per-device and plan quotas, the value
//! cap, prefix listings with cursors, key rules, and values kept byte for byte.

use crate::common::{Resp, TestServer, send};
use crate::kv_util::*;
use serde_json::{Value, json};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// A server, its owner, a device and a read-write token.
fn setup(s: &TestServer) -> (String, String, String) {
    let (owner, _, _) = s.register("owner@example.com");
    let app = app(s, "Store");
    let dev = device(s, &owner, "laptop");
    let token = authorize(s, app.id, &owner, &dev, false);
    (owner, dev, token)
}

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build(),
    )
}

#[test]
fn two_writers_with_the_same_if_match_exactly_one_wins() {
    let s = TestServer::start();
    let (_, _, token) = setup(&s);
    assert_eq!(put_text(&s, &token, "counter", "0").status, 201);
    let base = s.base().to_string();
    for round in 0..10 {
        let etag = get_value(&s, &token, "counter")
            .header("etag")
            .expect("ETag")
            .to_string();
        let barrier = Arc::new(Barrier::new(2));
        let writers: Vec<_> = (0..2)
            .map(|i| {
                let (b, base, token, etag) =
                    (barrier.clone(), base.clone(), token.clone(), etag.clone());
                thread::spawn(move || {
                    let a = agent();
                    let auth = format!("Bearer {token}");
                    let value = format!("round {round} writer {i}").into_bytes();
                    b.wait();
                    let r = send(
                        &a,
                        &base,
                        "POST",
                        "/kv/counter",
                        &[("Authorization", &auth), ("If-Match", &etag)],
                        Some(("text/plain", value)),
                    );
                    (i, r)
                })
            })
            .collect();
        let results: Vec<(usize, Resp)> = writers
            .into_iter()
            .map(|h| h.join().expect("writer"))
            .collect();
        let winners: Vec<usize> = results
            .iter()
            .filter(|(_, r)| r.status == 200)
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {:?}",
            results.iter().map(|(_, r)| &r.text).collect::<Vec<_>>()
        );
        for (_, r) in results.iter().filter(|(_, r)| r.status != 200) {
            assert_kv_error(r, 412, "PRECONDITION_FAILED");
        }
        let now = get_value(&s, &token, "counter");
        assert_eq!(now.text, format!("round {round} writer {}", winners[0]));
        assert_ne!(
            now.header("etag"),
            Some(etag.as_str()),
            "the version moved on"
        );
    }
    // If-None-Match: * creates only: of two creators, one wins.
    let barrier = Arc::new(Barrier::new(2));
    let creators: Vec<_> = (0..2)
        .map(|i| {
            let (b, base, token) = (barrier.clone(), base.clone(), token.clone());
            thread::spawn(move || {
                let auth = format!("Bearer {token}");
                b.wait();
                send(
                    &agent(),
                    &base,
                    "POST",
                    "/kv/lock",
                    &[("Authorization", &auth), ("If-None-Match", "*")],
                    Some(("text/plain", format!("holder {i}").into_bytes())),
                )
                .status
            })
        })
        .collect();
    let mut statuses: Vec<u16> = creators
        .into_iter()
        .map(|h| h.join().expect("creator"))
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 412]);
}

#[test]
fn versions_are_never_reused_and_deletes_compare_too() {
    let s = TestServer::start();
    let (_, _, token) = setup(&s);
    let v1 = put_text(&s, &token, "k", "one");
    let old = v1.header("etag").expect("etag").to_string();
    let stale = kv(
        &s,
        "DELETE",
        "/kv/k",
        &token,
        &[("If-Match", "\"999\"")],
        None,
    );
    assert_kv_error(&stale, 412, "PRECONDITION_FAILED");
    let del = kv(&s, "DELETE", "/kv/k", &token, &[("If-Match", &old)], None);
    assert_eq!(del.status, 200, "{}", del.text);
    let again = put_text(&s, &token, "k", "two");
    assert_eq!(again.status, 201);
    assert_ne!(
        again.header("etag"),
        Some(old.as_str()),
        "a new life, a new version"
    );
    let r = kv(
        &s,
        "POST",
        "/kv/k",
        &token,
        &[("If-Match", &old)],
        Some(("text/plain", b"three".to_vec())),
    );
    assert_kv_error(&r, 412, "PRECONDITION_FAILED");
    let r = kv(
        &s,
        "POST",
        "/kv/nope",
        &token,
        &[("If-Match", "*")],
        Some(("text/plain", b"x".to_vec())),
    );
    assert_kv_error(&r, 412, "PRECONDITION_FAILED");
    let r = kv(
        &s,
        "POST",
        "/kv/k",
        &token,
        &[("If-Match", "yesterday")],
        Some(("text/plain", b"x".to_vec())),
    );
    assert_kv_error(&r, 400, "BAD_REQUEST");
    assert_eq!(get_value(&s, &token, "k").text, "two");
    let m = kv(&s, "GET", "/kv/k/metadata", &token, &[], None);
    assert_eq!(m.header("etag"), again.header("etag"));
    assert_eq!(m.body, again.body, "a write answers the metadata it stored");
    // Replacing keeps the creation time; the answer says what is stored.
    let replaced = put_text(&s, &token, "k", "three");
    assert_eq!(replaced.status, 200);
    assert_eq!(replaced.body["createdAt"], again.body["createdAt"]);
    assert_eq!(
        kv(&s, "GET", "/kv/k/metadata", &token, &[], None).body,
        replaced.body
    );
}

#[test]
fn expired_keys_vanish_at_once_and_the_janitor_deletes_them() {
    let s = TestServer::start_with(|cfg| cfg.janitor_interval = Duration::from_millis(200));
    let (owner, dev, token) = setup(&s);
    let w = kv(
        &s,
        "POST",
        "/kv/session?ttl=1",
        &token,
        &[],
        Some(("text/plain", b"short".to_vec())),
    );
    assert_eq!(w.status, 201, "{}", w.text);
    assert!(w.body["expiresAt"].is_string(), "{}", w.text);
    assert_eq!(put_text(&s, &token, "stays", "long").status, 201);
    let later = time_in(3600);
    let w = kv(
        &s,
        "POST",
        &format!("/kv/later?expires_at={later}"),
        &token,
        &[],
        Some(("text/plain", b"x".to_vec())),
    );
    assert_eq!(w.status, 201, "{}", w.text);
    // The family spells it expiresAt in its answers; a client echoing that spelling in the
    // envelope (or the query) is understood, not silently given a key that never expires.
    let body = json!({"token": token, "value": 1, "expiresAt": later}).to_string();
    let w = s.call(
        "POST",
        "/kv/echoed",
        &[],
        Some(("application/json", body.into_bytes())),
    );
    assert_eq!(w.status, 201, "{}", w.text);
    assert!(w.body["expiresAt"].is_string(), "{}", w.text);
    assert_eq!(get_value(&s, &token, "session").text, "short");
    let deadline = Instant::now() + Duration::from_millis(1100);
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    // Invisible everywhere as soon as it has expired.
    assert_kv_error(&get_value(&s, &token, "session"), 404, "NOT_FOUND");
    assert_kv_error(
        &kv(&s, "GET", "/kv/session/metadata", &token, &[], None),
        404,
        "NOT_FOUND",
    );
    let names = kv(&s, "GET", "/kv/_keys", &token, &[], None).body["keys"].clone();
    assert_eq!(names, json!(["echoed", "later", "stays"]));
    let v1 = s.get(&format!("/v1/devices/{dev}/kv"), Some(&owner));
    assert_eq!(v1.body["data"]["count"], json!(3), "{}", v1.text);
    // And the janitor deletes the row.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = sql(&s, "SELECT count(*) FROM kv_entries WHERE key = 'session'");
        if n == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the janitor never deleted the expired key"
        );
        thread::sleep(Duration::from_millis(100));
    }
    let keys: i64 = sql(&s, "SELECT keys FROM kv_usage");
    assert_eq!(keys, 3, "the usage counters follow the janitor's deletes");
    // Expiry rules.
    for q in [
        "ttl=0",
        "ttl=abc",
        "expires_at=2001-01-01T00:00:00Z",
        "expires_at=tomorrow",
        "ttl=5&expires_at=2099-01-01T00:00:00Z",
    ] {
        let r = kv(
            &s,
            "POST",
            &format!("/kv/x?{q}"),
            &token,
            &[],
            Some(("text/plain", b"x".to_vec())),
        );
        assert!(matches!(r.status, 400 | 422), "{q}: {}", r.text);
    }
    // A write without a ttl makes a key permanent again; an envelope can carry a ttl.
    assert_eq!(put_text(&s, &token, "later", "now permanent").status, 200);
    let m = kv(&s, "GET", "/kv/later/metadata", &token, &[], None);
    assert!(m.body["expiresAt"].is_null(), "{}", m.text);
    let e = s.post_json(
        "/kv/env",
        None,
        json!({"token": token, "value": "v", "ttl": 60}),
    );
    assert!(e.body["expiresAt"].is_string(), "{}", e.text);
}

/// An RFC 3339 UTC time `secs` from now.
fn time_in(secs: u64) -> String {
    let t = std::time::SystemTime::now() + Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[test]
fn batch_import_is_all_or_nothing() {
    let s = TestServer::start_with(|cfg| cfg.max_kv_value = 64);
    let (_, _, token) = setup(&s);
    let import = |body: &Value| {
        kv(
            &s,
            "POST",
            "/kv/_batchimport",
            &token,
            &[],
            Some(("application/json", body.to_string().into_bytes())),
        )
    };
    let r = import(&json!({"good1": 1, "bad key": 2, "good2": 3}));
    assert_kv_error(&r, 422, "VALIDATION_FAILED");
    let r = import(&json!({"good1": 1, "_reserved": 2}));
    assert_kv_error(&r, 422, "VALIDATION_FAILED");
    let r = import(&json!({"good1": 1, "big": "x".repeat(100)}));
    assert_kv_error(&r, 413, "PAYLOAD_TOO_LARGE");
    let too_many: serde_json::Map<String, Value> =
        (0..1001).map(|i| (format!("k{i}"), json!(i))).collect();
    assert_kv_error(&import(&Value::Object(too_many)), 422, "VALIDATION_FAILED");
    let r = kv(
        &s,
        "POST",
        "/kv/_batchimport",
        &token,
        &[],
        Some(("text/plain", b"{}".to_vec())),
    );
    assert_kv_error(&r, 415, "UNSUPPORTED_MEDIA_TYPE");
    let listed = kv(&s, "GET", "/kv/_keys", &token, &[], None);
    assert_eq!(
        listed.body["keys"],
        json!([]),
        "nothing was written: {}",
        listed.text
    );
    let ok = import(&json!({"good1": 1, "good2": {"a": [1, 2]}}));
    assert_eq!(ok.body, json!({"imported": 2}), "{}", ok.text);
    let m1 = kv(&s, "GET", "/kv/good1/metadata", &token, &[], None);
    let m2 = kv(&s, "GET", "/kv/good2/metadata", &token, &[], None);
    assert_eq!(
        m1.body["version"], m2.body["version"],
        "one write, one version"
    );
    assert_eq!(get_value(&s, &token, "good2").body, json!({"a": [1, 2]}));
    // With the token in the body, its `token` member is the credential, not an entry.
    let r = s.post_json(
        "/kv/_batchimport",
        None,
        json!({"token": token, "fromBody": true}),
    );
    assert_eq!(r.body, json!({"imported": 1}), "{}", r.text);
    assert_kv_error(&get_value(&s, &token, "token"), 404, "NOT_FOUND");
}

#[test]
fn quotas_refuse_the_write_that_would_pass_them() {
    let s = TestServer::start_with(|cfg| {
        cfg.kv_max_keys = 3;
        cfg.kv_max_bytes = 100;
        cfg.janitor_interval = Duration::from_secs(3600);
    });
    let (owner, _, token) = setup(&s);
    for k in ["a", "b", "c"] {
        assert_eq!(put_text(&s, &token, k, "1234").status, 201);
    }
    let r = put_text(&s, &token, "d", "1234");
    assert_kv_error(&r, 403, "QUOTA_EXCEEDED");
    let r = kv(
        &s,
        "POST",
        "/kv/_batchimport",
        &token,
        &[],
        Some(("application/json", br#"{"a":1,"d":2}"#.to_vec())),
    );
    assert_kv_error(&r, 403, "QUOTA_EXCEEDED");
    assert_kv_error(&get_value(&s, &token, "d"), 404, "NOT_FOUND");
    assert_eq!(
        get_value(&s, &token, "a").text,
        "1234",
        "the refused import changed nothing"
    );
    assert_eq!(
        put_text(&s, &token, "a", "replaced").status,
        200,
        "replacing adds no key"
    );
    // Bytes (key + value): 3 keys of 1 + ~10 bytes; 90 more would pass 100.
    let r = put_text(&s, &token, "b", &"x".repeat(90));
    assert_kv_error(&r, 403, "QUOTA_EXCEEDED");
    assert_eq!(put_text(&s, &token, "b", &"x".repeat(80)).status, 200);
    assert_eq!(kv(&s, "DELETE", "/kv/b", &token, &[], None).status, 200);
    assert_eq!(
        put_text(&s, &token, "d", "1234").status,
        201,
        "a delete frees room"
    );
    // Expired keys free room at once, before the janitor runs.
    assert_eq!(kv(&s, "DELETE", "/kv/d", &token, &[], None).status, 200);
    let r = kv(
        &s,
        "POST",
        "/kv/brief?ttl=1",
        &token,
        &[],
        Some(("text/plain", b"x".to_vec())),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(put_text(&s, &token, "e", "1234").status, 201);
    let keys: i64 = sql(&s, "SELECT keys FROM kv_usage");
    assert_eq!(keys, 3);

    let _ = owner;

    // The plan's storage quota counts KV bytes over all of the user's devices.
    let s2 = TestServer::start();
    s2.register("admin@example.com");
    let c = rusqlite::Connection::open(s2.db_path()).expect("db");
    c.execute(
        "UPDATE plans SET storage_quota_bytes = 100, max_devices = 5 WHERE name = 'free'",
        [],
    )
    .expect("an admin edits the plan");
    let (owner2, _, t1) = setup(&s2);
    let app2 = app(&s2, "Second");
    let dev2 = device(&s2, &owner2, "second");
    let t2 = authorize(&s2, app2.id, &owner2, &dev2, false);
    assert_eq!(put_text(&s2, &t1, "k", &"x".repeat(59)).status, 201);
    let r = put_text(&s2, &t2, "k", &"y".repeat(59));
    assert_kv_error(&r, 403, "QUOTA_EXCEEDED");
    assert_eq!(
        put_text(&s2, &t2, "k", &"y".repeat(39)).status,
        201,
        "exactly at the quota"
    );
    assert_kv_error(&put_text(&s2, &t2, "z", ""), 403, "QUOTA_EXCEEDED");
}

#[test]
fn values_over_the_cap_are_413_and_values_round_trip_byte_for_byte() {
    let s = TestServer::start_with(|cfg| cfg.max_kv_value = 1024);
    let (_, _, token) = setup(&s);
    let r = put_bytes(
        &s,
        &token,
        "big",
        "application/octet-stream",
        vec![7u8; 1025],
    );
    assert_kv_error(&r, 413, "PAYLOAD_TOO_LARGE");
    let r = s.post_json(
        "/kv/big",
        None,
        json!({"token": token, "value": "z".repeat(2000)}),
    );
    assert_kv_error(&r, 413, "PAYLOAD_TOO_LARGE");
    assert_kv_error(&get_value(&s, &token, "big"), 404, "NOT_FOUND");
    let all: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
    let r = put_bytes(&s, &token, "bin", "application/x-custom; v=1", all.clone());
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["size"], json!(3 + 512));
    let (status, ct, body) = get_bytes(&s, "/kv/bin", &token);
    assert_eq!((status, ct.as_str()), (200, "application/x-custom; v=1"));
    assert_eq!(body, all);
    let r = put_bytes(&s, &token, "max", "", vec![b'm'; 1024]);
    assert_eq!(r.status, 201, "{}", r.text);
    let (_, ct, body) = get_bytes(&s, "/kv/max", &token);
    assert_eq!(
        (ct.as_str(), body.len()),
        ("application/octet-stream", 1024)
    );
    let r = put_bytes(&s, &token, "empty", "text/plain", Vec::new());
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(get_bytes(&s, "/kv/empty", &token).2, Vec::<u8>::new());
}

#[test]
fn listings_page_by_prefix_with_an_opaque_cursor() {
    let s = TestServer::start();
    let (_, _, token) = setup(&s);
    let mut entries = serde_json::Map::new();
    for i in 0..250 {
        entries.insert(format!("app1/k{i:03}"), json!(i));
    }
    for i in 0..30 {
        entries.insert(format!("app2/k{i:03}"), json!(i));
    }
    entries.insert("app1".into(), json!("no slash"));
    let r = kv(
        &s,
        "POST",
        "/kv/_batchimport",
        &token,
        &[],
        Some((
            "application/json",
            Value::Object(entries).to_string().into_bytes(),
        )),
    );
    assert_eq!(r.body["imported"], json!(281), "{}", r.text);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &cursor {
            Some(c) => format!("/kv?prefix=app1/&limit=100&cursor={c}"),
            None => "/kv?prefix=app1/&limit=100".into(),
        };
        let p = kv(&s, "GET", &q, &token, &[], None);
        assert_eq!(p.status, 200, "{}", p.text);
        pages += 1;
        for k in p.body["keys"].as_array().expect("keys") {
            seen.push(k["key"].as_str().expect("key").to_string());
        }
        assert_eq!(
            p.body["listComplete"],
            json!(p.body["nextCursor"].is_null())
        );
        match p.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(pages < 10, "the cursor never ended");
    }
    assert_eq!(pages, 3);
    let want: Vec<String> = (0..250).map(|i| format!("app1/k{i:03}")).collect();
    assert_eq!(
        seen, want,
        "every key of the prefix once, in order, nothing else"
    );
    let names = kv(
        &s,
        "GET",
        "/kv/_keys?prefix=app2/&limit=7",
        &token,
        &[],
        None,
    );
    assert_eq!(names.body["count"], json!(7));
    assert_eq!(names.body["keys"][0], json!("app2/k000"));
    let c = names.body["nextCursor"]
        .as_str()
        .expect("cursor")
        .to_string();
    let next = kv(
        &s,
        "GET",
        &format!("/kv/_keys?prefix=app2/&limit=7&cursor={c}"),
        &token,
        &[],
        None,
    );
    assert_eq!(next.body["keys"][0], json!("app2/k007"), "{}", next.text);
    // A cursor of another prefix, a forged one, and a prefix no key can have.
    let r = kv(
        &s,
        "GET",
        &format!("/kv/_keys?prefix=app1/&cursor={c}"),
        &token,
        &[],
        None,
    );
    assert_kv_error(&r, 400, "BAD_REQUEST");
    assert_kv_error(
        &kv(&s, "GET", "/kv?cursor=zz", &token, &[], None),
        400,
        "BAD_REQUEST",
    );
    assert_kv_error(
        &kv(&s, "GET", "/kv?prefix=a%20b", &token, &[], None),
        422,
        "VALIDATION_FAILED",
    );
    let all = kv(&s, "GET", "/kv/_keys?limit=5000", &token, &[], None);
    assert_eq!(all.body["count"], json!(281), "limit is clamped to 1000");
    let one = kv(&s, "GET", "/kv/_keys?limit=0", &token, &[], None);
    assert_eq!(one.body["keys"], json!(["app1"]), "limit 0 means 1");
}

#[test]
fn keys_are_decoded_once_and_checked() {
    let s = TestServer::start();
    let (_, _, token) = setup(&s);
    assert_eq!(put_text(&s, &token, "settings%2Ftheme", "dark").status, 201);
    let l = kv(&s, "GET", "/kv/_keys", &token, &[], None);
    assert_eq!(l.body["keys"], json!(["settings/theme"]));
    assert_eq!(get_value(&s, &token, "settings%2Ftheme").text, "dark");
    // Decoded once: %252F is the three characters %2F, which a key may not hold.
    assert_kv_error(
        &put_text(&s, &token, "a%252Fb", "x"),
        422,
        "VALIDATION_FAILED",
    );
    for bad in ["a%20b", "_private", "%2E%2E", &"k".repeat(513), "caf%C3%A9"] {
        assert_kv_error(&put_text(&s, &token, bad, "x"), 422, "VALIDATION_FAILED");
    }
    assert_kv_error(
        &kv(&s, "DELETE", "/kv/_keys", &token, &[], None),
        422,
        "VALIDATION_FAILED",
    );
    // An unencoded slash is a longer path: no such route.
    assert_kv_error(&put_text(&s, &token, "a/b", "x"), 404, "NOT_FOUND");
    assert_eq!(put_text(&s, &token, &"k".repeat(512), "x").status, 201);
}

#[test]
fn the_openapi_document_describes_the_kv_family() {
    let s = TestServer::start();
    let d = s.get("/v1/openapi.json", None).body;
    let schemes = &d["components"]["securitySchemes"];
    assert_eq!(schemes["appToken"]["in"], json!("query"));
    assert_eq!(schemes["appToken"]["name"], json!("token"));
    assert_eq!(schemes["appBearer"]["scheme"], json!("bearer"));
    let put = &d["paths"]["/kv/{key}"]["post"];
    assert_eq!(
        put["security"],
        json!([{"appBearer": []}, {"appToken": []}])
    );
    assert!(put["responses"]["412"].is_object(), "{put}");
    assert!(put["requestBody"]["content"]["*/*"].is_object(), "{put}");
    assert_eq!(put["tags"], json!(["kv"]));
    let get = &d["paths"]["/kv/{key}"]["get"];
    assert!(
        get["responses"]["200"]["content"]["*/*"].is_object(),
        "{get}"
    );
    let az = &d["paths"]["/apps/{id}/authorize"]["post"];
    assert_eq!(
        az["security"][0],
        json!({}),
        "no credential is one way in: {az}"
    );
    assert!(az["responses"]["429"].is_object());
    assert_eq!(
        d["components"]["schemas"]["KvError"]["required"],
        json!(["error", "code"])
    );
}
