//! Brute force and back-pressure (docs/security.md): repeated failures from one client IP get
//! 429 with `Retry-After` before any password hash is computed (checked with the binary's
//! `ccjk_password_hashes_total`); the client IP is the socket's, or the last hop of
//! `X-Forwarded-For` only behind a trusted proxy; a hashing pool that cannot take a login in
//! time answers 503 with `Retry-After` in the route's envelope.

use crate::common::{PASSWORD, TestServer, assert_sessions_error, assert_v1_error, assert_v1_ok};
use serde_json::json;
use std::time::Duration;

/// Runs in the real binary: the hash counter of `/metrics` is per process, and other tests
/// hash in this one.
#[test]
fn repeated_failures_are_throttled_before_hashing() {
    let s = TestServer::spawn_binary(&[]);
    s.register("max@example.com");
    let mut hashes = s.metric("ccjk_password_hashes_total");
    let mut first_throttled = None;
    for attempt in 1..=10 {
        let r = s.login("max@example.com", &format!("wrong password {attempt}"));
        let after = s.metric("ccjk_password_hashes_total");
        if r.status == 429 {
            assert_v1_error(&r, 429, "RATE_LIMITED");
            let wait = r.header("retry-after").expect("Retry-After");
            let wait: u64 = wait.parse().expect("Retry-After in seconds");
            assert!((1..=900).contains(&wait), "{wait}");
            assert_eq!(
                after, hashes,
                "attempt {attempt} was throttled but computed a hash"
            );
            first_throttled.get_or_insert(attempt);
        } else {
            assert_v1_error(&r, 401, "INVALID_CREDENTIALS");
            assert!(after > hashes, "a real attempt verifies a hash");
            assert!(
                attempt <= 5 || first_throttled.is_some(),
                "attempt {attempt} not throttled"
            );
        }
        hashes = after;
    }
    assert!(
        first_throttled.is_some(),
        "ten failures in a row were never throttled"
    );
    // The right password from the same IP is refused too, still without hashing.
    let r = s.login("max@example.com", PASSWORD);
    assert_v1_error(&r, 429, "RATE_LIMITED");
    assert_eq!(s.metric("ccjk_password_hashes_total"), hashes);
}

fn login_from(s: &TestServer, ip: &str, login: &str, password: &str) -> crate::common::Resp {
    let body = json!({"email": login, "password": password})
        .to_string()
        .into_bytes();
    let h = [("X-Forwarded-For", ip)];
    s.call(
        "POST",
        "/v1/auth/login",
        &h,
        Some(("application/json", body)),
    )
}

#[test]
fn behind_a_trusted_proxy_the_forwarded_ip_is_throttled() {
    let s = TestServer::start_with(|c| c.trusted_proxy = true);
    s.register("x@example.com");
    s.register("y@example.com");
    let attacker = "10.0.0.1, 198.51.100.1";
    for _ in 0..5 {
        let r = login_from(&s, attacker, "x@example.com", "guess guess");
        assert_v1_error(&r, 401, "INVALID_CREDENTIALS");
    }
    let r = login_from(&s, attacker, "x@example.com", "guess guess");
    assert_v1_error(&r, 429, "RATE_LIMITED");
    // The attacker's IP is blocked for every account...
    assert_v1_error(
        &login_from(&s, attacker, "y@example.com", PASSWORD),
        429,
        "RATE_LIMITED",
    );
    // ...and the attacked account for every IP; other people on other IPs are unaffected.
    let other = "198.51.100.2";
    assert_v1_error(
        &login_from(&s, other, "x@example.com", PASSWORD),
        429,
        "RATE_LIMITED",
    );
    assert_v1_ok(&login_from(&s, other, "y@example.com", PASSWORD), 200);
}

#[test]
fn without_a_trusted_proxy_forwarded_for_is_ignored() {
    let s = TestServer::start();
    s.register("z@example.com");
    let mut statuses = Vec::new();
    for i in 0..6 {
        let spoofed = format!("203.0.113.{i}");
        statuses.push(login_from(&s, &spoofed, "nobody@example.com", "guess guess").status);
    }
    assert_eq!(
        statuses,
        [401, 401, 401, 401, 401, 429],
        "a spoofed header evaded the throttle"
    );
    // The socket's IP (loopback) is blocked, whichever account it tries.
    let r = s.login("z@example.com", PASSWORD);
    assert_v1_error(&r, 429, "RATE_LIMITED");
    assert!(r.header("retry-after").is_some());
}

#[test]
fn a_saturated_hashing_pool_answers_503_with_retry_after() {
    let s = TestServer::start_with(|c| c.hash_queue_wait = Duration::ZERO);
    let body = json!({"email": "busy@example.com", "password": PASSWORD});
    let r = s.post_json("/v1/auth/register", None, body.clone());
    assert_v1_error(&r, 503, "SERVICE_UNAVAILABLE");
    let wait: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(wait >= 1);
    assert_sessions_error(&s.post_json("/api/auth/login", None, body.clone()), 503);
    let lite = s.post_json("/auth", None, body);
    assert_eq!(
        (lite.status, lite.body["code"].clone()),
        (503, json!("SERVICE_UNAVAILABLE"))
    );
    // Routes that do not hash are unaffected, and nothing was registered.
    assert_eq!(s.get("/health", None).status, 200);
    let r = s.get("/v1/auth/me", Some("ccs_unknown"));
    assert_v1_error(&r, 401, "UNAUTHORIZED");
}

/// docs/security.md account, and an account can be named by its email or its username
/// (in any case). Each attempt comes from a fresh IP, so only the account limit can apply.
#[test]
fn the_account_limit_counts_every_name_of_the_account() {
    let s = TestServer::start_with(|c| c.trusted_proxy = true);
    let body = json!({"email": "vic@example.com", "password": PASSWORD, "username": "vic"});
    assert_v1_ok(&s.post_json("/v1/auth/register", None, body), 201);
    let names = [
        "vic@example.com",
        "vic",
        "VIC@EXAMPLE.COM",
        "Vic",
        "vic@example.com",
    ];
    for (i, name) in names.iter().enumerate() {
        let r = login_from(&s, &format!("198.51.100.{}", i + 10), name, "guess guess");
        assert_v1_error(&r, 401, "INVALID_CREDENTIALS");
    }
    // Five consecutive failures against one account, whatever it was called.
    for (i, name) in ["vic", "VIC"].iter().enumerate() {
        let r = login_from(&s, &format!("198.51.100.{}", i + 20), name, "guess guess");
        assert_v1_error(&r, 429, "RATE_LIMITED");
    }
}
