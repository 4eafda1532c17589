//! The `events` phase (docs/events.md): Server-Sent Events streams under load.
//!
//! 1. Memory: the server's RSS just before opening 1,000 `GET /v1/events` streams (all of one
//!    user, so that every event goes to all of them; the bench raises
//!    `CCJK_EVENT_STREAMS_PER_USER` for this) and with them open.
//! 2. Fan-out latency: a daemon of that user reports task results at a steady rate (each task
//!    created and claimed half a period before its result, so that their events have gone
//!    out); for each result, the time from sending it (an upper bound of its commit) to its
//!    `task.completed` arriving on each stream. Per result, the last of the 1,000 arrivals
//!    ("on all streams"); the p99 is over results.
//! 3. With 100 streams open (10 per user, so every fleet task's events go to 10 streams) the
//!    fleet phase runs again, to compare its server CPU with the plain fleet run's.
//!
//! Each stream is read by its own thread of the generator, which notes when each
//! `task.completed` reached it.

use crate::client::{self, Conn};
use crate::fleet;
use crate::phases::spawn;
use crate::procfs::{self, Snap};
use crate::setup::{HEARTBEAT_BODY, Setup};
use crate::stats::{Lat, Pacer, r1};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct Params {
    pub streams: usize,
    pub results: usize,
    pub results_per_s: f64,
    pub fleet_streams_per_user: usize,
}

/// One open stream: its socket (to shut it down) and its reader thread, which returns the
/// arrival time of each `task.completed` by task id.
struct Stream {
    sock: TcpStream,
    reader: JoinHandle<HashMap<String, Instant>>,
}

/// `task.completed` arrivals over all streams, to know when the last ones are in.
static ARRIVALS: AtomicU64 = AtomicU64::new(0);

/// Why a stream did not open.
enum NotOpen {
    /// The server answered, but not 200 (429: the per-user cap).
    Refused,
    /// No answer within 5 s: a connection the server left unserved.
    Unanswered,
}

/// Opens a stream with `token`.
fn open(addr: SocketAddr, token: &str, stop: Arc<AtomicBool>) -> Result<Stream, NotOpen> {
    let no = |_| NotOpen::Unanswered;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(no)?;
    let _ = s.set_nodelay(true);
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(no)?;
    let req =
        format!("GET /v1/events HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(no)?;
    let mut r = BufReader::with_capacity(4096, s.try_clone().map_err(no)?);
    let mut line = String::new();
    r.read_line(&mut line).map_err(no)?;
    if line.is_empty() {
        return Err(NotOpen::Unanswered);
    }
    if !line.starts_with("HTTP/1.1 200") {
        return Err(NotOpen::Refused);
    }
    loop {
        line.clear();
        r.read_line(&mut line).map_err(no)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    s.set_read_timeout(None).map_err(no)?;
    let reader = spawn(move || {
        let mut got = HashMap::new();
        let (mut line, mut completed) = (String::new(), false);
        while !stop.load(Relaxed) {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if let Some(kind) = line.strip_prefix("event: ") {
                completed = kind.trim_end() == "task.completed";
            } else if completed && line.starts_with("data: ") {
                let at = Instant::now();
                if let Some(i) = line.find("\"task_id\":\"") {
                    let rest = &line[i + 11..];
                    if let Some(end) = rest.find('"') {
                        got.insert(rest[..end].to_string(), at);
                        ARRIVALS.fetch_add(1, Relaxed);
                    }
                }
            }
        }
        got
    });
    Ok(Stream { sock: s, reader })
}

/// How opening streams went besides the streams: refusals (retried: a place under the per-user
/// cap is freed only once the server has noticed that an earlier stream closed) and
/// connections the server left unanswered (reported as unserved, which fails the run).
#[derive(Default)]
struct Opens {
    refused: u64,
    unanswered: u64,
}

/// Opens `n` streams for each of `tokens`, trying again after a refusal or an unanswered
/// connection until `within`.
fn open_many(
    addr: SocketAddr,
    tokens: &[String],
    n: usize,
    stop: &Arc<AtomicBool>,
    within: Duration,
) -> (Vec<Stream>, Opens) {
    let mut opens = Opens::default();
    let deadline = Instant::now() + within;
    let mut out = Vec::with_capacity(n * tokens.len());
    let mut open_per: Vec<usize> = vec![0; tokens.len()];
    while Instant::now() < deadline && open_per.iter().any(|&k| k < n) {
        let mut progress = false;
        for (i, t) in tokens.iter().enumerate() {
            while open_per[i] < n {
                match open(addr, t, stop.clone()) {
                    Ok(s) => {
                        out.push(s);
                        open_per[i] += 1;
                        progress = true;
                    }
                    Err(NotOpen::Refused) => {
                        opens.refused += 1;
                        break;
                    }
                    Err(NotOpen::Unanswered) => {
                        opens.unanswered += 1;
                        break;
                    }
                }
            }
        }
        if !progress {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    (out, opens)
}

/// Ends the streams and collects what each saw.
fn close(streams: Vec<Stream>, stop: &AtomicBool) -> Vec<HashMap<String, Instant>> {
    stop.store(true, Relaxed);
    for s in &streams {
        let _ = s.sock.shutdown(Shutdown::Both);
    }
    streams
        .into_iter()
        .filter_map(|s| s.reader.join().ok())
        .collect()
}

/// Waits until the server's thread count settles (connection threads ending) or 10 s pass.
fn settle(pid: &str) {
    let t = Instant::now();
    let mut last = procfs::mem(pid).map_or(0, |m| m.threads);
    while t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(300));
        let now = procfs::mem(pid).map_or(0, |m| m.threads);
        if now == last {
            return;
        }
        last = now;
    }
}

pub fn run(
    addr: SocketAddr,
    pid: &str,
    setup: &Setup,
    p: &Params,
    fleet_p: &fleet::Params,
    tck: f64,
) -> Value {
    let user = &setup.users[0];
    if !setup.devices.iter().any(|d| d.user == 0) {
        return json!({"skipped": "no device"});
    }
    // A device of its own: a fleet device may still have a long-poll parked by the fleet's
    // daemons, which the server answers only at its deadline (30 s) or with the next task for
    // that device (docs/tasks.md, "Long-poll"), and which would claim the first task here.
    let dev = match crate::setup::new_device(addr, &setup.users, 0, "bench-events") {
        Ok(d) => d,
        Err(e) => return json!({"failed": format!("creating the events device: {e}")}),
    };
    let dev = &dev;
    settle(pid);
    let before = procfs::mem(pid).unwrap_or_default();
    let stop = Arc::new(AtomicBool::new(false));
    let t_open = Instant::now();
    let (streams, opens) = open_many(
        addr,
        std::slice::from_ref(&user.token),
        p.streams,
        &stop,
        Duration::from_secs(30),
    );
    let open_secs = t_open.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(1));
    let with = procfs::mem(pid).unwrap_or_default();

    // Results at a steady rate: create, claim, then time the result.
    let mut c = Conn::new(addr, Duration::from_secs(10));
    let mut d = Conn::new(addr, Duration::from_secs(10));
    let _ = d.request(&client::post(
        "/v1/daemon/heartbeat",
        Some(&dev.key),
        HEARTBEAT_BODY,
    ));
    let poll = client::get("/v1/daemon/tasks/pending?limit=1", Some(&dev.key));
    let mut sent: Vec<(String, Instant)> = Vec::with_capacity(p.results);
    let arrivals0 = ARRIVALS.load(Relaxed);
    let mut errors = 0u64;
    let mut samples: Vec<String> = Vec::new();
    let mut sample = |what: String| {
        if samples.len() < 5 {
            samples.push(what);
        }
    };
    let every = Duration::from_secs_f64(1.0 / p.results_per_s);
    let start = Instant::now() + Duration::from_millis(200);
    let mut pacer = Pacer::new(start, every);
    let snap0 = Snap::take(pid);
    for _ in 0..p.results {
        let tick = pacer.wait();
        let body = json!({"device_id": dev.id, "command": "echo events"}).to_string();
        let created = c.request(&client::post("/v1/tasks", Some(&user.token), &body));
        if created.as_ref().ok() != Some(&201) {
            errors += 1;
            sample(format!(
                "create: {created:?} {}",
                String::from_utf8_lossy(c.body())
            ));
            continue;
        }
        let polled = d.request(&poll);
        if polled.as_ref().ok() != Some(&200) {
            errors += 1;
            sample(format!(
                "poll: {polled:?} {}",
                String::from_utf8_lossy(d.body())
            ));
            continue;
        }
        let Some(id) = serde_json::from_slice::<Value>(d.body())
            .ok()
            .and_then(|v| v.pointer("/data/tasks/0/id")?.as_str().map(str::to_owned))
        else {
            errors += 1;
            sample(format!(
                "poll gave no task: {}",
                String::from_utf8_lossy(d.body())
            ));
            continue;
        };
        // Half a period later, when the task's created and claimed events have gone out: the
        // result's event is then timed alone.
        std::thread::sleep((tick + every / 2).saturating_duration_since(Instant::now()));
        let req = client::post(
            &format!("/v1/daemon/tasks/{id}/result"),
            Some(&dev.key),
            r#"{"status":"completed","exit_code":0,"stdout":"events","stderr":""}"#,
        );
        let t0 = Instant::now();
        let reported = d.request(&req);
        if reported.as_ref().ok() != Some(&200) {
            errors += 1;
            sample(format!(
                "result: {reported:?} {}",
                String::from_utf8_lossy(d.body())
            ));
            continue;
        }
        sent.push((id, t0));
    }
    // Let the last events arrive (on a busy machine they may queue), at most 10 s.
    let want = arrivals0 + (sent.len() * streams.len()) as u64;
    let drain = Instant::now();
    while ARRIVALS.load(Relaxed) < want && drain.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let snap1 = Snap::take(pid);
    let after = procfs::mem(pid).unwrap_or_default();
    let seen = close(streams, &stop);
    let opened = seen.len();
    let (mut all, mut per_stream) = (
        Lat::with_capacity(sent.len()),
        Lat::with_capacity(sent.len() * opened),
    );
    let mut missing = 0u64;
    for (id, t0) in &sent {
        let mut last = Duration::ZERO;
        let mut complete = true;
        for s in &seen {
            match s.get(id) {
                Some(at) => {
                    let dt = at.saturating_duration_since(*t0);
                    per_stream
                        .us
                        .push(dt.as_micros().min(u32::MAX as u128) as u32);
                    last = last.max(dt);
                }
                None => {
                    complete = false;
                    missing += 1;
                }
            }
        }
        if complete {
            all.us.push(last.as_micros().min(u32::MAX as u128) as u32);
        }
    }
    all.finish();
    per_stream.finish();
    let u = snap0.usage_until(&snap1, tck);

    // The fleet again, with a few streams per user open.
    settle(pid);
    let stop2 = Arc::new(AtomicBool::new(false));
    let tokens: Vec<String> = setup.users.iter().map(|u| u.token.clone()).collect();
    // The server notices the 1,000 closed streams within about half a second (its socket
    // check); the 20 s bound is for a server that does not find sockets.
    let (few, few_opens) = open_many(
        addr,
        &tokens,
        p.fleet_streams_per_user,
        &stop2,
        Duration::from_secs(20),
    );
    let few_open = few.len();
    let fleet_v = fleet::run(addr, pid, setup, fleet_p, tck);
    close(few, &stop2);
    let mut v = json!({
        "streams": p.streams,
        "streams_open": opened,
        "stream_opens_refused": opens.refused,
        "fleet_stream_opens_refused": few_opens.refused,
        // Counted by the generator's unserved-connection check.
        "unserved_connections": opens.unanswered + few_opens.unanswered,
        "open_seconds": r1(open_secs),
        "server_rss_kb_before": before.rss_kb,
        "server_rss_kb_with_streams": with.rss_kb,
        "server_rss_kb_after_results": after.rss_kb,
        "rss_increase_kb": with.rss_kb.saturating_sub(before.rss_kb),
        "rss_increase_after_results_kb": after.rss_kb.saturating_sub(before.rss_kb),
        "server_threads_before": before.threads,
        "server_threads_with_streams": with.threads,
        "results_sent": sent.len(),
        "results_per_s": p.results_per_s,
        "errors": errors,
        "error_samples": samples,
        "arrivals_missing": missing,
        "to_all_streams": all.json(),
        "to_each_stream": per_stream.json(),
        "fleet_streams_open": few_open,
        "fleet_with_streams": fleet_v,
    });
    if let (Value::Object(m), Value::Object(w)) = (&mut v, u.json()) {
        m.extend(w);
    }
    v
}
