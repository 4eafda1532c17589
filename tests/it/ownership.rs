//! Ownership on every route that takes an id in its path (the rule of every route: another
//! user's id answers exactly like a missing one and changes nothing). The matrix is read from
//! the route table: a route with a path parameter must have a case here, unless its family
//! has its own matrix (`kv_ownership`: `/apps`, `/kv` and a device's KV; `vault_ownership`:
//! sites and accounts). Bob calls each route with each of Alice's ids, with his session token
//! (person routes) or his device key (daemon routes), and the answer must equal the one for a
//! missing id; then Alice's data is checked to be as she left it.

use crate::common::{Resp, TestServer, assert_v1_ok};
use crate::ops_util::{META_GZ, get_bytes, multipart, multipart_type};
use crate::queue_util::{new_device, pending, queue_cmd};
use ccjk_cloud::http::route::{Auth, Method, Route};
use serde_json::{Value, json};

/// Routes whose ownership another test's matrix covers.
fn covered_elsewhere(r: &Route) -> bool {
    r.family == ccjk_cloud::http::family::Family::Kv
        || r.path.contains("/kv")
        || r.path.starts_with("/v1/sites/")
        || r.path.starts_with("/v1/accounts/")
        || r.path == "/assets/{name}"
}

/// Alice's ids, by what the parameter names.
struct Ids {
    device: String,
    task: String,
    session: String,
    api_key: String,
    backup: String,
    log: String,
    message: String,
    mail: String,
}

const MISSING_UUID: &str = "00000000-0000-4000-8000-000000000000";

impl Ids {
    fn missing() -> Ids {
        Ids {
            device: MISSING_UUID.into(),
            task: MISSING_UUID.into(),
            session: "999999".into(),
            api_key: "999999".into(),
            backup: "999999".into(),
            log: "999999".into(),
            message: "999999".into(),
            mail: "999999".into(),
        }
    }

    /// The id route `r` takes, and the body it is sent with (valid, so that only the id
    /// decides the answer).
    fn request(&self, r: &Route) -> (String, Option<Value>) {
        let id = match r.path {
            p if p.starts_with("/v1/devices/") || p.starts_with("/v1/stats/device/") => {
                &self.device
            }
            p if p.starts_with("/v1/email/config/") => &self.device,
            p if p.starts_with("/v1/sessions/") || p.starts_with("/api/sessions/") => &self.session,
            p if p.starts_with("/v1/api-keys/") => &self.api_key,
            p if p.contains("/backups/") || p.contains("/restore/") => &self.backup,
            p if p.starts_with("/v1/logs/") => &self.log,
            p if p.starts_with("/v1/messages/") => &self.message,
            p if p.starts_with("/v1/email/outbox/") => &self.mail,
            p if p.contains("tasks/") || p.contains("/commands/") => &self.task,
            p => panic!("no ownership case for {:?} {p}: add one", r.method),
        };
        let path = r.path.replace("{id}", id).replace("{device_id}", id);
        let body = match (r.method, r.path) {
            (Method::Get | Method::Delete, _) => None,
            (_, p) if p.ends_with("/progress") => Some(json!({"progress": 50, "stdout": "x"})),
            (_, p) if p.ends_with("/result") => Some(
                json!({"status": "completed", "exit_code": 0, "stdout": "", "stderr": "", "success": true, "exitCode": 0}),
            ),
            (Method::Patch, "/v1/devices/{id}/config") => {
                Some(json!({"config": {"max_concurrent_tasks": 2}}))
            }
            (Method::Patch, _) => Some(json!({"name": "pwned"})),
            (Method::Post, _) => Some(json!({})),
            (m, p) => panic!("no body for {m:?} {p}: add one"),
        };
        (path, body)
    }
}

/// An answer with what differs between any two requests (ids and times of the request) left
/// out.
fn comparable(r: &Resp) -> (u16, Value) {
    fn strip(v: &mut Value) {
        if let Value::Object(m) = v {
            for k in ["meta", "request_id", "timestamp"] {
                m.remove(k);
            }
            m.values_mut().for_each(strip);
        }
    }
    let mut body = r.body.clone();
    strip(&mut body);
    (r.status, body)
}

#[test]
fn another_users_ids_answer_like_missing_ones_on_every_route() {
    let s = TestServer::start_with(|c| {
        c.rate_limit_user = 0;
        c.rate_limit_daemon = 0;
    });
    let (alice, _, _) = s.register("alice@example.com");
    let (bob, _, _) = s.register("bob@example.com");
    let (a_dev, a_key) = new_device(&s, &alice, "alice-laptop");
    let (_, b_key) = new_device(&s, &bob, "bob-laptop");
    let a = Some(alice.as_str());

    // Alice's data: a running task, a finished one (its message), a backup, a log, a mail, an
    // e-mail config on her device, an API key and her session.
    let done = queue_cmd(&s, &alice, &a_dev, "echo done");
    pending(&s, &a_key, "limit=1");
    let r = s.post_json(
        &format!("/v1/daemon/tasks/{done}/result"),
        Some(&a_key),
        json!({"status": "completed", "exit_code": 0, "stdout": "done\n", "stderr": ""}),
    );
    assert_v1_ok(&r, 200);
    let task = queue_cmd(&s, &alice, &a_dev, "sleep 60");
    pending(&s, &a_key, "limit=1");
    let messages = assert_v1_ok(&s.get("/v1/messages", a), 200);
    let message = messages["messages"][0]["id"].to_string();
    let backup = s.post_json(
        "/v1/config/backup",
        a,
        json!({"device_id": a_dev, "config_name": "alice", "config_data": {"v": 1}}),
    );
    let backup = assert_v1_ok(&backup, 201)["backup"]["id"].to_string();
    let log = multipart(
        &[
            ("metadata", None, META_GZ),
            ("log_file", Some("d.log.gz"), &[0x1f, 0x8b, 0, 0]),
        ],
        false,
    );
    let auth = format!("Bearer {a_key}");
    let log = s.call(
        "POST",
        "/v1/daemon/logs",
        &[("Authorization", &auth)],
        Some((&multipart_type(), log)),
    );
    let log = assert_v1_ok(&log, 201)["log"]["id"].to_string();
    let mail = json!({"to": "alice@example.com", "subject": "hi", "text": "hello"});
    let mail = assert_v1_ok(&s.post_json("/v1/email/send", a, mail), 202)["mail"]["id"].to_string();
    let config = json!({"device_id": a_dev, "email_address": "alice@corp.example"});
    assert_v1_ok(&s.post_json("/v1/email/config", a, config), 200);
    let (api_key, _) = s.create_api_key(&alice, &["user:read"]);
    let sessions = assert_v1_ok(&s.get("/v1/sessions", a), 200);
    let session = sessions["sessions"][0]["id"].to_string();
    let ids = Ids {
        device: a_dev.clone(),
        task: task.clone(),
        session,
        api_key: api_key.to_string(),
        backup,
        log,
        message,
        mail,
    };

    let table = ccjk_cloud::http::routes::table();
    let routes: Vec<&Route> = table
        .routes()
        .iter()
        .filter(|r| r.path.contains('{') && !covered_elsewhere(r))
        .collect();
    assert!(
        routes.len() >= 30,
        "the routes with an id: {}",
        routes.len()
    );
    for r in routes {
        let who = match r.auth {
            Auth::Device => &b_key,
            _ => &bob,
        };
        let send = |(path, body): (String, Option<Value>)| {
            let method = r.method.lower().to_uppercase();
            s.json(&method, &path, Some(who), body.as_ref())
        };
        let theirs = send(ids.request(r));
        let missing = send(Ids::missing().request(r));
        assert!(
            theirs.status == 404,
            "{:?} {} with Alice's id: {} {}",
            r.method,
            r.path,
            theirs.status,
            theirs.text
        );
        assert_eq!(
            comparable(&theirs),
            comparable(&missing),
            "{:?} {}: Alice's id answered unlike a missing one",
            r.method,
            r.path
        );
    }

    // Alice's data is as she left it.
    let t = assert_v1_ok(&s.get(&format!("/v1/tasks/{task}"), a), 200);
    assert_eq!(t["task"]["status"], json!("running"));
    let d = assert_v1_ok(&s.get(&format!("/v1/devices/{a_dev}"), a), 200);
    assert_eq!(d["device"]["name"], json!("alice-laptop"));
    assert_v1_ok(&s.get("/v1/auth/me", a), 200);
    let v = s.get(&format!("/auth/verify?device_key={a_key}"), None);
    assert_eq!(crate::common::assert_lite_ok(&v)["valid"], json!(true));
    let keys = assert_v1_ok(&s.get("/v1/api-keys", a), 200);
    assert!(keys["api_keys"][0]["revoked_at"].is_null(), "{keys}");
    let b = assert_v1_ok(
        &s.get(&format!("/v1/config/backups/{}", ids.backup), a),
        200,
    );
    assert_eq!(b["backup"]["config_name"], json!("alice"));
    let log = get_bytes(&s, &format!("/v1/logs/{}", ids.log), &alice);
    assert_eq!((log.status, log.body), (200, vec![0x1f, 0x8b, 0, 0]));
    let m = assert_v1_ok(&s.get("/v1/messages", a), 200);
    assert_eq!(m["messages"][0]["read"], json!(false), "{m}");
    assert_v1_ok(&s.get(&format!("/v1/email/config/{a_dev}"), a), 200);
}
