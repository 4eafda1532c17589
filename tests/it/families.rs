//! A path no table knows answers 404 in the envelope of the family its prefix names
//! (docs/families.md), not in whatever family a catch-all would pick.

use crate::common::*;
use serde_json::json;

#[test]
fn unknown_paths_answer_in_their_prefix_family() {
    let s = TestServer::start();
    assert_v1_error(&s.get("/v1/nope", None), 404, "NOT_FOUND");
    assert_lite_error(&s.get("/nope", None), 404, "NOT_FOUND");
    assert_sessions_error(&s.get("/api/nope", None), 404);
    let c = s.get("/api/control/nope", None);
    assert_eq!(
        (c.status, &c.body["success"]),
        (404, &json!(false)),
        "{}",
        c.text
    );
    assert!(
        c.body["data"].is_null() && c.body["error"].is_string(),
        "{}",
        c.text
    );
    for path in ["/apps/nope/really", "/kv/a/b/c/d"] {
        let r = s.get(path, None);
        assert_eq!(r.status, 404, "{path}: {}", r.text);
        assert_eq!(
            keys(&r.body),
            vec!["code".to_string(), "error".to_string()],
            "{path}: KV's flat error: {}",
            r.text
        );
        assert_eq!(r.body["code"], json!("NOT_FOUND"));
    }
}
