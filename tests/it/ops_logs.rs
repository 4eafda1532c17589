//! Daemon log uploads (README "Backups, logs and statistics"): a 9 MB gzip log uploads, lists
//! and downloads byte for byte with the right headers; an 11 MB upload is 413 with nothing
//! stored and the server fine; truncated or incomplete multipart bodies are 400, a wrong content
//! type 415, bad metadata 422; ownership holds for lists and downloads; an upload that would
//! pass the storage quota is refused with `used` unchanged; retention deletes old logs and old
//! task output in a janitor pass and keeps newer ones.

use crate::common::{Resp, TestServer, assert_v1_error, assert_v1_ok};
use crate::ops_util::{
    META_GZ, db, get_bytes, gzip_stored, multipart, multipart_type, noise, put_on_plan, stamp_ago,
};
use crate::queue_util::{eventually, new_device, pending, queue_cmd, report};
use serde_json::json;
use std::time::Duration;

const META_TEXT: &[u8] = br#"{"type":"task","date":"2026-01-21","compressed":false}"#;

fn upload(s: &TestServer, key: &str, body: Vec<u8>, content_type: &str) -> Resp {
    let auth = format!("Bearer {key}");
    s.call(
        "POST",
        "/v1/daemon/logs",
        &[("Authorization", &auth)],
        Some((content_type, body)),
    )
}

fn upload_parts(s: &TestServer, key: &str, meta: &[u8], file: &[u8]) -> Resp {
    let body = multipart(
        &[
            ("metadata", None, meta),
            ("log_file", Some("daemon.log.gz"), file),
        ],
        false,
    );
    upload(s, key, body, &multipart_type())
}

fn log_count(s: &TestServer, token: &str, device: &str) -> usize {
    let r = s.get(&format!("/v1/devices/{device}/logs"), Some(token));
    assert_v1_ok(&r, 200)["logs"].as_array().map_or(0, Vec::len)
}

#[test]
fn a_nine_megabyte_gzip_log_uploads_lists_and_downloads_identically() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "laptop");
    let gz = gzip_stored(&noise(9_000_000, 7));
    assert!(gz.len() > 9_000_000 && gz.starts_with(&[0x1f, 0x8b]));
    let r = upload_parts(&s, &key, META_GZ, &gz);
    let log = assert_v1_ok(&r, 201)["log"].clone();
    assert_eq!(log["size_bytes"], json!(gz.len()));
    assert_eq!(
        (
            log["type"].clone(),
            log["date"].clone(),
            log["compressed"].clone()
        ),
        (json!("daemon"), json!("2026-01-20"), json!(true))
    );
    let id = log["id"].as_i64().expect("id");

    let list = assert_v1_ok(
        &s.get(&format!("/v1/devices/{dev}/logs"), Some(&token)),
        200,
    );
    assert_eq!(list["logs"][0]["id"], json!(id));
    assert_eq!(list["logs"][0]["content_type"], json!("application/gzip"));

    let d = get_bytes(&s, &format!("/v1/logs/{id}"), &token);
    assert_eq!(d.status, 200);
    assert!(d.body == gz, "the download differs from the upload");
    assert_eq!(d.header("content-type"), Some("application/gzip"));
    assert_eq!(
        d.header("content-length"),
        Some(gz.len().to_string().as_str())
    );
    assert_eq!(
        d.header("content-disposition"),
        Some("attachment; filename=\"daemon-2026-01-20.log.gz\"")
    );
    assert_eq!(
        d.header("content-encoding"),
        None,
        "gzip is the file, not the transfer"
    );

    // Plain text is served as text.
    let r = upload_parts(&s, &key, META_TEXT, b"line 1\nline 2\n");
    let text_id = assert_v1_ok(&r, 201)["log"]["id"].as_i64().expect("id");
    let d = get_bytes(&s, &format!("/v1/logs/{text_id}"), &token);
    assert_eq!(d.body, b"line 1\nline 2\n");
    assert_eq!(d.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(d.header("x-content-type-options"), Some("nosniff"));

    // Ownership: another user's device and log are 404; a device key cannot download.
    let (other, _, _) = s.register("other@example.com");
    assert_v1_error(
        &s.get(&format!("/v1/devices/{dev}/logs"), Some(&other)),
        404,
        "NOT_FOUND",
    );
    assert_v1_error(
        &s.get(&format!("/v1/logs/{id}"), Some(&other)),
        404,
        "NOT_FOUND",
    );
    assert_v1_error(
        &s.get(&format!("/v1/logs/{id}"), Some(&key)),
        401,
        "UNAUTHORIZED",
    );
    assert_v1_error(&s.get("/v1/logs/nope", Some(&token)), 404, "NOT_FOUND");
    // A person's token cannot upload as a daemon.
    let r = upload_parts(&s, &token, META_TEXT, b"x");
    assert_v1_error(&r, 401, "UNAUTHORIZED");
}

#[test]
fn an_eleven_megabyte_upload_is_413_and_stores_nothing() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "laptop");
    let big = noise(11_000_000, 3);
    let r = upload_parts(&s, &key, META_TEXT, &big);
    assert_v1_error(&r, 413, "PAYLOAD_TOO_LARGE");
    assert_eq!(log_count(&s, &token, &dev), 0);
    s.assert_healthy();
    // Under the body cap but over CCJK_MAX_LOG_UPLOAD for the file part itself.
    let s2 = TestServer::start_with(|c| c.max_log_upload = 100_000);
    let (token2, _, _) = s2.register("owner@example.com");
    let (dev2, key2) = new_device(&s2, &token2, "laptop");
    let r = upload_parts(&s2, &key2, META_TEXT, &noise(120_000, 5));
    assert_v1_error(&r, 413, "PAYLOAD_TOO_LARGE");
    assert_eq!(log_count(&s2, &token2, &dev2), 0);
    let r = upload_parts(&s2, &key2, META_TEXT, &noise(90_000, 5));
    assert_v1_ok(&r, 201);
    assert_eq!(log_count(&s2, &token2, &dev2), 1);
}

#[test]
fn malformed_uploads_are_refused_and_store_nothing() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "laptop");
    let ct = multipart_type();
    // Truncated: the closing boundary and the end of the file never came.
    let body = multipart(
        &[
            ("metadata", None, META_TEXT),
            ("log_file", Some("f"), b"abcdefghijklmnop"),
        ],
        true,
    );
    assert_v1_error(&upload(&s, &key, body, &ct), 400, "BAD_REQUEST");
    // No metadata part; no log_file part.
    let body = multipart(&[("log_file", Some("f"), b"hello")], false);
    let r = upload(&s, &key, body, &ct);
    assert_v1_error(&r, 400, "BAD_REQUEST");
    assert!(r.text.contains("metadata"), "{}", r.text);
    let body = multipart(&[("metadata", None, META_TEXT)], false);
    assert_v1_error(&upload(&s, &key, body, &ct), 400, "BAD_REQUEST");
    // Not multipart at all; multipart without a boundary.
    assert_v1_error(
        &upload(&s, &key, b"{}".to_vec(), "application/json"),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    );
    assert_v1_error(
        &upload(&s, &key, b"x".to_vec(), "multipart/form-data"),
        400,
        "BAD_REQUEST",
    );
    // Metadata that is not JSON, or not valid.
    assert_v1_error(&upload_parts(&s, &key, b"{type:", b"x"), 400, "BAD_REQUEST");
    for meta in [
        &br#"{"type":"daemon","date":"2026-02-30"}"#[..],
        br#"{"type":"../etc","date":"2026-01-20"}"#,
        br#"{"date":"2026-01-20"}"#,
        br#"{"type":"daemon","date":"2026-01-20","compressed":true}"#,
    ] {
        let r = upload_parts(&s, &key, meta, b"plain text, not gzip");
        assert_v1_error(&r, 422, "VALIDATION_FAILED");
    }
    assert_eq!(log_count(&s, &token, &dev), 0, "nothing was stored");
    s.assert_healthy();
}

#[test]
fn an_upload_over_the_storage_quota_leaves_used_unchanged() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "laptop");
    put_on_plan(&db(&s), "owner@example.com", "small", Some(1000), Some(7));
    assert_v1_ok(&upload_parts(&s, &key, META_TEXT, &[b'a'; 800]), 201);
    let used =
        || assert_v1_ok(&s.get("/v1/stats/summary", Some(&token)), 200)["storage_used"].clone();
    assert_eq!(used(), json!(800));
    let r = upload_parts(&s, &key, META_TEXT, &[b'b'; 300]);
    assert_v1_error(&r, 403, "QUOTA_EXCEEDED");
    assert_eq!(
        r.body["error"]["details"],
        json!({"quota": "storage", "limit": 1000, "used": 800})
    );
    assert_eq!(used(), json!(800), "the refused upload stored nothing");
    assert_eq!(log_count(&s, &token, &dev), 1);
    assert_v1_ok(&upload_parts(&s, &key, META_TEXT, &[b'c'; 200]), 201);
    assert_eq!(used(), json!(1000), "exactly the quota is allowed");
}

#[test]
fn retention_deletes_old_logs_and_old_output_and_keeps_newer_ones() {
    let s = TestServer::start_with(|c| c.janitor_interval = Duration::from_millis(100));
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "laptop");
    put_on_plan(&db(&s), "owner@example.com", "week", None, Some(7));
    let old = assert_v1_ok(&upload_parts(&s, &key, META_TEXT, b"old"), 201)["log"]["id"].clone();
    let new = assert_v1_ok(&upload_parts(&s, &key, META_TEXT, b"new"), 201)["log"]["id"].clone();
    let edge = assert_v1_ok(&upload_parts(&s, &key, META_TEXT, b"edge"), 201)["log"]["id"].clone();
    // Two finished tasks with output.
    let (t_old, t_new) = (
        queue_cmd(&s, &token, &dev, "echo old"),
        queue_cmd(&s, &token, &dev, "echo new"),
    );
    pending(&s, &key, "limit=10");
    for t in [&t_old, &t_new] {
        let r = report(
            &s,
            &key,
            t,
            json!({"status": "completed", "exit_code": 0, "stdout": "out", "stderr": "err"}),
        );
        assert_v1_ok(&r, 200);
    }
    let c = db(&s);
    c.execute(
        "UPDATE daemon_logs SET created_at = ?2 WHERE id = ?1",
        rusqlite::params![old.as_i64(), stamp_ago(Duration::from_secs(8 * 86_400))],
    )
    .expect("age a log");
    c.execute(
        "UPDATE daemon_logs SET created_at = ?2 WHERE id = ?1",
        rusqlite::params![edge.as_i64(), stamp_ago(Duration::from_secs(6 * 86_400))],
    )
    .expect("age a log less");
    c.execute(
        "UPDATE tasks SET completed_at = ?2 WHERE id = ?1",
        rusqlite::params![t_old, stamp_ago(Duration::from_secs(31 * 86_400))],
    )
    .expect("age a task");
    let ids = || -> Vec<i64> {
        let r = s.get(&format!("/v1/devices/{dev}/logs"), Some(&token));
        let mut v: Vec<i64> = assert_v1_ok(&r, 200)["logs"]
            .as_array()
            .expect("logs")
            .iter()
            .filter_map(|l| l["id"].as_i64())
            .collect();
        v.sort_unstable();
        v
    };
    eventually(
        "the janitor deletes the old log",
        Duration::from_secs(20),
        || (ids().len() == 2).then_some(()),
    );
    let mut want = vec![new.as_i64().expect("id"), edge.as_i64().expect("id")];
    want.sort_unstable();
    assert_eq!(ids(), want);
    let output = |t: &str| {
        let task = crate::queue_util::task(&s, &token, t);
        (task["stdout"].clone(), task["stderr"].clone())
    };
    eventually(
        "the janitor clears the old output",
        Duration::from_secs(20),
        || output(&t_old).0.is_null().then_some(()),
    );
    assert_eq!(output(&t_old), (json!(null), json!(null)));
    assert_eq!(
        output(&t_new),
        (json!("out"), json!("err")),
        "newer output stays"
    );
    assert_eq!(
        crate::queue_util::task(&s, &token, &t_old)["status"],
        json!("completed")
    );
}
