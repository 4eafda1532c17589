//! Which credentials had a `last_used_at` write queued lately (app tokens: README "Apps and the
//! KV store"). A request that finds its token's `last_used_at` stale queues a write without
//! waiting for it; until that write commits, every other request with the token finds it stale
//! too. This table lets exactly one of them queue the write per interval, so a busy token costs
//! the writer one write a minute, not one per request for a commit's duration.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before old ones are pruned.
const PRUNE_AT: usize = 100_000;

/// Ids and when their last write was queued.
pub struct Touches {
    every: Duration,
    map: Mutex<HashMap<String, Instant>>,
}

impl Touches {
    /// A table that lets an id be touched once per `every`.
    pub fn new(every: Duration) -> Touches {
        Touches {
            every,
            map: Mutex::default(),
        }
    }

    /// Whether the caller should queue the write for `id` now: true at most once per `every`.
    pub fn claim(&self, id: &str) -> bool {
        let now = Instant::now();
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= PRUNE_AT {
            m.retain(|_, at| now.duration_since(*at) < self.every);
        }
        match m.get(id) {
            Some(at) if now.duration_since(*at) < self.every => false,
            _ => {
                m.insert(id.to_string(), now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_per_interval_per_id() {
        let t = Touches::new(Duration::from_millis(50));
        assert!(t.claim("a"));
        assert!(!t.claim("a"));
        assert!(t.claim("b"), "ids are independent");
        std::thread::sleep(Duration::from_millis(60));
        assert!(t.claim("a"), "again after the interval");
    }
}
