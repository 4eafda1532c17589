//! Accounts and logins in every family: `/v1/auth/*` (register, login, me, logout), Lite's
//! `POST /auth` and `GET /auth/verify`, Sessions' `/api/auth/*` with the seed's exact bodies;
//! validation and conflicts, the first-user-is-admin rule, and closed sign-ups.

use crate::common::{
    PASSWORD, TestServer, assert_lite_error, assert_lite_ok, assert_sessions_error,
    assert_v1_error, assert_v1_ok, keys,
};
use serde_json::json;

#[test]
fn v1_register_login_me_logout() {
    let s = TestServer::start();
    let r = s.post_json(
        "/v1/auth/register",
        None,
        json!({"email": "ann@example.com", "password": PASSWORD, "username": "ann", "display_name": "Ann"}),
    );
    let d = assert_v1_ok(&r, 201);
    assert!(
        d["token"].as_str().expect("token").starts_with("ccs_"),
        "{d}"
    );
    assert!(
        d["refresh_token"]
            .as_str()
            .expect("refresh")
            .starts_with("ccr_"),
        "{d}"
    );
    assert_eq!(d["user"]["email"], "ann@example.com");
    assert_eq!(d["user"]["display_name"], "Ann");
    assert!(d["user"].get("password_hash").is_none(), "{d}");

    let login = assert_v1_ok(&s.login("ann@example.com", PASSWORD), 200);
    let token = login["token"].as_str().expect("token");
    assert_ne!(login["token"], d["token"], "a login opens a new session");
    let me = assert_v1_ok(&s.get("/v1/auth/me", Some(token)), 200);
    assert_eq!(me["user"]["id"], d["user"]["id"]);
    assert_eq!(me["current_session"]["id"], login["session"]["id"]);

    assert_v1_ok(&s.post_json("/v1/auth/logout", Some(token), json!({})), 200);
    assert_v1_error(&s.get("/v1/auth/me", Some(token)), 401, "UNAUTHORIZED");
    assert_v1_error(&s.get("/v1/auth/me", None), 401, "UNAUTHORIZED");
    // The registration session is untouched by the other session's logout.
    assert_v1_ok(&s.get("/v1/auth/me", d["token"].as_str()), 200);
}

#[test]
fn login_by_username_or_email_in_any_case() {
    let s = TestServer::start();
    let body = json!({"email": "Bob@Example.com", "password": PASSWORD, "username": "bobby"});
    let id = assert_v1_ok(&s.post_json("/v1/auth/register", None, body), 201)["user"]["id"].clone();
    for login in [
        json!({"username": "bobby", "password": PASSWORD}),
        json!({"username": "BOBBY", "password": PASSWORD}),
        json!({"email": "bob@example.com", "password": PASSWORD}),
        json!({"username": "BOB@EXAMPLE.COM", "password": PASSWORD}),
    ] {
        let d = assert_v1_ok(&s.post_json("/v1/auth/login", None, login.clone()), 200);
        assert_eq!(d["user"]["id"], id, "{login}");
    }
    let r = s.post_json("/v1/auth/login", None, json!({"password": PASSWORD}));
    assert_v1_error(&r, 422, "VALIDATION_FAILED");
}

#[test]
fn wrong_password_and_unknown_user_look_the_same() {
    let s = TestServer::start();
    s.register("carl@example.com");
    let wrong = s.login("carl@example.com", "not the password");
    let unknown = s.login("nobody@example.com", PASSWORD);
    for r in [&wrong, &unknown] {
        assert_v1_error(r, 401, "INVALID_CREDENTIALS");
        assert_eq!(r.body["error"]["message"], "Invalid credentials");
    }
    assert_eq!(wrong.body["error"], unknown.body["error"]);
    let lite = s.post_json(
        "/auth",
        None,
        json!({"email": "carl@example.com", "password": "nope-nope"}),
    );
    assert_lite_error(&lite, 401, "INVALID_CREDENTIALS");
    assert_eq!(lite.body["error"], "Invalid credentials");
    let sess = s.post_json(
        "/api/auth/login",
        None,
        json!({"email": "carl@example.com", "password": "x"}),
    );
    assert_eq!(assert_sessions_error(&sess, 401), "Invalid credentials");
}

#[test]
fn duplicates_are_conflicts_and_bad_fields_are_422() {
    let s = TestServer::start();
    let ok = json!({"email": "dee@example.com", "password": PASSWORD, "username": "dee"});
    assert_v1_ok(&s.post_json("/v1/auth/register", None, ok), 201);
    let cases = [
        (
            json!({"email": "DEE@example.com", "password": PASSWORD}),
            409,
            "EMAIL_TAKEN",
        ),
        (
            json!({"email": "d2@example.com", "password": PASSWORD, "username": "DEE"}),
            409,
            "USERNAME_TAKEN",
        ),
        (
            json!({"email": "not-an-email", "password": PASSWORD}),
            422,
            "VALIDATION_FAILED",
        ),
        (
            json!({"email": "a@b", "password": PASSWORD}),
            422,
            "VALIDATION_FAILED",
        ),
        (
            json!({"email": "e@example.com", "password": "1234567"}),
            422,
            "VALIDATION_FAILED",
        ),
        (
            json!({"email": "e@example.com", "password": "x".repeat(1025)}),
            422,
            "VALIDATION_FAILED",
        ),
        (
            json!({"email": "e@example.com", "password": PASSWORD, "username": "a@b"}),
            422,
            "VALIDATION_FAILED",
        ),
        (json!({"password": PASSWORD}), 422, "VALIDATION_FAILED"),
    ];
    for (body, status, code) in cases {
        let r = s.post_json("/v1/auth/register", None, body.clone());
        assert_v1_error(&r, status, code);
        if code == "VALIDATION_FAILED" && body.get("email").is_some() {
            assert!(
                r.body["error"]["details"]
                    .as_object()
                    .is_some_and(|d| !d.is_empty()),
                "{}",
                r.text
            );
        }
    }
    let r = s.post_json(
        "/v1/auth/register",
        None,
        json!({"email": "e@example.com", "password": "1234567"}),
    );
    assert!(
        r.body["error"]["details"].get("password").is_some(),
        "{}",
        r.text
    );
    let r = s.post_json(
        "/v1/auth/register",
        None,
        json!({"email": "e@example.com", "password": "12345678"}),
    );
    assert_v1_ok(&r, 201);
    let body = json!({"username": "dee", "email": "d3@example.com", "password": PASSWORD});
    assert_eq!(
        assert_sessions_error(&s.post_json("/api/auth/register", None, body), 409),
        "Username already exists"
    );
}

#[test]
fn first_user_is_an_enterprise_admin_and_the_next_is_on_free() {
    let s = TestServer::start();
    let first = s.post_json(
        "/v1/auth/register",
        None,
        json!({"email": "f1@example.com", "password": PASSWORD}),
    );
    let first = assert_v1_ok(&first, 201);
    assert_eq!(
        (
            first["user"]["is_admin"].clone(),
            first["user"]["plan"].clone()
        ),
        (json!(true), json!("enterprise"))
    );
    let second = s.post_json(
        "/v1/auth/register",
        None,
        json!({"email": "f2@example.com", "password": PASSWORD}),
    );
    let second = assert_v1_ok(&second, 201);
    assert_eq!(
        (
            second["user"]["is_admin"].clone(),
            second["user"]["plan"].clone()
        ),
        (json!(false), json!("free"))
    );
}

#[test]
fn closed_signups_refuse_registration_but_not_login() {
    let s = TestServer::start_with(|c| c.signups_open = false);
    let body = json!({"email": "g@example.com", "password": PASSWORD, "username": "gee"});
    assert_v1_error(
        &s.post_json("/v1/auth/register", None, body.clone()),
        403,
        "FORBIDDEN",
    );
    assert_sessions_error(&s.post_json("/api/auth/register", None, body), 403);
    let lite = s.post_json(
        "/auth",
        None,
        json!({"email": "g@example.com", "password": PASSWORD}),
    );
    assert!(matches!(lite.status, 401 | 403), "{}", lite.text);
    assert_eq!(lite.body["ok"], json!(false));
    // An account an admin made still logs in.
    let out = crate::common::binary()
        .env("CCJK_DB", s.db_path())
        .args(["user", "create", "g@example.com", "--password", PASSWORD])
        .output()
        .expect("run ccjk-cloud user create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_v1_ok(&s.login("g@example.com", PASSWORD), 200);
    assert!(s.lite_auth("g@example.com", PASSWORD).starts_with("ccjk_"));
}

#[test]
fn lite_auth_returns_one_stable_device_key_per_user() {
    let s = TestServer::start();
    let k1 = s.lite_auth("hal@example.com", PASSWORD);
    assert!(k1.starts_with("ccjk_"), "{k1}");
    assert_eq!(
        s.lite_auth("hal@example.com", PASSWORD),
        k1,
        "same key on every login"
    );
    assert_eq!(
        s.lite_auth("HAL@example.com", PASSWORD),
        k1,
        "emails are case-insensitive"
    );
    let other = s.lite_auth("ivy@example.com", PASSWORD);
    assert_ne!(other, k1);
    let r = s.post_json(
        "/auth",
        None,
        json!({"email": "hal@example.com", "password": "short"}),
    );
    assert_lite_error(&r, 401, "INVALID_CREDENTIALS");
    let r = s.post_json(
        "/auth",
        None,
        json!({"email": "new@example.com", "password": "short"}),
    );
    assert_lite_error(&r, 422, "VALIDATION_FAILED");
    let r = s.post_json(
        "/auth",
        None,
        json!({"email": "not an email", "password": PASSWORD}),
    );
    assert_lite_error(&r, 422, "VALIDATION_FAILED");

    let v = assert_lite_ok(&s.get(&format!("/auth/verify?device_key={k1}"), None));
    assert_eq!(v["valid"], json!(true));
    let hal_id = v["user_id"].as_i64().expect("user_id");
    let via_header = s.call("GET", "/auth/verify", &[("X-Device-Key", &other)], None);
    let ivy_id = assert_lite_ok(&via_header)["user_id"]
        .as_i64()
        .expect("user_id");
    assert_ne!(hal_id, ivy_id);
    // The user that Lite registered logs in to /v1 with the same password.
    assert_eq!(
        assert_v1_ok(&s.login("hal@example.com", PASSWORD), 200)["user"]["id"],
        json!(hal_id)
    );

    let garbage = format!("ccjk_{}", "0".repeat(64));
    assert_lite_error(
        &s.get(&format!("/auth/verify?device_key={garbage}"), None),
        401,
        "UNAUTHORIZED",
    );
    assert_lite_error(
        &s.get("/auth/verify?device_key=nonsense", None),
        401,
        "UNAUTHORIZED",
    );
    assert_lite_error(&s.get("/auth/verify", None), 401, "UNAUTHORIZED");
}

#[test]
fn sessions_family_bodies_match_the_seed() {
    let s = TestServer::start();
    let body =
        json!({"username": "testuser", "email": "test@example.com", "password": "test123456"});
    let r = s.post_json("/api/auth/register", None, body);
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(keys(&r.body), ["message", "success", "user"]);
    assert_eq!(r.body["message"], "User registered successfully");
    assert_eq!(
        keys(&r.body["user"]),
        ["created_at", "email", "id", "username"]
    );
    let uid = r.body["user"]["id"].clone();

    let login = || {
        s.post_json(
            "/api/auth/login",
            None,
            json!({"username": "testuser", "password": "test123456"}),
        )
    };
    let first = login();
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(keys(&first.body), ["message", "session", "success", "user"]);
    assert_eq!(first.body["message"], "Login successful");
    assert_eq!(
        keys(&first.body["session"]),
        ["created_at", "id", "name", "token"]
    );
    assert_eq!(keys(&first.body["user"]), ["email", "id", "username"]);
    assert_eq!(first.body["user"]["id"], uid);
    let token = first.body["session"]["token"]
        .as_str()
        .expect("token")
        .to_string();
    let second = login();
    assert_eq!(
        second.body["session"], first.body["session"],
        "login returns the existing session"
    );

    let v = s.get_with_session_header("/api/auth/verify", &token);
    assert_eq!(v.status, 200, "{}", v.text);
    assert_eq!(keys(&v.body), ["session", "success", "user", "valid"]);
    assert_eq!(v.body["valid"], json!(true));
    assert_eq!(
        keys(&v.body["session"]),
        ["created_at", "id", "last_used_at", "name"]
    );
    let me = s.get_with_session_header("/api/auth/me", &token);
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(keys(&me.body), ["current_session", "success", "user"]);
    assert_eq!(
        me.body["current_session"]["id"],
        first.body["session"]["id"]
    );
    assert_eq!(me.body["user"]["email"], "test@example.com");

    for bad in ["invalid-token-12345", "ccs_0000"] {
        let r = s.get("/api/auth/verify", Some(bad));
        assert_eq!(r.status, 401, "{}", r.text);
        assert_eq!(
            r.body,
            json!({"success": false, "valid": false, "error": "Invalid session"})
        );
    }
    let none = s.get("/api/auth/verify", None);
    assert_eq!(
        none.body,
        json!({"success": false, "valid": false, "error": "Invalid session"})
    );
    assert_sessions_error(&s.get("/api/auth/me", Some("invalid-token-12345")), 401);
}

#[test]
fn sessions_login_reuses_the_session_that_v1_registration_opened() {
    let s = TestServer::start();
    let (token, _, _) = s.register("jo@example.com");
    let r = s.post_json(
        "/api/auth/login",
        None,
        json!({"email": "jo@example.com", "password": PASSWORD}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["session"]["token"].as_str(), Some(token.as_str()));
}
