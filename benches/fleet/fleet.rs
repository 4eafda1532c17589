//! The `fleet` phase: every device runs as a daemon with two keep-alive connections, one
//! long-polling `GET /v1/daemon/tasks/pending?wait=30` and one for heartbeats every 2 s (jittered
//! start) and task results. A producer queues tasks with `POST /v1/tasks` at a steady rate to
//! random devices, noting when each was sent; a daemon notes when a task reached it and posts
//! its result at once. Dispatch latency is receipt − send. Every received task id goes into one
//! shared map, so a task handed out twice (or to the wrong device) is caught. Server CPU is
//! measured over the producer's window, after a warm-up in which every daemon has connected and
//! heartbeated once.

use crate::client::{self, Conn, Registry};
use crate::phases::{sleep_until, spawn};
use crate::procfs::{self, Snap};
use crate::setup::Setup;
use crate::stats::{Lat, Pacer, Rng, r1};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Params {
    pub warmup: Duration,
    pub window: Duration,
    pub tasks_per_s: f64,
    pub heartbeat_every: Duration,
    pub wait_s: u32,
}

const RESULT_BODY: &str = r#"{"status":"completed","exit_code":0,"stdout":"ok","stderr":""}"#;

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Task id → (receipt, device index) of its first receipt.
    claims: Mutex<HashMap<String, (Instant, usize)>>,
    twice: Mutex<Vec<String>>,
    completed: AtomicU64,
    result_failed: AtomicU64,
    connected: AtomicUsize,
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Task ids in a `/v1` pending-tasks response (also the closed phase's).
pub fn task_ids(body: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let tasks = v.pointer("/data/tasks").and_then(Value::as_array);
    tasks
        .into_iter()
        .flatten()
        .filter_map(|t| match t.get("id")? {
            Value::String(s) => Some(s.clone()),
            n @ Value::Number(_) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

pub fn run(addr: SocketAddr, pid: &str, setup: &Setup, p: &Params, tck: f64) -> Value {
    let n = setup.devices.len();
    let sh = Arc::new(Shared::default());
    let reg: Registry = Arc::default();
    let start = Instant::now();
    let (window_start, window_end) = (start + p.warmup, start + p.warmup + p.window);
    let mut pollers = Vec::with_capacity(n);
    let mut beaters = Vec::with_capacity(n);
    for (i, d) in setup.devices.iter().enumerate() {
        let (tx, rx) = mpsc::channel::<String>();
        let poll = client::get(
            &format!("/v1/daemon/tasks/pending?limit=10&wait={}", p.wait_s),
            Some(&d.key),
        );
        let timeout = Duration::from_secs(u64::from(p.wait_s) + 15);
        let (sh2, reg2) = (sh.clone(), reg.clone());
        let stagger = Duration::from_secs(1).mul_f64(i as f64 / n as f64);
        pollers.push(spawn(move || {
            let mut c = Conn::new(addr, timeout).with_registry(reg2);
            sleep_until(start + stagger);
            if c.open_served(client::PROBE, client::PROBE_WAIT) {
                sh2.connected.fetch_add(1, Relaxed);
            }
            let mut lat = Lat::with_capacity(64);
            while !sh2.stop.load(Relaxed) {
                let t0 = Instant::now();
                let s = c.request(&poll);
                let got = Instant::now();
                if sh2.stop.load(Relaxed) {
                    break; // the socket was shut down under the request
                }
                if let Ok(200) = s {
                    for id in task_ids(c.body()) {
                        let first = lock(&sh2.claims).insert(id.clone(), (got, i));
                        if first.is_some() {
                            lock(&sh2.twice).push(id.clone());
                        }
                        let _ = tx.send(id);
                    }
                } else if s.is_err() && !sh2.stop.load(Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                lat.record(t0, s);
            }
            let last = c.last_error.filter(|_| lat.errors > 0);
            (lat, c.reconnects, c.unserved, last)
        }));
        let (sh2, reg2, key, hb) = (sh.clone(), reg.clone(), d.key.clone(), d.heartbeat.clone());
        let every = p.heartbeat_every;
        let mut rng = Rng::new(i as u64 + 1000);
        let jitter = every.mul_f64(rng.below(1000) as f64 / 1000.0);
        beaters.push(spawn(move || {
            let mut c = Conn::new(addr, Duration::from_secs(10)).with_registry(reg2);
            let (mut hb_lat, mut res_lat) = (Lat::with_capacity(64), Lat::with_capacity(16));
            let mut in_window = 0u64;
            let mut next = start + jitter;
            let mut rx = Some(rx);
            while !sh2.stop.load(Relaxed) {
                let now = Instant::now();
                if now >= next {
                    let s = c.request(&hb);
                    if sh2.stop.load(Relaxed) {
                        break;
                    }
                    if (window_start..window_end).contains(&now) {
                        in_window += 1;
                    }
                    hb_lat.record(now, s);
                    next += every;
                    if next < now {
                        next = now + every;
                    }
                    continue;
                }
                let wait = (next - now).min(Duration::from_millis(100));
                let Some(r) = &rx else {
                    std::thread::sleep(wait);
                    continue;
                };
                match r.recv_timeout(wait) {
                    Ok(id) => {
                        let req = client::post(
                            &format!("/v1/daemon/tasks/{id}/result"),
                            Some(&key),
                            RESULT_BODY,
                        );
                        let t0 = Instant::now();
                        let s = c.request(&req);
                        if sh2.stop.load(Relaxed) {
                            break;
                        }
                        match s {
                            Ok(200) => sh2.completed.fetch_add(1, Relaxed),
                            _ => sh2.result_failed.fetch_add(1, Relaxed),
                        };
                        res_lat.record(t0, s);
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => rx = None,
                }
            }
            let last = c.last_error.filter(|_| hb_lat.errors + res_lat.errors > 0);
            (hb_lat, res_lat, in_window, c.reconnects, c.unserved, last)
        }));
    }
    // The producer.
    let created: Arc<Mutex<Vec<(String, Instant, usize)>>> = Arc::default();
    let reqs: Vec<(String, usize)> = setup
        .devices
        .iter()
        .map(|d| (d.id.clone(), d.user))
        .collect();
    let tokens: Vec<String> = setup.users.iter().map(|u| u.token.clone()).collect();
    let created2 = created.clone();
    let every = Duration::from_secs_f64(1.0 / p.tasks_per_s);
    let producer = spawn(move || {
        let mut c = Conn::new(addr, Duration::from_secs(10));
        c.open_served(client::PROBE, client::PROBE_WAIT);
        let mut rng = Rng::new(7);
        let (mut lat, mut max_lag) = (Lat::with_capacity(4096), Duration::ZERO);
        let mut pacer = Pacer::new(window_start, every);
        loop {
            let tick = pacer.wait();
            if tick >= window_end {
                break;
            }
            let d = rng.below(reqs.len());
            let body = json!({"device_id": reqs[d].0, "command": "echo bench", "type": "bash"})
                .to_string();
            let req = client::post("/v1/tasks", Some(&tokens[reqs[d].1]), &body);
            let t0 = Instant::now();
            max_lag = max_lag.max(t0 - tick);
            let s = c.request(&req);
            if let Ok(201) = s
                && let Ok(v) = serde_json::from_slice::<Value>(c.body())
                && let Some(id) = v.pointer("/data/task_id").or_else(|| v.pointer("/data/id"))
            {
                let id = id.as_str().map_or_else(|| id.to_string(), str::to_owned);
                lock(&created2).push((id, t0, d));
            }
            lat.record(t0, s);
        }
        (lat, max_lag, c.unserved)
    });
    sleep_until(window_start);
    let connected_at_window = sh.connected.load(Relaxed);
    let before = Snap::take(pid);
    sleep_until(window_end);
    let after = Snap::take(pid);
    let mem = procfs::mem(pid).unwrap_or_default();
    let (mut create_lat, max_lag, producer_unserved) = producer.join().unwrap_or_default();
    // Drain: give the last tasks time to be claimed and completed.
    let drain_start = Instant::now();
    let total = lock(&created).len();
    while drain_start.elapsed() < Duration::from_secs(5) {
        let claimed = lock(&sh.claims).len();
        let done = (sh.completed.load(Relaxed) + sh.result_failed.load(Relaxed)) as usize;
        if claimed >= total && done >= claimed {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let drain_secs = drain_start.elapsed().as_secs_f64();
    sh.stop.store(true, Relaxed);
    for s in lock(&reg).drain(..) {
        let _ = s.shutdown(Shutdown::Both);
    }
    let (mut poll_lat, mut hb_lat, mut res_lat) = (Lat::default(), Lat::default(), Lat::default());
    let (mut reconnects, mut hb_in_window) = (0, 0);
    let (mut samples, mut unserved) = (Vec::new(), producer_unserved);
    for h in pollers {
        if let Ok((l, r, un, last)) = h.join() {
            unserved += un;
            samples.extend(last);
            poll_lat.merge(l);
            reconnects += r;
        }
    }
    for h in beaters {
        if let Ok((hl, rl, w, r, un, last)) = h.join() {
            unserved += un;
            samples.extend(last);
            hb_lat.merge(hl);
            res_lat.merge(rl);
            hb_in_window += w;
            reconnects += r;
        }
    }
    let errors = poll_lat.errors + hb_lat.errors + res_lat.errors + create_lat.errors;
    samples.sort();
    samples.dedup();
    samples.truncate(5);
    let claims = lock(&sh.claims);
    let created = lock(&created);
    let mut dispatch = Lat::with_capacity(created.len());
    let (mut unclaimed, mut wrong_device) = (0, 0);
    for (id, sent, dev) in created.iter() {
        match claims.get(id) {
            Some((got, by)) => {
                dispatch.us.push(
                    got.saturating_duration_since(*sent)
                        .as_micros()
                        .min(u32::MAX as u128) as u32,
                );
                if by != dev {
                    wrong_device += 1;
                }
            }
            None => unclaimed += 1,
        }
    }
    let twice = lock(&sh.twice).clone();
    for l in [
        &mut dispatch,
        &mut create_lat,
        &mut poll_lat,
        &mut hb_lat,
        &mut res_lat,
    ] {
        l.finish();
    }
    let u = before.usage_until(&after, tck);
    let mut v = json!({
        "daemons": n,
        "connections": 2 * n,
        "poll_connected_at_window": connected_at_window,
        "window_seconds": r1(u.seconds),
        "tasks_per_s_target": p.tasks_per_s,
        "heartbeat_every_s": p.heartbeat_every.as_secs_f64(),
        "long_poll_wait_s": p.wait_s,
        "tasks_created": created.len(),
        "tasks_claimed": claims.len(),
        "tasks_completed": sh.completed.load(Relaxed),
        "results_failed": sh.result_failed.load(Relaxed),
        "tasks_unclaimed": unclaimed,
        "tasks_claimed_twice": twice.len(),
        "claimed_twice_ids": twice.iter().take(10).collect::<Vec<_>>(),
        "tasks_claimed_by_wrong_device": wrong_device,
        "dispatch": dispatch.json(),
        "create": create_lat.json(),
        "producer_max_lag_ms": r1(max_lag.as_secs_f64() * 1000.0),
        "heartbeats_per_s": r1(hb_in_window as f64 / u.seconds),
        "heartbeat": hb_lat.json(),
        "poll": poll_lat.json(),
        "result": res_lat.json(),
        "errors": errors,
        "reconnects": reconnects,
        "unserved_connections": unserved,
        "error_samples": samples,
        "drain_seconds": r1(drain_secs),
    });
    if let serde_json::Value::Object(m) = &mut v {
        m.extend(procfs::usage_fields(&u, &mem));
    }
    v
}
