//! Account state after sign-up (docs/families.md, README "Operations"): an account an admin
//! disables loses every credential on the next request (session token, API key, device key,
//! refresh token) and gets them back when re-enabled; profile updates validate and keep
//! usernames unique; and `/metrics` is for loopback clients and admins only.

use crate::common::{
    PASSWORD, TestServer, assert_lite_error, assert_sessions_error, assert_v1_error, assert_v1_ok,
};
use serde_json::json;

#[test]
fn disabled_user_loses_every_credential() {
    let s = TestServer::start();
    let (token, _, _) = s.register("kim@example.com");
    let device_key = s.lite_auth("kim@example.com", PASSWORD);
    let (_, api_key) = s.create_api_key(&token, &["user:read"]);
    assert_v1_ok(&s.get("/v1/auth/me", Some(&api_key)), 200);
    s.set_active("kim@example.com", false);
    assert_v1_error(&s.get("/v1/auth/me", Some(&token)), 401, "UNAUTHORIZED");
    assert_v1_error(&s.get("/v1/auth/me", Some(&api_key)), 401, "UNAUTHORIZED");
    assert_sessions_error(&s.get_with_session_header("/api/auth/me", &token), 401);
    assert_lite_error(
        &s.get(&format!("/auth/verify?device_key={device_key}"), None),
        401,
        "UNAUTHORIZED",
    );
    assert_ne!(s.login("kim@example.com", PASSWORD).status, 200);
    assert_ne!(
        s.post_json(
            "/auth",
            None,
            json!({"email": "kim@example.com", "password": PASSWORD})
        )
        .status,
        200
    );
    s.set_active("kim@example.com", true);
    assert_v1_ok(&s.get("/v1/auth/me", Some(&token)), 200);
}

#[test]
fn disabled_user_cannot_refresh() {
    let s =
        TestServer::start_with(|c| c.access_token_ttl = Some(std::time::Duration::from_secs(900)));
    let (_, refresh, _) = s.register("lee@example.com");
    s.set_active("lee@example.com", false);
    let r = s.post_json("/v1/auth/refresh", None, json!({"refresh_token": refresh}));
    assert_v1_error(&r, 401, "UNAUTHORIZED");
}
#[test]
fn profile_updates_validate_and_keep_usernames_unique() {
    let s = TestServer::start();
    let body = json!({"email": "ann@example.com", "password": PASSWORD, "username": "ann"});
    assert_v1_ok(&s.post_json("/v1/auth/register", None, body), 201);
    let (bob, _, _) = s.register("bob@example.com");
    let b = Some(bob.as_str());

    let update = json!({"display_name": "Bob B.", "notify_email": true, "username": "bob"});
    let d = assert_v1_ok(&s.patch_json("/v1/auth/me", b, update), 200);
    assert_eq!(d["user"]["display_name"], "Bob B.");
    assert_eq!(d["user"]["notify_email"], json!(true));
    assert_eq!(d["user"]["username"], "bob");
    let taken = s.patch_json("/v1/auth/me", b, json!({"username": "ANN"}));
    assert_v1_error(&taken, 409, "USERNAME_TAKEN");
    for bad in [
        json!({"username": "has space"}),
        json!({"username": "x@y"}),
        json!({"username": "ab"}),
        json!({"display_name": "d".repeat(101)}),
        json!({"notify_email": "yes"}),
    ] {
        assert_v1_error(
            &s.patch_json("/v1/auth/me", b, bad),
            422,
            "VALIDATION_FAILED",
        );
    }
    let me = assert_v1_ok(&s.get("/v1/auth/me", b), 200);
    assert_eq!(
        me["user"]["username"], "bob",
        "refused updates changed nothing"
    );
    assert_eq!(me["user"]["display_name"], "Bob B.");
    let login = s.post_json(
        "/v1/auth/login",
        None,
        json!({"username": "bob", "password": PASSWORD}),
    );
    assert_eq!(
        assert_v1_ok(&login, 200)["user"]["email"],
        "bob@example.com"
    );
    assert_v1_error(
        &s.patch_json("/v1/auth/me", None, json!({})),
        401,
        "UNAUTHORIZED",
    );
}

fn metrics_via(s: &TestServer, forwarded_for: &str, token: Option<&str>) -> crate::common::Resp {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut h = vec![("X-Forwarded-For", forwarded_for)];
    if let Some(a) = &auth {
        h.push(("Authorization", a.as_str()));
    }
    s.call("GET", "/metrics", &h, None)
}

#[test]
fn metrics_are_for_loopback_clients_and_admins() {
    let s = TestServer::start_with(|c| c.trusted_proxy = true);
    let (admin, _, _) = s.register("root@example.com");
    let (user, _, _) = s.register("user@example.com");
    let (_, admin_key) = s.create_api_key(&admin, &["stats:read"]);
    let remote = "203.0.113.9";

    assert_lite_error(&metrics_via(&s, remote, None), 403, "FORBIDDEN");
    assert_lite_error(&metrics_via(&s, remote, Some(&user)), 403, "FORBIDDEN");
    assert_lite_error(
        &metrics_via(&s, remote, Some("ccs_forged")),
        403,
        "FORBIDDEN",
    );
    for token in [admin.as_str(), admin_key.as_str()] {
        let r = metrics_via(&s, remote, Some(token));
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.text.contains("ccjk_password_hashes_total"), "{}", r.text);
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("text/plain"))
        );
    }
    let local = s.get("/metrics", None);
    assert_eq!(local.status, 200, "{}", local.text);
    assert!(s.metric("ccjk_database_bytes") > 0);
    // Health is public.
    let h = s.call("GET", "/health", &[("X-Forwarded-For", remote)], None);
    assert_eq!(h.status, 200, "{}", h.text);
}
