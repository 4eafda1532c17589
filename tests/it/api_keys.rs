//! API keys and credential kinds (docs/limits.md, docs/families.md): a key is shown once with its
//! `cck_` prefix and never listed; it holds only its scopes (403 `INSUFFICIENT_SCOPE`); it
//! cannot manage keys or sessions (so a narrow key can never mint a wider credential); a
//! revoked key is dead on the next request; another user's key id is 404 and changes nothing;
//! and a credential of the wrong kind (a device key where a user is needed) is 401.

use crate::common::{
    PASSWORD, TestServer, assert_lite_ok, assert_sessions_error, assert_v1_error, assert_v1_ok,
};
use serde_json::json;

#[test]
fn a_key_is_shown_once_and_never_listed() {
    let s = TestServer::start();
    let (token, _, _) = s.register("ann@example.com");
    let body = json!({"name": "ci", "scopes": ["user:read", "task:read", "user:read"]});
    let d = assert_v1_ok(&s.post_json("/v1/api-keys", Some(&token), body), 201);
    let key = d["key"].as_str().expect("key");
    assert!(key.starts_with("cck_") && key.len() >= 4 + 64, "{key}");
    assert_eq!(d["api_key"]["name"], "ci");
    assert_eq!(
        d["api_key"]["scopes"],
        json!(["user:read", "task:read"]),
        "deduplicated, in order"
    );
    let prefix = d["api_key"]["key_prefix"].as_str().expect("key_prefix");
    assert!(key.starts_with(prefix) && prefix.len() < 20, "{prefix}");
    assert!(
        !d["api_key"].to_string().contains(key),
        "the row itself carries no key"
    );

    let (_, second) = s.create_api_key(&token, &["stats:read"]);
    let list = assert_v1_ok(&s.get("/v1/api-keys", Some(&token)), 200);
    let keys = list["api_keys"].as_array().expect("list");
    assert_eq!(keys.len(), 2);
    let text = list.to_string();
    for k in [key, second.as_str()] {
        assert!(!text.contains(k), "listing shows a key: {text}");
        assert!(
            !text.contains(&k[4..]),
            "listing shows a key's secret part: {text}"
        );
    }
}

#[test]
fn a_key_holds_only_its_scopes() {
    let s = TestServer::start();
    let (token, _, uid) = s.register("bo@example.com");
    let (_, read_only) = s.create_api_key(&token, &["user:read"]);
    let me = assert_v1_ok(&s.get("/v1/auth/me", Some(&read_only)), 200);
    assert_eq!(me["user"]["id"], uid);
    assert!(
        me["current_session"].is_null(),
        "an API key is not a session: {me}"
    );

    let r = s.patch_json(
        "/v1/auth/me",
        Some(&read_only),
        json!({"display_name": "Mallory"}),
    );
    assert_v1_error(&r, 403, "INSUFFICIENT_SCOPE");
    assert_eq!(r.body["error"]["details"]["required_scope"], "user:write");
    let me = assert_v1_ok(&s.get("/v1/auth/me", Some(&token)), 200);
    assert!(
        me["user"]["display_name"].is_null(),
        "the refused write changed nothing: {me}"
    );

    let (_, writer) = s.create_api_key(&token, &["user:write"]);
    let r = s.patch_json("/v1/auth/me", Some(&writer), json!({"display_name": "Bo"}));
    assert_eq!(assert_v1_ok(&r, 200)["user"]["display_name"], "Bo");
    assert_v1_error(
        &s.get("/v1/auth/me", Some(&writer)),
        403,
        "INSUFFICIENT_SCOPE",
    );

    let v = assert_v1_ok(&s.get("/v1/auth/verify", Some(&read_only)), 200);
    assert_eq!(
        (v["kind"].clone(), v["user_id"].clone()),
        (json!("api_key"), json!(uid))
    );
}

#[test]
fn a_key_cannot_mint_keys_or_sessions() {
    let s = TestServer::start();
    let (token, _, _) = s.register("cy@example.com");
    let (id, key) = s.create_api_key(&token, &ccjk_cloud::domain::callers::SCOPES);
    let k = Some(key.as_str());
    let body = json!({"name": "wider", "scopes": ["user:write"]});
    assert_v1_error(&s.post_json("/v1/api-keys", k, body), 401, "UNAUTHORIZED");
    assert_v1_error(&s.get("/v1/api-keys", k), 401, "UNAUTHORIZED");
    assert_v1_error(
        &s.delete(&format!("/v1/api-keys/{id}"), k),
        401,
        "UNAUTHORIZED",
    );
    assert_v1_error(
        &s.post_json("/v1/sessions", k, json!({"name": "x"})),
        401,
        "UNAUTHORIZED",
    );
    assert_v1_error(&s.get("/v1/sessions", k), 401, "UNAUTHORIZED");
    assert_v1_error(
        &s.post_json("/v1/auth/logout", k, json!({})),
        401,
        "UNAUTHORIZED",
    );
    assert_sessions_error(
        &s.post_json("/api/sessions/new", k, json!({"name": "x"})),
        401,
    );
    assert_sessions_error(&s.get("/api/sessions", k), 401);
    let sessions = assert_v1_ok(&s.get("/v1/sessions", Some(&token)), 200);
    assert_eq!(
        sessions["sessions"].as_array().expect("list").len(),
        1,
        "no session was made"
    );
    let keys = assert_v1_ok(&s.get("/v1/api-keys", Some(&token)), 200);
    assert_eq!(
        keys["api_keys"].as_array().expect("list").len(),
        1,
        "no key was made"
    );
    assert_v1_ok(&s.get("/v1/auth/me", k), 200);
}

#[test]
fn a_revoked_key_is_dead_on_the_next_request() {
    let s = TestServer::start();
    let (token, _, _) = s.register("di@example.com");
    let (id, key) = s.create_api_key(&token, &["user:read"]);
    assert_v1_ok(&s.get("/v1/auth/me", Some(&key)), 200);
    assert_v1_ok(&s.delete(&format!("/v1/api-keys/{id}"), Some(&token)), 200);
    assert_v1_error(&s.get("/v1/auth/me", Some(&key)), 401, "UNAUTHORIZED");
    assert_v1_error(
        &s.delete(&format!("/v1/api-keys/{id}"), Some(&token)),
        404,
        "NOT_FOUND",
    );
    let list = assert_v1_ok(&s.get("/v1/api-keys", Some(&token)), 200);
    assert!(list["api_keys"][0]["revoked_at"].is_string(), "{list}");
    assert_v1_error(
        &s.get("/v1/auth/me", Some(&format!("cck_{}", "0".repeat(64)))),
        401,
        "UNAUTHORIZED",
    );
}

#[test]
fn bad_key_requests_are_422() {
    let s = TestServer::start();
    let (token, _, _) = s.register("ed@example.com");
    for body in [
        json!({"name": "x", "scopes": ["user:read", "root"]}),
        json!({"name": "x", "scopes": []}),
        json!({"name": "", "scopes": ["user:read"]}),
        json!({"name": "x", "scopes": ["user:read"], "expires_at": "2001-01-01T00:00:00Z"}),
        json!({"name": "x", "scopes": ["user:read"], "expires_at": "tomorrow"}),
        json!({"name": "x"}),
    ] {
        let r = s.post_json("/v1/api-keys", Some(&token), body.clone());
        assert_v1_error(&r, 422, "VALIDATION_FAILED");
    }
    let r = s.post_json(
        "/v1/api-keys",
        Some(&token),
        json!({"name": "x", "scopes": ["admin:everything"]}),
    );
    assert!(
        r.body["error"]["details"].get("scopes").is_some(),
        "{}",
        r.text
    );
    let list = assert_v1_ok(&s.get("/v1/api-keys", Some(&token)), 200);
    assert_eq!(list["api_keys"], json!([]));
    let future =
        json!({"name": "x", "scopes": ["user:read"], "expires_at": "2999-01-01T00:00:00Z"});
    let d = assert_v1_ok(&s.post_json("/v1/api-keys", Some(&token), future), 201);
    assert!(
        d["api_key"]["expires_at"]
            .as_str()
            .is_some_and(|e| e.starts_with("2999-01-01")),
        "{d}"
    );
}

#[test]
fn another_users_key_id_is_404_and_the_key_keeps_working() {
    let s = TestServer::start();
    let (alice, _, _) = s.register("alice@example.com");
    let (bob, _, _) = s.register("bob@example.com");
    let (bob_key_id, bob_key) = s.create_api_key(&bob, &["user:read"]);
    let theirs = s.delete(&format!("/v1/api-keys/{bob_key_id}"), Some(&alice));
    let missing = s.delete(&format!("/v1/api-keys/{}", bob_key_id + 1000), Some(&alice));
    let garbage = s.delete("/v1/api-keys/abc", Some(&alice));
    for r in [&theirs, &missing, &garbage] {
        assert_v1_error(r, 404, "NOT_FOUND");
    }
    assert_eq!(theirs.body["error"], missing.body["error"]);
    assert_v1_ok(&s.get("/v1/auth/me", Some(&bob_key)), 200);
    let list = assert_v1_ok(&s.get("/v1/api-keys", Some(&bob)), 200);
    assert!(list["api_keys"][0]["revoked_at"].is_null(), "{list}");
    let alices = assert_v1_ok(&s.get("/v1/api-keys", Some(&alice)), 200);
    assert_eq!(alices["api_keys"], json!([]), "keys are listed per user");
}

#[test]
fn a_device_key_is_the_wrong_kind_for_user_routes() {
    let s = TestServer::start();
    let device_key = s.lite_auth("fay@example.com", PASSWORD);
    let login = assert_v1_ok(&s.login("fay@example.com", PASSWORD), 200);
    let token = login["token"].as_str().expect("token").to_string();
    let dk = Some(device_key.as_str());
    assert_v1_error(&s.get("/v1/auth/me", dk), 401, "UNAUTHORIZED");
    assert_v1_error(
        &s.patch_json("/v1/auth/me", dk, json!({"display_name": "x"})),
        401,
        "UNAUTHORIZED",
    );
    assert_v1_error(&s.get("/v1/sessions", dk), 401, "UNAUTHORIZED");
    let body = json!({"name": "x", "scopes": ["user:read"]});
    assert_v1_error(&s.post_json("/v1/api-keys", dk, body), 401, "UNAUTHORIZED");
    assert_sessions_error(&s.get("/api/auth/me", dk), 401);
    let via_header = s.call("GET", "/v1/auth/me", &[("X-Device-Key", &device_key)], None);
    assert_v1_error(&via_header, 401, "UNAUTHORIZED");
    // It is still a valid device key where a device key belongs.
    let v = assert_lite_ok(&s.get(&format!("/auth/verify?device_key={device_key}"), None));
    assert_eq!(v["valid"], json!(true));
    let v = assert_v1_ok(&s.get("/v1/auth/verify", dk), 200);
    assert_eq!(v["kind"], "device");
    assert_v1_ok(&s.get("/v1/auth/me", Some(&token)), 200);
}

#[test]
fn keys_record_their_use_and_expire() {
    let s = TestServer::start();
    let (token, _, _) = s.register("gil@example.com");
    let (_, used) = s.create_api_key(&token, &["user:read"]);
    let (_, unused) = s.create_api_key(&token, &["user:read"]);
    assert!(!unused.is_empty());
    assert_v1_ok(&s.get("/v1/auth/me", Some(&used)), 200);
    // The touch is queued behind the answer (docs/limits.md, Timing), so it lands soon after, not before.
    let list = crate::queue_util::eventually(
        "the used key's last_used_at",
        std::time::Duration::from_secs(10),
        || {
            let list = assert_v1_ok(&s.get("/v1/api-keys", Some(&token)), 200);
            list["api_keys"][1]["last_used_at"]
                .is_string()
                .then_some(list)
        },
    );
    assert!(list["api_keys"][0]["last_used_at"].is_null(), "{list}");

    let soon = ccjk_cloud::time::after(std::time::Duration::from_millis(2000));
    let body = json!({"name": "short-lived", "scopes": ["user:read"], "expires_at": soon});
    let d = assert_v1_ok(&s.post_json("/v1/api-keys", Some(&token), body), 201);
    let short_lived = d["key"].as_str().expect("key");
    assert_v1_ok(&s.get("/v1/auth/me", Some(short_lived)), 200);
    std::thread::sleep(std::time::Duration::from_millis(2300));
    assert_v1_error(
        &s.get("/v1/auth/me", Some(short_lived)),
        401,
        "UNAUTHORIZED",
    );
    assert_v1_ok(&s.get("/v1/auth/me", Some(&used)), 200);
}
