//! The janitor (docs/tasks.md "Leases", "Devices"; docs/security.md "Sessions"): every
//! `janitor_interval` it requeues attempts whose lease expired (pending again while retries
//! remain, else `timeout`), marks devices that stopped heartbeating `offline` (one
//! `device_offline` message per transition), revokes sessions idle past
//! `CCJK_SESSION_IDLE_TTL` and deletes expired KV entries in batches (README "Apps and the KV
//! store"; they are invisible from their expiry on). Each chore is its own write job; a failing chore is logged and
//! tried again on the next round. `run_once` is what the thread runs, callable on its own.

use crate::db::devices::{self, DeviceStatus};
use crate::db::effects::Effect;
use crate::db::{sessions, tasks};
use crate::domain::Services;
use crate::domain::daemon::record_transition;
use crate::domain::lifecycle::requeue;
use crate::domain::policy::{DEFAULT_HEARTBEAT_INTERVAL, ONLINE_WINDOW_INTERVALS};
use crate::error::ApiResult;
use crate::time;
use crate::workers::{Stop, periodic};
use std::sync::Arc;

/// Starts the `ccjk-janitor` thread.
pub fn spawn(svc: Arc<Services>, stop: &Stop) -> std::io::Result<std::thread::JoinHandle<()>> {
    let every = svc.cfg.janitor_interval;
    let mut conn = None;
    periodic("janitor", every, stop, move |last| {
        if last {
            return;
        }
        if conn.is_none() {
            conn = svc
                .db
                .reader()
                .map_err(|e| log::error!("janitor cannot open the database: {e}"))
                .ok();
        }
        if let Some(c) = &conn
            && let Err(e) = run_once(&svc, c)
        {
            log::error!("janitor round failed: {e}");
        }
    })
}

/// One round of every chore, reading through `reader`.
pub fn run_once(svc: &Services, reader: &rusqlite::Connection) -> ApiResult<()> {
    let now = time::now();
    let expired = tasks::expired_leases(reader, &now)?;
    if !expired.is_empty() {
        log::info!("janitor: {} lease(s) expired", expired.len());
        let index = svc.claimable.clone();
        svc.db.write(move |tx| {
            requeue(
                tx,
                &index,
                &expired,
                "Lease expired: the daemon did not report in time",
            )
        })?;
    }
    let silent = devices::silent(
        reader,
        &now,
        ONLINE_WINDOW_INTERVALS,
        DEFAULT_HEARTBEAT_INTERVAL,
    )?;
    if !silent.is_empty() {
        let n = silent.len();
        svc.db.write(move |tx| {
            // The row as it stands inside the job (a beat may have renamed it meanwhile).
            for id in silent {
                if devices::set_status(tx, id, DeviceStatus::Offline)?
                    && let Some(d) = devices::beat_row(tx, id)?
                {
                    record_transition(tx, &d, DeviceStatus::Offline)?;
                }
                tx.after_commit(Effect::DeviceRowStale(id));
            }
            Ok(())
        })?;
        log::info!("janitor: {n} device(s) went offline");
    }
    if let Some(ttl) = svc.cfg.session_idle_ttl {
        let cutoff = time::fmt(svc.clock.now() - ttl);
        let n = svc
            .db
            .write(move |tx| Ok(sessions::revoke_idle(tx, &cutoff)?))?;
        if n > 0 {
            log::info!("janitor: revoked {n} idle session(s)");
        }
    }
    let n = crate::domain::kv::expire(svc, reader)?;
    if n > 0 {
        log::info!("janitor: deleted {n} expired KV entries");
    }
    Ok(())
}
