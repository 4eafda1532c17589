//! The queue's rules (docs/tasks.md, docs/limits.md): a sequential batch releases its next task on success and
//! cancels the rest on failure; an `Idempotency-Key` returns its user's first task; retry makes a
//! child with `parent_task_id`; a cancelled pending task is never delivered, a cancelled running
//! one is delivered in `cancel_tasks` and keeps the late output it gets; output over
//! `CCJK_MAX_OUTPUT` is stored truncated with a marker; device and tasks-per-day quotas are 403
//! `QUOTA_EXCEEDED` with `details {limit, used}`.

use crate::common::{Resp, TestServer, assert_v1_error, assert_v1_ok};
use crate::queue_util::*;
use serde_json::{Value, json};

/// Queues `commands` on `dev` as one sequential batch; returns the raw response.
fn sequential_batch(s: &TestServer, token: &str, dev: &str, commands: &[&str]) -> Resp {
    let steps: Vec<Value> = commands
        .iter()
        .map(|c| json!({"device_id": dev, "command": c}))
        .collect();
    s.post_json(
        "/v1/tasks/batch",
        Some(token),
        json!({"mode": "sequential", "tasks": steps}),
    )
}

fn status_of(s: &TestServer, token: &str, id: &str) -> Value {
    task(s, token, id)["status"].clone()
}

#[test]
fn sequential_batch_releases_on_success_and_cancels_on_failure() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "box");
    let r = sequential_batch(&s, &token, &dev, &["one", "two", "three"]);
    let d = assert_v1_ok(&r, 201);
    assert!(d["batch_id"].is_string(), "{d}");
    let st: Vec<&str> = d["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["status"].as_str().expect("status"))
        .collect();
    assert_eq!(st, ["pending", "queued", "queued"]);
    let id = |i: usize| d["tasks"][i]["id"].as_str().expect("id").to_string();
    assert_eq!(ids(&pending(&s, &key, "limit=10"), "tasks"), [id(0)]);
    assert_eq!(
        pending(&s, &key, "limit=10")["count"],
        json!(0),
        "two waits for one"
    );
    assert_v1_ok(&report(&s, &key, &id(0), json!({"exit_code": 0})), 200);
    assert_eq!(ids(&pending(&s, &key, "limit=10"), "tasks"), [id(1)]);
    assert_v1_ok(
        &report(&s, &key, &id(1), json!({"exit_code": 1, "stderr": "boom"})),
        200,
    );
    assert_eq!(status_of(&s, &token, &id(1)), json!("failed"));
    let third = task(&s, &token, &id(2));
    assert_eq!(third["status"], json!("cancelled"));
    assert!(
        third["error_message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{third}"
    );
    assert_eq!(pending(&s, &key, "limit=10")["count"], json!(0));
}

#[test]
fn idempotency_key_returns_the_first_task_for_its_user_only() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (other, _, _) = s.register("other@example.com");
    let create = |tok: &str, key: &str, cmd: &str| {
        let auth = format!("Bearer {tok}");
        let h = [("Authorization", auth.as_str()), ("Idempotency-Key", key)];
        let body = json!({"command": cmd}).to_string().into_bytes();
        s.call("POST", "/v1/tasks", &h, Some(("application/json", body)))
    };
    let first = assert_v1_ok(&create(&token, "deploy-42", "deploy"), 201);
    let replay = assert_v1_ok(&create(&token, "deploy-42", "something else"), 200);
    assert_eq!(replay["task_id"], first["task_id"]);
    assert_eq!(replay["task"]["command"], json!("deploy"));
    let fresh = assert_v1_ok(&create(&token, "deploy-43", "deploy"), 201);
    assert_ne!(fresh["task_id"], first["task_id"]);
    let theirs = assert_v1_ok(&create(&other, "deploy-42", "deploy"), 201);
    assert_ne!(theirs["task_id"], first["task_id"]);
    assert_eq!(
        assert_v1_ok(&s.get("/v1/tasks", Some(&token)), 200)["count"],
        json!(2)
    );
}

/// A device key sees only its own device's tasks (docs/families.md), replays included: reusing the
/// owner's Idempotency-Key of another device's task is a conflict, not that task's id.
#[test]
fn a_device_key_cannot_replay_another_devices_idempotency_key() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev_b, _) = new_device(&s, &token, "b");
    let (_, key_a) = new_device(&s, &token, "a");
    let auth = format!("Bearer {token}");
    let h = [("Authorization", auth.as_str()), ("Idempotency-Key", "k-1")];
    let body = json!({"device_id": dev_b, "command": "on b"}).to_string();
    let first = s.call(
        "POST",
        "/v1/tasks",
        &h,
        Some(("application/json", body.into_bytes())),
    );
    let b_task = assert_v1_ok(&first, 201)["task_id"]
        .as_str()
        .expect("id")
        .to_string();
    let h = [("X-Device-Key", key_a.as_str()), ("Idempotency-Key", "k-1")];
    let body = json!({"command": "on a"}).to_string().into_bytes();
    let r = s.call("POST", "/tasks", &h, Some(("application/json", body)));
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(!r.text.contains(&b_task), "{}", r.text);
    // A fresh key still works for the device's own task.
    let h = [("X-Device-Key", key_a.as_str()), ("Idempotency-Key", "k-2")];
    let body = json!({"command": "on a"}).to_string().into_bytes();
    let own = s.call("POST", "/tasks", &h, Some(("application/json", body)));
    let own = crate::common::assert_lite_ok(&own);
    assert!(!own.to_string().contains(&b_task), "{own}");
}

#[test]
fn retry_makes_a_child_of_a_finished_task() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "box");
    let id = queue_cmd(&s, &token, &dev, "flaky");
    pending(&s, &key, "limit=1");
    assert_v1_ok(&report(&s, &key, &id, json!({"exit_code": 2})), 200);
    let d = assert_v1_ok(
        &s.post_json(&format!("/v1/tasks/{id}/retry"), Some(&token), json!({})),
        201,
    );
    let child = d["task_id"].as_str().expect("task_id").to_string();
    assert_ne!(child, id);
    assert_eq!(
        json!([
            d["task"]["parent_task_id"],
            d["task"]["status"],
            d["task"]["command"]
        ]),
        json!([id, "pending", "flaky"])
    );
    let r = s.post_json(&format!("/v1/tasks/{child}/retry"), Some(&token), json!({}));
    assert_v1_error(&r, 409, "CONFLICT");
    let p = pending(&s, &key, "limit=10");
    assert_eq!(
        (ids(&p, "tasks"), p["tasks"][0]["attempt"].clone()),
        (vec![child], json!(1))
    );
}

#[test]
fn a_cancelled_pending_task_is_never_delivered() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "box");
    let id = queue_cmd(&s, &token, &dev, "rm -rf build");
    let c = assert_v1_ok(
        &s.post_json(&format!("/v1/tasks/{id}/cancel"), Some(&token), json!({})),
        200,
    );
    assert_eq!(c["task"]["status"], json!("cancelled"));
    let hb = heartbeat(&s, &key, json!({"status": "online"}));
    assert_eq!(
        (hb["pending_count"].clone(), hb["cancel_tasks"].clone()),
        (json!(0), json!([]))
    );
    assert_eq!(pending(&s, &key, "limit=10")["count"], json!(0));
    let again = s.post_json(&format!("/v1/tasks/{id}/cancel"), Some(&token), json!({}));
    assert_v1_error(&again, 409, "TASK_NOT_CANCELLABLE");
}

#[test]
fn a_running_task_cancel_reaches_the_daemon_and_keeps_its_output() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "box");
    let id = queue_cmd(&s, &token, &dev, "sleep 600");
    pending(&s, &key, "limit=1");
    let c = assert_v1_ok(
        &s.post_json(&format!("/v1/tasks/{id}/cancel"), Some(&token), json!({})),
        200,
    );
    assert_eq!(c["task"]["status"], json!("cancelled"));
    assert!(c["task"]["cancel_requested_at"].is_string(), "{c}");
    let hb = heartbeat(&s, &key, json!({"status": "online", "current_tasks": [id]}));
    assert_eq!(hb["cancel_tasks"], json!([id]));
    let late = report(
        &s,
        &key,
        &id,
        json!({"exit_code": 143, "stdout": "partial", "stderr": "killed"}),
    );
    assert_v1_error(&late, 409, "TASK_NOT_RUNNING");
    let t = task(&s, &token, &id);
    assert_eq!(
        json!([t["status"], t["stdout"], t["stderr"]]),
        json!(["cancelled", "partial", "killed"])
    );
    let hb = heartbeat(&s, &key, json!({"status": "online", "current_tasks": []}));
    assert_eq!(hb["cancel_tasks"], json!([]), "acknowledged by the result");
}

#[test]
fn output_over_the_cap_is_stored_truncated() {
    let s = TestServer::start_with(|cfg| cfg.max_output = 128 * 1024);
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "box");
    let id = queue_cmd(&s, &token, &dev, "cat big.log");
    pending(&s, &key, "limit=1");
    let out = format!(
        "{}{}{}",
        "A".repeat(70_000),
        "m".repeat(200_000),
        "Z".repeat(70_000)
    );
    assert_v1_ok(
        &report(
            &s,
            &key,
            &id,
            json!({"exit_code": 0, "stdout": out, "stderr": "e"}),
        ),
        200,
    );
    let t = task(&s, &token, &id);
    let stored = t["stdout"].as_str().expect("stdout");
    assert!(stored.len() <= 128 * 1024, "{} bytes stored", stored.len());
    assert!(stored.contains("bytes truncated]"), "no marker");
    assert!(stored.starts_with(&"A".repeat(64 * 1024)) && stored.ends_with(&"Z".repeat(20_000)));
    assert_eq!(t["stderr"], json!("e"));
}

#[test]
fn free_plan_device_quota_is_403_with_details() {
    let s = TestServer::start();
    let (admin, _, _) = s.register("admin@example.com");
    let (free, _, _) = s.register("free@example.com");
    new_device(&s, &free, "first");
    let r = s.post_json("/v1/devices", Some(&free), json!({"name": "second"}));
    assert_v1_error(&r, 403, "QUOTA_EXCEEDED");
    let det = &r.body["error"]["details"];
    assert_eq!(
        (det["limit"].clone(), det["used"].clone()),
        (json!(1), json!(1)),
        "{}",
        r.text
    );
    let list = assert_v1_ok(&s.get("/v1/devices", Some(&free)), 200);
    assert_eq!(list["devices"].as_array().expect("devices").len(), 1);
    new_device(&s, &admin, "enterprise has no device limit");
}

#[test]
fn free_plan_allows_ten_tasks_a_day() {
    let s = TestServer::start_with(|cfg| cfg.default_plan = "free".into());
    s.register("admin@example.com");
    let (free, _, _) = s.register("free@example.com");
    for i in 0..10 {
        queue(&s, &free, json!({"command": format!("echo {i}")}));
    }
    let r = s.post_json("/v1/tasks", Some(&free), json!({"command": "echo 11"}));
    assert_v1_error(&r, 403, "QUOTA_EXCEEDED");
    let det = &r.body["error"]["details"];
    assert_eq!(
        (det["limit"].clone(), det["used"].clone()),
        (json!(10), json!(10)),
        "{}",
        r.text
    );
    let b = s.post_json(
        "/v1/tasks/batch",
        Some(&free),
        json!({"tasks": [{"command": "x"}]}),
    );
    assert_v1_error(&b, 403, "QUOTA_EXCEEDED");
    assert_eq!(
        assert_v1_ok(&s.get("/v1/tasks", Some(&free)), 200)["count"],
        json!(10)
    );
}

#[test]
fn cancelling_a_running_batch_step_cancels_the_steps_behind_it() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "box");
    let r = sequential_batch(&s, &token, &dev, &["build", "test", "deploy"]);
    let batch = ids(&assert_v1_ok(&r, 201), "tasks");
    assert_eq!(
        ids(&pending(&s, &key, "limit=10"), "tasks"),
        [batch[0].as_str()]
    );
    let c = s.post_json(
        &format!("/v1/tasks/{}/cancel", batch[0]),
        Some(&token),
        json!({}),
    );
    assert_v1_ok(&c, 200);
    for id in &batch {
        assert_eq!(status_of(&s, &token, id), json!("cancelled"), "{id}");
    }
    let hb = heartbeat(
        &s,
        &key,
        json!({"status": "online", "current_tasks": [batch[0]]}),
    );
    assert_eq!(
        (hb["cancel_tasks"].clone(), hb["pending_count"].clone()),
        (json!([batch[0]]), json!(0))
    );
    assert_eq!(pending(&s, &key, "limit=10")["count"], json!(0));
}

#[test]
fn claims_take_higher_priority_first_then_older() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "box");
    set_config(&s, &token, &dev, json!({"max_concurrent_tasks": 10}));
    let mut made = Vec::new();
    for (cmd, prio) in [("low", 1), ("mid-old", 5), ("high", 10), ("mid-new", 5)] {
        made.push(queue(
            &s,
            &token,
            json!({"device_id": dev, "command": cmd, "priority": prio}),
        ));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let p = pending(&s, &key, "limit=2");
    assert_eq!(ids(&p, "tasks"), [made[2].clone(), made[1].clone()]);
    let p = pending(&s, &key, "limit=10");
    assert_eq!(ids(&p, "tasks"), [made[3].clone(), made[0].clone()]);
}

#[test]
fn output_larger_than_the_body_cap_is_truncated_not_refused() {
    // Defaults: CCJK_MAX_BODY = CCJK_MAX_OUTPUT = 1 MiB. A daemon that ran a chatty command
    // reports 1.5 MiB of stdout; refusing the whole result (413) would leave the task running
    // until its lease expires and then run the command again.
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "box");
    let id = queue_cmd(&s, &token, &dev, "npm install --verbose");
    pending(&s, &key, "limit=1");
    let out = format!("{}{}", "a".repeat(1024 * 1024), "z".repeat(512 * 1024));
    let r = report(&s, &key, &id, json!({"exit_code": 0, "stdout": out}));
    assert_v1_ok(&r, 200);
    let t = task(&s, &token, &id);
    let stored = t["stdout"].as_str().expect("stdout");
    assert_eq!(t["status"], json!("completed"));
    assert!(stored.len() <= 1024 * 1024 && stored.contains("bytes truncated]"));
}

#[test]
fn retrying_a_task_of_a_deleted_device_does_not_send_it_to_another() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (gone, gone_key) = new_device(&s, &token, "old-laptop");
    let (_, other_key) = new_device(&s, &token, "prod-server");
    let id = queue_cmd(&s, &token, &gone, "rm -rf ~/scratch");
    pending(&s, &gone_key, "limit=1");
    assert_v1_ok(&report(&s, &gone_key, &id, json!({"exit_code": 0})), 200);
    assert_v1_ok(&s.delete(&format!("/v1/devices/{gone}"), Some(&token)), 200);
    let r = s.post_json(&format!("/v1/tasks/{id}/retry"), Some(&token), json!({}));
    assert_v1_error(&r, 409, "CONFLICT");
    let p = pending(&s, &other_key, "limit=10");
    assert_eq!(
        p["count"],
        json!(0),
        "a command meant for a deleted device went to another one: {p}"
    );
}
