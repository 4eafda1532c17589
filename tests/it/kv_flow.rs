//! The KV seed's flow end to end (README "Apps and the KV store"): an admin registers an app
//! with the CLI, the device's owner authorises it, the app reads and writes with its token by
//! header, by query and in the body; a read-only token cannot write; an `x-site-key` of another
//! app is refused; a revoked token is 401 on its very next request.

use crate::common::{TestServer, binary, keys};
use crate::kv_util::*;
use serde_json::{Value, json};

#[test]
fn the_seeds_flow_end_to_end() {
    let s = TestServer::start();
    let (owner, _, _) = s.register("owner@example.com");
    let app = cli_app(&s, "Dashboard");
    let other = cli_app(&s, "Other");
    let dev = device(&s, &owner, "laptop");

    // The catalog is public and never shows site keys.
    let list = s.get("/apps", None);
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.body["apps"][0]["name"], json!("Dashboard"));
    assert_eq!(
        list.body["apps"][0]["homepageLink"],
        json!("https://acme.example/dash")
    );
    assert!(!list.text.contains(&app.site_key), "{}", list.text);
    let one = s.get(&format!("/apps/{}", app.id), None);
    assert_eq!(
        one.body["developerName"],
        json!("Acme Tools"),
        "{}",
        one.text
    );
    assert_kv_error(&s.get("/apps/999", None), 404, "NOT_FOUND");

    // The owner authorises it, with the seed's headers and body; the answer is the seed's.
    let auth = format!("Bearer {owner}");
    let body = json!({"deviceUuid": dev, "readOnly": false, "note": "读写访问"});
    let r = s.call(
        "POST",
        &format!("/apps/{}/authorize", app.id),
        &[("Authorization", &auth), ("x-site-key", &app.site_key)],
        Some(("application/json", body.to_string().into_bytes())),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        keys(&r.body),
        [
            "appId",
            "appName",
            "authorizedAt",
            "deviceName",
            "deviceUuid",
            "note",
            "readOnly",
            "token"
        ]
    );
    assert_eq!(r.body["appId"], json!(app.id));
    assert_eq!(r.body["appName"], json!("Dashboard"));
    assert_eq!(r.body["deviceUuid"], json!(dev));
    assert_eq!(r.body["deviceName"], json!("laptop"));
    assert_eq!(r.body["readOnly"], json!(false));
    assert_eq!(r.body["note"], json!("读写访问"));
    let token = r.body["token"].as_str().expect("token").to_string();
    assert!(
        token.starts_with("cca_") && token.len() == 4 + 64,
        "{token}"
    );

    // Write as the seed's example does (header token, x-site-key, a JSON value).
    let value = br#"{"data":"my value","timestamp":1767225600000}"#.to_vec();
    let w = kv(
        &s,
        "POST",
        "/kv/mykey",
        &token,
        &[("x-site-key", &app.site_key)],
        Some(("application/json", value.clone())),
    );
    assert_eq!(w.status, 201, "{}", w.text);
    let etag = w.header("etag").expect("ETag").to_string();
    assert_eq!(etag, format!("\"{}\"", w.body["version"]));
    assert_eq!(w.body["key"], json!("mykey"));
    assert_eq!(w.body["contentType"], json!("application/json"));

    // Read it back by header: exactly the bytes, with the stored type and the same ETag.
    let g = kv(
        &s,
        "GET",
        "/kv/mykey",
        &token,
        &[("x-site-key", &app.site_key)],
        None,
    );
    assert_eq!(g.status, 200, "{}", g.text);
    assert_eq!(g.text.as_bytes(), &value[..]);
    assert_eq!(g.header("content-type"), Some("application/json"));
    assert_eq!(g.header("etag"), Some(etag.as_str()));
    assert_eq!(g.header("x-content-type-options"), Some("nosniff"));

    // By query.
    let q = s.get(&format!("/kv/mykey?token={token}"), None);
    assert_eq!((q.status, q.text.as_bytes()), (200, &value[..]));

    // In the body: {"token", "value"} stores the value as JSON.
    let b = s.post_json(
        "/kv/prefs",
        None,
        json!({"token": token, "value": {"theme": "dark", "size": 14}}),
    );
    assert_eq!(b.status, 201, "{}", b.text);
    let prefs = get_value(&s, &token, "prefs");
    assert_eq!(prefs.body, json!({"theme": "dark", "size": 14}));
    assert_eq!(prefs.header("content-type"), Some("application/json"));
    // A listing with the token in a JSON body, too.
    let l = s.json("GET", "/kv", None, Some(&json!({"token": token})));
    assert_eq!(l.status, 200, "{}", l.text);
    assert_eq!(l.body["count"], json!(2));
    let names: Vec<&str> = l.body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["key"].as_str())
        .collect();
    assert_eq!(names, ["mykey", "prefs"]);
    let k = kv(&s, "GET", "/kv/_keys", &token, &[], None);
    assert_eq!(k.body["keys"], json!(["mykey", "prefs"]), "{}", k.text);
    let m = kv(&s, "GET", "/kv/prefs/metadata", &token, &[], None);
    assert_eq!(m.status, 200, "{}", m.text);
    assert_eq!(m.body["key"], json!("prefs"));
    assert!(m.body["size"].as_i64().is_some_and(|n| n > 0));
    let imported = kv(
        &s,
        "POST",
        "/kv/_batchimport",
        &token,
        &[],
        Some(("application/json", br#"{"a":1,"b":"two"}"#.to_vec())),
    );
    assert_eq!(imported.body, json!({"imported": 2}), "{}", imported.text);
    assert_eq!(get_value(&s, &token, "b").body, json!("two"));
    let del = kv(&s, "DELETE", "/kv/a", &token, &[], None);
    assert_eq!(
        del.body,
        json!({"key": "a", "deleted": true}),
        "{}",
        del.text
    );
    assert_kv_error(&get_value(&s, &token, "a"), 404, "NOT_FOUND");

    // A read-only token (owner's choice) reads and may not write.
    let ro = authorize(&s, app.id, &owner, &dev, true);
    assert_eq!(get_value(&s, &ro, "mykey").status, 200);
    for r in [
        put_text(&s, &ro, "mykey", "overwritten"),
        kv(&s, "DELETE", "/kv/mykey", &ro, &[], None),
        kv(
            &s,
            "POST",
            "/kv/_batchimport",
            &ro,
            &[],
            Some(("application/json", br#"{"x":1}"#.to_vec())),
        ),
        s.post_json("/kv/mykey", None, json!({"token": ro, "value": 1})),
    ] {
        assert_kv_error(&r, 403, "FORBIDDEN");
    }
    assert_eq!(get_value(&s, &token, "mykey").text.as_bytes(), &value[..]);
    assert_kv_error(&get_value(&s, &token, "x"), 404, "NOT_FOUND");

    // x-site-key must be the token's app's when it is sent.
    for (path, method) in [
        ("/kv/mykey", "GET"),
        ("/kv", "GET"),
        ("/kv/mykey", "DELETE"),
    ] {
        let r = kv(
            &s,
            method,
            path,
            &token,
            &[("x-site-key", &other.site_key)],
            None,
        );
        assert_kv_error(&r, 403, "FORBIDDEN");
    }
    let wrong_site = s.call(
        "POST",
        &format!("/apps/{}/authorize", app.id),
        &[("Authorization", &auth), ("x-site-key", &other.site_key)],
        Some(("application/json", body.to_string().into_bytes())),
    );
    assert_kv_error(&wrong_site, 403, "FORBIDDEN");
    assert_eq!(
        get_value(&s, &token, "mykey").status,
        200,
        "nothing was deleted"
    );

    // The owner sees the device's tokens by prefix, never whole.
    let t = s.get(&format!("/apps/devices/{dev}/tokens"), Some(&owner));
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(t.body["count"], json!(2));
    assert!(
        !t.text.contains(&token) && !t.text.contains(&ro),
        "{}",
        t.text
    );
    let prefixes: Vec<&str> = t.body["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .filter_map(|i| i["tokenPrefix"].as_str())
        .collect();
    assert!(
        prefixes
            .iter()
            .all(|p| token.starts_with(p) || ro.starts_with(p)),
        "{prefixes:?}"
    );
    let inst = s.get(&format!("/apps/{}/installations", app.id), Some(&owner));
    assert_eq!(inst.body["count"], json!(2), "{}", inst.text);
    let ro_install = t.body["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|i| i["readOnly"] == json!(true))
        .and_then(|i| i["id"].as_str())
        .expect("the read-only install")
        .to_string();

    // Revoked by the token itself: 401 on the very next request, however the token travels.
    let rv = s.delete(&format!("/apps/tokens/{token}"), None);
    assert_eq!(rv.status, 200, "{}", rv.text);
    for r in [
        get_value(&s, &token, "mykey"),
        s.get(&format!("/kv/mykey?token={token}"), None),
        s.post_json("/kv/x", None, json!({"token": token, "value": 1})),
    ] {
        assert_kv_error(&r, 401, "UNAUTHORIZED");
    }
    assert_kv_error(
        &s.delete(&format!("/apps/tokens/{token}"), None),
        404,
        "NOT_FOUND",
    );

    // Revoked by the owner with the install id.
    let rv = s.delete(&format!("/apps/tokens/{ro_install}"), Some(&owner));
    assert_eq!(rv.status, 200, "{}", rv.text);
    assert_kv_error(&get_value(&s, &ro, "mykey"), 401, "UNAUTHORIZED");
    let t = s.get(&format!("/apps/devices/{dev}/tokens"), Some(&owner));
    assert_eq!(t.body["count"], json!(0), "{}", t.text);

    // The keys stay with the device: the owner still sees them from /v1.
    let v1 = s.get(&format!("/v1/devices/{dev}/kv"), Some(&owner));
    assert_eq!(v1.status, 200, "{}", v1.text);
    assert_eq!(v1.body["data"]["count"], json!(3), "{}", v1.text);
}

#[test]
fn deleting_an_app_kills_its_tokens_and_the_cli_lists_apps() {
    let s = TestServer::start();
    let (owner, _, _) = s.register("owner@example.com");
    let app = cli_app(&s, "Doomed");
    let dev = device(&s, &owner, "laptop");
    let token = authorize(&s, app.id, &owner, &dev, false);
    assert_eq!(put_text(&s, &token, "k", "v").status, 201);
    let list = binary()
        .args(["app", "list"])
        .env("CCJK_DB", s.db_path())
        .output()
        .expect("app list");
    let text = String::from_utf8_lossy(&list.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Doomed"))
        .unwrap_or_else(|| panic!("{text}"));
    let after_key = line.split(&app.site_key).nth(1).unwrap_or_default();
    assert_eq!(
        after_key.split_whitespace().next(),
        Some("1"),
        "one token: {line}"
    );
    let del = binary()
        .args(["app", "delete", &app.id.to_string()])
        .env("CCJK_DB", s.db_path())
        .output()
        .expect("app delete");
    assert!(
        del.status.success(),
        "{}",
        String::from_utf8_lossy(&del.stderr)
    );
    assert_kv_error(&get_value(&s, &token, "k"), 401, "UNAUTHORIZED");
    assert_kv_error(&s.get(&format!("/apps/{}", app.id), None), 404, "NOT_FOUND");
    let again = binary()
        .args(["app", "delete", &app.id.to_string()])
        .env("CCJK_DB", s.db_path())
        .output()
        .expect("app delete");
    assert!(!again.status.success(), "deleting a missing app fails");
    let bad = binary()
        .args(["app", "create", "--name", "x"])
        .env("CCJK_DB", s.db_path())
        .output()
        .expect("app create");
    assert!(!bad.status.success(), "--developer is required");
    let v: Value = s.get(&format!("/v1/devices/{dev}/kv"), Some(&owner)).body;
    assert_eq!(
        v["data"]["entries"][0]["key"],
        json!("k"),
        "the keys stay: {v}"
    );
}

/// Runs the binary with the access log on: a token in a path (revoking it) is not logged.
#[test]
fn tokens_in_paths_and_queries_stay_out_of_the_access_log() {
    let s = TestServer::spawn_binary(&[("RUST_LOG", "info")]);
    let (owner, _, _) = s.register("owner@example.com");
    let app = app(&s, "Logged");
    let dev = device(&s, &owner, "laptop");
    let token = authorize(&s, app.id, &owner, &dev, false);
    assert_eq!(s.get(&format!("/kv/_keys?token={token}"), None).status, 200);
    assert_eq!(s.delete(&format!("/apps/tokens/{token}"), None).status, 200);
    // The access log line is written after the answer is sent: wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let log = loop {
        let log = std::fs::read_to_string(s.dir().join("server.log")).expect("log");
        let both = log.contains("/kv/_keys") && log.contains("/apps/tokens/");
        if both || std::time::Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    // Both lines are there (they come from two workers, in either order), redacted.
    assert!(log.contains("/kv/_keys?token=REDACTED"), "{log}");
    assert!(log.contains("/apps/tokens/REDACTED"), "{log}");
    assert!(
        !log.contains(&token[4..20]),
        "the token is in the log:\n{log}"
    );
}
