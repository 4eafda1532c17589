//! Readings from `/proc`: a process's CPU time (`stat` fields 14 and 15, utime + stime, in clock
//! ticks), its memory and thread count (`status`: VmRSS, VmHWM, Threads), and each core's busy
//! time (`/proc/stat`) so a run can tell how much of the server's core something else used.
//! `reset_peak` writes `5` to `clear_refs`, which restarts VmHWM, so each phase gets its own peak.

use std::fs;
use std::time::Instant;

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
pub fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .filter(|&t| t > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime of a process (`self` or a pid), in ticks.
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields after the last ')'.
    let rest: Vec<&str> = s.get(s.rfind(')')? + 1..)?.split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// VmRSS, VmHWM (KiB) and Threads of a process.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mem {
    pub rss_kb: u64,
    pub hwm_kb: u64,
    pub threads: u64,
}

pub fn mem(pid: &str) -> Option<Mem> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mut m = Mem::default();
    for line in s.lines() {
        let num = || {
            line.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        if line.starts_with("VmRSS:") {
            m.rss_kb = num();
        } else if line.starts_with("VmHWM:") {
            m.hwm_kb = num();
        } else if line.starts_with("Threads:") {
            m.threads = num();
        }
    }
    Some(m)
}

/// Restarts a process's VmHWM at its current RSS. Returns false if the kernel refused.
pub fn reset_peak(pid: &str) -> bool {
    fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Busy and total ticks of cores 0 and 1 from `/proc/stat`.
fn cores() -> [(u64, u64); 2] {
    let mut out = [(0, 0); 2];
    if let Ok(s) = fs::read_to_string("/proc/stat") {
        for (i, name) in ["cpu0 ", "cpu1 "].iter().enumerate() {
            if let Some(line) = s.lines().find(|l| l.starts_with(name)) {
                let v: Vec<u64> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|x| x.parse().ok())
                    .collect();
                let total: u64 = v.iter().take(8).sum();
                let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
                out[i] = (total - idle, total);
            }
        }
    }
    out
}

/// CPU counters of the server, the generator and both cores at one instant.
#[derive(Clone, Copy)]
pub struct Snap {
    at: Instant,
    server: u64,
    generator: u64,
    cores: [(u64, u64); 2],
}

/// CPU use between two snapshots, in % of one core.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub seconds: f64,
    pub server_pct: f64,
    pub generator_pct: f64,
    /// Busy % of core 0 (the server's) and core 1 (the generator's), whoever used them.
    pub core_pct: [f64; 2],
}

impl Usage {
    /// Two windows as one: the seconds add up, the percentages are weighted by time.
    pub fn merge(&self, o: &Usage) -> Usage {
        let s = self.seconds + o.seconds;
        let w = |a: f64, b: f64| {
            if s > 0.0 {
                (a * self.seconds + b * o.seconds) / s
            } else {
                0.0
            }
        };
        Usage {
            seconds: s,
            server_pct: w(self.server_pct, o.server_pct),
            generator_pct: w(self.generator_pct, o.generator_pct),
            core_pct: [
                w(self.core_pct[0], o.core_pct[0]),
                w(self.core_pct[1], o.core_pct[1]),
            ],
        }
    }

    /// The figures of one measured window, as the report and the validity checks read them.
    pub fn json(&self) -> serde_json::Value {
        let r1 = |x: f64| (x * 10.0).round() / 10.0;
        serde_json::json!({
            "seconds": r1(self.seconds),
            "server_cpu_pct": r1(self.server_pct),
            "generator_cpu_pct": r1(self.generator_pct),
            "core0_busy_pct": r1(self.core_pct[0]),
            "core1_busy_pct": r1(self.core_pct[1]),
        })
    }
}

impl Snap {
    pub fn take(server_pid: &str) -> Snap {
        Snap {
            at: Instant::now(),
            server: cpu_ticks(server_pid).unwrap_or(0),
            generator: cpu_ticks("self").unwrap_or(0),
            cores: cores(),
        }
    }

    pub fn usage_until(&self, later: &Snap, tck: f64) -> Usage {
        let secs = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let pct = |a: u64, b: u64| b.saturating_sub(a) as f64 / tck / secs * 100.0;
        let core = |i: usize| {
            let busy = later.cores[i].0.saturating_sub(self.cores[i].0);
            let total = later.cores[i].1.saturating_sub(self.cores[i].1);
            if total == 0 {
                0.0
            } else {
                busy as f64 / total as f64 * 100.0
            }
        };
        Usage {
            seconds: secs,
            server_pct: pct(self.server, later.server),
            generator_pct: pct(self.generator, later.generator),
            core_pct: [core(0), core(1)],
        }
    }
}

/// Busy % of cores 0 and 1 over the next `d`.
pub fn cores_busy(d: std::time::Duration) -> [f64; 2] {
    let a = cores();
    std::thread::sleep(d);
    let b = cores();
    [0, 1].map(|i| {
        let busy = b[i].0.saturating_sub(a[i].0);
        let total = b[i].1.saturating_sub(a[i].1);
        if total == 0 {
            0.0
        } else {
            busy as f64 / total as f64 * 100.0
        }
    })
}

/// Both cores below this busy % count as quiet.
const QUIET_PCT: f64 = 15.0;

/// Waits (at most `limit`) until both cores have been nearly idle for 3 s in a row, so that a
/// compile or another benchmark does not share the cores being measured. Returns how long it
/// waited, whether it got quiet, and the last reading.
pub fn wait_quiet(limit: std::time::Duration) -> serde_json::Value {
    let (start, mut streak) = (Instant::now(), 0);
    let r1 = |x: f64| (x * 10.0).round() / 10.0;
    loop {
        let busy = cores_busy(std::time::Duration::from_secs(1));
        let quiet = busy.iter().all(|&b| b < QUIET_PCT);
        streak = if quiet { streak + 1 } else { 0 };
        if streak >= 3 || start.elapsed() >= limit {
            if streak < 3 {
                eprintln!(
                    "fleet bench: the machine is still busy ({:.0} % / {:.0} %); running anyway",
                    busy[0], busy[1]
                );
            }
            let secs = r1(start.elapsed().as_secs_f64());
            return serde_json::json!({"seconds": secs, "quiet": streak >= 3, "core_busy_pct": busy.map(r1)});
        }
        if !quiet {
            eprintln!(
                "fleet bench: waiting for quiet cores (core 0 {:.0} %, core 1 {:.0} % busy)",
                busy[0], busy[1]
            );
        }
    }
}

/// The server's and generator's CPU and the server's memory over a phase, as the JSON fields
/// every load phase reports.
pub fn usage_fields(u: &Usage, mem: &Mem) -> serde_json::Map<String, serde_json::Value> {
    let r1 = crate::stats::r1;
    let v = serde_json::json!({
        "server_cpu_pct": r1(u.server_pct),
        "generator_cpu_pct": r1(u.generator_pct),
        "core0_busy_pct": r1(u.core_pct[0]),
        "core1_busy_pct": r1(u.core_pct[1]),
        "server_rss_kb": mem.rss_kb,
        "server_threads": mem.threads,
    });
    match v {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}
