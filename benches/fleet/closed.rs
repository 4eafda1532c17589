//! The `closed` phase (README "Performance", "closed loop, 1,000 daemons on 64 connections and 200
//! tasks/s"): the 1,000 devices are multiplexed on 64 keep-alive connections, each connection
//! serving its ~16 devices in turn in a closed loop: heartbeat, poll, and a result for every task
//! the poll handed out. A multiplexed connection cannot park, so the poll is immediate
//! (`wait=0`): a device is polled again as soon as its turn comes back. 16 producer connections
//! queue 200 tasks/s in all (`POST /v1/tasks`, random devices) for the window; the daemons go on
//! for up to 5 s after it so the last tasks can be claimed. All 80 connections are opened at
//! once at the start, the burst in which tiny_http's pool race strands connections: one the
//! server leaves unserved is counted (a failure of the run) and its devices are never polled.
//! Reported: tasks created / claimed / unclaimed at the end (≤ 1 % unclaimed), dispatch p99
//! from `POST /v1/tasks` sent to the poll that handed the task out (≤ 500 ms), unserved
//! connections (0), tasks handed out twice or to the wrong device (0).

use crate::client::{self, Conn};
use crate::fleet::{lock, task_ids};
use crate::phases::{sleep_until, spawn};
use crate::procfs::{self, Snap};
use crate::setup::Setup;
use crate::stats::{Lat, Pacer, Rng, r1};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Params {
    pub conns: usize,
    pub producers: usize,
    pub tasks_per_s: f64,
    pub warmup: Duration,
    pub window: Duration,
    pub drain: Duration,
}

const RESULT_BODY: &str = r#"{"status":"completed","exit_code":0,"stdout":"ok","stderr":""}"#;

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Task id → (receipt, device index) of its first receipt.
    claims: Mutex<HashMap<String, (Instant, usize)>>,
    twice: Mutex<Vec<String>>,
    completed: AtomicU64,
}

/// What one daemon connection reports.
struct Daemons {
    hb: Lat,
    poll: Lat,
    result: Lat,
    unserved: u64,
    errors: u64,
    reconnects: u64,
    last: Option<String>,
}

pub fn run(addr: SocketAddr, pid: &str, setup: &Setup, p: &Params, tck: f64) -> Value {
    let sh = Arc::new(Shared::default());
    let start = Instant::now();
    let (window_start, window_end) = (start + p.warmup, start + p.warmup + p.window);
    let stop_by = window_end + p.drain;
    let mut daemons = Vec::with_capacity(p.conns);
    for k in 0..p.conns {
        // Devices k, k + conns, k + 2 conns, ...: (index, key, heartbeat, poll).
        let mine: Vec<(usize, String, Vec<u8>, Vec<u8>)> = (k..setup.devices.len())
            .step_by(p.conns)
            .map(|i| {
                let d = &setup.devices[i];
                (i, d.key.clone(), d.heartbeat.clone(), d.poll.clone())
            })
            .collect();
        let sh2 = sh.clone();
        daemons.push(spawn(move || {
            let mut c = Conn::new(addr, Duration::from_secs(10));
            let mut out = Daemons {
                hb: Lat::with_capacity(1 << 14),
                poll: Lat::with_capacity(1 << 14),
                result: Lat::with_capacity(256),
                unserved: 0,
                errors: 0,
                reconnects: 0,
                last: None,
            };
            if c.open_served(client::PROBE, client::PROBE_WAIT) {
                'outer: while !sh2.stop.load(Relaxed) {
                    for (i, key, hb, poll) in &mine {
                        if sh2.stop.load(Relaxed) || Instant::now() >= stop_by {
                            break 'outer;
                        }
                        let t0 = Instant::now();
                        let s = c.request(hb);
                        out.hb.record(t0, s);
                        let t0 = Instant::now();
                        let s = c.request(poll);
                        let got = Instant::now();
                        out.poll
                            .record(t0, s.as_ref().map(|s| *s).map_err(clone_err));
                        if let Ok(200) = s {
                            for id in task_ids(c.body()) {
                                if lock(&sh2.claims).insert(id.clone(), (got, *i)).is_some() {
                                    lock(&sh2.twice).push(id.clone());
                                }
                                let req = client::post(
                                    &format!("/v1/daemon/tasks/{id}/result"),
                                    Some(key),
                                    RESULT_BODY,
                                );
                                let t0 = Instant::now();
                                let s = c.request(&req);
                                if let Ok(200) = s {
                                    sh2.completed.fetch_add(1, Relaxed);
                                }
                                out.result.record(t0, s);
                            }
                        }
                    }
                }
            }
            out.unserved = c.unserved;
            out.errors = c.errors;
            out.reconnects = c.reconnects;
            out.last = c.last_error.clone();
            out
        }));
    }
    // The producers: `tasks_per_s` in all, spread evenly, from the start of the window.
    let created: Arc<Mutex<Vec<(String, Instant, usize)>>> = Arc::default();
    let targets: Arc<Vec<(String, usize)>> = Arc::new(
        setup
            .devices
            .iter()
            .map(|d| (d.id.clone(), d.user))
            .collect(),
    );
    let tokens: Arc<Vec<String>> = Arc::new(setup.users.iter().map(|u| u.token.clone()).collect());
    let every = Duration::from_secs_f64(p.producers as f64 / p.tasks_per_s);
    let producers: Vec<_> = (0..p.producers)
        .map(|j| {
            let (created, targets, tokens) = (created.clone(), targets.clone(), tokens.clone());
            let offset = every.mul_f64(j as f64 / p.producers as f64);
            spawn(move || {
                let mut c = Conn::new(addr, Duration::from_secs(10));
                let mut served = c.open_served(client::PROBE, client::PROBE_WAIT);
                let mut rng = Rng::new(70 + j as u64);
                let mut lat = Lat::with_capacity(1024);
                let mut pacer = Pacer::new(window_start + offset, every);
                while served {
                    let tick = pacer.wait();
                    if tick >= window_end {
                        served = false;
                        continue;
                    }
                    let d = rng.below(targets.len());
                    let body =
                        json!({"device_id": targets[d].0, "command": "echo bench", "type": "bash"})
                            .to_string();
                    let req = client::post("/v1/tasks", Some(&tokens[targets[d].1]), &body);
                    let t0 = Instant::now();
                    let s = c.request(&req);
                    if let Ok(201) = s
                        && let Ok(v) = serde_json::from_slice::<Value>(c.body())
                        && let Some(id) =
                            v.pointer("/data/task_id").or_else(|| v.pointer("/data/id"))
                    {
                        let id = id.as_str().map_or_else(|| id.to_string(), str::to_owned);
                        lock(&created).push((id, t0, d));
                    }
                    lat.record(t0, s);
                }
                (lat, c.unserved, c.errors)
            })
        })
        .collect();
    sleep_until(window_start);
    let before = Snap::take(pid);
    sleep_until(window_end);
    let after = Snap::take(pid);
    let mem = procfs::mem(pid).unwrap_or_default();
    let (mut create_lat, mut unserved, mut errors) = (Lat::default(), 0, 0);
    for h in producers {
        if let Ok((l, un, e)) = h.join() {
            create_lat.merge(l);
            unserved += un;
            errors += e;
        }
    }
    // Give the daemons up to `drain` to claim the last tasks.
    let total = lock(&created).len();
    while Instant::now() < stop_by && lock(&sh.claims).len() < total {
        std::thread::sleep(Duration::from_millis(20));
    }
    sh.stop.store(true, Relaxed);
    let (mut hb, mut poll, mut result) = (Lat::default(), Lat::default(), Lat::default());
    let (mut reconnects, mut samples) = (0, Vec::new());
    for h in daemons {
        if let Ok(d) = h.join() {
            hb.merge(d.hb);
            poll.merge(d.poll);
            result.merge(d.result);
            unserved += d.unserved;
            errors += d.errors;
            reconnects += d.reconnects;
            samples.extend(d.last);
        }
    }
    samples.sort();
    samples.dedup();
    samples.truncate(5);
    let claims = lock(&sh.claims);
    let created = lock(&created);
    let mut dispatch = Lat::with_capacity(created.len());
    let (mut unclaimed, mut wrong_device) = (0usize, 0);
    for (id, sent, dev) in created.iter() {
        match claims.get(id) {
            Some((got, by)) => {
                let us = got.saturating_duration_since(*sent).as_micros();
                dispatch.us.push(us.min(u32::MAX as u128) as u32);
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
        &mut hb,
        &mut poll,
        &mut result,
    ] {
        l.finish();
    }
    let u = before.usage_until(&after, tck);
    let mut v = json!({
        "daemons": setup.devices.len(),
        "connections": p.conns,
        "producers": p.producers,
        "window_seconds": r1(u.seconds),
        "tasks_per_s_target": p.tasks_per_s,
        "tasks_created": created.len(),
        "tasks_claimed": claims.len(),
        "tasks_completed": sh.completed.load(Relaxed),
        "tasks_unclaimed": unclaimed,
        "unclaimed_pct": r1(unclaimed as f64 * 100.0 / created.len().max(1) as f64),
        "tasks_claimed_twice": twice.len(),
        "tasks_claimed_by_wrong_device": wrong_device,
        "dispatch": dispatch.json(),
        "create": create_lat.json(),
        "heartbeat": hb.json(),
        "poll": poll.json(),
        "result": result.json(),
        "errors": errors,
        "reconnects": reconnects,
        "unserved_connections": unserved,
        "error_samples": samples,
    });
    if let Value::Object(m) = &mut v {
        m.extend(procfs::usage_fields(&u, &mem));
    }
    v
}

fn clone_err(e: &std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), e.to_string())
}
