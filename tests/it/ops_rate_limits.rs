//! Rate limits (README "Rate limits"): a session user's 101st request in a minute is 429 with
//! `Retry-After` and the three `RateLimit-*` headers while another user is unaffected; an API
//! key gets its plan's `api_calls_per_minute`, apart from the same user's session; daemon
//! routes carry the per-device limit on every answer, long-polls included; the apps on a device
//! share one window apart from its daemon; unlimited routes carry no such header.

use crate::common::{Resp, TestServer, assert_v1_error, assert_v1_ok};
use crate::queue_util::new_device;

fn num(r: &Resp, h: &str) -> u64 {
    r.header(h)
        .unwrap_or_else(|| panic!("no {h} in {:?}", r.headers))
        .parse()
        .unwrap_or_else(|_| panic!("{h} is not a number"))
}

#[test]
fn the_101st_request_in_a_minute_is_429_and_other_users_are_unaffected() {
    let s = TestServer::start();
    let (ann, _, _) = s.register("ann@example.com");
    let (bob, _, _) = s.register("bob@example.com");
    for i in 0..100u64 {
        let r = s.get("/v1/auth/me", Some(&ann));
        assert_v1_ok(&r, 200);
        assert_eq!(num(&r, "RateLimit-Limit"), 100);
        assert_eq!(num(&r, "RateLimit-Remaining"), 99 - i);
        assert!((1..=60).contains(&num(&r, "RateLimit-Reset")));
    }
    let r = s.get("/v1/auth/me", Some(&ann));
    assert_v1_error(&r, 429, "RATE_LIMITED");
    assert_eq!(num(&r, "RateLimit-Limit"), 100);
    assert_eq!(num(&r, "RateLimit-Remaining"), 0);
    let reset = num(&r, "RateLimit-Reset");
    assert!((1..=60).contains(&reset), "{reset}");
    assert_eq!(num(&r, "Retry-After"), reset);
    // Every limited route of the user counts against the same window.
    assert_v1_error(&s.get("/v1/devices", Some(&ann)), 429, "RATE_LIMITED");
    // Another user is unaffected.
    let r = s.get("/v1/auth/me", Some(&bob));
    assert_v1_ok(&r, 200);
    assert_eq!(num(&r, "RateLimit-Remaining"), 99);
    // Unlimited routes carry no headers and still answer.
    let h = s.assert_healthy();
    assert_eq!(h.header("RateLimit-Limit"), None);
    assert!(s.metric("ccjk_rate_limited_total{class=\"user\"}") >= 2);
}

#[test]
fn api_keys_get_their_plans_limit_apart_from_the_session() {
    let s = TestServer::start();
    let _admin = s.register("admin@example.com"); // the first account is on enterprise
    let (token, _, _) = s.register("free@example.com"); // the free plan: 10 calls a minute
    let (_, key) = s.create_api_key(&token, &["user:read"]);
    let (_, key2) = s.create_api_key(&token, &["user:read"]);
    for i in 0..10u64 {
        let k = if i % 2 == 0 { &key } else { &key2 };
        let r = s.get("/v1/auth/me", Some(k));
        assert_v1_ok(&r, 200);
        assert_eq!(num(&r, "RateLimit-Limit"), 10);
        assert_eq!(
            num(&r, "RateLimit-Remaining"),
            9 - i,
            "a user's keys share one window"
        );
    }
    let r = s.get("/v1/auth/me", Some(&key));
    assert_v1_error(&r, 429, "RATE_LIMITED");
    assert!(num(&r, "Retry-After") >= 1);
    let r = s.get("/v1/auth/me", Some(&token));
    assert_v1_ok(&r, 200);
    assert_eq!(
        num(&r, "RateLimit-Limit"),
        100,
        "the session has its own window"
    );
}

#[test]
fn daemon_routes_carry_the_per_device_limit_long_polls_included() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (_, key) = new_device(&s, &token, "laptop");
    let r = s.post_json("/v1/daemon/heartbeat", Some(&key), serde_json::json!({}));
    assert_v1_ok(&r, 200);
    assert_eq!(num(&r, "RateLimit-Limit"), 1000);
    assert_eq!(num(&r, "RateLimit-Remaining"), 999);
    // A long-poll that parks and times out is answered with the headers too.
    let r = s.get("/v1/daemon/tasks/pending?wait=1", Some(&key));
    assert_v1_ok(&r, 200);
    assert_eq!(num(&r, "RateLimit-Limit"), 1000);
    assert_eq!(num(&r, "RateLimit-Remaining"), 998);
    let r = s.call("POST", "/daemon/heartbeat", &[("X-Device-Key", &key)], None);
    assert_eq!(
        num(&r, "RateLimit-Remaining"),
        997,
        "the device's window, in every family"
    );
}

#[test]
fn a_limit_of_zero_is_no_limit_and_sends_no_headers() {
    let s = TestServer::start_with(|c| c.rate_limit_user = 0);
    let (ann, _, _) = s.register("ann@example.com");
    for _ in 0..120 {
        let r = s.get("/v1/auth/me", Some(&ann));
        assert_v1_ok(&r, 200);
        assert_eq!(r.header("RateLimit-Limit"), None);
    }
}

#[test]
fn app_tokens_share_a_budget_per_device_apart_from_the_daemon() {
    use crate::kv_util::{app, assert_kv_error, authorize, get_value, put_text};
    let s = TestServer::start_with(|c| {
        c.rate_limit_daemon = 5;
        c.rate_limit_user = 0;
    });
    let (owner, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &owner, "laptop");
    let a = app(&s, "Editor");
    let b = app(&s, "Dashboard");
    let ta = authorize(&s, a.id, &owner, &dev, false);
    let tb = authorize(&s, b.id, &owner, &dev, false);
    assert_eq!(put_text(&s, &ta, "k", "v").status, 201);
    for _ in 0..2 {
        let r = get_value(&s, &ta, "k");
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(num(&r, "RateLimit-Limit"), 5);
    }
    let r = get_value(&s, &tb, "k");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        num(&r, "RateLimit-Remaining"),
        1,
        "both apps on the device count in one window"
    );
    assert_eq!(get_value(&s, &tb, "k").status, 200);
    let r = get_value(&s, &ta, "k");
    assert_kv_error(&r, 429, "RATE_LIMITED");
    assert!(num(&r, "Retry-After") >= 1);
    // The same device's daemon has its own window.
    let r = s.post_json("/v1/daemon/heartbeat", Some(&key), serde_json::json!({}));
    assert_v1_ok(&r, 200);
    assert_eq!(num(&r, "RateLimit-Remaining"), 4);
    assert!(s.metric("ccjk_rate_limited_total{class=\"app\"}") >= 1);
}
