//! Heartbeats coalesced in memory (SPEC §10: "heartbeats coalesced in memory and written in
//! batches, status changes written at once").
//!
//! A heartbeat that changes nothing but the time, the system info and the client address only
//! updates this map; the `ccjk-flush` thread writes every pending entry in one writer job once a
//! second (and at shutdown), together with the online seconds it accumulated per UTC day. A
//! heartbeat that changes the status or the device's reported facts is written at once by the
//! heartbeat itself (after taking this device's pending entry, so nothing is written twice or
//! out of order). A crash loses at most the last second of heartbeat times — never a status
//! change, a task or a result.

use crate::app::App;
use crate::db::devices;
use crate::error::ApiResult;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often pending heartbeats are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

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

/// Pending heartbeats by internal device id.
#[derive(Default)]
pub struct Presence {
    map: Mutex<HashMap<i64, Pending>>,
}

impl Presence {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Pending>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The latest unwritten heartbeat time of a device, if any.
    pub fn last(&self, device_id: i64) -> Option<String> {
        self.lock().get(&device_id).map(|p| p.last.clone())
    }

    /// Records a heartbeat in memory.
    pub fn record(&self, device_id: i64, update: impl FnOnce(&mut Pending)) {
        update(self.lock().entry(device_id).or_default());
    }

    /// Takes a device's pending entry (to write it now).
    pub fn take(&self, device_id: i64) -> Option<Pending> {
        self.lock().remove(&device_id)
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
