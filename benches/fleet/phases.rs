//! The closed-loop, login and idle phases. `closed_loop` is `hot` (and, pointed at the ceiling
//! server with the same requests, the ceiling run): N connections, each iterating "request A,
//! then request B" for a random device as fast as answers come, measured after a warm-up.
//! `login` paces polls at a fixed rate from 8 connections, alone and then beside 8 connections
//! logging in as fast as they can. `idle` opens thousands of keep-alive connections, sends one
//! `GET /health` on each and reads the server's memory and threads while they sit open.

use crate::client::{self, Conn, Resp};
use crate::procfs::{self, Snap};
use crate::stats::{Lat, Pacer, Rng, r1, r2};
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const STACK: usize = 128 * 1024;

/// A thread with a small stack (the generator runs thousands).
pub fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> thread::JoinHandle<T> {
    thread::Builder::new()
        .stack_size(STACK)
        .spawn(f)
        .unwrap_or_else(|e| panic!("cannot start a generator thread: {e}"))
}

/// Sleeps until `t`.
pub fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        thread::sleep(t - now);
    }
}

/// What the closed loop sends: per device, request A then request B.
pub struct Loop {
    pub names: [&'static str; 2],
    pub reqs: Arc<Vec<[Vec<u8>; 2]>>,
}

/// One closed-loop run's raw figures: rounds of an interleaved run merge before they are
/// rendered, so percentiles come from all the samples, not from per-round percentiles.
pub struct Closed {
    conns: usize,
    lat: [Lat; 2],
    errors: u64,
    reconnects: u64,
    unserved: u64,
    samples: Vec<String>,
    usage: procfs::Usage,
    mem: procfs::Mem,
    /// req/s of each round, to show how steady the machine was.
    rounds: Vec<f64>,
}

impl Closed {
    /// Adds round `r` to the rounds so far in `acc` (none yet: `r` is the first).
    pub fn add(acc: &mut Option<Closed>, r: Closed) {
        match acc {
            Some(a) => a.merge(r),
            None => *acc = Some(r),
        }
    }

    /// Adds a later round of the same load (memory: the later reading).
    fn merge(&mut self, o: Closed) {
        let [a, b] = o.lat;
        self.lat[0].merge(a);
        self.lat[1].merge(b);
        self.errors += o.errors;
        self.reconnects += o.reconnects;
        self.unserved += o.unserved;
        self.samples.extend(o.samples);
        self.usage = self.usage.merge(&o.usage);
        self.mem = o.mem;
        self.rounds.extend(o.rounds);
    }

    /// The figures of a loop whose two requests are of one kind, as the one endpoint `name`
    /// (the samples of both merged).
    pub fn json_one(mut self, name: &str) -> Value {
        let [mut a, b] = std::mem::take(&mut self.lat);
        a.merge(b);
        self.lat = [a, Lat::default()];
        let mut v = self.json([name, "_unused"]);
        if let Value::Object(m) = &mut v {
            m.remove("_unused");
        }
        v
    }

    /// The phase's JSON figures, endpoints named by `names`.
    pub fn json(mut self, names: [&str; 2]) -> Value {
        self.samples.sort();
        self.samples.dedup();
        self.lat.iter_mut().for_each(Lat::finish);
        let u = &self.usage;
        let requests = self.lat[0].count() + self.lat[1].count();
        let mut v = json!({
            "connections": self.conns,
            "seconds": r1(u.seconds),
            "requests": requests,
            "req_per_s": (requests as f64 / u.seconds).round(),
            names[0]: self.lat[0].json(),
            names[1]: self.lat[1].json(),
            "errors": self.errors,
            "reconnects": self.reconnects,
            "error_samples": self.samples.iter().take(5).collect::<Vec<_>>(),
            "unserved_connections": self.unserved,
            "round_req_per_s": self.rounds,
        });
        if let serde_json::Value::Object(m) = &mut v {
            m.extend(procfs::usage_fields(u, &self.mem));
        }
        v
    }
}

/// Runs the closed loop against `addr` (process `pid`) on `conns` connections: `warmup`
/// unmeasured, then `dur` measured.
pub fn closed_loop(
    addr: SocketAddr,
    pid: &str,
    l: &Loop,
    conns: usize,
    warmup: Duration,
    dur: Duration,
    tck: f64,
) -> Closed {
    let barrier = Arc::new(Barrier::new(conns + 1));
    let handles: Vec<_> = (0..conns)
        .map(|i| {
            let (barrier, reqs) = (barrier.clone(), l.reqs.clone());
            spawn(move || {
                let mut c = Conn::new(addr, Duration::from_secs(10));
                c.open_served(client::PROBE, client::PROBE_WAIT);
                let mut rng = Rng::new(i as u64 + 1);
                let mut lat = [Lat::with_capacity(1 << 16), Lat::with_capacity(1 << 16)];
                barrier.wait();
                let start = Instant::now();
                let (measure, end) = (start + warmup, start + warmup + dur);
                loop {
                    let r = &reqs[rng.below(reqs.len())];
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    let s0 = c.request(&r[0]);
                    let t1 = Instant::now();
                    let s1 = c.request(&r[1]);
                    if t0 >= measure {
                        lat[0].record(t0, s0);
                        lat[1].record(t1, s1);
                    }
                }
                (lat, c.errors, c.reconnects, c.unserved, c.last_error)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    sleep_until(start + warmup);
    let before = Snap::take(pid);
    sleep_until(start + warmup + dur);
    let after = Snap::take(pid);
    let mut out = Closed {
        conns,
        lat: [Lat::default(), Lat::default()],
        errors: 0,
        reconnects: 0,
        unserved: 0,
        samples: Vec::new(),
        usage: before.usage_until(&after, tck),
        mem: procfs::mem(pid).unwrap_or_default(),
        rounds: Vec::new(),
    };
    for h in handles {
        if let Ok(([la, lb], e, r, un, last)) = h.join() {
            out.unserved += un;
            out.lat[0].merge(la);
            out.lat[1].merge(lb);
            out.errors += e;
            out.reconnects += r;
            out.samples.extend(last);
        }
    }
    let n = out.lat[0].count() + out.lat[1].count();
    out.rounds.push((n as f64 / out.usage.seconds).round());
    out
}

/// What `login` sends and how fast.
pub struct LoginParams {
    /// Requests to pace (a random one each time).
    pub polls: Arc<Vec<Vec<u8>>>,
    /// Login requests (taken in turn).
    pub logins: Arc<Vec<Vec<u8>>>,
    /// Polls per second over all 8 polling connections.
    pub rate: f64,
    pub alone: Duration,
    pub burst: Duration,
}

/// Paced polling alone for `alone`, then with a login burst on 8 more connections for `burst`.
pub fn login(addr: SocketAddr, pid: &str, p: &LoginParams, tck: f64) -> Value {
    let (rate, alone, burst) = (p.rate, p.alone, p.burst);
    const CONNS: usize = 8;
    let barrier = Arc::new(Barrier::new(2 * CONNS + 1));
    let pollers: Vec<_> = (0..CONNS)
        .map(|i| {
            let (barrier, polls) = (barrier.clone(), p.polls.clone());
            spawn(move || {
                let mut c = Conn::new(addr, Duration::from_secs(10));
                c.open_served(client::PROBE, client::PROBE_WAIT);
                let mut rng = Rng::new(i as u64 + 100);
                let (mut lone, mut during) = (Lat::with_capacity(4096), Lat::with_capacity(4096));
                barrier.wait();
                let start = Instant::now();
                let every = Duration::from_secs_f64(CONNS as f64 / rate);
                let mut pacer = Pacer::new(start + every.mul_f64(i as f64 / CONNS as f64), every);
                loop {
                    let tick = pacer.wait();
                    if tick >= start + alone + burst {
                        break;
                    }
                    let t0 = Instant::now();
                    let s = c.request(&polls[rng.below(polls.len())]);
                    if tick < start + alone {
                        &mut lone
                    } else {
                        &mut during
                    }
                    .record(t0, s);
                }
                (lone, during, c.unserved)
            })
        })
        .collect();
    let loggers: Vec<_> = (0..CONNS)
        .map(|i| {
            let (barrier, logins) = (barrier.clone(), p.logins.clone());
            spawn(move || {
                let mut c = Conn::new(addr, Duration::from_secs(30));
                c.open_served(client::PROBE, client::PROBE_WAIT);
                let mut lat = Lat::with_capacity(1024);
                barrier.wait();
                let start = Instant::now();
                sleep_until(start + alone);
                let (mut k, mut in_window, end) = (i, 0u64, start + alone + burst);
                while Instant::now() < end {
                    let t0 = Instant::now();
                    let s = c.request(&logins[k % logins.len()]);
                    if matches!(s, Ok(200)) && Instant::now() <= end {
                        in_window += 1;
                    }
                    lat.record(t0, s);
                    k += CONNS;
                }
                (lat, in_window, c.unserved)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let s0 = Snap::take(pid);
    sleep_until(start + alone);
    let s1 = Snap::take(pid);
    sleep_until(start + alone + burst);
    let s2 = Snap::take(pid);
    let (mut lone, mut during, mut logins) = (Lat::default(), Lat::default(), Lat::default());
    let mut unserved = 0;
    for h in pollers {
        if let Ok((a, b, un)) = h.join() {
            unserved += un;
            lone.merge(a);
            during.merge(b);
        }
    }
    let mut in_window = 0;
    for h in loggers {
        if let Ok((l, n, un)) = h.join() {
            unserved += un;
            logins.merge(l);
            in_window += n;
        }
    }
    for l in [&mut lone, &mut during, &mut logins] {
        l.finish();
    }
    let (ua, ub) = (s0.usage_until(&s1, tck), s1.usage_until(&s2, tck));
    let p99_alone = lone.pct(99.0);
    json!({
        "poll_rate_per_s": rate,
        "unserved_connections": unserved,
        "seconds_alone": r1(ua.seconds),
        "seconds_burst": r1(ub.seconds),
        "poll_alone": lone.json(),
        "poll_during": during.json(),
        "login": logins.json(),
        // Logins that succeeded within the burst window, per second of it.
        "logins_per_s": r1(in_window as f64 / ub.seconds),
        "poll_p99_ratio": if p99_alone == 0 { Value::Null } else { json!(r2(f64::from(during.pct(99.0)) / f64::from(p99_alone))) },
        "server_cpu_pct_alone": r1(ua.server_pct),
        "server_cpu_pct_burst": r1(ub.server_pct),
        "cpu_alone": ua.json(),
        "cpu_burst": ub.json(),
    })
}

/// Opens `n` keep-alive connections, one `GET /health` on each, holds them for `hold`.
pub fn idle(addr: SocketAddr, pid: &str, n: usize, hold: Duration) -> Value {
    const BATCH: usize = 100;
    // Start from a settled server: the previous phase's connections have closed, but their
    // threads end a few seconds later (tiny_http keeps an idle pool thread for 5 s). Measured
    // with them alive, the 5,000 connections would be counted on top of another phase's
    // leftovers, and the dying pool's idle threads make the pool race far more likely.
    let settling = Instant::now();
    let mut base = procfs::mem(pid).unwrap_or_default();
    while base.threads > 100 && settling.elapsed() < Duration::from_secs(20) {
        thread::sleep(Duration::from_millis(200));
        base = procfs::mem(pid).unwrap_or_default();
    }
    let settle_secs = settling.elapsed().as_secs_f64();
    let req = client::get("/health", None);
    let start = Instant::now();
    let mut open: Vec<(TcpStream, bool)> = Vec::with_capacity(n);
    let (mut connect_errors, mut buf) = (0u64, vec![0u8; 4096]);
    while open.len() + (connect_errors as usize) < n {
        let from = open.len();
        for _ in 0..BATCH.min(n - open.len() - connect_errors as usize) {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
                Ok(mut s) => {
                    let _ = s.set_nodelay(true);
                    let ok = std::io::Write::write_all(&mut s, &req).is_ok();
                    open.push((s, !ok));
                }
                Err(_) => connect_errors += 1,
            }
        }
        // Read this batch's answers under one deadline; a connection tiny_http leaves unserved
        // (its pool race) is counted and kept open.
        let deadline = Instant::now() + Duration::from_secs(3);
        for (s, failed) in &mut open[from..] {
            if !*failed {
                *failed = !read_one(s, &mut buf, deadline);
            }
        }
    }
    let open_secs = start.elapsed().as_secs_f64();
    let unserved_first = open.iter().filter(|(_, f)| *f).count();
    thread::sleep(hold);
    let held = procfs::mem(pid).unwrap_or_default();
    // A second chance for the unserved: answered late, or never.
    let deadline = Instant::now() + Duration::from_secs(2);
    for (s, failed) in &mut open {
        if *failed {
            *failed = !read_one(s, &mut buf, deadline);
        }
    }
    let unserved = open.iter().filter(|(_, f)| *f).count();
    let count = open.len();
    drop(open);
    let closed = Instant::now();
    let mut after = procfs::mem(pid).unwrap_or_default();
    while after.threads > base.threads + 2 && closed.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(100));
        after = procfs::mem(pid).unwrap_or_default();
    }
    json!({
        "connections": count,
        "connect_errors": connect_errors,
        "unserved_after_3s": unserved_first,
        "unserved": unserved,
        "open_seconds": r1(open_secs),
        "settle_seconds": r1(settle_secs),
        "server_rss_kb_before": base.rss_kb,
        "server_rss_kb": held.rss_kb,
        "server_threads_before": base.threads,
        "server_threads": held.threads,
        "kb_per_connection": r1((held.rss_kb.saturating_sub(base.rss_kb)) as f64 / count.max(1) as f64),
        "server_threads_after_close": after.threads,
        "threads_gone_seconds": r1(closed.elapsed().as_secs_f64()),
    })
}

/// Reads one response before `deadline`; false if none came.
fn read_one(s: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> bool {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    if s.set_read_timeout(Some(left)).is_err() {
        return false;
    }
    matches!(client::read_response(s, buf), Ok(Resp { status: 200, .. }))
}
