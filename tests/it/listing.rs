//! Every list pages the same way (docs/limits.md "Pagination"): `limit` and `offset`, or the
//! `cursor` a page hands out as `next_cursor`; a value that is not a non-negative number is 400
//! rather than a silent default.

use crate::common::*;
use crate::queue_util::*;
use serde_json::{Value, json};

/// Walks a `/v1` list one item per page and returns every item's id.
fn walk(s: &TestServer, token: &str, path: &str, field: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let q = match &cursor {
            Some(c) => format!("{path}?limit=1&cursor={c}"),
            None => format!("{path}?limit=1"),
        };
        let d = assert_v1_ok(&s.get(&q, Some(token)), 200);
        let items = d[field].as_array().expect("items").clone();
        assert!(items.len() <= 1, "{d}");
        assert_eq!(d["limit"], json!(1), "{d}");
        out.extend(items.iter().map(|i| i["id"].clone()));
        match d["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
    panic!("{path} never ended");
}

#[test]
fn devices_sessions_and_api_keys_page_with_cursors() {
    let s = TestServer::start();
    let (token, _, _) = s.register("lists@example.com");
    for n in ["a", "b", "c"] {
        new_device(&s, &token, n);
        s.create_api_key(&token, &["task:read"]);
        assert_v1_ok(
            &s.post_json("/v1/sessions", Some(&token), json!({"name": n})),
            201,
        );
    }
    let devices = walk(&s, &token, "/v1/devices", "devices");
    assert_eq!(devices.len(), 3);
    let keys = walk(&s, &token, "/v1/api-keys", "api_keys");
    assert_eq!(keys.len(), 3);
    let sessions = walk(&s, &token, "/v1/sessions", "sessions");
    assert_eq!(sessions.len(), 4, "the login session and three more");
    let mut unique = sessions.clone();
    unique.sort_by_key(|v| v.as_i64());
    unique.dedup();
    assert_eq!(unique.len(), 4, "no session listed twice");
}

#[test]
fn bad_paging_values_are_400_and_large_limits_are_clamped() {
    let s = TestServer::start();
    let (token, _, _) = s.register("paging@example.com");
    for q in [
        "limit=abc",
        "limit=-1",
        "offset=-5",
        "offset=99999999999999999999999",
        "cursor=x",
    ] {
        for path in ["/v1/tasks", "/v1/devices", "/v1/sessions", "/v1/api-keys"] {
            assert_v1_error(
                &s.get(&format!("{path}?{q}"), Some(&token)),
                400,
                "BAD_REQUEST",
            );
        }
    }
    let d = assert_v1_ok(&s.get("/v1/tasks?limit=5000", Some(&token)), 200);
    assert_eq!(d["limit"], json!(200));
    let key = s.lite_auth("paging@example.com", PASSWORD);
    let r = lite_call(&s, "GET", "/tasks?limit=abc", &key, None);
    assert_lite_error(&r, 400, "BAD_REQUEST");
    let r = s.get("/v1/daemon/tasks/pending?wait=soon", Some(&key));
    assert_v1_error(&r, 400, "BAD_REQUEST");
}
