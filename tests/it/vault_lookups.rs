//! Vault lookups and the active account (docs/vault.md "Lookups", "Active account"): by a
//! plain prop, by a secret prop through the blind index, by expiry, by site, with pagination;
//! the server-managed index of a field marked `indexed`; one active account per site; and the
//! cascades — deleting a site removes its accounts, fields, blind index and active mapping,
//! deleting the active account clears the mapping.

use crate::common::{TestServer, assert_v1_error, assert_v1_ok};
use crate::vault_util::*;
use serde_json::{Value, json};

fn ids(v: &Value) -> Vec<String> {
    v["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(id)
        .collect()
}

#[test]
fn lookups_by_plain_and_secret_props_expiry_and_site() {
    let s = TestServer::start();
    let (t, _, _) = s.register("look@example.com");
    openai(&s, &t);
    site(&s, &t, json!({"key": "mirror"}));
    let day = iso_in_days;
    let soon = account(
        &s,
        &t,
        "openai",
        json!({"username": "soon", "props": {"apiKey": "sk-soon", "token": "t-1", "expiresAt": day(3)}}),
    );
    let later = account(
        &s,
        &t,
        "openai",
        json!({"username": "later", "props": {"apiKey": "sk-later", "token": "t-2", "expiresAt": day(30)}}),
    );
    let gone = account(
        &s,
        &t,
        "mirror",
        json!({"username": "gone", "props": {"token": "t-1", "quota": 5, "expiresAt": "2020-01-01T00:00:00Z"}}),
    );
    let get = |q: &str| assert_v1_ok(&s.get(&format!("/v1/accounts?{q}"), Some(&t)), 200);
    assert_eq!(ids(&get("prop.token=t-2")), vec![id(&later)]);
    assert_eq!(
        ids(&get("prop.token=t-1")),
        vec![id(&gone), id(&soon)],
        "by site, username"
    );
    assert_eq!(ids(&get("prop.token=t-1&site=openai")), vec![id(&soon)]);
    assert_eq!(
        ids(&get("prop.apiKey=sk-later")),
        vec![id(&later)],
        "blind index"
    );
    assert_eq!(
        ids(&get("prop.apiKey=sk-later&site=openai")),
        vec![id(&later)]
    );
    assert_eq!(ids(&get("prop.apiKey=sk-nope")), Vec::<String>::new());
    assert_eq!(
        ids(&get("prop.apiKey=sk-soon&prop.token=t-2")),
        Vec::<String>::new(),
        "AND"
    );
    assert_eq!(ids(&get("prop.quota=5")), vec![id(&gone)], "a number prop");
    assert_eq!(
        ids(&get("expiring_within=7d")),
        vec![id(&gone), id(&soon)],
        "expired ones included, soonest first"
    );
    assert_eq!(ids(&get("expiring_within=7d&site=openai")), vec![id(&soon)]);
    assert_eq!(ids(&get("expiring_within=60d")).len(), 3);
    let page = get("limit=2");
    assert_eq!(page["count"], json!(2));
    let next = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let rest = get(&format!("limit=2&cursor={next}"));
    assert_eq!(rest["count"], json!(1));
    assert!(rest["next_cursor"].is_null());
    let bad = |q: &str| {
        assert_v1_error(
            &s.get(&format!("/v1/accounts?{q}"), Some(&t)),
            422,
            "VALIDATION_FAILED",
        )
    };
    bad("expiring_within=soon");
    bad("expiring_within=99999d");
    bad("prop.a-b=1");
    assert_v1_error(&s.get("/v1/accounts?site=nope", Some(&t)), 404, "NOT_FOUND");
}

#[test]
fn indexed_fields_get_an_index_that_goes_with_them() {
    let s = TestServer::start();
    let (t, _, _) = s.register("idx@example.com");
    let index_count = || {
        count(
            &s,
            "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name LIKE 'accounts_prop_region%'",
        )
    };
    site(
        &s,
        &t,
        json!({"key": "a", "fields": [{"name": "region", "type": "string", "indexed": true}]}),
    );
    site(
        &s,
        &t,
        json!({"key": "b", "fields": [{"name": "region", "type": "string", "indexed": true}]}),
    );
    assert_eq!(index_count(), 1);
    let eu = account(&s, &t, "a", json!({"props": {"region": "eu"}}));
    account(&s, &t, "b", json!({"props": {"region": "us"}}));
    let found = assert_v1_ok(&s.get("/v1/accounts?prop.region=eu", Some(&t)), 200);
    assert_eq!(ids(&found), vec![id(&eu)]);
    let plan: String = db(&s)
        .query_row(
            "EXPLAIN QUERY PLAN SELECT id FROM accounts WHERE user_id = 1 AND json_extract(extra, '$.region') = 'eu'",
            [],
            |r| r.get(3),
        )
        .expect("plan");
    assert!(plan.contains("accounts_prop_region"), "{plan}");
    assert_v1_ok(&s.delete("/v1/sites/a", Some(&t)), 200);
    assert_eq!(index_count(), 1, "site b still wants it");
    assert_v1_ok(
        &put(
            &s,
            "/v1/sites/b/fields",
            Some(&t),
            json!({"fields": [{"name": "region", "type": "string"}]}),
        ),
        200,
    );
    assert_eq!(
        index_count(),
        0,
        "dropped with the last field that wanted it"
    );
}

#[test]
fn another_users_many_indexed_props_never_refuse_mine() {
    let s = TestServer::start();
    let (hog, _, _) = s.register("hog@example.com");
    let (mine, _, _) = s.register("mine@example.com");
    let indexes = || {
        count(
            &s,
            "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name LIKE 'accounts_prop_%'",
        )
    };
    // 9 sites of 8 indexed props each: 72 props, past the server's 64 indexes.
    for site_no in 0..9 {
        let fields: Vec<Value> = (0..8)
            .map(|f| json!({"name": format!("p{site_no}_{f}"), "type": "string", "indexed": true}))
            .collect();
        site(
            &s,
            &hog,
            json!({"key": format!("s{site_no}"), "fields": fields}),
        );
    }
    assert_eq!(indexes(), 64);
    // Mine is accepted, and as the prop of two users it takes an index from the hog's.
    let mine_fields = json!([{"name": "region", "type": "string", "indexed": true}]);
    site(&s, &mine, json!({"key": "m", "fields": mine_fields}));
    site(&s, &hog, json!({"key": "h", "fields": mine_fields}));
    assert_eq!(indexes(), 64);
    let region = count(
        &s,
        "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name LIKE 'accounts_prop_region%'",
    );
    assert_eq!(region, 1);
    let eu = account(&s, &mine, "m", json!({"props": {"region": "eu"}}));
    account(&s, &mine, "m", json!({"props": {"region": "us"}}));
    let found = assert_v1_ok(&s.get("/v1/accounts?prop.region=eu", Some(&mine)), 200);
    assert_eq!(ids(&found), vec![id(&eu)]);
    // A prop left without an index is still found.
    let hog_acct = account(&s, &hog, "s8", json!({"props": {"p8_7": "x"}}));
    let found = assert_v1_ok(&s.get("/v1/accounts?prop.p8_7=x", Some(&hog)), 200);
    assert_eq!(ids(&found), vec![id(&hog_acct)]);
}

#[test]
fn one_active_account_per_site_and_the_cascades() {
    let s = TestServer::start();
    let (t, _, _) = s.register("active@example.com");
    openai(&s, &t);
    site(&s, &t, json!({"key": "other"}));
    let a = account(
        &s,
        &t,
        "openai",
        json!({"username": "a", "props": {"apiKey": "sk-a"}}),
    );
    let b = account(
        &s,
        &t,
        "openai",
        json!({"username": "b", "props": {"apiKey": "sk-b"}}),
    );
    let elsewhere = account(&s, &t, "other", json!({"username": "x"}));
    let active = || assert_v1_ok(&s.get("/v1/sites/openai/active", Some(&t)), 200);
    assert_eq!(active()["account"], Value::Null);
    let set = |acc: &Value| {
        put(
            &s,
            "/v1/sites/openai/active",
            Some(&t),
            json!({"account_id": id(acc)}),
        )
    };
    assert_eq!(assert_v1_ok(&set(&a), 200)["account"]["id"], json!(id(&a)));
    assert_eq!(
        assert_v1_ok(&set(&b), 200)["account"]["is_active"],
        json!(true)
    );
    assert_eq!(active()["account"]["id"], json!(id(&b)), "switched");
    let list = assert_v1_ok(&s.get("/v1/sites/openai/accounts", Some(&t)), 200);
    let flags: Vec<(Value, Value)> = list["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(|x| (x["username"].clone(), x["is_active"].clone()))
        .collect();
    assert_eq!(
        flags,
        vec![(json!("a"), json!(false)), (json!("b"), json!(true))]
    );
    let r = set(&elsewhere);
    assert_v1_error(&r, 422, "VALIDATION_FAILED");
    assert_v1_error(
        &put(
            &s,
            "/v1/sites/openai/active",
            Some(&t),
            json!({"account_id": "not-a-uuid"}),
        ),
        404,
        "NOT_FOUND",
    );
    // Deleting the active account clears the mapping.
    assert_v1_ok(
        &s.delete(&format!("/v1/accounts/{}", id(&b)), Some(&t)),
        200,
    );
    assert_eq!(active()["account"], Value::Null);
    let site = assert_v1_ok(&s.get("/v1/sites/openai", Some(&t)), 200);
    assert_eq!(site["site"]["active_account_id"], Value::Null);
    assert_eq!(site["site"]["account_count"], json!(1));
    assert_v1_error(
        &s.delete(&format!("/v1/accounts/{}", id(&b)), Some(&t)),
        404,
        "NOT_FOUND",
    );
    assert_v1_ok(&set(&a), 200);
    assert_v1_ok(&s.delete("/v1/sites/openai/active", Some(&t)), 200);
    assert_eq!(active()["account"], Value::Null);
    // Deleting a site removes its accounts, fields, blind index and active mapping.
    assert_v1_ok(&set(&a), 200);
    assert_v1_ok(&s.delete("/v1/sites/openai", Some(&t)), 200);
    assert_v1_error(
        &s.get(&format!("/v1/accounts/{}", id(&a)), Some(&t)),
        404,
        "NOT_FOUND",
    );
    assert_v1_error(
        &s.get("/v1/sites/openai/active", Some(&t)),
        404,
        "NOT_FOUND",
    );
    for table in [
        "accounts WHERE site_key = 'openai'",
        "site_fields",
        "active_accounts WHERE site_key = 'openai'",
        "account_secret_index",
    ] {
        assert_eq!(
            count(&s, &format!("SELECT count(*) FROM {table}")),
            0,
            "{table}"
        );
    }
    assert_eq!(
        assert_v1_ok(&s.get("/v1/accounts?prop.apiKey=sk-a", Some(&t)), 200)["count"],
        json!(0)
    );
    openai(&s, &t);
    let fresh = assert_v1_ok(&s.get("/v1/sites/openai", Some(&t)), 200);
    assert_eq!(
        fresh["site"]["account_count"],
        json!(0),
        "a new site with the key starts empty"
    );
    assert_eq!(
        assert_v1_ok(
            &s.get(&format!("/v1/accounts/{}", id(&elsewhere)), Some(&t)),
            200
        )["account"]["username"],
        json!("x"),
        "other sites untouched"
    );
    let dup = s.post_json("/v1/sites", Some(&t), json!({"key": "openai"}));
    assert_v1_error(&dup, 409, "CONFLICT");
}
