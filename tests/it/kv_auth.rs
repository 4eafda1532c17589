//! Who may authorise an app on a device, and with what (README "Apps and the KV store"): the
//! owner's session, or the device's KV password — never a bare device uuid, never another
//! user's session, never an API key; wrong KV passwords are throttled per device and per
//! address before any hash is computed; only the owner revokes by install id; an app token is
//! no credential anywhere else, and no other credential is an app token.

use crate::common::{PASSWORD, TestServer, assert_v1_error, assert_v1_ok};
use crate::kv_util::*;
use serde_json::json;

const KV_PASSWORD: &str = "open sesame, please";

#[test]
fn another_users_device_needs_its_kv_password() {
    let s = TestServer::start();
    let (alice, _, _) = s.register("alice@example.com");
    let (bob, _, _) = s.register("bob@example.com");
    let app = app(&s, "Sync");
    let dev = device(&s, &alice, "alice-laptop");
    let mine = authorize(&s, app.id, &alice, &dev, false);
    assert_eq!(put_text(&s, &mine, "secret", "alice's").status, 201);
    let body = |pw: Option<&str>| json!({"deviceUuid": dev, "password": pw, "readOnly": false});

    // Bob's session is not Alice's: her device answers like a missing one.
    let r = authorize_with(&s, app.id, Some(&bob), body(None));
    assert_kv_error(&r, 404, "NOT_FOUND");
    let missing = authorize_with(
        &s,
        app.id,
        Some(&bob),
        json!({"deviceUuid": "00000000-0000-4000-8000-000000000000", "readOnly": false}),
    );
    assert_eq!(missing.body, r.body, "same answer as a missing device");
    // A bare uuid is nothing.
    assert_kv_error(
        &authorize_with(&s, app.id, None, body(None)),
        401,
        "UNAUTHORIZED",
    );
    // Without a KV password set, no password opens it, and the answer is the one an unknown
    // device gets.
    let r = authorize_with(&s, app.id, None, body(Some(KV_PASSWORD)));
    assert_kv_error(&r, 401, "INVALID_CREDENTIALS");
    let unknown = authorize_with(
        &s,
        app.id,
        None,
        json!({"deviceUuid": "nope", "password": KV_PASSWORD, "readOnly": false}),
    );
    assert_eq!(unknown.body, r.body);
    // An API key of the owner is not a session: no silent downgrade.
    let (_, key) = s.create_api_key(&alice, &["device:write", "device:read"]);
    assert_kv_error(
        &authorize_with(&s, app.id, Some(&key), body(None)),
        401,
        "UNAUTHORIZED",
    );
    // Nor can it get there through the KV password: setting one needs a session too.
    let r = s.patch_json(
        &format!("/v1/devices/{dev}"),
        Some(&key),
        json!({"kv_password": "the api key's password"}),
    );
    assert_v1_error(&r, 403, "FORBIDDEN");
    let set: i64 = crate::kv_util::sql(
        &s,
        "SELECT count(*) FROM devices WHERE kv_password_hash IS NOT NULL",
    );
    assert_eq!(set, 0, "the refused PATCH set no password");

    // Bob cannot set Alice's KV password.
    let r = s.patch_json(
        &format!("/v1/devices/{dev}"),
        Some(&bob),
        json!({"kv_password": "bob's own password"}),
    );
    assert_v1_error(&r, 404, "NOT_FOUND");
    assert_kv_error(
        &authorize_with(&s, app.id, None, body(Some("bob's own password"))),
        401,
        "INVALID_CREDENTIALS",
    );
    // Alice sets one (PATCH /v1/devices/{id}); a short one is refused.
    let short = s.patch_json(
        &format!("/v1/devices/{dev}"),
        Some(&alice),
        json!({"kv_password": "short"}),
    );
    assert_v1_error(&short, 422, "VALIDATION_FAILED");
    let empty = s.patch_json(&format!("/v1/devices/{dev}"), Some(&alice), json!({}));
    assert_v1_error(&empty, 422, "VALIDATION_FAILED");
    let set = s.patch_json(
        &format!("/v1/devices/{dev}"),
        Some(&alice),
        json!({"kv_password": KV_PASSWORD}),
    );
    assert_eq!(
        assert_v1_ok(&set, 200)["device"]["name"],
        json!("alice-laptop")
    );
    let renamed = s.patch_json(
        &format!("/v1/devices/{dev}"),
        Some(&alice),
        json!({"name": "lap"}),
    );
    assert_eq!(assert_v1_ok(&renamed, 200)["device"]["name"], json!("lap"));
    assert!(
        !std::fs::read(s.db_path())
            .expect("db")
            .windows(KV_PASSWORD.len())
            .any(|w| w == KV_PASSWORD.as_bytes())
    );

    // Now whoever presents it may authorise apps on the device — Bob, or nobody signed in.
    let r = authorize_with(&s, app.id, None, body(Some("not the password")));
    assert_kv_error(&r, 401, "INVALID_CREDENTIALS");
    let r = authorize_with(&s, app.id, Some(&bob), body(Some(KV_PASSWORD)));
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["deviceName"], json!("lap"));
    let bobs = r.body["token"].as_str().expect("token").to_string();
    assert_eq!(get_value(&s, &bobs, "secret").text, "alice's");
    let anon = authorize_with(
        &s,
        app.id,
        None,
        json!({"deviceUuid": dev, "password": KV_PASSWORD, "readOnly": true}),
    );
    assert_eq!(anon.status, 201, "{}", anon.text);

    // Bob's own session does not let him revoke Alice's installs by id, nor list them.
    let tokens = s.get(&format!("/apps/devices/{dev}/tokens"), Some(&alice));
    assert_eq!(tokens.body["count"], json!(3), "{}", tokens.text);
    let install = tokens.body["tokens"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_kv_error(
        &s.get(&format!("/apps/devices/{dev}/tokens"), Some(&bob)),
        404,
        "NOT_FOUND",
    );
    assert_kv_error(
        &s.delete(&format!("/apps/tokens/{install}"), Some(&bob)),
        404,
        "NOT_FOUND",
    );
    assert_kv_error(
        &s.delete(&format!("/apps/tokens/{install}"), None),
        401,
        "UNAUTHORIZED",
    );
    let (_, narrow) = s.create_api_key(&alice, &["device:read"]);
    assert_kv_error(
        &s.delete(&format!("/apps/tokens/{install}"), Some(&narrow)),
        403,
        "INSUFFICIENT_SCOPE",
    );
    assert_eq!(
        get_value(&s, &mine, "secret").status,
        200,
        "nothing was revoked"
    );

    // Removing the password (null) closes that door; tokens already issued stay.
    let cleared = s.patch_json(
        &format!("/v1/devices/{dev}"),
        Some(&alice),
        json!({"kv_password": null}),
    );
    assert_v1_ok(&cleared, 200);
    assert_kv_error(
        &authorize_with(&s, app.id, Some(&bob), body(Some(KV_PASSWORD))),
        401,
        "INVALID_CREDENTIALS",
    );
    assert_eq!(get_value(&s, &bobs, "secret").status, 200);
    // Alice revokes Bob's token with an API key that holds device:write.
    let bobs_install = s
        .get(&format!("/apps/devices/{dev}/tokens"), Some(&alice))
        .body["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| bobs.starts_with(t["tokenPrefix"].as_str().unwrap_or("-")))
        .and_then(|t| t["id"].as_str())
        .expect("bob's install")
        .to_string();
    let rv = s.delete(&format!("/apps/tokens/{bobs_install}"), Some(&key));
    assert_eq!(rv.status, 200, "{}", rv.text);
    assert_kv_error(&get_value(&s, &bobs, "secret"), 401, "UNAUTHORIZED");
}

/// In the real binary, behind a trusted proxy so each attempt can come from a new address:
/// the device's own throttle stops a distributed guesser, before any hash.
#[test]
fn wrong_kv_passwords_are_throttled_per_device_before_hashing() {
    let s = TestServer::spawn_binary(&[("CCJK_TRUSTED_PROXY", "1")]);
    let (alice, _, _) = s.register("alice@example.com");
    let (bob, _, _) = s.register("bob@example.com");
    let app = app(&s, "Guess");
    let dev = device(&s, &alice, "target");
    let other = device(&s, &bob, "bystander");
    for (who, d) in [(&alice, &dev), (&bob, &other)] {
        let r = s.patch_json(
            &format!("/v1/devices/{d}"),
            Some(who),
            json!({"kv_password": KV_PASSWORD}),
        );
        assert_v1_ok(&r, 200);
    }
    let try_from = |ip: &str, d: &str, pw: &str| {
        let body = json!({"deviceUuid": d, "password": pw, "readOnly": false});
        s.call(
            "POST",
            &format!("/apps/{}/authorize", app.id),
            &[("X-Forwarded-For", ip)],
            Some(("application/json", body.to_string().into_bytes())),
        )
    };
    let mut hashes = s.metric("ccjk_password_hashes_total");
    for i in 1..=5 {
        let r = try_from(&format!("198.51.100.{i}"), &dev, &format!("guess {i}"));
        assert_kv_error(&r, 401, "INVALID_CREDENTIALS");
        let after = s.metric("ccjk_password_hashes_total");
        assert!(after > hashes, "a real attempt verifies a hash");
        hashes = after;
    }
    // The sixth, from yet another address and with the right password, is refused while the
    // block lasts (1 s after five failures), without computing a hash.
    let r = try_from("198.51.100.6", &dev, KV_PASSWORD);
    assert_kv_error(&r, 429, "RATE_LIMITED");
    let wait: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=900).contains(&wait), "{wait}");
    assert_eq!(
        s.metric("ccjk_password_hashes_total"),
        hashes,
        "throttled, yet hashed"
    );
    // A uuid that names no device is throttled exactly the same way: the throttle tells
    // nothing about which devices exist.
    let ghost = "00000000-0000-4000-8000-00000000dead";
    for i in 1..=5 {
        let r = try_from(&format!("192.0.2.{i}"), ghost, "any password");
        assert_kv_error(&r, 401, "INVALID_CREDENTIALS");
    }
    assert_kv_error(
        &try_from("192.0.2.6", ghost, "any password"),
        429,
        "RATE_LIMITED",
    );
    // Another device is not blocked by it.
    let r = try_from("198.51.100.201", &other, KV_PASSWORD);
    assert_eq!(r.status, 201, "{}", r.text);
    // One address failing on many devices is blocked as an address, too.
    for i in 0..5 {
        let r = try_from(
            "203.0.113.9",
            &format!("no-such-device-{i}"),
            "x-password-x",
        );
        assert_kv_error(&r, 401, "INVALID_CREDENTIALS");
    }
    assert_kv_error(
        &try_from("203.0.113.9", &other, KV_PASSWORD),
        429,
        "RATE_LIMITED",
    );
    // The owner's session path computes no hash and is not blocked.
    let before = s.metric("ccjk_password_hashes_total");
    authorize(&s, app.id, &alice, &dev, false);
    assert_eq!(s.metric("ccjk_password_hashes_total"), before);
}

#[test]
fn an_app_token_is_no_other_credential_and_no_other_credential_is_an_app_token() {
    let s = TestServer::start();
    let (alice, _, _) = s.register("alice@example.com");
    let app = app(&s, "Kinds");
    let dev_r = s.post_json("/v1/devices", Some(&alice), json!({"name": "box"}));
    let d = assert_v1_ok(&dev_r, 201);
    let (dev, device_key) = (
        d["device"]["id"].as_str().expect("id").to_string(),
        d["device_key"].as_str().expect("key").to_string(),
    );
    let token = authorize(&s, app.id, &alice, &dev, false);
    let (_, api_key) = s.create_api_key(&alice, &["device:read", "device:write"]);
    for other in [&alice, &device_key, &api_key] {
        assert_kv_error(&get_value(&s, other, "k"), 401, "UNAUTHORIZED");
        assert_kv_error(&put_text(&s, other, "k", "v"), 401, "UNAUTHORIZED");
        assert_kv_error(
            &s.get(&format!("/kv?token={other}"), None),
            401,
            "UNAUTHORIZED",
        );
    }
    assert_kv_error(&s.get("/kv", None), 401, "UNAUTHORIZED");
    assert_v1_error(&s.get("/v1/auth/me", Some(&token)), 401, "UNAUTHORIZED");
    assert_v1_error(
        &s.get(&format!("/v1/devices/{dev}/kv"), Some(&token)),
        401,
        "UNAUTHORIZED",
    );
    assert_v1_error(&s.get("/v1/auth/verify", Some(&token)), 401, "UNAUTHORIZED");
    let hb = s.post_json(
        "/v1/daemon/heartbeat",
        Some(&token),
        json!({"status": "online"}),
    );
    assert_v1_error(&hb, 401, "UNAUTHORIZED");
    assert_kv_error(
        &s.get(&format!("/apps/devices/{dev}/tokens"), Some(&token)),
        401,
        "UNAUTHORIZED",
    );
    // A disabled owner's tokens stop working at once, and work again when enabled.
    assert_eq!(put_text(&s, &token, "k", "v").status, 201);
    s.set_active("alice@example.com", false);
    assert_kv_error(&get_value(&s, &token, "k"), 401, "UNAUTHORIZED");
    s.set_active("alice@example.com", true);
    assert_eq!(get_value(&s, &token, "k").text, "v");
    // Logging in again does not disturb the token.
    assert_eq!(s.login("alice@example.com", PASSWORD).status, 200);
    assert_eq!(get_value(&s, &token, "k").status, 200);
}
