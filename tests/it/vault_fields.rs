//! Field schemas of vault sites (docs/vault.md "Fields"): every type, required, default,
//! regex and choices, checked on every write with a 422 that names each problem; unknown props
//! kept by a site without fields and refused by one with fields; and `PUT …/fields`, which
//! refuses (409, listing them) to leave stored accounts invalid unless `force=true`.

use crate::common::{TestServer, assert_v1_error, assert_v1_ok};
use crate::vault_util::*;
use serde_json::{Value, json};

fn typed_site(s: &TestServer, t: &str) {
    site(
        s,
        t,
        json!({"key": "typed", "fields": [
            {"name": "s", "type": "string"},
            {"name": "n", "type": "number"},
            {"name": "b", "type": "boolean"},
            {"name": "d", "type": "datetime"},
            {"name": "j", "type": "json"}
        ]}),
    );
}

fn refused(r: &crate::common::Resp) -> Value {
    assert_v1_error(r, 422, "VALIDATION_FAILED");
    r.body["error"]["details"].clone()
}

#[test]
fn every_type_is_checked_and_normalized() {
    let s = TestServer::start();
    let (t, _, _) = s.register("types@example.com");
    typed_site(&s, &t);
    let ok = account(
        &s,
        &t,
        "typed",
        json!({"props": {"s": "text", "n": 2.5, "b": false, "d": "2026-01-20T18:00:00+08:00",
                          "j": {"nested": [1, 2, {"x": null}]}}}),
    );
    assert_eq!(ok["props"]["s"], json!("text"));
    assert_eq!(ok["props"]["n"], json!(2.5));
    assert_eq!(ok["props"]["b"], json!(false));
    assert_eq!(
        ok["props"]["d"],
        json!("2026-01-20T10:00:00.000Z"),
        "stored in UTC"
    );
    assert_eq!(ok["props"]["j"], json!({"nested": [1, 2, {"x": null}]}));
    let path = "/v1/sites/typed/accounts";
    let bad = s.post_json(
        path,
        Some(&t),
        json!({"props": {"s": 1, "n": "2", "b": "yes", "d": "tomorrow", "j": {}}}),
    );
    let d = refused(&bad);
    assert_eq!(d["props.s"], json!("must be a string"));
    assert_eq!(d["props.n"], json!("must be a number"));
    assert_eq!(d["props.b"], json!("must be true or false"));
    assert!(
        d["props.d"].as_str().expect("d").contains("RFC 3339"),
        "{d}"
    );
    assert!(d.get("props.j").is_none(), "any JSON is a json value: {d}");
    let d = refused(&s.post_json(
        path,
        Some(&t),
        json!({"props": {"d": "2026-01-20T10:00:00"}}),
    ));
    assert!(d["props.d"].is_string(), "a date-time needs a zone: {d}");
    let listed = assert_v1_ok(&s.get(path, Some(&t)), 200);
    assert_eq!(listed["count"], json!(1), "refused writes stored nothing");
}

#[test]
fn required_default_regex_and_choices() {
    let s = TestServer::start();
    let (t, _, _) = s.register("rules@example.com");
    site(
        &s,
        &t,
        json!({"key": "relay", "fields": [
            {"name": "apiKey", "type": "string", "required": true, "regex": "^sk-[a-z0-9]+$"},
            {"name": "plan", "type": "string", "choices": ["free", "pro"], "default": "free"},
            {"name": "quota", "type": "number", "choices": [10, 100], "required": true, "default": 10},
            {"name": "note", "type": "string"}
        ]}),
    );
    let a = account(&s, &t, "relay", json!({"props": {"apiKey": "sk-abc123"}}));
    assert_eq!(a["props"]["plan"], json!("free"), "default filled in");
    assert_eq!(
        a["props"]["quota"],
        json!(10),
        "a required field with a default"
    );
    assert!(a["props"].get("note").is_none(), "no default, not required");
    let a = account(
        &s,
        &t,
        "relay",
        json!({"props": {"apiKey": "sk-x", "plan": "pro", "quota": 100.0}}),
    );
    assert_eq!(a["props"]["plan"], json!("pro"));
    let path = "/v1/sites/relay/accounts";
    let d = refused(&s.post_json(path, Some(&t), json!({"props": {"plan": "gold"}})));
    assert_eq!(d["props.apiKey"], json!("is required"));
    assert!(
        d["props.plan"]
            .as_str()
            .expect("plan")
            .contains("must be one of"),
        "{d}"
    );
    let d = refused(&s.post_json(
        path,
        Some(&t),
        json!({"props": {"apiKey": "pk-nope", "quota": 50}}),
    ));
    assert!(
        d["props.apiKey"]
            .as_str()
            .expect("apiKey")
            .starts_with("does not match"),
        "{d}"
    );
    assert!(d["props.quota"].is_string(), "{d}");
    // `null` means absent: the default comes back, a required prop without one is missing.
    let d = refused(&s.post_json(path, Some(&t), json!({"props": {"apiKey": null}})));
    assert_eq!(d["props.apiKey"], json!("is required"));
}

#[test]
fn field_definitions_are_validated() {
    let s = TestServer::start();
    let (t, _, _) = s.register("defs@example.com");
    let bad = json!({"key": "bad", "fields": [
        {"name": "1st", "type": "string"},
        {"name": "n", "type": "number", "regex": "^1"},
        {"name": "r", "type": "string", "regex": "("},
        {"name": "c", "type": "boolean", "choices": [true]},
        {"name": "k", "type": "string", "secret": true, "default": "sk-plain", "choices": ["a"]},
        {"name": "d", "type": "string", "default": 5},
        {"name": "expiresAt", "type": "string"},
        {"name": "dup", "type": "string"},
        {"name": "dup", "type": "number"}
    ]});
    let d = refused(&s.post_json("/v1/sites", Some(&t), bad));
    for key in [
        "fields[0].name",
        "fields.n.regex",
        "fields.r.regex",
        "fields.c.choices",
        "fields.k.default",
        "fields.k.choices",
        "fields.d.default",
        "fields.expiresAt.type",
        "fields.dup.name",
    ] {
        assert!(d[key].is_string(), "{key} missing from {d}");
    }
    assert_v1_error(&s.get("/v1/sites/bad", Some(&t)), 404, "NOT_FOUND");
    let r = s.post_json(
        "/v1/sites",
        Some(&t),
        json!({"key": "x", "fields": [{"name": "a", "type": "uuid"}]}),
    );
    assert_v1_error(&r, 422, "VALIDATION_FAILED");
    let typo = json!({"key": "typo", "fields": [{"name": "a", "type": "string", "requird": true}]});
    let r = s.post_json("/v1/sites", Some(&t), typo);
    assert_v1_error(&r, 422, "VALIDATION_FAILED");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("requird")
    );
    let r = s.post_json("/v1/sites", Some(&t), json!({"key": "Bad Key"}));
    assert!(refused(&r)["key"].is_string());
}

#[test]
fn unknown_props_are_kept_without_fields_and_refused_with_them() {
    let s = TestServer::start();
    let (t, _, _) = s.register("free@example.com");
    site(&s, &t, json!({"key": "free"}));
    let a = account(
        &s,
        &t,
        "free",
        json!({"props": {"anything": [1, 2], "token": "abc", "expiresAt": "2027-01-01T00:00:00+01:00"}}),
    );
    assert_eq!(a["props"]["anything"], json!([1, 2]));
    assert_eq!(
        a["props"]["expiresAt"],
        json!("2026-12-31T23:00:00.000Z"),
        "expiresAt is always a date-time"
    );
    let path = "/v1/sites/free/accounts";
    let d = refused(&s.post_json(path, Some(&t), json!({"props": {"expiresAt": "soon"}})));
    assert!(d["props.expiresAt"].is_string());
    let d = refused(&s.post_json(path, Some(&t), json!({"props": {"a-b": 1, "ok": 1}})));
    assert!(d["props.a-b"].is_string(), "{d}");
    openai(&s, &t);
    let d = refused(&s.post_json(
        "/v1/sites/openai/accounts",
        Some(&t),
        json!({"props": {"token": "t", "anything": 1}}),
    ));
    assert_eq!(d["props.anything"], json!("is not a field of this site"));
    assert!(d.get("props.token").is_none());
}

#[test]
fn changing_fields_reports_accounts_that_would_break_and_needs_force() {
    let s = TestServer::start();
    let (t, _, _) = s.register("change@example.com");
    site(&s, &t, json!({"key": "svc"}));
    let a = account(
        &s,
        &t,
        "svc",
        json!({"username": "a", "props": {"token": "tok-a", "region": "eu"}}),
    );
    let b = account(
        &s,
        &t,
        "svc",
        json!({"username": "b", "props": {"token": "tok-b"}}),
    );
    let fields = json!({"fields": [
        {"name": "token", "type": "string", "required": true},
        {"name": "tier", "type": "string", "required": true, "default": "free"}
    ]});
    let r = put(&s, "/v1/sites/svc/fields", Some(&t), fields.clone());
    assert_v1_error(&r, 409, "CONFLICT");
    let det = &r.body["error"]["details"];
    assert_eq!(det["count"], json!(1));
    assert_eq!(det["invalid_accounts"][0]["id"], json!(id(&a)));
    assert_eq!(
        det["invalid_accounts"][0]["problems"]["props.region"],
        json!("is not a field of this site")
    );
    let f = assert_v1_ok(&s.get("/v1/sites/svc/fields", Some(&t)), 200);
    assert_eq!(f["fields"], json!([]), "nothing changed");
    let r = put(&s, "/v1/sites/svc/fields?force=true", Some(&t), fields);
    let d = assert_v1_ok(&r, 200);
    assert_eq!(d["invalid_accounts"][0]["id"], json!(id(&a)));
    assert_eq!(d["fields"].as_array().map(Vec::len), Some(2));
    // Forced: the invalid account is kept as it was; a new write must fix it.
    let kept = assert_v1_ok(&s.get(&format!("/v1/accounts/{}", id(&a)), Some(&t)), 200);
    assert_eq!(kept["account"]["props"]["region"], json!("eu"));
    let r = s.patch_json(
        &format!("/v1/accounts/{}", id(&a)),
        Some(&t),
        json!({"username": "a2"}),
    );
    assert_eq!(
        refused(&r)["props.region"],
        json!("is not a field of this site")
    );
    let fixed = s.patch_json(
        &format!("/v1/accounts/{}", id(&a)),
        Some(&t),
        json!({"props": {"region": null}}),
    );
    let fixed = assert_v1_ok(&fixed, 200);
    assert_eq!(
        fixed["account"]["props"],
        json!({"token": "tok-a", "tier": "free"})
    );
    // A valid change goes through at once; making `token` secret seals the stored values.
    let r = put(
        &s,
        "/v1/sites/svc/fields",
        Some(&t),
        json!({"fields": [{"name": "token", "type": "string", "secret": true}, {"name": "tier", "type": "string"}]}),
    );
    assert_v1_ok(&r, 200);
    let got = assert_v1_ok(&s.get(&format!("/v1/accounts/{}", id(&b)), Some(&t)), 200);
    assert_eq!(got["account"]["secret_props"], json!(["token"]));
    assert_eq!(got["account"]["props"]["token"], json!("••••"));
    let plain_tokens = count(
        &s,
        "SELECT count(*) FROM accounts WHERE json_extract(extra, '$.token') IS NOT NULL",
    );
    assert_eq!(plain_tokens, 0, "moved to sealed storage");
    let found = assert_v1_ok(&s.get("/v1/accounts?prop.token=tok-b", Some(&t)), 200);
    assert_eq!(
        found["accounts"][0]["id"],
        json!(id(&b)),
        "through the blind index"
    );
}
