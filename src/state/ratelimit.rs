//! Request counts per key for the rate limits (README "Rate limits"), in memory.
//!
//! Each key (a user, a user's API keys, a device) has a fixed window that opens with its first
//! request and lasts `RATE_WINDOW`; a request is admitted while the window's count is within the
//! limit, and refused once it is over it, until the window ends. That is the seed's model
//! (`RATE_LIMIT_TTL=60`, `RATE_LIMIT_MAX=100`: N requests per window), and it gives exact
//! figures for the `RateLimit-Limit`, `-Remaining` and `-Reset` headers. The map is split into
//! shards, each behind its own mutex, so the request threads rarely meet; a shard drops the
//! windows that ended whenever it has grown past its high-water mark, so memory follows the
//! number of keys active in the last minute.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shards of the map (a power of two).
const SHARDS: usize = 8;
/// A shard sweeps ended windows when it holds more keys than this (and then than twice what
/// survived the last sweep).
const SWEEP_AT: usize = 1024;

/// Whose requests a window counts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// A person using session tokens.
    User(i64),
    /// A person's API keys, together (more keys do not mean more requests).
    ApiKeys(i64),
    /// A daemon.
    Device(i64),
    /// The apps authorised on a device, together (by the device's id): counted apart from the
    /// daemon's own requests, so a busy app cannot starve the daemon.
    Apps(i64),
    /// Another kind of sender, named by the caller (e.g. a webhook's sender address).
    Other(&'static str, String),
}

/// The answer for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Requests per window.
    pub limit: u32,
    /// Requests left in this window after this one.
    pub remaining: u32,
    /// Seconds until the window ends (at least 1).
    pub reset_secs: u64,
}

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

struct Shard {
    map: HashMap<Key, Window>,
    sweep_at: usize,
}

/// The windows of every key.
pub struct RateLimiter {
    window: Duration,
    shards: Vec<Mutex<Shard>>,
}

impl RateLimiter {
    /// Windows of `window` each.
    pub fn new(window: Duration) -> RateLimiter {
        RateLimiter {
            window,
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                        sweep_at: SWEEP_AT,
                    })
                })
                .collect(),
        }
    }

    fn shard(&self, key: &Key) -> &Mutex<Shard> {
        let i = match key {
            Key::User(id) | Key::ApiKeys(id) | Key::Device(id) | Key::Apps(id) => *id as usize,
            Key::Other(_, s) => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                s.hash(&mut h);
                h.finish() as usize
            }
        };
        &self.shards[i % SHARDS]
    }

    /// Counts one request of `key` at `now` against `limit` per window.
    pub fn check(&self, key: Key, limit: u32, now: Instant) -> Verdict {
        let mut shard = self.shard(&key).lock().unwrap_or_else(|p| p.into_inner());
        let window = self.window;
        if shard.map.len() >= shard.sweep_at {
            shard
                .map
                .retain(|_, w| now.saturating_duration_since(w.start) < window);
            shard.sweep_at = (shard.map.len() * 2).max(SWEEP_AT);
        }
        let w = shard.map.entry(key).or_insert(Window {
            start: now,
            count: 0,
        });
        if now.saturating_duration_since(w.start) >= window {
            *w = Window {
                start: now,
                count: 0,
            };
        }
        let allowed = w.count < limit;
        if allowed {
            w.count += 1;
        }
        let left = window.saturating_sub(now.saturating_duration_since(w.start));
        Verdict {
            allowed,
            limit,
            remaining: limit - w.count.min(limit),
            reset_secs: left.as_secs_f64().ceil().max(1.0) as u64,
        }
    }

    /// Keys with a window open or ended but not yet swept (tests, metrics).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).map.len())
            .sum()
    }

    /// Whether no key has a window.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_admits_its_limit_then_refuses_until_it_ends() {
        let rl = RateLimiter::new(Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            let v = rl.check(Key::User(1), 3, t0 + Duration::from_secs(i));
            assert!(v.allowed);
            assert_eq!(v.remaining, 2 - i as u32);
        }
        let v = rl.check(Key::User(1), 3, t0 + Duration::from_secs(10));
        assert_eq!(
            v,
            Verdict {
                allowed: false,
                limit: 3,
                remaining: 0,
                reset_secs: 50
            }
        );
        assert!(
            rl.check(Key::User(2), 3, t0).allowed,
            "another key is unaffected"
        );
        assert!(
            rl.check(Key::ApiKeys(1), 3, t0).allowed,
            "API keys count apart"
        );
        let v = rl.check(Key::User(1), 3, t0 + Duration::from_secs(60));
        assert!(v.allowed && v.remaining == 2 && v.reset_secs == 60, "{v:?}");
    }

    #[test]
    fn ended_windows_are_swept() {
        let rl = RateLimiter::new(Duration::from_secs(60));
        let t0 = Instant::now();
        for id in 0..(SWEEP_AT * SHARDS) as i64 {
            rl.check(Key::Device(id), 10, t0);
        }
        let later = t0 + Duration::from_secs(61);
        for id in 0..SHARDS as i64 {
            rl.check(Key::Device(1_000_000 + id), 10, later);
        }
        assert!(rl.len() <= SHARDS * 2, "{}", rl.len());
    }
}
