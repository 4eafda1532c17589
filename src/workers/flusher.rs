//! The heartbeat flusher: writes the heartbeats coalesced in memory (`state::presence`) every
//! `heartbeat_flush_every` (`config`, default 5 s), in one write job, and once more at
//! shutdown.

use crate::db::devices;
use crate::domain::Services;
use crate::error::ApiResult;
use crate::workers::{Stop, periodic};
use std::sync::Arc;

/// Writes everything pending now.
pub fn flush(svc: &Services) -> ApiResult<()> {
    let entries = svc.presence.drain();
    if entries.is_empty() {
        return Ok(());
    }
    svc.db
        .write(move |tx| Ok(devices::write_beats(tx, &entries)?))
}

/// Starts the `ccjk-flusher` thread.
pub fn spawn(svc: Arc<Services>, stop: &Stop) -> std::io::Result<std::thread::JoinHandle<()>> {
    periodic(
        "flusher",
        svc.cfg.heartbeat_flush_every,
        stop,
        move |last| {
            if let Err(e) = flush(&svc) {
                let when = if last { " at shutdown" } else { "" };
                log::error!("writing heartbeats{when} failed: {e}");
            }
        },
    )
}
