//! Heartbeats coalesced in memory, and the cached device rows heartbeats read
//! (README "Performance": heartbeats are written in batches, status changes at once).
//!
//! A heartbeat that changes nothing but the time, the system info and the client address only
//! updates this map; the heartbeat flusher (`workers::flusher`) writes every pending entry in
//! one write job every `heartbeat_flush_every` (and at shutdown), together with the
//! online seconds accumulated per UTC day. A heartbeat that changes the status or the device's
//! reported facts is written at once by the heartbeat itself, after taking this device's pending
//! entry, so nothing is written twice or out of order. A crash loses at most one flush interval
//! of heartbeat times — never a status change, a task or a result.
//!
//! The device row a heartbeat needs (status, config, facts) is cached here too for the row TTL,
//! and forgotten whenever this process changes it otherwise (the `DeviceChanged` after-commit
//! effect); a generation counter stops a racing read from caching a stale row.

use crate::db::devices::BeatRow;
pub use crate::db::devices::PendingBeat as Pending;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Cached heartbeat rows and the generation of the last `forget_row`.
#[derive(Default)]
struct Rows {
    generation: u64,
    map: HashMap<i64, (Arc<BeatRow>, Instant)>,
}

/// Pending heartbeats by internal device id.
pub struct Presence {
    map: Mutex<HashMap<i64, Pending>>,
    rows: Mutex<Rows>,
    last_seen: Mutex<HashMap<i64, String>>,
    /// How long a cached device row is trusted.
    row_ttl: Duration,
}

impl Presence {
    /// Nothing pending; cached rows live `row_ttl`.
    pub fn new(row_ttl: Duration) -> Presence {
        Presence {
            map: Mutex::default(),
            rows: Mutex::default(),
            last_seen: Mutex::default(),
            row_ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Pending>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers `at` as the time of the device's latest heartbeat and returns the previous one
    /// seen by this process, if any (kept across flushes, so online time is counted from the
    /// previous beat, not from a cached row's older time).
    pub fn swap_last(&self, device_id: i64, at: &str) -> Option<String> {
        self.last_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(device_id, at.to_string())
    }

    /// Records a heartbeat in memory.
    pub fn record(&self, device_id: i64, update: impl FnOnce(&mut Pending)) {
        update(self.lock().entry(device_id).or_default());
    }

    /// Takes a device's pending entry (to write it now).
    pub fn take(&self, device_id: i64) -> Option<Pending> {
        self.lock().remove(&device_id)
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, Rows> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached heartbeat row of a device if fresh, and the generation to pass to
    /// `cache_row` after reading it from the database.
    pub fn row(&self, device_id: i64) -> (Option<Arc<BeatRow>>, u64) {
        let g = self.rows();
        let hit = g
            .map
            .get(&device_id)
            .filter(|(_, at)| at.elapsed() < self.row_ttl);
        (hit.map(|(r, _)| r.clone()), g.generation)
    }

    /// Caches a row read (or just written) at `generation`, unless a row was forgotten since.
    pub fn cache_row(&self, row: Arc<BeatRow>, generation: u64) {
        let mut g = self.rows();
        if g.generation == generation {
            g.map.insert(row.id, (row, Instant::now()));
        }
    }

    /// Forgets a device's cached row (it was changed by something else than a heartbeat).
    pub fn forget_row(&self, device_id: i64) {
        let mut g = self.rows();
        g.generation += 1;
        g.map.remove(&device_id);
    }

    /// Takes every pending entry.
    pub fn drain(&self) -> Vec<(i64, Pending)> {
        self.lock().drain().collect()
    }
}
