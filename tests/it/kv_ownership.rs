//! Ownership over every KV route (README "Apps and the KV store"): a token of device A never
//! reads, lists, writes or deletes device B's keys — whether B is another user's device or
//! another device of the same owner — and a person reaches only their own devices' tokens,
//! installs and keys, another user's ids answering like missing ones. The matrix is checked
//! against the route table, so a KV route added later without a row here fails the test.

use crate::common::TestServer;
use crate::kv_util::*;
use serde_json::json;
use std::collections::BTreeSet;

struct World {
    s: TestServer,
    alice: String,
    bob: String,
    app: AppReg,
    /// Alice's two devices and Bob's one, each with a read-write token.
    a1: (String, String),
    a2: (String, String),
    b: (String, String),
}

fn world() -> World {
    let s = TestServer::start_with(|cfg| cfg.default_plan = "pro".into());
    let (alice, _, _) = s.register("alice@example.com");
    let (bob, _, _) = s.register("bob@example.com");
    let app = app(&s, "Matrix");
    let mk = |who: &str, name: &str| {
        let d = device(&s, who, name);
        let t = authorize(&s, app.id, who, &d, false);
        (d, t)
    };
    let (a1, a2, b) = (mk(&alice, "a1"), mk(&alice, "a2"), mk(&bob, "b"));
    for (dev, tok) in [(&a1, "a1"), (&a2, "a2"), (&b, "b")] {
        assert_eq!(put_text(&s, &dev.1, "shared", tok).status, 201);
        assert_eq!(
            put_text(&s, &dev.1, &format!("only-{tok}"), tok).status,
            201
        );
    }
    World {
        s,
        alice,
        bob,
        app,
        a1,
        a2,
        b,
    }
}

/// Device `dev`'s keys and their values, read with its own token.
fn contents(w: &World, dev: &(String, String)) -> Vec<(String, String)> {
    let l = kv(&w.s, "GET", "/kv", &dev.1, &[], None);
    l.body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            let key = k["key"].as_str().expect("key").to_string();
            let v = get_value(&w.s, &dev.1, &key).text;
            (key, v)
        })
        .collect()
}

#[test]
fn a_token_reaches_only_its_own_devices_keys_on_every_route() {
    let w = world();
    let s = &w.s;
    let t = w.a1.1.as_str();
    let before_b = contents(&w, &w.b);
    let before_a2 = contents(&w, &w.a2);
    let mut covered: BTreeSet<(String, String)> = BTreeSet::new();
    let mut cover = |m: &str, p: &str| {
        covered.insert((m.to_string(), p.to_string()));
    };

    // Reads see A1 only.
    cover("get", "/kv");
    let l = kv(s, "GET", "/kv", t, &[], None);
    let names: Vec<&str> = l.body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["key"].as_str())
        .collect();
    assert_eq!(names, ["only-a1", "shared"], "{}", l.text);
    cover("get", "/kv/_keys");
    let k = kv(s, "GET", "/kv/_keys?prefix=only-", t, &[], None);
    assert_eq!(k.body["keys"], json!(["only-a1"]), "{}", k.text);
    cover("get", "/kv/{key}");
    assert_eq!(get_value(s, t, "shared").text, "a1");
    for other in ["only-b", "only-a2"] {
        assert_kv_error(&get_value(s, t, other), 404, "NOT_FOUND");
        cover("get", "/kv/{key}/metadata");
        let m = kv(s, "GET", &format!("/kv/{other}/metadata"), t, &[], None);
        assert_kv_error(&m, 404, "NOT_FOUND");
        // Writes and deletes land in A1, never in B or A2.
        cover("delete", "/kv/{key}");
        assert_kv_error(
            &kv(s, "DELETE", &format!("/kv/{other}"), t, &[], None),
            404,
            "NOT_FOUND",
        );
        let cas = kv(
            s,
            "DELETE",
            &format!("/kv/{other}"),
            t,
            &[("If-Match", "*")],
            None,
        );
        assert_kv_error(&cas, 412, "PRECONDITION_FAILED");
    }
    cover("post", "/kv/{key}");
    let replaced = put_text(s, t, "shared", "a1 again");
    assert_eq!(
        replaced.status, 200,
        "A1's own key existed: {}",
        replaced.text
    );
    cover("post", "/kv/_batchimport");
    let bi = kv(
        s,
        "POST",
        "/kv/_batchimport",
        t,
        &[],
        Some((
            "application/json",
            br#"{"shared":"batch","only-b":"batch"}"#.to_vec(),
        )),
    );
    assert_eq!(bi.body["imported"], json!(2), "{}", bi.text);
    assert_eq!(
        get_value(s, t, "only-b").text,
        "\"batch\"",
        "a new key of A1's"
    );
    assert_eq!(contents(&w, &w.b), before_b, "Bob's device is untouched");
    assert_eq!(
        contents(&w, &w.a2),
        before_a2,
        "Alice's other device is untouched"
    );

    // Tokens and installs: only one's own devices'.
    let (b_dev, a2_dev) = (&w.b.0, &w.a2.0);
    cover("get", "/apps/devices/{deviceUuid}/tokens");
    let theirs = s.get(&format!("/apps/devices/{b_dev}/tokens"), Some(&w.alice));
    assert_kv_error(&theirs, 404, "NOT_FOUND");
    let own = s.get(&format!("/apps/devices/{a2_dev}/tokens"), Some(&w.alice));
    assert_eq!(own.body["count"], json!(1), "{}", own.text);
    let bobs = s.get(&format!("/apps/devices/{b_dev}/tokens"), Some(&w.bob));
    let b_install = bobs.body["tokens"][0]["id"]
        .as_str()
        .expect("install")
        .to_string();
    cover("get", "/apps/{id}/installations");
    let inst = s.get(&format!("/apps/{}/installations", w.app.id), Some(&w.alice));
    assert_eq!(inst.body["count"], json!(2), "{}", inst.text);
    assert!(!inst.text.contains(b_dev.as_str()) && !inst.text.contains(&b_install));
    cover("delete", "/apps/tokens/{token}");
    let rv = s.delete(&format!("/apps/tokens/{b_install}"), Some(&w.alice));
    assert_kv_error(&rv, 404, "NOT_FOUND");
    assert_eq!(
        get_value(s, &w.b.1, "shared").status,
        200,
        "Bob's token still works"
    );
    cover("post", "/apps/{id}/authorize");
    let az = authorize_with(
        s,
        w.app.id,
        Some(&w.alice),
        json!({"deviceUuid": b_dev, "readOnly": false}),
    );
    assert_kv_error(&az, 404, "NOT_FOUND");
    // The catalog is public: nothing in it belongs to anyone.
    cover("get", "/apps");
    cover("get", "/apps/{id}");
    let cat = s.get("/apps", Some(&w.alice));
    assert_eq!(cat.status, 200);
    assert_eq!(s.get(&format!("/apps/{}", w.app.id), None).status, 200);

    // The owner's /v1 view of another user's device: 404, nothing deleted.
    cover("get", "/v1/devices/{id}/kv");
    let v = s.get(&format!("/v1/devices/{b_dev}/kv"), Some(&w.alice));
    assert_eq!(
        (v.status, v.body["error"]["code"].clone()),
        (404, json!("NOT_FOUND")),
        "{}",
        v.text
    );
    cover("delete", "/v1/devices/{id}/kv/{key}");
    let d = s.delete(&format!("/v1/devices/{b_dev}/kv/only-b"), Some(&w.alice));
    assert_eq!(d.status, 404, "{}", d.text);
    assert_eq!(contents(&w, &w.b), before_b);
    let own = s.get(&format!("/v1/devices/{a2_dev}/kv"), Some(&w.alice));
    assert_eq!(own.body["data"]["count"], json!(2), "{}", own.text);
    let gone = s.delete(&format!("/v1/devices/{a2_dev}/kv/only-a2"), Some(&w.alice));
    assert_eq!(gone.status, 200, "{}", gone.text);
    assert_kv_error(&get_value(s, &w.a2.1, "only-a2"), 404, "NOT_FOUND");

    // Every KV route of the table is a row of this matrix.
    let table: BTreeSet<(String, String)> = ccjk_cloud::http::routes::table()
        .routes()
        .iter()
        .filter(|r| r.family == ccjk_cloud::http::family::Family::Kv || r.path.contains("/kv"))
        .map(|r| (r.method.lower().to_string(), r.path.to_string()))
        .collect();
    assert_eq!(
        covered, table,
        "KV routes without an ownership row (or rows without a route)"
    );
}

#[test]
fn deleting_a_device_takes_its_keys_and_tokens_along() {
    let w = world();
    let s = &w.s;
    let r = s.delete(&format!("/v1/devices/{}", w.a1.0), Some(&w.alice));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_kv_error(&get_value(s, &w.a1.1, "shared"), 401, "UNAUTHORIZED");
    let left: i64 = sql(s, "SELECT count(*) FROM kv_entries");
    assert_eq!(left, 4, "A2's and B's keys stay, A1's went");
    let usage: i64 = sql(s, "SELECT count(*) FROM kv_usage");
    assert_eq!(usage, 2);
    assert_eq!(get_value(s, &w.b.1, "shared").text, "b");
}
