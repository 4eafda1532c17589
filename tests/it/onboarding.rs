//! A new account on a one-device plan can register a daemon in whichever family it uses
//! (docs/tasks.md "Devices"): no device is made at sign-up, Lite's primary device is created on
//! first use, and an idle primary device is adopted by a `/v1` registration instead of using
//! the plan's only slot. Sign-ups closed answer 403 in every family.

use crate::common::*;
use crate::queue_util::*;
use serde_json::json;

/// A server on the free plan (one device per account) with its admin already registered,
/// so that the accounts a test makes are free ones.
fn free_server() -> TestServer {
    let s = TestServer::start_with(|c| c.default_plan = "free".into());
    s.register("admin@example.com");
    s
}

fn daemon_register(s: &TestServer, token: &str, machine: &str) -> Resp {
    let auth = format!("Bearer {token}");
    s.call(
        "POST",
        "/v1/daemon/register",
        &[("Authorization", &auth), ("X-Device-ID", machine)],
        Some((
            "application/json",
            json!({"device_name": "laptop"}).to_string().into_bytes(),
        )),
    )
}

#[test]
fn a_free_account_registers_a_daemon_in_v1() {
    let s = free_server();
    let (token, _, _) = s.register("v1@example.com");
    let d = assert_v1_ok(&daemon_register(&s, &token, "machine-1"), 201);
    let key = d["device_key"].as_str().expect("key");
    assert_eq!(
        heartbeat(&s, key, json!({"status": "online"}))["device_status"],
        json!("online")
    );
    assert_v1_error(
        &daemon_register(&s, &token, "machine-2"),
        403,
        "QUOTA_EXCEEDED",
    );
}

#[test]
fn a_free_account_gets_its_lite_key_and_a_control_daemon_works_with_a_v1_device() {
    let s = free_server();
    let key = s.lite_auth("lite@example.com", PASSWORD);
    let hb = lite(
        &s,
        "POST",
        "/daemon/heartbeat",
        &key,
        Some(json!({"status": "online"})),
    );
    assert!(hb["pending_tasks"].is_array(), "{hb}");
    assert_eq!(
        s.lite_auth("lite@example.com", PASSWORD),
        key,
        "the same key every time"
    );

    let (token, _, _) = s.register("control@example.com");
    let (_, dkey) = new_device(&s, &token, "box");
    let reg = control(
        &s,
        "POST",
        "/api/control/devices/register",
        &dkey,
        Some(json!({"name": "box", "platform": "linux", "hostname": "h", "version": "3.7.1"})),
    );
    assert_eq!(reg["device"]["status"], json!("online"));
}

#[test]
fn an_idle_primary_device_is_adopted_by_a_v1_registration() {
    let s = free_server();
    let lite_key = s.lite_auth("both@example.com", PASSWORD);
    let login = assert_v1_ok(&s.login("both@example.com", PASSWORD), 200);
    let token = login["token"].as_str().expect("token");
    // The Lite device never heartbeated: the one slot of the plan goes to the daemon.
    let d = assert_v1_ok(&daemon_register(&s, token, "machine-1"), 201);
    assert_eq!(d["device_key"].as_str(), Some(lite_key.as_str()));
    let list = assert_v1_ok(&s.get("/v1/devices", Some(token)), 200);
    assert_eq!(list["devices"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list["devices"][0]["machine_id"], json!("machine-1"));
}

#[test]
fn a_used_primary_device_is_not_taken_over() {
    let s = free_server();
    let lite_key = s.lite_auth("used@example.com", PASSWORD);
    lite(&s, "POST", "/daemon/heartbeat", &lite_key, Some(json!({})));
    let login = assert_v1_ok(&s.login("used@example.com", PASSWORD), 200);
    let token = login["token"].as_str().expect("token");
    assert_v1_error(
        &daemon_register(&s, token, "machine-1"),
        403,
        "QUOTA_EXCEEDED",
    );
}

#[test]
fn closed_sign_ups_answer_403_in_every_family() {
    let s = TestServer::start_with(|c| c.signups_open = false);
    let body = json!({"email": "new@example.com", "password": PASSWORD});
    assert_v1_error(
        &s.post_json("/v1/auth/register", None, body.clone()),
        403,
        "FORBIDDEN",
    );
    assert_lite_error(&s.post_json("/auth", None, body.clone()), 403, "FORBIDDEN");
    let r = s.post_json("/api/auth/register", None, body);
    let message = assert_sessions_error(&r, 403);
    assert!(message.contains("Sign-ups are closed"), "{message}");
}
