//! Brute-force throttling of logins per client IP and per account, and of KV passwords per
//! client IP and per device (docs/security.md).
//!
//! Decided in memory before any password hash is computed: after 5 consecutive failures a key
//! is blocked with an exponential back-off (1 s, 2 s, 4 s, … capped at 15 min), and an account
//! that collects 100 failures within an hour is blocked until that hour has passed. A success
//! clears the consecutive count. The table is pruned as it grows, so an attacker cycling
//! through IPs or names cannot grow it without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Consecutive failures allowed before the first block.
pub const FREE_FAILURES: u32 = 5;
/// Longest single block.
const MAX_BLOCK: Duration = Duration::from_secs(15 * 60);
/// Failures per account per hour before the account is blocked for the rest of the hour.
const HOURLY_CAP: u32 = 100;
const HOUR: Duration = Duration::from_secs(3600);
/// Entries kept before stale ones are pruned.
const PRUNE_AT: usize = 100_000;

/// What is being throttled.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Ip(IpAddr),
    /// A known account as `#<user id>` (whichever name was typed), else the login name as sent,
    /// lowercased.
    Account(String),
    /// A device whose KV password is being tried (app authorisation), by the uuid as sent:
    /// unknown uuids are throttled exactly like real ones, so the throttle tells nothing about
    /// which devices exist.
    Device(String),
}

#[derive(Clone, Debug)]
struct Entry {
    consecutive: u32,
    blocked_until: Option<Instant>,
    window_start: Instant,
    window_failures: u32,
    last_seen: Instant,
}

/// The throttle table, shared by every thread.
#[derive(Default)]
pub struct Throttle {
    map: Mutex<HashMap<Key, Entry>>,
}

impl Throttle {
    /// Seconds until `key` may try again, or `None` if it may try now.
    pub fn check(&self, key: &Key) -> Option<u64> {
        let now = Instant::now();
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.get(key)?;
        let mut until = e.blocked_until.filter(|u| *u > now);
        if matches!(key, Key::Account(_) | Key::Device(_)) && e.window_failures >= HOURLY_CAP {
            let w = e.window_start + HOUR;
            if w > now {
                until = Some(until.map_or(w, |u| u.max(w)));
            }
        }
        until.map(|u| (u - now).as_secs_f64().ceil() as u64)
    }

    /// Records a failure; returns the block length it started, if any.
    pub fn fail(&self, key: Key) -> Option<Duration> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= PRUNE_AT {
            map.retain(|_, e| now.duration_since(e.last_seen) < HOUR);
        }
        let e = map.entry(key).or_insert(Entry {
            consecutive: 0,
            blocked_until: None,
            window_start: now,
            window_failures: 0,
            last_seen: now,
        });
        if now.duration_since(e.window_start) >= HOUR {
            e.window_start = now;
            e.window_failures = 0;
        }
        e.consecutive += 1;
        e.window_failures += 1;
        e.last_seen = now;
        if e.consecutive >= FREE_FAILURES {
            let exp = (e.consecutive - FREE_FAILURES).min(20);
            let block = Duration::from_secs(1u64 << exp).min(MAX_BLOCK);
            e.blocked_until = Some(now + block);
            return Some(block);
        }
        None
    }

    /// Records a success: the consecutive count starts over (the hourly count stays).
    pub fn succeed(&self, key: &Key) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get_mut(key) {
            e.consecutive = 0;
            e.blocked_until = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_five_failures_with_growing_backoff() {
        let t = Throttle::default();
        let k = Key::Ip("10.0.0.1".parse().expect("ip"));
        for _ in 0..4 {
            assert_eq!(t.fail(k.clone()), None);
            assert_eq!(t.check(&k), None);
        }
        assert_eq!(t.fail(k.clone()), Some(Duration::from_secs(1)));
        assert_eq!(t.check(&k), Some(1));
        assert_eq!(t.fail(k.clone()), Some(Duration::from_secs(2)));
        for _ in 0..30 {
            t.fail(k.clone());
        }
        assert_eq!(t.check(&k), Some(900), "capped at 15 minutes");
        t.succeed(&k);
        assert_eq!(t.check(&k), None);
        let other = Key::Account("bob@example.com".into());
        assert_eq!(t.check(&other), None, "keys are independent");
    }

    #[test]
    fn hourly_cap_per_account_survives_successes() {
        let t = Throttle::default();
        let k = Key::Account("a@example.com".into());
        for i in 0..HOURLY_CAP {
            t.fail(k.clone());
            if i % 4 == 3 {
                t.succeed(&k);
            }
        }
        let wait = t.check(&k).expect("blocked for the rest of the hour");
        assert!(wait > 3500, "{wait}");
    }
}
