//! Vault secrets (docs/vault.md "Secrets", "Reveals"): no password or secret prop appears in
//! the database file (main file, WAL, shared memory) after a scenario that stores, changes and
//! looks them up; answers mask them unless `reveal=true` with `config:read`, which is refused
//! without the scope and recorded every time; and a daemon reads its owner's active accounts
//! masked unless the site allows device reveal.

use crate::common::{TestServer, assert_v1_error, assert_v1_ok};
use crate::vault_util::*;
use serde_json::{Value, json};

const SECRETS: [&str; 6] = [
    "sk-MARKER-apikey-one-0001",
    "sk-MARKER-apikey-two-0002",
    "MARKER-password-alpha-77",
    "MARKER-password-beta-88",
    "MARKER-free-site-password",
    "sk-MARKER-apikey-changed-03",
];

#[test]
fn no_secret_is_ever_in_the_database_file() {
    let mut s = TestServer::start();
    let (t, _, _) = s.register("secrets@example.com");
    openai(&s, &t);
    site(&s, &t, json!({"key": "free"}));
    let one = account(
        &s,
        &t,
        "openai",
        json!({"username": "one", "password": SECRETS[2], "props": {"apiKey": SECRETS[0], "token": "plain-token-1"}}),
    );
    account(
        &s,
        &t,
        "openai",
        json!({"username": "two", "password": SECRETS[3], "props": {"apiKey": SECRETS[1]}}),
    );
    account(
        &s,
        &t,
        "free",
        json!({"username": "f", "password": SECRETS[4]}),
    );
    let r = s.patch_json(
        &format!("/v1/accounts/{}?reveal=true", id(&one)),
        Some(&t),
        json!({"props": {"apiKey": SECRETS[5]}}),
    );
    assert_eq!(
        assert_v1_ok(&r, 200)["account"]["props"]["apiKey"],
        json!(SECRETS[5])
    );
    let found = s.get(
        &format!("/v1/accounts?prop.apiKey={}", SECRETS[1]),
        Some(&t),
    );
    assert_eq!(assert_v1_ok(&found, 200)["count"], json!(1));
    assert_v1_ok(
        &s.get("/v1/sites/openai/accounts?reveal=true", Some(&t)),
        200,
    );
    scan(&s, "while serving");
    s.stop();
    scan(&s, "after shutdown");
}

/// Fails if any of `SECRETS` is in the database file, its WAL or its shared memory.
fn scan(s: &TestServer, when: &str) {
    let files = file_bytes(s);
    assert!(!files.is_empty());
    for (name, bytes) in &files {
        for secret in SECRETS {
            assert!(
                !contains(bytes, secret.as_bytes()),
                "{when}: {secret} in plaintext in {name}"
            );
        }
    }
    // The control: plain props are stored readable, so the scan would see a secret.
    let all: Vec<u8> = files.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    assert!(
        contains(&all, b"plain-token-1"),
        "{when}: the scan sees stored text"
    );
}

/// A server with one account on `openai`, and Alice's session token.
fn one_account() -> (TestServer, String, String) {
    let s = TestServer::start();
    let (t, _, _) = s.register("alice@example.com");
    openai(&s, &t);
    let a = account(
        &s,
        &t,
        "openai",
        json!({"username": "alice", "password": "correct-horse-staple", "props": {"apiKey": "sk-live-0123456789abcd", "token": "tok"}}),
    );
    (s, t, id(&a))
}

fn assert_masked(a: &Value) {
    assert_eq!(a["password"], json!("••••aple"), "{a}");
    assert_eq!(a["props"]["apiKey"], json!("••••abcd"), "{a}");
    assert_eq!(a["props"]["token"], json!("tok"), "plain props are shown");
    assert_eq!(a["revealed"], json!(false));
}

fn reveals(s: &TestServer, t: &str) -> Vec<Value> {
    let r = assert_v1_ok(&s.get("/v1/vault/reveals?limit=200", Some(t)), 200);
    r["reveals"].as_array().expect("reveals").clone()
}

#[test]
fn secrets_are_masked_unless_revealed_with_the_scope_and_each_reveal_is_recorded() {
    let (s, t, a) = one_account();
    let one = format!("/v1/accounts/{a}");
    assert_masked(&assert_v1_ok(&s.get(&one, Some(&t)), 200)["account"]);
    assert_masked(&assert_v1_ok(&s.get("/v1/sites/openai/accounts", Some(&t)), 200)["accounts"][0]);
    assert_masked(
        &assert_v1_ok(&s.get("/v1/accounts?prop.token=tok", Some(&t)), 200)["accounts"][0],
    );
    assert_masked(&assert_v1_ok(&s.get(&format!("{one}?reveal=false"), Some(&t)), 200)["account"]);
    assert!(reveals(&s, &t).is_empty(), "masked reads are not reveals");

    let shown = assert_v1_ok(&s.get(&format!("{one}?reveal=true"), Some(&t)), 200);
    assert_eq!(shown["account"]["password"], json!("correct-horse-staple"));
    assert_eq!(
        shown["account"]["props"]["apiKey"],
        json!("sk-live-0123456789abcd")
    );
    assert_eq!(shown["account"]["revealed"], json!(true));
    let me = assert_v1_ok(&s.get("/v1/auth/me", Some(&t)), 200);
    let rs = reveals(&s, &t);
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0]["account_id"], json!(a));
    assert_eq!(rs[0]["site"], json!("openai"));
    assert_eq!(rs[0]["actor"], json!("session"));
    assert_eq!(rs[0]["session_id"], me["current_session"]["id"]);
    assert_eq!(rs[0]["ip_address"], json!("127.0.0.1"));
    assert!(rs[0]["created_at"].is_string());

    // An API key with config:read reveals (recorded under the key) ...
    let (kid, reader) = s.create_api_key(&t, &["config:read"]);
    let shown = assert_v1_ok(&s.get(&format!("{one}?reveal=true"), Some(&reader)), 200);
    assert_eq!(shown["account"]["password"], json!("correct-horse-staple"));
    let rs = reveals(&s, &t);
    assert_eq!(rs.len(), 2);
    assert_eq!(
        (rs[0]["actor"].clone(), rs[0]["api_key_id"].clone()),
        (json!("api_key"), json!(kid))
    );
    // ... one with config:write alone writes masked, and is refused a reveal before anything
    // is written; one without config scopes reads nothing.
    let (_, writer) = s.create_api_key(&t, &["config:write"]);
    let masked = assert_v1_ok(
        &s.patch_json(&one, Some(&writer), json!({"username": "renamed"})),
        200,
    );
    assert_masked(&masked["account"]);
    let r = s.patch_json(
        &format!("{one}?reveal=true"),
        Some(&writer),
        json!({"username": "x"}),
    );
    assert_v1_error(&r, 403, "INSUFFICIENT_SCOPE");
    let r = s.post_json(
        "/v1/sites/openai/accounts?reveal=true",
        Some(&writer),
        json!({"props": {"apiKey": "sk-new"}}),
    );
    assert_v1_error(&r, 403, "INSUFFICIENT_SCOPE");
    assert_v1_error(&s.get(&one, Some(&writer)), 403, "INSUFFICIENT_SCOPE");
    let (_, other) = s.create_api_key(&t, &["task:read"]);
    assert_v1_error(
        &s.get(&format!("{one}?reveal=true"), Some(&other)),
        403,
        "INSUFFICIENT_SCOPE",
    );
    assert_v1_error(
        &s.get("/v1/vault/reveals", Some(&other)),
        403,
        "INSUFFICIENT_SCOPE",
    );
    let now = assert_v1_ok(&s.get(&one, Some(&t)), 200);
    assert_eq!(
        now["account"]["username"],
        json!("renamed"),
        "the refused PATCH changed nothing"
    );
    assert_eq!(
        assert_v1_ok(&s.get("/v1/sites/openai", Some(&t)), 200)["site"]["account_count"],
        json!(1)
    );
    assert_eq!(reveals(&s, &t).len(), 2, "refusals reveal nothing");

    // A revealed list records every account it shows; the list filters by account.
    let b = account(
        &s,
        &t,
        "openai",
        json!({"props": {"apiKey": "sk-second-000000000"}}),
    );
    let list = assert_v1_ok(
        &s.get("/v1/sites/openai/accounts?reveal=true", Some(&t)),
        200,
    );
    assert_eq!(list["count"], json!(2));
    assert_eq!(reveals(&s, &t).len(), 4);
    let only_b = assert_v1_ok(
        &s.get(&format!("/v1/vault/reveals?account={}", id(&b)), Some(&t)),
        200,
    );
    assert_eq!(only_b["count"], json!(1));
    assert_eq!(only_b["reveals"][0]["account_id"], json!(id(&b)));
}

#[test]
fn daemons_read_active_accounts_masked_unless_the_site_allows_reveal() {
    let (s, t, a) = one_account();
    let dev = assert_v1_ok(
        &s.post_json("/v1/devices", Some(&t), json!({"name": "laptop"})),
        201,
    );
    let key = dev["device_key"].as_str().expect("key").to_string();
    let uuid = dev["device"]["id"].clone();
    let empty = assert_v1_ok(&s.get("/v1/daemon/vault/active", Some(&key)), 200);
    assert_eq!(empty["count"], json!(0), "no active account yet");
    assert_v1_ok(
        &put(
            &s,
            "/v1/sites/openai/active",
            Some(&t),
            json!({"account_id": a}),
        ),
        200,
    );
    for q in ["", "?reveal=true"] {
        let d = assert_v1_ok(
            &s.get(&format!("/v1/daemon/vault/active{q}"), Some(&key)),
            200,
        );
        assert_eq!(d["count"], json!(1));
        assert_eq!(d["sites"][0]["site"], json!("openai"));
        assert_eq!(d["sites"][0]["allow_device_reveal"], json!(false));
        assert_masked(&d["sites"][0]["account"]);
    }
    assert!(reveals(&s, &t).is_empty());
    assert_v1_ok(
        &s.patch_json(
            "/v1/sites/openai",
            Some(&t),
            json!({"allow_device_reveal": true}),
        ),
        200,
    );
    let masked = assert_v1_ok(&s.get("/v1/daemon/vault/active", Some(&key)), 200);
    assert_masked(&masked["sites"][0]["account"]);
    let shown = assert_v1_ok(
        &s.get("/v1/daemon/vault/active?reveal=true", Some(&key)),
        200,
    );
    assert_eq!(
        shown["sites"][0]["account"]["props"]["apiKey"],
        json!("sk-live-0123456789abcd")
    );
    let rs = reveals(&s, &t);
    assert_eq!(rs.len(), 1);
    assert_eq!(
        (rs[0]["actor"].clone(), rs[0]["device_id"].clone()),
        (json!("device"), uuid)
    );
    // Read-only, and only with a device key; a device key opens no user route.
    assert_v1_error(
        &s.get("/v1/daemon/vault/active", Some(&t)),
        401,
        "UNAUTHORIZED",
    );
    assert_v1_error(&s.get("/v1/sites", Some(&key)), 401, "UNAUTHORIZED");
    assert_v1_error(
        &s.get(&format!("/v1/accounts/{a}"), Some(&key)),
        401,
        "UNAUTHORIZED",
    );
    let r = s.post_json("/v1/sites/openai/accounts", Some(&key), json!({}));
    assert_v1_error(&r, 401, "UNAUTHORIZED");
    assert_v1_error(&s.get("/v1/daemon/vault/active", None), 401, "UNAUTHORIZED");
}

/// Making a secret prop plain shows its stored values to anyone who can read the account, so
/// where an account holds one it is a reveal: refused to an API key without `config:read`
/// (nothing changes), and recorded for each such account when allowed.
#[test]
fn making_a_secret_prop_plain_is_a_recorded_reveal() {
    let (s, t, a) = one_account();
    let (_, writer) = s.create_api_key(&t, &["config:write"]);
    let plain = json!({"fields": [
        {"name": "apiKey", "type": "string"},
        {"name": "token", "type": "string"},
        {"name": "quota", "type": "number", "default": 100},
        {"name": "expiresAt", "type": "datetime"}
    ]});
    let r = put(&s, "/v1/sites/openai/fields", Some(&writer), plain.clone());
    assert_v1_error(&r, 403, "INSUFFICIENT_SCOPE");
    let r = put(
        &s,
        "/v1/sites/openai/fields",
        Some(&writer),
        json!({"fields": []}),
    );
    assert_v1_error(&r, 403, "INSUFFICIENT_SCOPE");
    assert_masked(&assert_v1_ok(&s.get(&format!("/v1/accounts/{a}"), Some(&t)), 200)["account"]);
    assert!(reveals(&s, &t).is_empty());
    // A session may, and the change is recorded as a reveal of the account.
    assert_v1_ok(&put(&s, "/v1/sites/openai/fields", Some(&t), plain), 200);
    let shown = assert_v1_ok(&s.get(&format!("/v1/accounts/{a}"), Some(&t)), 200);
    assert_eq!(
        shown["account"]["props"]["apiKey"],
        json!("sk-live-0123456789abcd")
    );
    let rs = reveals(&s, &t);
    assert_eq!(rs.len(), 1, "{rs:?}");
    assert_eq!(rs[0]["account_id"], json!(a));
}
