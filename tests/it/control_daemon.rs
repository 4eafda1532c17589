//! The Control contract as the real CCJK CLI v3.7.x daemon uses it (docs/families.md): a test daemon
//! that behaves like that client — `X-Device-Token` with a pre-shared key from
//! `POST /v1/devices`, JSON bodies, register, a heartbeat every 200 ms listing the tasks it
//! runs, `sh -c` for every command `pendingTasks` hands it (with the task's cwd and env), a
//! result per command, HTTP status codes ignored, and an `offline` heartbeat at the end — runs
//! three real commands queued through `/v1`, and their owner reads back what they printed and
//! how they exited.

use crate::common::{TestServer, assert_v1_ok};
use crate::queue_util::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, sleep};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The daemon's side of the wire: reads only the JSON body, whatever the status code.
struct Wire {
    c: Client,
    token: String,
}

impl Wire {
    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let h = [("X-Device-Token", self.token.as_str())];
        self.c
            .call(method, &format!("/api/control{path}"), &h, body)
            .body
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// Runs one command as the daemon does and returns the result body it reports.
fn execute(task: &Value) -> Value {
    let started = Instant::now();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(task["command"].as_str().expect("command"));
    if let Some(cwd) = task["cwd"].as_str() {
        cmd.current_dir(cwd);
    }
    if let Some(env) = task["env"].as_object() {
        cmd.envs(env.iter().map(|(k, v)| (k, v.as_str().unwrap_or_default())));
    }
    let out = cmd.output().expect("spawn sh");
    let code = out.status.code().unwrap_or(-1);
    json!({
        "exitCode": code,
        "stdout": String::from_utf8_lossy(&out.stdout),
        "stderr": String::from_utf8_lossy(&out.stderr),
        "success": code == 0,
        "duration": started.elapsed().as_millis() as u64,
    })
}

/// The daemon: registers, heartbeats until `stop`, runs what it is handed, goes offline.
/// Returns the register reply and how many times each task id was handed to it.
fn daemon(wire: Wire, stop: Arc<AtomicBool>) -> (Value, HashMap<String, usize>) {
    let reg =
        json!({"name": "ci-runner", "platform": "linux", "hostname": "ci-01", "version": "3.7.2"});
    let registered = wire.send("POST", "/devices/register", Some(&reg));
    let wire = Arc::new(wire);
    let running: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut handed: HashMap<String, usize> = HashMap::new();
    let mut workers = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let current = running.lock().expect("lock").clone();
        let beat = json!({"status": "online", "currentTasks": current, "timestamp": now_ms()});
        let reply = wire.send("POST", "/devices/heartbeat", Some(&beat));
        let tasks = reply["data"]["pendingTasks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for t in tasks {
            let id = t["id"].as_str().expect("task id").to_string();
            *handed.entry(id.clone()).or_default() += 1;
            running.lock().expect("lock").push(id.clone());
            let (wire, running) = (wire.clone(), running.clone());
            workers.push(thread::spawn(move || {
                let result = execute(&t);
                wire.send("POST", &format!("/commands/{id}/result"), Some(&result));
                running.lock().expect("lock").retain(|x| *x != id);
            }));
        }
        sleep(Duration::from_millis(200));
    }
    for w in workers {
        w.join().expect("worker");
    }
    let bye = json!({"status": "offline", "currentTasks": [], "timestamp": now_ms()});
    wire.send("POST", "/devices/heartbeat", Some(&bye));
    (registered, handed)
}

#[test]
fn the_cli_daemon_runs_real_commands_and_the_owner_reads_the_results() {
    let s = TestServer::start();
    let (token, _, _) = s.register("dev@example.com");
    let (dev, key) = new_device(&s, &token, "preshared");
    let stop = Arc::new(AtomicBool::new(false));
    let wire = Wire {
        c: Client::new(&s),
        token: key,
    };
    let d = thread::spawn({
        let stop = stop.clone();
        move || daemon(wire, stop)
    });

    // The daemon may claim a task before its creation is answered: no status check here.
    let submit = |body: Value| {
        let r = s.post_json("/v1/tasks", Some(&token), body);
        assert_v1_ok(&r, 201)["task_id"]
            .as_str()
            .expect("task_id")
            .to_string()
    };
    let hello = submit(json!({"device_id": dev, "command": "echo hello"}));
    let three = submit(json!({"device_id": dev, "command": "sh -c 'exit 3'"}));
    let foo = submit(
        json!({"device_id": dev, "command": "printf \"%s\" \"$FOO\"",
                            "args": {"env": {"FOO": "bar"}, "cwd": "/"}}),
    );
    let ids = [&hello, &three, &foo];
    let done: Vec<Value> = eventually("all three commands finish", Duration::from_secs(15), || {
        let ts: Vec<Value> = ids.iter().map(|id| task(&s, &token, id)).collect();
        ts.iter()
            .all(|t| ["completed", "failed"].contains(&t["status"].as_str().unwrap_or("")))
            .then_some(ts)
    });
    stop.store(true, Ordering::SeqCst);
    let (registered, handed) = d.join().expect("daemon thread");

    let view = |t: &Value| json!([t["status"], t["exit_code"], t["stdout"], t["attempt"]]);
    assert_eq!(view(&done[0]), json!(["completed", 0, "hello\n", 1]));
    assert_eq!(view(&done[1]), json!(["failed", 3, "", 1]));
    assert_eq!(view(&done[2]), json!(["completed", 0, "bar", 1]));
    let once: HashMap<String, usize> = ids.iter().map(|id| (id.to_string(), 1)).collect();
    assert_eq!(
        handed, once,
        "each command handed to the daemon exactly once"
    );

    assert_eq!(registered["success"], json!(true), "{registered}");
    assert_eq!(registered["data"]["device"]["id"], json!(dev));
    let d =
        assert_v1_ok(&s.get(&format!("/v1/devices/{dev}"), Some(&token)), 200)["device"].clone();
    assert_eq!(
        json!([
            d["name"],
            d["os_type"],
            d["hostname"],
            d["ccjk_version"],
            d["status"]
        ]),
        json!(["ci-runner", "linux", "ci-01", "3.7.2", "offline"])
    );
}
