//! Ownership in the Vault (README "Vault"; the rule of every route): another user's site key or
//! account id answers 404 exactly like a missing one on every Vault route — in the path, the
//! query or the body — and changes nothing. The matrix is read from the route table, so a new
//! Vault route without a case here fails the test. Site keys are per user: two users may both
//! have `shared`, and neither sees the other's.

use crate::common::{Resp, TestServer, assert_v1_error, assert_v1_ok};
use crate::vault_util::*;
use ccjk_cloud::http::route::Method;
use serde_json::{Value, json};

struct World {
    s: TestServer,
    alice: String,
    bob: String,
    /// Alice's account on her site `alice-only`.
    acc: String,
    /// Alice's account on her site `shared` (Bob has a `shared` too).
    shared_acc: String,
}

fn world() -> World {
    // Bob tries every vault route, about 160 requests in a few seconds: over the user limit of
    // 100 a minute, which has its own tests (ops_rate_limits).
    let s = TestServer::start_with(|c| c.rate_limit_user = 0);
    let (alice, _, _) = s.register("alice@example.com");
    let (bob, _, _) = s.register("bob@example.com");
    site(
        &s,
        &alice,
        json!({"key": "alice-only", "name": "Alice's", "fields": [
            {"name": "apiKey", "type": "string", "secret": true},
            {"name": "token", "type": "string"}
        ]}),
    );
    let acc = id(&account(
        &s,
        &alice,
        "alice-only",
        json!({"username": "alice", "password": "pw-alice-000000", "props": {"apiKey": "sk-alice-secret", "token": "alice-token"}}),
    ));
    assert_v1_ok(
        &put(
            &s,
            "/v1/sites/alice-only/active",
            Some(&alice),
            json!({"account_id": acc}),
        ),
        200,
    );
    assert_v1_ok(
        &s.get(&format!("/v1/accounts/{acc}?reveal=true"), Some(&alice)),
        200,
    );
    site(&s, &alice, json!({"key": "shared"}));
    let shared_acc = id(&account(
        &s,
        &alice,
        "shared",
        json!({"username": "alice-shared"}),
    ));
    site(&s, &bob, json!({"key": "shared"}));
    account(&s, &bob, "shared", json!({"username": "bob-shared"}));
    World {
        s,
        alice,
        bob,
        acc,
        shared_acc,
    }
}

/// The request a route gets in the matrix: (path with `key` and `id` filled in, body).
fn request(m: Method, pattern: &str, key: &str, id: &str, acc: &str) -> (String, Option<Value>) {
    let path = pattern.replace("{key}", key).replace("{id}", id);
    let body = match (m, pattern) {
        (Method::Get | Method::Delete, _) => None,
        (Method::Patch, "/v1/sites/{key}") => Some(json!({"name": "pwned"})),
        (Method::Put, "/v1/sites/{key}/fields") => Some(json!({"fields": []})),
        (Method::Post, "/v1/sites/{key}/accounts") => Some(json!({"username": "pwned"})),
        (Method::Put, "/v1/sites/{key}/active") => Some(json!({"account_id": acc})),
        (Method::Patch, "/v1/accounts/{id}") => Some(json!({"username": "pwned"})),
        _ => panic!("no ownership case for {m:?} {pattern}: add one"),
    };
    (path, body)
}

fn call(s: &TestServer, m: Method, path: &str, token: &str, body: Option<&Value>) -> Resp {
    let method = m.lower().to_uppercase();
    s.json(&method, path, Some(token), body)
}

#[test]
fn another_users_site_keys_and_account_ids_are_404_on_every_vault_route() {
    let w = world();
    let s = &w.s;
    let (_, bob_key) = s.create_api_key(&w.bob, &["config:read", "config:write"]);
    // The free plan's API keys get 10 requests a minute; this matrix needs about 80.
    let db = rusqlite::Connection::open(s.db_path()).expect("open the database");
    crate::ops_util::put_on_plan(&db, "bob@example.com", "matrix", None, None);
    let table = ccjk_cloud::http::routes::table();
    let vault: Vec<_> = table
        .routes()
        .iter()
        .filter(|r| {
            ["/v1/sites/", "/v1/accounts/"]
                .iter()
                .any(|p| r.path.starts_with(p))
        })
        .collect();
    assert!(vault.len() >= 13, "the vault routes with a key or id");
    let missing_acc = "00000000-0000-4000-8000-000000000000";
    for r in vault {
        for token in [&w.bob, &bob_key] {
            for suffix in ["", "?reveal=true", "?force=true"] {
                let (path, body) = request(r.method, r.path, "alice-only", &w.acc, &w.acc);
                let got = call(
                    s,
                    r.method,
                    &format!("{path}{suffix}"),
                    token,
                    body.as_ref(),
                );
                assert_v1_error(&got, 404, "NOT_FOUND");
                let (path, body) = request(r.method, r.path, "no-such-site", missing_acc, &w.acc);
                let missing = call(
                    s,
                    r.method,
                    &format!("{path}{suffix}"),
                    token,
                    body.as_ref(),
                );
                assert_eq!(
                    got.body["error"], missing.body["error"],
                    "{:?} {}: answered unlike a missing id",
                    r.method, r.path
                );
            }
        }
    }
    // Ids in the query and the body.
    let bob = Some(w.bob.as_str());
    assert_v1_error(
        &s.get("/v1/accounts?site=alice-only", bob),
        404,
        "NOT_FOUND",
    );
    assert_v1_error(
        &s.get(&format!("/v1/vault/reveals?account={}", w.acc), bob),
        404,
        "NOT_FOUND",
    );
    let into_alices = json!({"account_id": w.shared_acc});
    assert_v1_error(
        &put(s, "/v1/sites/shared/active", bob, into_alices),
        404,
        "NOT_FOUND",
    );
    for q in [
        "prop.token=alice-token",
        "prop.apiKey=sk-alice-secret",
        "expiring_within=3650d",
    ] {
        let found = assert_v1_ok(&s.get(&format!("/v1/accounts?{q}"), bob), 200);
        assert_eq!(found["count"], json!(0), "{q}");
    }
    // Same key, separate sites.
    let mine = assert_v1_ok(&s.get("/v1/sites/shared/accounts", bob), 200);
    assert_eq!(mine["count"], json!(1));
    assert_eq!(mine["accounts"][0]["username"], json!("bob-shared"));
    let sites = assert_v1_ok(&s.get("/v1/sites", bob), 200);
    assert_eq!(sites["count"], json!(1));
    let dev = assert_v1_ok(&s.post_json("/v1/devices", bob, json!({"name": "b"})), 201);
    let dkey = dev["device_key"].as_str().expect("key");
    let d = assert_v1_ok(
        &s.get("/v1/daemon/vault/active?reveal=true", Some(dkey)),
        200,
    );
    assert_eq!(
        d["count"],
        json!(0),
        "Bob's daemon sees none of Alice's accounts"
    );
    assert!(assert_v1_ok(&s.get("/v1/vault/reveals", bob), 200)["reveals"] == json!([]));

    // Alice's vault is as she left it.
    let a = Some(w.alice.as_str());
    let site = assert_v1_ok(&s.get("/v1/sites/alice-only", a), 200);
    assert_eq!(site["site"]["name"], json!("Alice's"));
    assert_eq!(site["site"]["active_account_id"], json!(w.acc));
    assert_eq!(site["site"]["account_count"], json!(1));
    assert_eq!(site["fields"].as_array().map(Vec::len), Some(2));
    let acc = assert_v1_ok(
        &s.get(&format!("/v1/accounts/{}?reveal=true", w.acc), a),
        200,
    );
    assert_eq!(acc["account"]["username"], json!("alice"));
    assert_eq!(acc["account"]["props"]["apiKey"], json!("sk-alice-secret"));
    let shared = assert_v1_ok(&s.get("/v1/sites/shared/active", a), 200);
    assert_eq!(shared["account"], Value::Null);
    assert_eq!(
        assert_v1_ok(&s.get("/v1/sites/shared/accounts", a), 200)["count"],
        json!(1)
    );
}
