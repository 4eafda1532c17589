//! Setup: waits for the server, registers the bench users (sequentially: each registration hashes
//! a password with argon2id) and creates their devices (one connection per user, in parallel),
//! then pre-formats every device's requests so the phases only copy bytes.

use crate::client::{self, Conn};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "bench-password-0123456789";
pub const HEARTBEAT_BODY: &str = r#"{"status":"online","current_tasks":[],"system_info":{}}"#;

pub struct User {
    pub email: String,
    pub token: String,
}

pub struct Device {
    pub id: String,
    pub user: usize,
    pub key: String,
    /// `POST /v1/daemon/heartbeat` with no current task.
    pub heartbeat: Vec<u8>,
    /// `GET /v1/daemon/tasks/pending?limit=10&wait=0`.
    pub poll: Vec<u8>,
}

pub struct Setup {
    pub users: Vec<User>,
    pub devices: Vec<Device>,
    pub seconds: f64,
    /// Why there are no devices (the daemon routes answered 404), if so.
    pub missing: Option<String>,
}

/// Polls `GET /health` until it answers 200 or `limit` passes.
pub fn wait_healthy(addr: SocketAddr, limit: Duration) -> Result<(), String> {
    let start = Instant::now();
    let req = client::get("/health", None);
    loop {
        let mut c = Conn::new(addr, Duration::from_secs(2));
        match c.request(&req) {
            Ok(200) => return Ok(()),
            r if start.elapsed() > limit => {
                return Err(format!("server at {addr} not healthy: {r:?}"));
            }
            _ => thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn data(c: &Conn) -> Result<Value, String> {
    let v: Value =
        serde_json::from_slice(c.body()).map_err(|e| format!("response is not JSON: {e}"))?;
    Ok(v.get("data").cloned().unwrap_or(Value::Null))
}

fn text(v: &Value, ptr: &str) -> Result<String, String> {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("no {ptr} in {v}"))
}

/// Registers `users` accounts and creates `per_user` devices for each.
pub fn run(addr: SocketAddr, users: usize, per_user: usize) -> Result<Setup, String> {
    let start = Instant::now();
    let mut c = Conn::new(addr, Duration::from_secs(30));
    let mut list = Vec::new();
    for i in 0..users {
        let email = format!("bench{i}@example.com");
        let body = serde_json::json!({"email": email, "password": PASSWORD}).to_string();
        let status = c
            .request(&client::post("/v1/auth/register", None, &body))
            .map_err(|e| e.to_string())?;
        if status != 201 {
            return Err(format!(
                "register {email}: {status} {}",
                String::from_utf8_lossy(c.body())
            ));
        }
        list.push(User {
            email,
            token: text(&data(&c)?, "/token")?,
        });
    }
    // Probe the device route once before starting the parallel creation.
    let probe = client::post(
        "/v1/devices",
        Some(&list[0].token),
        r#"{"name":"bench-probe"}"#,
    );
    let status = c.request(&probe).map_err(|e| e.to_string())?;
    if status == 404 || status == 405 {
        return Ok(Setup {
            users: list,
            devices: Vec::new(),
            seconds: start.elapsed().as_secs_f64(),
            missing: Some(format!("POST /v1/devices answered {status}")),
        });
    }
    let first = device(&c, status, 0)?;
    let handles: Vec<_> = list
        .iter()
        .enumerate()
        .map(|(u, user)| {
            let token = user.token.clone();
            let n = if u == 0 { per_user - 1 } else { per_user };
            thread::spawn(move || -> Result<Vec<Device>, String> {
                let mut c = Conn::new(addr, Duration::from_secs(30));
                let mut out = Vec::with_capacity(n);
                for d in 0..n {
                    let body = format!(r#"{{"name":"bench-{u}-{d}"}}"#);
                    let status = c
                        .request(&client::post("/v1/devices", Some(&token), &body))
                        .map_err(|e| e.to_string())?;
                    out.push(device(&c, status, u)?);
                }
                Ok(out)
            })
        })
        .collect();
    let mut devices = vec![first];
    for h in handles {
        devices.extend(
            h.join()
                .map_err(|_| "device thread panicked".to_string())??,
        );
    }
    Ok(Setup {
        users: list,
        devices,
        seconds: start.elapsed().as_secs_f64(),
        missing: None,
    })
}

/// One more device for user `user` (its index in `Setup::users`), named `name`.
pub fn new_device(
    addr: SocketAddr,
    users: &[User],
    user: usize,
    name: &str,
) -> Result<Device, String> {
    let token = &users.get(user).ok_or("no such user")?.token;
    let mut c = Conn::new(addr, Duration::from_secs(10));
    let body = json!({ "name": name }).to_string();
    let status = c
        .request(&client::post("/v1/devices", Some(token), &body))
        .map_err(|e| e.to_string())?;
    device(&c, status, user)
}

fn device(c: &Conn, status: u16, user: usize) -> Result<Device, String> {
    if status != 201 {
        return Err(format!(
            "POST /v1/devices: {status} {}",
            String::from_utf8_lossy(c.body())
        ));
    }
    let d = data(c)?;
    let (id, key) = (text(&d, "/device/id")?, text(&d, "/device_key")?);
    Ok(Device {
        heartbeat: client::post("/v1/daemon/heartbeat", Some(&key), HEARTBEAT_BODY),
        poll: client::get("/v1/daemon/tasks/pending?limit=10&wait=0", Some(&key)),
        id,
        user,
        key,
    })
}
