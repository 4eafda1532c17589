//! A short-lived cache of device keys (the daemon hot path, README "Performance").
//!
//! Every daemon request authenticates with its device key; the cache maps the key's SHA-256 to
//! the device for its TTL, so a heartbeat or an empty poll does not look the key up in SQLite
//! (the owner's `is_active` is still read on every request, so `ccjk-cloud user disable` takes
//! effect at once). Rotating a key or deleting a device through the API forgets that device at
//! once: its old key is 401 on the very next request. The generation counter keeps a lookup
//! that raced with such a change from putting the old key back. A device row changed outside
//! this process (an admin editing the table by hand) is seen within the TTL.

use crate::db::devices::DeviceAuth;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept at most; the cache starts over when full.
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
struct Inner {
    generation: u64,
    map: HashMap<Vec<u8>, (DeviceAuth, Instant)>,
}

/// Device keys by SHA-256.
pub struct KeyCache {
    inner: Mutex<Inner>,
    /// How long a cached key is trusted without looking at the database again.
    ttl: Duration,
}

impl KeyCache {
    /// An empty cache whose entries live `ttl`.
    pub fn new(ttl: Duration) -> KeyCache {
        KeyCache {
            inner: Mutex::default(),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The device of a key hash if it was seen valid within the TTL, and the generation to pass to
    /// `put` after a database lookup.
    pub fn get(&self, hash: &[u8]) -> (Option<DeviceAuth>, u64) {
        let g = self.lock();
        let hit = g
            .map
            .get(hash)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(d, _)| d.clone());
        (hit, g.generation)
    }

    /// Remembers a key found valid, unless a device was forgotten since `generation`.
    pub fn put(&self, hash: Vec<u8>, device: DeviceAuth, generation: u64) {
        let mut g = self.lock();
        if g.generation != generation {
            return;
        }
        if g.map.len() >= MAX_ENTRIES {
            g.map.clear();
        }
        g.map.insert(hash, (device, Instant::now()));
    }

    /// Forgets every key of a device (after its key was rotated or it was deleted).
    pub fn forget_device(&self, device_id: i64) {
        let mut g = self.lock();
        g.generation += 1;
        g.map.retain(|_, (d, _)| d.id != device_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(id: i64) -> DeviceAuth {
        DeviceAuth {
            id,
            uuid: format!("u{id}"),
            user_id: 7,
        }
    }

    #[test]
    fn a_forgotten_device_is_not_put_back_by_a_racing_lookup() {
        let c = KeyCache::new(Duration::from_secs(60));
        let (hit, gen0) = c.get(b"k1");
        assert!(hit.is_none());
        c.put(b"k1".to_vec(), dev(1), gen0);
        assert_eq!(c.get(b"k1").0.map(|d| d.id), Some(1));
        // A lookup starts, the device is rotated meanwhile, the lookup finishes.
        let (_, gen1) = c.get(b"k2");
        c.forget_device(1);
        c.put(b"k2".to_vec(), dev(1), gen1);
        assert!(c.get(b"k1").0.is_none());
        assert!(c.get(b"k2").0.is_none(), "the stale lookup was not cached");
    }
}
