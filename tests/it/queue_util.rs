//! Helpers for the task-queue tests (`queue_*`, `control_daemon`): a `Client` with its own
//! connection pool for tests that call the server from several threads at once, and short
//! forms of the calls every queue story makes (create a device, queue a task, heartbeat, poll,
//! report, read a task), each asserting the envelope of a success so a story reads as steps.

use crate::common::{Resp, TestServer, assert_v1_ok, send};
use serde_json::{Value, json};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// An HTTP client of its own (own agent, own keep-alive connections) for one thread.
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    /// A new client for `s`.
    pub fn new(s: &TestServer) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(90)))
            .build();
        Client {
            base: format!("http://{}", s.addr),
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// Any request with extra headers and an optional JSON body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Resp {
        let body = body.map(|v| ("application/json", v.to_string().into_bytes()));
        send(&self.agent, &self.base, method, path, headers, body)
    }

    /// A request with `Authorization: Bearer token`.
    pub fn bearer(&self, method: &str, path: &str, token: &str, body: Option<&Value>) -> Resp {
        let auth = format!("Bearer {token}");
        self.call(method, path, &[("Authorization", &auth)], body)
    }
}

/// `POST /v1/devices` {name}: (device uuid, device key).
pub fn new_device(s: &TestServer, token: &str, name: &str) -> (String, String) {
    let r = s.post_json("/v1/devices", Some(token), json!({ "name": name }));
    let d = assert_v1_ok(&r, 201);
    let key = d["device_key"].as_str().expect("device_key").to_string();
    assert!(key.starts_with("ccjk_"), "{key}");
    (
        d["device"]["id"].as_str().expect("device id").to_string(),
        key,
    )
}

/// `PATCH /v1/devices/{id}/config` with `patch`; asserts success.
pub fn set_config(s: &TestServer, token: &str, device: &str, patch: Value) {
    let r = s.patch_json(&format!("/v1/devices/{device}/config"), Some(token), patch);
    assert_v1_ok(&r, 200);
}

/// `POST /v1/tasks` with `body`; asserts 201 and returns the task id.
pub fn queue(s: &TestServer, token: &str, body: Value) -> String {
    let r = s.post_json("/v1/tasks", Some(token), body);
    let d = assert_v1_ok(&r, 201);
    assert_eq!(d["status"], json!("pending"), "{}", r.text);
    d["task_id"].as_str().expect("task_id").to_string()
}

/// `POST /v1/tasks` of `command` for `device`; returns the task id.
pub fn queue_cmd(s: &TestServer, token: &str, device: &str, command: &str) -> String {
    queue(s, token, json!({ "device_id": device, "command": command }))
}

/// `GET /v1/tasks/{id}` as the owner: the task object.
pub fn task(s: &TestServer, token: &str, id: &str) -> Value {
    let r = s.get(&format!("/v1/tasks/{id}"), Some(token));
    assert_v1_ok(&r, 200)["task"].clone()
}

/// `POST /v1/daemon/heartbeat` with the device key; returns `data`.
pub fn heartbeat(s: &TestServer, key: &str, body: Value) -> Value {
    let r = s.post_json("/v1/daemon/heartbeat", Some(key), body);
    assert_v1_ok(&r, 200)
}

/// A poll's `data` handed out nothing: `count` 0 and an empty `tasks` list.
pub fn assert_no_tasks(d: &Value) {
    assert_eq!(
        (d["count"].clone(), d["tasks"].clone()),
        (json!(0), json!([])),
        "{d}"
    );
}

/// `GET /v1/daemon/tasks/pending?{query}` with the device key; returns `data`.
pub fn pending(s: &TestServer, key: &str, query: &str) -> Value {
    let r = s.get(&format!("/v1/daemon/tasks/pending?{query}"), Some(key));
    assert_v1_ok(&r, 200)
}

/// The ids of the tasks a poll or heartbeat returned under `field`.
pub fn ids(data: &Value, field: &str) -> Vec<String> {
    data[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} array in {data}"))
        .iter()
        .map(|t| {
            t.as_str()
                .or_else(|| t["id"].as_str())
                .unwrap_or_else(|| panic!("no id in {t}"))
                .to_string()
        })
        .collect()
}

/// `POST /v1/daemon/tasks/{id}/result` with the device key.
pub fn report(s: &TestServer, key: &str, id: &str, body: Value) -> Resp {
    s.post_json(&format!("/v1/daemon/tasks/{id}/result"), Some(key), body)
}

/// Polls `probe` every 50 ms until it returns `Some`, failing after `within`.
pub fn eventually<T>(what: &str, within: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?}: {what}"
        );
        sleep(Duration::from_millis(50));
    }
}

/// A Lite call with `X-Device-Key`; asserts `{ok: true}` and returns `data`.
pub fn lite(s: &TestServer, method: &str, path: &str, key: &str, body: Option<Value>) -> Value {
    let r = lite_call(s, method, path, key, body);
    crate::common::assert_lite_ok(&r)
}

/// A Lite call with `X-Device-Key`.
pub fn lite_call(s: &TestServer, method: &str, path: &str, key: &str, body: Option<Value>) -> Resp {
    let body = body.map(|b| ("application/json", b.to_string().into_bytes()));
    s.call(method, path, &[("X-Device-Key", key)], body)
}

/// A Control call with `X-Device-Token`, as the CCJK daemon sends it; asserts
/// `{success: true, error: null}` and returns `data`.
pub fn control(s: &TestServer, method: &str, path: &str, key: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| ("application/json", b.to_string().into_bytes()));
    let r = s.call(method, path, &[("X-Device-Token", key)], body);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["success"], json!(true), "{}", r.text);
    assert!(r.body["error"].is_null(), "{}", r.text);
    r.body["data"].clone()
}
