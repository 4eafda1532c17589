//! The web panel's login cookie (README "Web panel"): `HttpOnly`,
//! `SameSite=Strict`, `Secure` over https; accepted on `/v1` user routes, refused on a
//! state-changing request without the session's CSRF token, never accepted elsewhere; and the
//! panel's page and assets with their Content-Security-Policy.

use crate::common::{PASSWORD, Resp, TestServer, assert_v1_error, assert_v1_ok};
use serde_json::json;

/// Signs up through `/v1/panel/register`: (the `name=value` of the cookie, the CSRF token).
fn panel_signup(s: &TestServer, email: &str) -> (String, String) {
    let r = s.post_json(
        "/v1/panel/register",
        None,
        json!({"email": email, "password": PASSWORD}),
    );
    let d = assert_v1_ok(&r, 201);
    assert!(d.get("token").is_none(), "no token in the body: {}", r.text);
    let set = r.header("set-cookie").expect("a Set-Cookie").to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "plain http: {set}");
    let pair = set.split(';').next().expect("name=value").to_string();
    assert!(pair.starts_with("ccjk_session=ccs_"), "{pair}");
    (
        pair,
        d["csrf_token"].as_str().expect("csrf_token").to_string(),
    )
}

fn with_cookie(
    s: &TestServer,
    method: &str,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<serde_json::Value>,
) -> Resp {
    let mut h = vec![("Cookie", cookie)];
    if let Some(c) = csrf {
        h.push(("X-CSRF-Token", c));
    }
    let body = body.map(|b| ("application/json", b.to_string().into_bytes()));
    s.call(method, path, &h, body)
}

#[test]
fn a_cookie_needs_the_csrf_token_on_every_state_changing_request() {
    let s = TestServer::start();
    let (cookie, csrf) = panel_signup(&s, "panel@example.com");
    // Reads work with the cookie alone.
    let r = with_cookie(&s, "GET", "/v1/devices", &cookie, None, None);
    assert_v1_ok(&r, 200);
    let me = with_cookie(&s, "GET", "/v1/panel/me", &cookie, None, None);
    let d = assert_v1_ok(&me, 200);
    assert_eq!(d["login"]["user"]["email"], json!("panel@example.com"));
    assert_eq!(d["login"]["csrf_token"], json!(csrf));
    // A write without the token, or with another session's, is refused and changes nothing.
    let body = json!({"name": "laptop"});
    let r = with_cookie(&s, "POST", "/v1/devices", &cookie, None, Some(body.clone()));
    assert_v1_error(&r, 403, "FORBIDDEN");
    let (_, other_csrf) = panel_signup(&s, "other@example.com");
    let r = with_cookie(
        &s,
        "POST",
        "/v1/devices",
        &cookie,
        Some(&other_csrf),
        Some(body.clone()),
    );
    assert_v1_error(&r, 403, "FORBIDDEN");
    for (m, p) in [
        ("DELETE", "/v1/sessions/1"),
        ("PATCH", "/v1/auth/me"),
        ("POST", "/v1/panel/logout"),
    ] {
        let r = with_cookie(&s, m, p, &cookie, None, Some(json!({})));
        assert_v1_error(&r, 403, "FORBIDDEN");
    }
    let list = with_cookie(&s, "GET", "/v1/devices", &cookie, None, None);
    assert_eq!(
        assert_v1_ok(&list, 200)["devices"],
        json!([]),
        "nothing was created"
    );
    // With the token it works.
    let r = with_cookie(&s, "POST", "/v1/devices", &cookie, Some(&csrf), Some(body));
    assert_v1_ok(&r, 201);
    // Logout revokes the session and clears the cookie.
    let r = with_cookie(&s, "POST", "/v1/panel/logout", &cookie, Some(&csrf), None);
    assert_v1_ok(&r, 200);
    let cleared = r.header("set-cookie").expect("Set-Cookie");
    assert!(
        cleared.starts_with("ccjk_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let r = with_cookie(&s, "GET", "/v1/devices", &cookie, None, None);
    assert_v1_error(&r, 401, "UNAUTHORIZED");
    let me = with_cookie(&s, "GET", "/v1/panel/me", &cookie, None, None);
    assert!(assert_v1_ok(&me, 200)["login"].is_null());
}

#[test]
fn the_cookie_is_a_session_credential_for_v1_only() {
    let s = TestServer::start();
    let (cookie, csrf) = panel_signup(&s, "scope@example.com");
    // Not for other families: Lite's task list with the cookie alone is 401.
    let r = s.call("GET", "/tasks", &[("Cookie", &cookie)], None);
    assert_eq!(r.status, 401, "{}", r.text);
    // A cookie holding another kind of credential is refused.
    let (token, _, _) = s.register("api@example.com");
    let (_, key) = s.create_api_key(&token, &["device:read"]);
    let r = s.call(
        "GET",
        "/v1/devices",
        &[("Cookie", &format!("ccjk_session={key}"))],
        None,
    );
    assert_v1_error(&r, 401, "UNAUTHORIZED");
    // A header credential wins over the cookie and needs no CSRF token.
    let r = s.call(
        "POST",
        "/v1/devices",
        &[
            ("Cookie", &cookie),
            ("Authorization", &format!("Bearer {token}")),
        ],
        Some(("application/json", br#"{"name":"x"}"#.to_vec())),
    );
    assert_v1_ok(&r, 201);
    // The event stream accepts the cookie (EventSource sends it): a GET needs no CSRF token.
    let opened = crate::sse::open(s.addr, "/v1/events", &[("Cookie", &cookie)]);
    assert!(matches!(opened, crate::sse::Opened::Stream(_)));
    let _ = csrf;
}

#[test]
fn the_cookie_is_secure_behind_https() {
    let s = TestServer::start_with(|c| c.public_url = Some("https://ccjk.example.com".into()));
    let r = s.post_json(
        "/v1/panel/register",
        None,
        json!({"email": "tls@example.com", "password": PASSWORD}),
    );
    assert_v1_ok(&r, 201);
    let set = r.header("set-cookie").expect("Set-Cookie");
    assert!(set.starts_with("__Host-ccjk_session=ccs_"), "{set}");
    assert!(set.contains("; Secure"), "{set}");
    let login = s.login("tls@example.com", "wrong password");
    assert_eq!(login.status, 401);
    let r = s.post_json(
        "/v1/panel/login",
        None,
        json!({"email": "tls@example.com", "password": PASSWORD}),
    );
    assert_v1_ok(&r, 200);
    assert!(
        r.header("set-cookie")
            .expect("Set-Cookie")
            .contains("; Secure")
    );
}

#[test]
fn the_panel_is_served_with_a_strict_csp() {
    let s = TestServer::start();
    for (path, ct) in [
        ("/", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
        ("/assets/uPlot.iife.min.js", "text/javascript"),
    ] {
        let r = s.get(path, None);
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type").is_some_and(|c| c.starts_with(ct)),
            "{path}"
        );
        let csp = r.header("content-security-policy").expect("a CSP");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    let page = s.get("/", None).text;
    assert!(
        !page.contains("<script>") && !page.contains("style="),
        "nothing inline"
    );
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no CDN"
    );
    let r = s.get("/assets/nope.js", None);
    assert_eq!(r.status, 404);
}
