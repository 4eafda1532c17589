//! The task queue end to end in every family (docs/families.md, docs/tasks.md): a task queued by its
//! owner is claimed exactly once by a daemon (`/v1` poll, Lite and Control heartbeats — never by
//! an offline one), and its result is what the owner reads back; Sessions' jobs are the tasks
//! created with a session's token and go with the session; `POST /v1/daemon/register` gives the
//! same device and key back for the same `X-Device-ID`. The queue's rules are in `queue_rules`.

use crate::common::{PASSWORD, TestServer, assert_v1_error, assert_v1_ok};
use crate::queue_util::*;
use serde_json::{Value, json};

fn status_of(s: &TestServer, token: &str, id: &str) -> Value {
    task(s, token, id)["status"].clone()
}

#[test]
fn v1_task_goes_from_owner_to_daemon_and_back() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "laptop");
    let body = json!({"device_id": dev, "command": "make test", "priority": 7, "timeout": 60000,
                      "args": {"cwd": "/srv/app", "env": {"CI": "1"}}});
    let id = queue(&s, &token, body);
    let hb = heartbeat(
        &s,
        &key,
        json!({"status": "online", "current_tasks": [], "system_info": {"cpus": 2}}),
    );
    assert_eq!(
        (hb["device_status"].as_str(), hb["pending_count"].as_i64()),
        (Some("online"), Some(1))
    );

    let p = pending(&s, &key, "limit=10");
    let t = &p["tasks"][0];
    assert_eq!(p["count"], json!(1), "{p}");
    assert_eq!(
        json!([
            t["id"],
            t["command"],
            t["cwd"],
            t["env"],
            t["timeout"],
            t["priority"],
            t["attempt"]
        ]),
        json!([id, "make test", "/srv/app", {"CI": "1"}, 60000, 7, 1])
    );
    assert_eq!(
        pending(&s, &key, "limit=10")["count"],
        json!(0),
        "claimed once only"
    );
    let running = task(&s, &token, &id);
    assert_eq!(running["status"], json!("running"));
    assert!(running["started_at"].is_string() && running["lease_expires_at"].is_string());
    let d = assert_v1_ok(&s.get(&format!("/v1/devices/{dev}"), Some(&token)), 200);
    assert_eq!(d["device"]["current_tasks"], json!(1));

    let path = format!("/v1/daemon/tasks/{id}/progress");
    assert_v1_ok(
        &s.post_json(
            &path,
            Some(&key),
            json!({"progress": 40, "stdout": "compiling"}),
        ),
        200,
    );
    assert_eq!(task(&s, &token, &id)["progress"], json!(40));
    let done = json!({"status": "completed", "exit_code": 0, "stdout": "ok\n", "stderr": "warn\n", "attempt": 1});
    let r = assert_v1_ok(&report(&s, &key, &id, done), 200);
    assert_eq!(
        (r["task_id"].as_str(), r["status"].as_str()),
        (Some(id.as_str()), Some("completed"))
    );
    let t = task(&s, &token, &id);
    assert_eq!(
        json!([
            t["status"],
            t["exit_code"],
            t["stdout"],
            t["stderr"],
            t["progress"]
        ]),
        json!(["completed", 0, "ok\n", "warn\n", 100])
    );
    assert!(t["completed_at"].is_string(), "{t}");
    // A second, different report changes nothing.
    let again = report(&s, &key, &id, json!({"exit_code": 1, "stdout": "other"}));
    assert_eq!(assert_v1_ok(&again, 200)["status"], json!("completed"));
    assert_eq!(task(&s, &token, &id), t);
}

#[test]
fn lite_heartbeat_claims_what_it_returns() {
    let s = TestServer::start();
    let key = s.lite_auth("lite@example.com", PASSWORD);
    let body = json!({"command": "npm run build", "timeout": 300000, "cwd": "/p", "env": {"X": "y"}, "priority": 8});
    let created = lite(&s, "POST", "/tasks", &key, Some(body));
    assert_eq!(created["status"], json!("pending"));
    let id = created["task_id"].as_str().expect("task_id").to_string();
    let beat = json!({"status": "online", "os": "linux", "version": "3.7.0"});
    let hb = lite(&s, "POST", "/daemon/heartbeat", &key, Some(beat.clone()));
    let t = &hb["pending_tasks"][0];
    assert_eq!(
        json!([
            t["id"],
            t["command"],
            t["timeout"],
            t["cwd"],
            t["env"],
            t["priority"]
        ]),
        json!([id, "npm run build", 300000, "/p", {"X": "y"}, 8])
    );
    let hb2 = lite(&s, "POST", "/daemon/heartbeat", &key, Some(beat));
    assert_eq!(
        hb2["pending_tasks"],
        json!([]),
        "a claimed task is not handed out again"
    );
    assert_eq!(
        lite(&s, "GET", &format!("/tasks/{id}"), &key, None)["status"],
        json!("running")
    );
    let res = json!({"status": "completed", "exit_code": 0, "stdout": "built", "stderr": ""});
    lite(
        &s,
        "POST",
        &format!("/daemon/tasks/{id}/result"),
        &key,
        Some(res),
    );
    let t = lite(&s, "GET", &format!("/tasks/{id}"), &key, None);
    assert_eq!(
        json!([t["status"], t["exit_code"], t["stdout"]]),
        json!(["completed", 0, "built"])
    );
    let done = lite(&s, "GET", "/tasks?status=completed&limit=5", &key, None);
    assert_eq!(ids(&done, "tasks"), [id]);
    let next = lite(
        &s,
        "POST",
        "/tasks",
        &key,
        Some(json!({"command": "ls", "timeout": 1000})),
    );
    let got = lite(&s, "GET", "/daemon/tasks", &key, None);
    assert_eq!(
        ids(&got, "tasks"),
        [next["task_id"].as_str().expect("task_id")]
    );
    assert_eq!(
        lite(&s, "GET", "/daemon/tasks", &key, None)["tasks"],
        json!([])
    );
    assert_eq!(
        s.lite_auth("lite@example.com", PASSWORD),
        key,
        "same key on every login"
    );
}

#[test]
fn control_daemon_claims_by_heartbeat_but_never_while_offline() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "preshared");
    let reg = json!({"name": "ci-box", "platform": "linux", "hostname": "ci", "version": "3.7.2"});
    let d = control(&s, "POST", "/api/control/devices/register", &key, Some(reg));
    assert_eq!(
        d["device"],
        json!({"id": dev, "name": "ci-box", "platform": "linux", "status": "online"})
    );
    let id = queue(
        &s,
        &token,
        json!({"device_id": dev, "command": "ls", "timeout": 5000, "priority": 9}),
    );
    let beat = |status: &str, current: &[&str]| {
        let b =
            json!({"status": status, "currentTasks": current, "timestamp": 1_767_000_000_000_i64});
        control(&s, "POST", "/api/control/devices/heartbeat", &key, Some(b))
    };
    let hb = beat("online", &[]);
    let t = &hb["pendingTasks"][0];
    assert_eq!(
        json!([
            t["id"],
            t["deviceId"],
            t["commandType"],
            t["command"],
            t["timeout"],
            t["priority"]
        ]),
        json!([id, dev, "shell", "ls", 5000, 9])
    );
    assert_eq!(beat("online", &[&id])["pendingTasks"], json!([]));
    let res =
        json!({"exitCode": 0, "stdout": "a b\n", "stderr": "", "success": true, "duration": 12});
    let r = control(
        &s,
        "POST",
        &format!("/api/control/commands/{id}/result"),
        &key,
        Some(res),
    );
    assert_eq!(r, json!({"commandId": id, "status": "completed"}));
    let t = task(&s, &token, &id);
    assert_eq!(
        json!([t["status"], t["exit_code"], t["stdout"]]),
        json!(["completed", 0, "a b\n"])
    );

    let later = queue_cmd(&s, &token, &dev, "echo later");
    let off = beat("offline", &[]);
    assert_eq!(
        (off["pendingTasks"].clone(), off["deviceStatus"].clone()),
        (json!([]), json!("offline"))
    );
    assert_eq!(status_of(&s, &token, &later), json!("pending"));
    assert_eq!(ids(&beat("online", &[]), "pendingTasks"), [later.as_str()]);
    let third = queue_cmd(&s, &token, &dev, "echo third");
    let p = control(&s, "GET", "/api/control/devices/pending", &key, None);
    assert_eq!(ids(&p, "commands"), [third]);
    let p2 = control(&s, "GET", "/api/control/devices/pending", &key, None);
    assert_eq!(p2["commands"], json!([]));
}

#[test]
fn control_offline_heartbeat_claims_nothing_whatever_its_case() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "box");
    let id = queue_cmd(&s, &token, &dev, "echo hi");
    let b = json!({"status": "Offline", "currentTasks": [], "timestamp": 1_767_000_000_000_i64});
    let hb = control(&s, "POST", "/api/control/devices/heartbeat", &key, Some(b));
    assert_eq!(
        hb["deviceStatus"],
        json!("offline"),
        "the server reads the status case-blind"
    );
    assert_eq!(
        hb["pendingTasks"],
        json!([]),
        "an offline heartbeat's reply is discarded"
    );
    assert_eq!(status_of(&s, &token, &id), json!("pending"));
}

#[test]
fn a_session_owns_its_jobs_and_deleting_it_takes_them() {
    let s = TestServer::start();
    let (a, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &a, "box");
    let r = s.post_json("/api/sessions/new", Some(&a), json!({"name": "work"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let sid = r.body["session"]["id"].as_i64().expect("session id");
    let b = r.body["session"]["token"]
        .as_str()
        .expect("token")
        .to_string();
    let running = queue_cmd(&s, &b, &dev, "sleep 100");
    assert_eq!(
        ids(&pending(&s, &key, "limit=1"), "tasks"),
        [running.as_str()]
    );
    let waiting = queue_cmd(&s, &b, &dev, "echo later");
    let other = queue_cmd(&s, &a, &dev, "echo elsewhere");
    let sorted = |v: &Value| {
        let mut j: Vec<String> = v["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .map(|j| j["job_id"].as_str().expect("job_id").to_string())
            .collect();
        j.sort();
        j
    };
    let mut mine = vec![running.clone(), waiting.clone()];
    mine.sort();
    let detail = s.get(&format!("/api/sessions/{sid}"), Some(&a));
    assert_eq!(
        (detail.status, sorted(&detail.body)),
        (200, mine.clone()),
        "{}",
        detail.text
    );
    let job = detail.body["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| j["job_id"] == json!(running))
        .expect("running job")
        .clone();
    assert_eq!(
        (job["status"].clone(), job["progress"].clone()),
        (json!("running"), json!(0))
    );
    assert_eq!(
        sorted(&s.get("/api/sessions/current/jobs", Some(&b)).body),
        mine
    );
    let list = s.get("/api/sessions", Some(&a));
    let entry = list.body["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|x| x["id"] == json!(sid))
        .expect("listed")
        .clone();
    assert_eq!(entry["job_count"], json!(2), "{}", list.text);

    let del = s.delete(&format!("/api/sessions/{sid}"), Some(&a));
    assert_eq!(
        (del.status, del.body["success"].clone()),
        (200, json!(true)),
        "{}",
        del.text
    );
    assert_v1_error(
        &s.get(&format!("/v1/tasks/{waiting}"), Some(&a)),
        404,
        "NOT_FOUND",
    );
    let t = task(&s, &a, &running);
    assert_eq!(
        (t["status"].clone(), t["session_id"].clone()),
        (json!("cancelled"), Value::Null)
    );
    let hb = heartbeat(
        &s,
        &key,
        json!({"status": "online", "current_tasks": [running]}),
    );
    assert_eq!(hb["cancel_tasks"], json!([running]));
    assert_eq!(
        status_of(&s, &a, &other),
        json!("pending"),
        "other sessions keep their tasks"
    );
    assert_eq!(ids(&pending(&s, &key, "limit=10"), "tasks"), [other]);
}

#[test]
fn daemon_register_is_idempotent_per_machine_id() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let body = json!({"device_name": "laptop", "os_type": "linux", "os_version": "6.8",
                      "arch": "x86_64", "hostname": "lap", "ccjk_version": "3.7.2"});
    let reg = |machine: &str| {
        let auth = format!("Bearer {token}");
        let h = [("Authorization", auth.as_str()), ("X-Device-ID", machine)];
        s.call(
            "POST",
            "/v1/daemon/register",
            &h,
            Some(("application/json", body.to_string().into_bytes())),
        )
    };
    let first = assert_v1_ok(&reg("machine-a"), 201);
    let key = first["device_key"].as_str().expect("key").to_string();
    assert!(
        key.starts_with("ccjk_") && first["config"]["heartbeat_interval"] == json!(30),
        "{first}"
    );
    let again = assert_v1_ok(&reg("machine-a"), 200);
    assert_eq!(
        (&again["device_id"], &again["device_key"]),
        (&first["device_id"], &first["device_key"])
    );
    let other = assert_v1_ok(&reg("machine-b"), 201);
    assert_ne!(other["device_id"], first["device_id"]);
    assert_ne!(other["device_key"], first["device_key"]);
    assert_v1_error(
        &s.post_json("/v1/daemon/register", Some(&token), body.clone()),
        422,
        "VALIDATION_FAILED",
    );
    let list = assert_v1_ok(&s.get("/v1/devices", Some(&token)), 200);
    assert_eq!(
        list["devices"].as_array().expect("devices").len(),
        2,
        "two machines (no device is made at sign-up)"
    );
    assert_eq!(
        heartbeat(&s, &key, json!({"status": "online"}))["device_status"],
        json!("online")
    );
}

#[test]
fn args_come_back_as_sent_and_sane_daemon_times_are_kept() {
    let s = TestServer::start();
    let (token, _, _) = s.register("details@example.com");
    let (dev, key) = new_device(&s, &token, "box");
    let args = json!({"cwd": "/srv/app", "env": {"RUST_LOG": "debug"}, "shell": "bash"});
    let id = queue(
        &s,
        &token,
        json!({"device_id": dev, "command": "cargo test", "args": args}),
    );
    let t = task(&s, &token, &id);
    assert_eq!(t["args"], args, "args are echoed as sent");
    assert_eq!(
        (t["cwd"].clone(), t["env"].clone()),
        (json!("/srv/app"), json!({"RUST_LOG": "debug"}))
    );
    let claimed = pending(&s, &key, "limit=1");
    assert_eq!(claimed["tasks"][0]["args"]["shell"], json!("bash"));
    let claimed_at = task(&s, &token, &id)["started_at"]
        .as_str()
        .expect("started")
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(30));
    let done = ccjk_cloud::time::now();
    let r = report(
        &s,
        &key,
        &id,
        json!({"exit_code": 0, "started_at": claimed_at, "completed_at": done}),
    );
    assert_v1_ok(&r, 200);
    let t = task(&s, &token, &id);
    assert_eq!(
        (t["started_at"].as_str(), t["completed_at"].as_str()),
        (Some(claimed_at.as_str()), Some(done.as_str())),
        "sane times from the daemon are kept"
    );

    // Times from the future or from before the claim are not.
    let id = queue(&s, &token, json!({"device_id": dev, "command": "date"}));
    pending(&s, &key, "limit=1");
    let before = task(&s, &token, &id)["started_at"]
        .as_str()
        .expect("started")
        .to_string();
    let r = report(
        &s,
        &key,
        &id,
        json!({"exit_code": 0, "started_at": "2001-01-01T00:00:00Z",
               "completed_at": "2999-01-01T00:00:00Z"}),
    );
    assert_v1_ok(&r, 200);
    let t = task(&s, &token, &id);
    assert_eq!(t["started_at"].as_str(), Some(before.as_str()));
    let completed = t["completed_at"].as_str().expect("completed");
    assert!(
        completed < "2999" && completed >= before.as_str(),
        "{completed}"
    );
}
