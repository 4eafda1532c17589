//! Durability: a `kill -9` of the real binary in the middle of a load of task creations and
//! daemon results loses no write the server had acknowledged (README "Performance": zero lost acknowledged
//! writes, with the default `synchronous=FULL` and group commit).

use crate::common::*;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

fn client() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build();
    ureq::Agent::new_with_config(config)
}

/// POSTs JSON; `None` on a transport error (the server died mid-request).
fn post(agent: &ureq::Agent, url: &str, token: &str, body: &Value) -> Option<(u16, Value)> {
    let mut r = agent
        .post(url)
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .ok()?;
    let text = r.body_mut().read_to_string().ok()?;
    Some((
        r.status().as_u16(),
        serde_json::from_str(&text).unwrap_or(Value::Null),
    ))
}

fn get(agent: &ureq::Agent, url: &str, token: &str) -> Option<(u16, Value)> {
    let mut r = agent
        .get(url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .ok()?;
    let text = r.body_mut().read_to_string().ok()?;
    Some((
        r.status().as_u16(),
        serde_json::from_str(&text).unwrap_or(Value::Null),
    ))
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_write() {
    let mut s = TestServer::spawn_binary(&[]);
    let (token, _, _) = s.register("crash@example.com");
    let d = assert_v1_ok(
        &s.post_json("/v1/devices", Some(&token), json!({"name": "box"})),
        201,
    );
    let device = d["device"]["id"].as_str().expect("uuid").to_string();
    let key = d["device_key"].as_str().expect("key").to_string();
    s.patch_json(
        &format!("/v1/devices/{device}/config"),
        Some(&token),
        json!({"max_concurrent_tasks": 100}),
    );
    let base = s.base().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let created: Arc<Mutex<Vec<String>>> = Arc::default();
    let finished: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut threads = Vec::new();
    for n in 0..4 {
        let (base, token, device, stop, created) = (
            base.clone(),
            token.clone(),
            device.clone(),
            stop.clone(),
            created.clone(),
        );
        // Connections opened one by one: tiny_http can leave one of a burst of new
        // connections unserved until another closes (README "Behind nginx or Caddy").
        thread::sleep(Duration::from_millis(60));
        threads.push(thread::spawn(move || {
            let mut agent = client();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let body = json!({"device_id": device, "command": format!("echo {n}-{i}")});
                match post(&agent, &format!("{base}/v1/tasks"), &token, &body) {
                    Some((201, v)) => created
                        .lock()
                        .expect("lock")
                        .push(v["data"]["task_id"].as_str().expect("id").into()),
                    Some((status, v)) => panic!("create answered {status}: {v}"),
                    None => agent = client(),
                }
                i += 1;
            }
        }));
    }
    {
        let (base, key, stop, finished) =
            (base.clone(), key.clone(), stop.clone(), finished.clone());
        threads.push(thread::spawn(move || {
            let mut agent = client();
            while !stop.load(Ordering::SeqCst) {
                let r = get(
                    &agent,
                    &format!("{base}/v1/daemon/tasks/pending?limit=20"),
                    &key,
                );
                let v = match r {
                    Some((200, v)) => v,
                    // tiny_http can leave a new connection unserved in a burst (README "Behind nginx or Caddy"):
                    // like a real daemon, time out and reconnect.
                    None => {
                        agent = client();
                        continue;
                    }
                    Some((status, v)) => panic!("poll answered {status}: {v}"),
                };
                for t in v["data"]["tasks"].as_array().into_iter().flatten() {
                    let id = t["id"].as_str().expect("id");
                    let body = json!({"exit_code": 0, "stdout": format!("done {id}")});
                    match post(
                        &agent,
                        &format!("{base}/v1/daemon/tasks/{id}/result"),
                        &key,
                        &body,
                    ) {
                        Some((200, _)) => finished.lock().expect("lock").push(id.to_string()),
                        Some((status, v)) => panic!("result answered {status}: {v}"),
                        None => agent = client(),
                    }
                }
            }
        }));
    }
    thread::sleep(Duration::from_millis(1500));
    s.kill9();
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().expect("load thread");
    }
    let created = created.lock().expect("lock").clone();
    let finished = finished.lock().expect("lock").clone();
    assert!(
        created.len() > 20,
        "the load ran: {} tasks acknowledged",
        created.len()
    );
    assert!(!finished.is_empty(), "the daemon acknowledged results");

    // The same files, a new server: everything acknowledged is there.
    let (db, key_file) = (s.db_path(), s.dir().join("ccjk.key"));
    let after = TestServer::start_with(|c| {
        c.db_path = db;
        c.secret_key_file = Some(key_file);
    });
    for id in &created {
        let t = assert_v1_ok(&after.get(&format!("/v1/tasks/{id}"), Some(&token)), 200);
        assert_eq!(t["task"]["id"], json!(id));
    }
    for id in &finished {
        let t = assert_v1_ok(&after.get(&format!("/v1/tasks/{id}"), Some(&token)), 200);
        assert_eq!(t["task"]["status"], json!("completed"), "{id}");
        assert_eq!(t["task"]["stdout"], json!(format!("done {id}")));
    }
}
