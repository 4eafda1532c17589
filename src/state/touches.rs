//! Which credentials had a `last_used_at` write queued lately (sessions, API keys and app
//! tokens; docs/limits.md "Timing"). A request that finds its credential's `last_used_at` stale
//! queues a write without waiting for it; until that write commits, every other request with
//! the credential finds it stale too. This table lets exactly one of them queue the write per
//! interval, so a busy credential costs the writer one write per interval, not one per request
//! for a commit's duration. Times come from the caller (the domain's clock, which tests move).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Entries kept before old ones are pruned.
const PRUNE_AT: usize = 100_000;

/// Ids and when their last write was queued.
pub struct Touches {
    every: Duration,
    map: Mutex<HashMap<String, SystemTime>>,
}

impl Touches {
    /// A table that lets an id be touched once per `every`.
    pub fn new(every: Duration) -> Touches {
        Touches {
            every,
            map: Mutex::default(),
        }
    }

    /// Whether the caller should queue the write for `id` at `now`: true at most once per
    /// `every` (and again if the clock went back).
    pub fn claim(&self, id: &str, now: SystemTime) -> bool {
        let recent = |at: &SystemTime| now.duration_since(*at).is_ok_and(|d| d < self.every);
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= PRUNE_AT {
            m.retain(|_, at| recent(at));
        }
        match m.get(id) {
            Some(at) if recent(at) => false,
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
        let t0 = SystemTime::now();
        assert!(t.claim("a", t0));
        assert!(!t.claim("a", t0 + Duration::from_millis(49)));
        assert!(t.claim("b", t0), "ids are independent");
        assert!(
            t.claim("a", t0 + Duration::from_millis(60)),
            "again after the interval"
        );
    }
}
