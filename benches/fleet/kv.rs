//! The `kv` phase (README "Performance"): the key-value store under load. Setup: the bench's
//! main process registers 1,000 apps in the database (as `ccjk-cloud app create` would, see
//! `create_apps`); here each app is authorised on one of the 1,000 devices by its owner's
//! session, and each device gets 1,000 keys of 200-byte values by `POST /kv/_batchimport`
//! (keys `p0/k000` … `p9/k099`: ten prefixes of 100 keys) — 1,000,000 keys in all. Then three
//! measured windows, each a closed loop like `hot`:
//! * `get`: `GET /kv/{key}` of a random device's random key on 64 keep-alive connections;
//! * `post`: `POST /kv/{key}` of a 200-byte value over a random existing key on 64 connections
//!   (the server's default `synchronous=FULL`: every answered write is on disk);
//! * `list`: `GET /kv?prefix=pN/&limit=100` (a page of 100 keys with metadata) of a random
//!   device and prefix on one connection, so its latency is the server's, not a queue's.

use crate::client::{self, Conn};
use crate::phases::{self, Closed, Loop};
use crate::setup::Setup;
use crate::stats::{Rng, r1};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Apps registered, one per device.
pub const APPS: usize = 1000;
/// Keys per device, and the bytes of each value as stored.
pub const KEYS: usize = 1000;
pub const VALUE_BYTES: usize = 200;
/// Connections used for setup requests.
const SETUP_CONNS: usize = 8;

/// Registers `APPS` apps straight into the database file of a running server, as
/// `ccjk-cloud app create` does, with the library's own statement (a thousand CLI processes
/// would take longer than the phase). Nothing else is touched, and no migration runs.
pub fn create_apps(db: &std::path::Path) -> Result<(), String> {
    use ccjk_cloud::db::apps::{NewApp, insert};
    let mut c = rusqlite::Connection::open(db).map_err(|e| e.to_string())?;
    c.busy_timeout(Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let tx = c.transaction().map_err(|e| e.to_string())?;
    for i in 0..APPS {
        let (name, site) = (format!("bench-app-{i}"), format!("site_bench{i:06}"));
        let app = NewApp {
            name: &name,
            description: None,
            developer_name: "fleet bench",
            developer_link: None,
            homepage_link: None,
            site_key: &site,
        };
        insert(&tx, &app).map_err(|e| format!("cannot register bench apps: {e}"))?;
    }
    tx.commit().map_err(|e| e.to_string())
}

/// What setup made: one app token per device, and how long it took.
pub struct KvSetup {
    pub tokens: Vec<String>,
    pub seconds_authorize: f64,
    /// Authorisations answered 503 (hashing pool busy) and sent again after a second, as a
    /// client honouring `Retry-After` would: reported, not hidden.
    pub authorize_503: u64,
    pub seconds_import: f64,
}

fn body_json(c: &Conn) -> Value {
    serde_json::from_slice(c.body()).unwrap_or(Value::Null)
}

/// A 200-byte value: as a JSON string in an import (quotes included), raw in a `POST`.
fn value(i: usize) -> String {
    format!("{i:08}{}", "v".repeat(VALUE_BYTES - 8))
}

fn key(j: usize) -> String {
    format!("p{}/k{:03}", j / 100, j % 100)
}

/// Runs `f(i, conn)` for `i in 0..n` on `SETUP_CONNS` connections.
fn parallel(
    addr: SocketAddr,
    n: usize,
    f: impl Fn(usize, &mut Conn) -> Result<(), String> + Send + Sync + 'static,
) -> Result<(), String> {
    let f = Arc::new(f);
    let handles: Vec<_> = (0..SETUP_CONNS)
        .map(|t| {
            let f = f.clone();
            thread::spawn(move || -> Result<(), String> {
                let mut c = Conn::new(addr, Duration::from_secs(60));
                for i in (t..n).step_by(SETUP_CONNS) {
                    f(i, &mut c)?;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| "a setup thread panicked".to_string())??;
    }
    Ok(())
}

/// Authorises app i on device i and imports its keys. Errors: the server refused something
/// (the message says what), or it has no KV routes.
pub fn setup(addr: SocketAddr, s: &Setup) -> Result<KvSetup, String> {
    let mut c = Conn::new(addr, Duration::from_secs(30));
    let mut apps: Vec<i64> = Vec::new();
    while apps.len() < APPS {
        // Pages of 100: tiny_http sends answers of 32 KiB or more chunked, which the bench's
        // client does not read.
        let path = format!("/apps?limit=100&offset={}", apps.len());
        let status = c
            .request(&client::get(&path, None))
            .map_err(|e| e.to_string())?;
        let v = body_json(&c);
        let page: Vec<i64> = v["apps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["id"].as_i64())
            .collect();
        if status != 200 || page.is_empty() {
            return Err(format!("GET {path}: {status}; {} apps found", apps.len()));
        }
        apps.extend(page);
    }
    let n = s.devices.len().min(APPS);
    let jobs: Arc<Vec<(i64, String, String)>> = Arc::new(
        (0..n)
            .map(|i| {
                let d = &s.devices[i];
                (apps[i], d.id.clone(), s.users[d.user].token.clone())
            })
            .collect(),
    );
    let tokens = Arc::new(std::sync::Mutex::new(vec![String::new(); n]));
    let busy = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let (j2, t2, b2) = (jobs.clone(), tokens.clone(), busy.clone());
    parallel(addr, n, move |i, c| {
        let (app, dev, session) = &j2[i];
        let body = json!({"deviceUuid": dev, "readOnly": false, "note": "bench"}).to_string();
        let req = client::post(&format!("/apps/{app}/authorize"), Some(session), &body);
        // The route runs on the hashing pool (SCHED_IDLE threads): on a busy machine it may
        // answer 503 with Retry-After, as a client would see; retry like one, and count it.
        let mut status = c.request(&req).map_err(|e| e.to_string())?;
        for _ in 0..30 {
            if status != 503 {
                break;
            }
            b2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            thread::sleep(Duration::from_secs(1));
            status = c.request(&req).map_err(|e| e.to_string())?;
        }
        let v = body_json(c);
        match (status, v["token"].as_str()) {
            (201, Some(t)) => {
                t2.lock().unwrap_or_else(|p| p.into_inner())[i] = t.to_string();
                Ok(())
            }
            _ => Err(format!("authorize: {status} {v}")),
        }
    })?;
    let seconds_authorize = start.elapsed().as_secs_f64();
    let tokens: Vec<String> =
        std::mem::take(&mut *tokens.lock().unwrap_or_else(|p| p.into_inner()));
    let start = Instant::now();
    let toks = Arc::new(tokens.clone());
    parallel(addr, n, move |i, c| {
        let mut m = serde_json::Map::new();
        for j in 0..KEYS {
            // A JSON string of 198 characters is stored as 200 bytes (its quotes included).
            m.insert(
                key(j),
                Value::String(value(j)[..VALUE_BYTES - 2].to_string()),
            );
        }
        let body = Value::Object(m).to_string();
        let status = c
            .request(&client::post("/kv/_batchimport", Some(&toks[i]), &body))
            .map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!(
                "import: {status} {}",
                String::from_utf8_lossy(c.body())
            ));
        }
        Ok(())
    })?;
    Ok(KvSetup {
        tokens,
        seconds_authorize,
        authorize_503: busy.load(std::sync::atomic::Ordering::Relaxed),
        seconds_import: start.elapsed().as_secs_f64(),
    })
}

/// A complete `POST /kv/{key}` of a raw text value.
fn post_value(path: &str, token: &str, value: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{value}",
        value.len()
    )
    .into_bytes()
}

/// The request pairs of each window, pre-formatted: random devices and keys.
pub fn loops(k: &KvSetup) -> [Loop; 3] {
    let mut rng = Rng::new(42);
    let n = k.tokens.len();
    let mut pick = || (rng.below(n), rng.below(KEYS), rng.below(10));
    let (mut gets, mut posts, mut lists) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..4096 {
        let (mut g, mut p, mut l) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..2 {
            let (d, j, prefix) = pick();
            let t = &k.tokens[d];
            g.push(client::get(
                &format!("/kv/{}", key(j).replace('/', "%2F")),
                Some(t),
            ));
            let path = format!("/kv/{}", key(j).replace('/', "%2F"));
            p.push(post_value(&path, t, &value(i)));
            l.push(client::get(
                &format!("/kv?prefix=p{prefix}/&limit=100"),
                Some(t),
            ));
        }
        let two = |v: Vec<Vec<u8>>| -> [Vec<u8>; 2] {
            let mut it = v.into_iter();
            [it.next().unwrap_or_default(), it.next().unwrap_or_default()]
        };
        gets.push(two(g));
        posts.push(two(p));
        lists.push(two(l));
    }
    [
        Loop {
            names: ["get", "get_b"],
            reqs: Arc::new(gets),
        },
        Loop {
            names: ["post", "post_b"],
            reqs: Arc::new(posts),
        },
        Loop {
            names: ["list", "list_b"],
            reqs: Arc::new(lists),
        },
    ]
}

/// One window: `conns` connections in a closed loop over `l`; both requests of a pair count,
/// as one endpoint named `l.names[0]`.
pub fn window(
    addr: SocketAddr,
    pid: &str,
    l: &Loop,
    conns: usize,
    warmup: Duration,
    dur: Duration,
    tck: f64,
) -> Value {
    let c: Closed = phases::closed_loop(addr, pid, l, conns, warmup, dur, tck);
    c.json_one(l.names[0])
}

/// The setup's figures.
pub fn setup_json(k: &KvSetup) -> Value {
    let keys = (k.tokens.len() * KEYS) as f64;
    json!({
        "apps": APPS,
        "devices": k.tokens.len(),
        "keys": keys,
        "value_bytes": VALUE_BYTES,
        "seconds_authorize": r1(k.seconds_authorize),
        "authorize_503_retried": k.authorize_503,
        "seconds_import": r1(k.seconds_import),
        "import_keys_per_s": (keys / k.seconds_import.max(1e-9)).round(),
    })
}
