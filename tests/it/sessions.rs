//! Sessions as named logins (docs/families.md, docs/security.md): creating, listing, renaming
//! and deleting them in both `/v1/sessions` and `/api/sessions`; logout; a password change
//! that signs out every other session; refresh-token rotation that kills the old pair at once;
//! and ownership — another user's session id answers exactly like a missing one and changes
//! nothing.

use crate::common::{
    PASSWORD, TestServer, assert_sessions_error, assert_v1_error, assert_v1_ok, keys,
};
use serde_json::{Value, json};
use std::thread::sleep;
use std::time::Duration;

fn names(list: &Value) -> Vec<String> {
    let mut n: Vec<String> = list
        .as_array()
        .expect("a list of sessions")
        .iter()
        .map(|s| s["name"].as_str().unwrap_or("").to_string())
        .collect();
    n.sort();
    n
}

#[test]
fn named_sessions_can_be_listed_renamed_and_deleted() {
    let s = TestServer::start();
    let (main, _, _) = s.register("ann@example.com");
    let laptop = assert_v1_ok(
        &s.post_json("/v1/sessions", Some(&main), json!({"name": "laptop"})),
        201,
    );
    let laptop_token = laptop["token"].as_str().expect("token").to_string();
    assert!(laptop_token.starts_with("ccs_"));
    let laptop_id = laptop["session"]["id"].as_i64().expect("id");
    let phone = s.post_json("/api/sessions/new", Some(&main), json!({"name": "phone"}));
    assert_eq!(phone.status, 201, "{}", phone.text);
    assert_eq!(
        keys(&phone.body["session"]),
        ["created_at", "id", "name", "token"]
    );
    let phone_token = phone.body["session"]["token"]
        .as_str()
        .expect("token")
        .to_string();
    let phone_id = phone.body["session"]["id"].as_i64().expect("id");
    assert_ne!(phone_token, laptop_token);

    let list = assert_v1_ok(&s.get("/v1/sessions", Some(&main)), 200);
    assert_eq!(names(&list["sessions"]), ["", "laptop", "phone"]);
    let current: Vec<&Value> = list["sessions"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|x| x["current"] == true)
        .collect();
    assert_eq!(current.len(), 1, "exactly the caller's session is current");
    assert!(
        !list.to_string().contains("ccs_"),
        "listings carry no tokens: {list}"
    );
    let api_list = s.get("/api/sessions", Some(&phone_token));
    assert_eq!(api_list.status, 200, "{}", api_list.text);
    assert_eq!(names(&api_list.body["sessions"]), ["", "laptop", "phone"]);

    let r = s.patch_json(
        &format!("/v1/sessions/{laptop_id}"),
        Some(&main),
        json!({"name": "work laptop"}),
    );
    assert_eq!(assert_v1_ok(&r, 200)["session"]["name"], "work laptop");
    let r = s.patch_json(
        &format!("/api/sessions/{phone_id}"),
        Some(&main),
        json!({"name": "old phone"}),
    );
    assert_eq!(
        (r.status, r.body["message"].clone()),
        (200, json!("Session updated")),
        "{}",
        r.text
    );
    let got = assert_v1_ok(
        &s.get(&format!("/v1/sessions/{phone_id}"), Some(&main)),
        200,
    );
    assert_eq!(got["session"]["name"], "old phone");
    let r = s.patch_json(
        &format!("/v1/sessions/{laptop_id}"),
        Some(&main),
        json!({"name": "x".repeat(256)}),
    );
    assert_v1_error(&r, 422, "VALIDATION_FAILED");

    assert_v1_ok(&s.get("/v1/auth/me", Some(&laptop_token)), 200);
    assert_v1_ok(
        &s.delete(&format!("/v1/sessions/{laptop_id}"), Some(&main)),
        200,
    );
    assert_v1_error(
        &s.get("/v1/auth/me", Some(&laptop_token)),
        401,
        "UNAUTHORIZED",
    );
    assert_v1_error(
        &s.get(&format!("/v1/sessions/{laptop_id}"), Some(&main)),
        404,
        "NOT_FOUND",
    );
    assert_v1_error(
        &s.delete(&format!("/v1/sessions/{laptop_id}"), Some(&main)),
        404,
        "NOT_FOUND",
    );

    let r = s.delete(&format!("/api/sessions/{phone_id}"), Some(&main));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_sessions_error(
        &s.get_with_session_header("/api/auth/me", &phone_token),
        401,
    );
    assert_eq!(
        names(&assert_v1_ok(&s.get("/v1/sessions", Some(&main)), 200)["sessions"]),
        [""]
    );
}

#[test]
fn deleting_your_own_session_or_logging_out_ends_it() {
    let s = TestServer::start();
    let (a, _, _) = s.register("bo@example.com");
    let me = assert_v1_ok(&s.get("/v1/auth/me", Some(&a)), 200);
    let id = me["current_session"]["id"].as_i64().expect("session id");
    assert_v1_ok(&s.delete(&format!("/v1/sessions/{id}"), Some(&a)), 200);
    assert_v1_error(&s.get("/v1/sessions", Some(&a)), 401, "UNAUTHORIZED");

    let b = assert_v1_ok(&s.login("bo@example.com", PASSWORD), 200)["token"]
        .as_str()
        .expect("token")
        .to_string();
    let r = s.call("POST", "/api/auth/logout", &[("X-Session-Token", &b)], None);
    assert_eq!(
        (r.status, r.body["success"].clone()),
        (200, json!(true)),
        "{}",
        r.text
    );
    assert_sessions_error(&s.get_with_session_header("/api/auth/me", &b), 401);
    assert_v1_error(
        &s.post_json("/v1/auth/logout", Some(&b), json!({})),
        401,
        "UNAUTHORIZED",
    );
}

#[test]
fn password_change_keeps_this_session_and_ends_the_others() {
    let s = TestServer::start();
    let (a, _, _) = s.register("cy@example.com");
    let b = assert_v1_ok(&s.login("cy@example.com", PASSWORD), 200)["token"]
        .as_str()
        .expect("t")
        .to_string();
    let c = assert_v1_ok(&s.post_json("/v1/sessions", Some(&a), json!({})), 201)["token"]
        .as_str()
        .expect("t")
        .to_string();
    let (_, key) = s.create_api_key(&a, &["user:read"]);

    let wrong = json!({"current_password": "not it at all", "new_password": "a new password"});
    assert_v1_error(
        &s.post_json("/v1/auth/password", Some(&a), wrong),
        401,
        "INVALID_CREDENTIALS",
    );
    assert_v1_ok(&s.get("/v1/auth/me", Some(&b)), 200);
    let short = json!({"current_password": PASSWORD, "new_password": "1234567"});
    assert_v1_error(
        &s.post_json("/v1/auth/password", Some(&a), short),
        422,
        "VALIDATION_FAILED",
    );
    let body = json!({"current_password": PASSWORD, "new_password": "a new password"});
    assert_v1_error(
        &s.post_json("/v1/auth/password", Some(&key), body.clone()),
        401,
        "UNAUTHORIZED",
    );
    assert_v1_ok(&s.get("/v1/auth/me", Some(&b)), 200);

    assert_v1_ok(&s.post_json("/v1/auth/password", Some(&a), body), 200);
    assert_v1_ok(&s.get("/v1/auth/me", Some(&a)), 200);
    assert_v1_error(&s.get("/v1/auth/me", Some(&b)), 401, "UNAUTHORIZED");
    assert_v1_error(&s.get("/v1/auth/me", Some(&c)), 401, "UNAUTHORIZED");
    let list = assert_v1_ok(&s.get("/v1/sessions", Some(&a)), 200);
    assert_eq!(list["sessions"].as_array().expect("list").len(), 1);
    assert_v1_error(
        &s.login("cy@example.com", PASSWORD),
        401,
        "INVALID_CREDENTIALS",
    );
    assert_v1_ok(&s.login("cy@example.com", "a new password"), 200);
}

#[test]
fn refresh_rotates_the_pair_and_kills_the_old_one() {
    let s = TestServer::start_with(|c| c.access_token_ttl = Some(Duration::from_secs(15 * 60)));
    let (t1, r1, _) = s.register("di@example.com");
    let me = assert_v1_ok(&s.get("/v1/auth/me", Some(&t1)), 200);
    assert!(
        me["current_session"]["expires_at"].is_string(),
        "a TTL gives tokens an expiry: {me}"
    );
    let sid = me["current_session"]["id"].clone();

    let d = assert_v1_ok(
        &s.post_json("/v1/auth/refresh", None, json!({"refresh_token": r1})),
        200,
    );
    let (t2, r2) = (
        d["token"].as_str().expect("token"),
        d["refresh_token"].as_str().expect("refresh"),
    );
    assert!(t2.starts_with("ccs_") && r2.starts_with("ccr_"));
    assert_ne!((t2, r2), (t1.as_str(), r1.as_str()));
    assert_eq!(d["session"]["id"], sid, "the same session, new credentials");

    assert_v1_error(&s.get("/v1/auth/me", Some(&t1)), 401, "UNAUTHORIZED");
    let again = s.post_json("/v1/auth/refresh", None, json!({"refresh_token": r1}));
    assert_v1_error(&again, 401, "UNAUTHORIZED");
    assert_eq!(
        assert_v1_ok(&s.get("/v1/auth/me", Some(t2)), 200)["current_session"]["id"],
        sid
    );
    // A refresh token is not an access token.
    assert_v1_error(&s.get("/v1/auth/me", Some(r2)), 401, "UNAUTHORIZED");
    assert_v1_error(&s.get("/v1/sessions", Some(r2)), 401, "UNAUTHORIZED");
    let garbage = s.post_json("/v1/auth/refresh", None, json!({"refresh_token": t2}));
    assert_v1_error(&garbage, 401, "UNAUTHORIZED");
    assert_v1_ok(&s.get("/v1/auth/me", Some(t2)), 200);

    // Sessions' login hands out the session's current token, not the dead one.
    let login = s.post_json(
        "/api/auth/login",
        None,
        json!({"email": "di@example.com", "password": PASSWORD}),
    );
    assert_eq!(
        login.body["session"]["token"].as_str(),
        Some(t2),
        "{}",
        login.text
    );

    // The new refresh token works once; after logout it is dead too.
    let d3 = assert_v1_ok(
        &s.post_json("/v1/auth/refresh", None, json!({"refresh_token": r2})),
        200,
    );
    let t3 = d3["token"].as_str().expect("token");
    let r3 = d3["refresh_token"].as_str().expect("refresh");
    assert_v1_error(&s.get("/v1/auth/me", Some(t2)), 401, "UNAUTHORIZED");
    assert_v1_ok(&s.post_json("/v1/auth/logout", Some(t3), json!({})), 200);
    let dead = s.post_json("/v1/auth/refresh", None, json!({"refresh_token": r3}));
    assert_v1_error(&dead, 401, "UNAUTHORIZED");
}

/// Every id route, for `/v1` and `/api`: (method, path, body).
fn id_routes(id: &str) -> Vec<(&'static str, String, Option<Value>)> {
    let mut v = Vec::new();
    for prefix in ["/v1/sessions", "/api/sessions"] {
        v.push(("GET", format!("{prefix}/{id}"), None));
        v.push((
            "PATCH",
            format!("{prefix}/{id}"),
            Some(json!({"name": "hijacked"})),
        ));
        v.push(("DELETE", format!("{prefix}/{id}"), None));
    }
    v
}

#[test]
fn another_users_session_is_indistinguishable_from_a_missing_one() {
    let s = TestServer::start();
    let (alice, _, _) = s.register("alice@example.com");
    let (bob, _, _) = s.register("bob@example.com");
    let created = assert_v1_ok(
        &s.post_json("/v1/sessions", Some(&bob), json!({"name": "bob's"})),
        201,
    );
    let bob_id = created["session"]["id"].as_i64().expect("id");
    let bob_token = created["token"].as_str().expect("token").to_string();
    let missing = bob_id + 1000;

    let theirs = id_routes(&bob_id.to_string());
    let absent = id_routes(&missing.to_string());
    let garbage = id_routes("not-a-number");
    for ((t, a), g) in theirs.iter().zip(&absent).zip(&garbage) {
        let rt = s.json(t.0, &t.1, Some(&alice), t.2.as_ref());
        let ra = s.json(a.0, &a.1, Some(&alice), a.2.as_ref());
        let rg = s.json(g.0, &g.1, Some(&alice), g.2.as_ref());
        assert_eq!(rt.status, 404, "{} {}: {}", t.0, t.1, rt.text);
        for r in [&ra, &rg] {
            assert_eq!(r.status, 404, "{} {}: {}", t.0, t.1, r.text);
        }
        if t.1.starts_with("/v1") {
            assert_v1_error(&rt, 404, "NOT_FOUND");
            assert_eq!(rt.body["error"], ra.body["error"], "{} {}", t.0, t.1);
        } else {
            assert_eq!(rt.body, ra.body, "{} {}", t.0, t.1);
            assert_sessions_error(&rt, 404);
        }
    }
    // Nothing changed: Bob's session keeps its name and its token.
    let mine = assert_v1_ok(&s.get(&format!("/v1/sessions/{bob_id}"), Some(&bob)), 200);
    assert_eq!(mine["session"]["name"], "bob's");
    assert_v1_ok(&s.get("/v1/auth/me", Some(&bob_token)), 200);
    let alices = assert_v1_ok(&s.get("/v1/sessions", Some(&alice)), 200);
    assert!(!alices.to_string().contains("hijacked"), "{alices}");
}

#[test]
fn an_expired_access_token_is_401_until_refreshed() {
    let s = TestServer::start_with(|c| c.access_token_ttl = Some(Duration::from_secs(2)));
    let (t1, r1, _) = s.register("ev@example.com");
    assert_v1_ok(&s.get("/v1/auth/me", Some(&t1)), 200);
    sleep(Duration::from_millis(2300));
    assert_v1_error(&s.get("/v1/auth/me", Some(&t1)), 401, "UNAUTHORIZED");
    assert_sessions_error(&s.get_with_session_header("/api/auth/me", &t1), 401);
    // Sessions' login never returns an expired token: it opens a new session.
    let login = s.post_json(
        "/api/auth/login",
        None,
        json!({"email": "ev@example.com", "password": PASSWORD}),
    );
    let fresh = login.body["session"]["token"].as_str().expect("token");
    assert_ne!(fresh, t1);
    assert_v1_ok(&s.get("/v1/auth/me", Some(fresh)), 200);
    let d = assert_v1_ok(
        &s.post_json("/v1/auth/refresh", None, json!({"refresh_token": r1})),
        200,
    );
    assert_v1_ok(&s.get("/v1/auth/me", d["token"].as_str()), 200);
}

#[test]
fn expired_refresh_tokens_and_idle_sessions_are_401() {
    let s = TestServer::start_with(|c| {
        c.access_token_ttl = Some(Duration::from_secs(2));
        c.refresh_token_ttl = Duration::from_secs(2);
    });
    let (_, refresh, _) = s.register("fi@example.com");
    let idle = TestServer::start_with(|c| c.session_idle_ttl = Some(Duration::from_secs(2)));
    let (token, idle_refresh, _) = idle.register("gu@example.com");
    assert_v1_ok(&idle.get("/v1/auth/me", Some(&token)), 200);
    sleep(Duration::from_millis(2300));
    let r = s.post_json("/v1/auth/refresh", None, json!({"refresh_token": refresh}));
    assert_v1_error(&r, 401, "UNAUTHORIZED");
    assert_v1_error(&idle.get("/v1/auth/me", Some(&token)), 401, "UNAUTHORIZED");
    // Refreshing does not bring an idle session back to life.
    let r = idle.post_json(
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": idle_refresh}),
    );
    assert_v1_error(&r, 401, "UNAUTHORIZED");
}
