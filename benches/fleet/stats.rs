//! Latency samples and the small helpers every phase uses: a per-endpoint recorder of
//! microsecond latencies (merged across threads, percentiles by sorting), status-class counters,
//! a xorshift random generator and an absolute-schedule pacer.

use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Latencies (µs) and outcomes of one endpoint, from one thread or merged.
#[derive(Default, Clone)]
pub struct Lat {
    pub us: Vec<u32>,
    /// Responses by class: 2xx, 4xx, 5xx, other.
    pub ok: u64,
    pub c4xx: u64,
    pub c5xx: u64,
    pub other: u64,
    /// Requests that got no response (I/O error or timeout).
    pub errors: u64,
}

impl Lat {
    pub fn with_capacity(n: usize) -> Lat {
        Lat {
            us: Vec::with_capacity(n),
            ..Lat::default()
        }
    }

    /// Records one request that started at `t0` and got `status` (or an error).
    pub fn record(&mut self, t0: Instant, status: std::io::Result<u16>) {
        match status {
            Ok(s) => {
                self.us
                    .push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                match s {
                    200..=299 => self.ok += 1,
                    400..=499 => self.c4xx += 1,
                    500..=599 => self.c5xx += 1,
                    _ => self.other += 1,
                }
            }
            Err(_) => self.errors += 1,
        }
    }

    pub fn merge(&mut self, o: Lat) {
        self.us.extend(o.us);
        self.ok += o.ok;
        self.c4xx += o.c4xx;
        self.c5xx += o.c5xx;
        self.other += o.other;
        self.errors += o.errors;
    }

    /// Responses received.
    pub fn count(&self) -> u64 {
        self.us.len() as u64
    }

    /// Sorts the samples; call once before the percentiles.
    pub fn finish(&mut self) {
        self.us.sort_unstable();
    }

    /// The `p`-th percentile in µs (0 when empty); `finish` first.
    pub fn pct(&self, p: f64) -> u32 {
        if self.us.is_empty() {
            return 0;
        }
        let i = ((self.us.len() as f64 * p / 100.0) as usize).min(self.us.len() - 1);
        self.us[i]
    }

    /// Count, classes and p50/p90/p99/p99.9/max in µs; `finish` first.
    pub fn json(&self) -> Value {
        json!({
            "count": self.count(), "ok": self.ok, "4xx": self.c4xx, "5xx": self.c5xx,
            "other": self.other, "errors": self.errors,
            "p50_us": self.pct(50.0), "p90_us": self.pct(90.0), "p99_us": self.pct(99.0),
            "p999_us": self.pct(99.9), "max_us": self.us.last().copied().unwrap_or(0),
        })
    }
}

/// xorshift64*: cheap, good enough to pick devices.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng((seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ t) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Sleeps until each tick of a fixed schedule: no drift, late ticks fire at once so the rate is
/// kept, but more than a second behind the schedule restarts from now.
pub struct Pacer {
    next: Instant,
    every: Duration,
}

impl Pacer {
    pub fn new(start: Instant, every: Duration) -> Pacer {
        Pacer { next: start, every }
    }

    /// Waits for the next tick; returns it.
    pub fn wait(&mut self) -> Instant {
        let now = Instant::now();
        if self.next > now {
            std::thread::sleep(self.next - now);
        } else if now - self.next > Duration::from_secs(1) {
            self.next = now;
        }
        let t = self.next;
        self.next += self.every;
        t
    }
}

/// Rounds to one decimal.
pub fn r1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Rounds to two decimals.
pub fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
