//! Heartbeats coalesced in memory (SPEC §10: "heartbeats coalesced in memory and written in
//! batches, status changes written at once").
//!
//! The device row a heartbeat needs (status, config, facts) is cached here too for
//! `ROW_TTL`, forgotten whenever this process changes it otherwise (config, rename, key,
//! deletion, the janitor's offline marking; a generation counter stops a racing read from
//! caching a stale row).
//!
//! A heartbeat that changes nothing but the time, the system info and the client address only
//! updates this map; the `ccjk-flush` thread writes every pending entry in one writer job every five
//! seconds (and at shutdown), together with the online seconds it accumulated per UTC day. A
//! heartbeat that changes the status or the device's reported facts is written at once by the
//! heartbeat itself (after taking this device's pending entry, so nothing is written twice or
//! out of order). A crash loses at most the last five seconds of heartbeat times — never a status
//! change, a task or a result.

use crate::app::App;
use crate::db::devices::{self, BeatRow};
use crate::error::ApiResult;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often pending heartbeats are written. Each flush rewrites every touched device and uptime
/// page into the WAL, so with 1,000 daemons a flush a second was a steady megabyte a second of
/// WAL and checkpoints; five seconds stays far inside the 15 s (3 × the smallest interval)
/// after which the janitor calls a device offline.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// A device's heartbeats since the last write.
#[derive(Clone, Debug, Default)]
pub struct Pending {
    /// Time of the latest heartbeat (stored form).
    pub last: String,
    pub system_info: Option<String>,
    pub ip_address: Option<String>,
    /// Online seconds to add, per UTC day.
    pub uptime: Vec<(String, i64)>,
}

impl Pending {
    /// Adds online seconds to a day.
    pub fn add_uptime(&mut self, day: &str, secs: i64) {
        if secs <= 0 {
            return;
        }
        match self.uptime.iter_mut().find(|(d, _)| d == day) {
            Some((_, s)) => *s += secs,
            None => self.uptime.push((day.to_string(), secs)),
        }
    }
}

/// How long a cached device row is trusted.
pub const ROW_TTL: Duration = Duration::from_secs(5);

/// Cached heartbeat rows and the generation of the last `forget_row`.
#[derive(Default)]
struct Rows {
    generation: u64,
    map: HashMap<i64, (Arc<BeatRow>, std::time::Instant)>,
}

/// Pending heartbeats by internal device id.
#[derive(Default)]
pub struct Presence {
    map: Mutex<HashMap<i64, Pending>>,
    rows: Mutex<Rows>,
    last_seen: Mutex<HashMap<i64, String>>,
}

impl Presence {
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
            .filter(|(_, at)| at.elapsed() < ROW_TTL);
        (hit.map(|(r, _)| r.clone()), g.generation)
    }

    /// Caches a row read (or just written) at `generation`, unless a row was forgotten since.
    pub fn cache_row(&self, row: Arc<BeatRow>, generation: u64) {
        let mut g = self.rows();
        if g.generation == generation {
            g.map.insert(row.id, (row, std::time::Instant::now()));
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

/// Writes pending heartbeats to the database (inside a writer job).
pub fn write(c: &rusqlite::Connection, entries: &[(i64, Pending)]) -> ApiResult<()> {
    for (id, p) in entries {
        devices::touch_beat(
            c,
            *id,
            &p.last,
            p.system_info.as_deref(),
            p.ip_address.as_deref(),
        )?;
        for (day, secs) in &p.uptime {
            devices::add_uptime(c, *id, day, *secs)?;
        }
    }
    Ok(())
}

/// Writes everything pending now (the flush thread, and shutdown).
pub fn flush(app: &App) -> ApiResult<()> {
    let entries = app.presence.drain();
    if entries.is_empty() {
        return Ok(());
    }
    app.db.write(move |c| write(c, &entries))
}

/// Starts the `ccjk-flush` thread; it flushes once more and returns when the server stops.
pub fn spawn(app: Arc<App>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("ccjk-flush".into())
        .spawn(move || {
            while app.ticker.sleep(FLUSH_EVERY) {
                if let Err(e) = flush(&app) {
                    log::error!("writing heartbeats failed: {e}");
                }
            }
            if let Err(e) = flush(&app) {
                log::error!("writing heartbeats at shutdown failed: {e}");
            }
        })
}
