//! The `stats` phase: how long the 90-day summary (`GET /v1/stats/summary?period=90d`) takes
//! for a user with 100,000 finished tasks, on the server's one core.
//!
//! The history is written straight into the server's SQLite file by this process (one
//! transaction, as an admin's import would), not through the API: 100,000 tasks through
//! create, claim and result would take minutes and measure the queue, not the summary. The
//! tasks belong to the first bench user, spread evenly over its 100 devices and the last 89 days
//! (a tenth failed or timed out, a twentieth cancelled), with a day of uptime rows per device.
//! Then, on one keep-alive connection, 3 unmeasured requests warm the caches and 30 are
//! measured one after another; the server's CPU time over them, per request, is the cost on its
//! one core. The answer is checked: its task counts must cover the 100,000.

use crate::client::{self, Conn};
use crate::procfs;
use crate::setup::Setup;
use crate::stats::{Lat, r2};
use rusqlite::{Connection, params};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// Finished tasks of the measured user.
pub const TASKS: u32 = 100_000;
/// Measured and warm-up requests.
const MEASURED: usize = 30;
const WARMUP: usize = 3;
/// The history spans this many days (inside the 90-day period, with room for the run).
const SPAN_DAYS: u64 = 89;

fn stamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Writes the history of `email`'s account into the database at `db`. Returns the user's id.
fn seed(db: &Path, email: &str) -> Result<i64, String> {
    let e = |e: rusqlite::Error| format!("seeding the stats history: {e}");
    let mut c = Connection::open(db).map_err(e)?;
    c.busy_timeout(Duration::from_secs(30)).map_err(e)?;
    let user: i64 = c
        .query_row("SELECT id FROM users WHERE email = ?1", [email], |r| {
            r.get(0)
        })
        .map_err(e)?;
    let devices: Vec<i64> = c
        .prepare("SELECT id FROM devices WHERE user_id = ?1 ORDER BY id")
        .and_then(|mut s| s.query_map([user], |r| r.get(0))?.collect())
        .map_err(e)?;
    if devices.is_empty() {
        return Err("the stats user has no device".into());
    }
    let now = SystemTime::now();
    let step = Duration::from_secs(SPAN_DAYS * 86_400) / TASKS;
    let tx = c.transaction().map_err(e)?;
    {
        let mut ins = tx
            .prepare(
                "INSERT INTO tasks (id, user_id, device_id, claimed_by, command, status, exit_code, \
                 stdout, started_at, completed_at, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?3, 'make test', ?4, ?5, 'ok', ?6, ?7, ?6, ?7)",
            )
            .map_err(e)?;
        for i in 0..TASKS {
            let end = now - Duration::from_secs(60) - step * i;
            let start = end - Duration::from_millis(500 + u64::from(i % 300) * 1000);
            let (status, code) = match i % 20 {
                0 => ("failed", Some(1)),
                1 => ("timeout", None),
                2 => ("cancelled", None),
                _ => ("completed", Some(0)),
            };
            let d = devices[i as usize % devices.len()];
            ins.execute(params![
                format!("bench-stats-{i}"),
                user,
                d,
                status,
                code,
                stamp(start),
                stamp(end)
            ])
            .map_err(e)?;
        }
        let mut up = tx
            .prepare(
                "INSERT INTO device_uptime (device_id, day, online_seconds) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (device_id, day) DO UPDATE SET online_seconds = excluded.online_seconds",
            )
            .map_err(e)?;
        for day in 0..SPAN_DAYS {
            let d = &stamp(now - Duration::from_secs(day * 86_400))[..10];
            for dev in &devices {
                up.execute(params![dev, d, 3600 * (1 + day as i64 % 20)])
                    .map_err(e)?;
            }
        }
    }
    tx.commit().map_err(e)?;
    Ok(user)
}

/// Runs the phase against the server at `addr` (process `pid`, database `db`).
pub fn run(addr: SocketAddr, pid: &str, db: &Path, s: &Setup, tck: f64) -> Value {
    let Some(user) = s.users.first() else {
        return json!({"skipped": "no bench user"});
    };
    let t = Instant::now();
    // A failure is a failure of the run ("failed"), never a skipped phase.
    if let Err(why) = seed(db, &user.email) {
        return json!({"failed": why});
    }
    let seed_s = t.elapsed().as_secs_f64();
    let req = client::get("/v1/stats/summary?period=90d", Some(&user.token));
    let mut c = Conn::new(addr, Duration::from_secs(30));
    let mut checked = Value::Null;
    for _ in 0..WARMUP {
        match c.request(&req) {
            Ok(200) => {
                checked = serde_json::from_slice::<Value>(c.body()).unwrap_or(Value::Null);
            }
            Ok(status) => {
                return json!({"failed": format!("GET /v1/stats/summary answered {status}")});
            }
            Err(e) => return json!({"failed": format!("GET /v1/stats/summary failed: {e}")}),
        }
    }
    let d = &checked["data"];
    let finished: i64 = ["tasks_completed", "tasks_failed", "tasks_cancelled"]
        .iter()
        .filter_map(|k| d[*k].as_i64())
        .sum();
    let cpu0 = procfs::cpu_ticks(pid).unwrap_or(0);
    let mut lat = Lat::with_capacity(MEASURED);
    for _ in 0..MEASURED {
        let t0 = Instant::now();
        let st = c.request(&req);
        lat.record(t0, st);
    }
    let cpu = procfs::cpu_ticks(pid).unwrap_or(0).saturating_sub(cpu0) as f64 / tck;
    lat.finish();
    json!({
        "tasks_seeded": TASKS,
        "seed_seconds": r2(seed_s),
        "tasks_in_answer": finished,
        "days_in_answer": d["daily_breakdown"].as_array().map_or(0, Vec::len),
        "summary": lat.json(),
        "server_cpu_ms_per_request": r2(cpu * 1000.0 / MEASURED as f64),
    })
}
