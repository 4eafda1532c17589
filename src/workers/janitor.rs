//! The janitor (docs/tasks.md "Leases", "Devices"; docs/security.md "Sessions"): every
//! `janitor_interval` it requeues attempts whose lease expired (pending again while retries
//! remain, else `timeout`), marks devices that stopped heartbeating `offline` (one
//! `device_offline` message per transition), revokes sessions idle past
//! `CCJK_SESSION_IDLE_TTL`, deletes vault reveal records past their retention and expired KV
//! entries in batches (README "Apps and the KV store"; they are invisible from their expiry on).
//! It also keeps retention (README "Backups, logs and statistics"): daemon logs older than their owner's plan `log_retention_days` are deleted, and finished
//! tasks' stdout and stderr are cleared after `TASK_OUTPUT_RETENTION`, in write jobs of at most
//! `RETENTION_BATCH` rows (and `RETENTION_BATCH_BYTES` of logs) so that other writes get the
//! writer between them, at most `RETENTION_JOBS_PER_ROUND` per kind and round. Each chore is its
//! own write job; a failing chore is logged and tried again on the next round. `run_once` is what
//! the thread runs, callable on its own, as is `retention`.

use crate::db::devices::{self, DeviceStatus};
use crate::db::effects::Effect;
use crate::db::vault::reveals;
use crate::db::{logs, sessions, tasks};
use crate::domain::Services;
use crate::domain::daemon::record_transition;
use crate::domain::lifecycle::requeue;
use crate::domain::policy::{
    DEFAULT_HEARTBEAT_INTERVAL, ONLINE_WINDOW_INTERVALS, RETENTION_BATCH, RETENTION_BATCH_BYTES,
    RETENTION_JOBS_PER_ROUND, TASK_OUTPUT_RETENTION, VAULT_REVEAL_RETENTION,
};
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
    let cutoff = time::fmt(svc.clock.now() - VAULT_REVEAL_RETENTION);
    if reveals::any_before(reader, &cutoff)? {
        let n = svc.db.write(move |tx| Ok(reveals::prune(tx, &cutoff)?))?;
        log::info!("janitor: deleted {n} vault reveal record(s) past retention");
    }
    let n = crate::domain::kv::expire(svc, reader)?;
    if n > 0 {
        log::info!("janitor: deleted {n} expired KV entries");
    }
    retention(svc, reader)?;
    Ok(())
}

/// What one retention round removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retained {
    /// Daemon logs deleted, and their bytes.
    pub logs: usize,
    pub log_bytes: i64,
    /// Finished tasks whose output was cleared.
    pub outputs: usize,
}

/// One retention round at the services' clock: logs past their plan's retention, then old
/// tasks' output, each in small write jobs.
pub fn retention(svc: &Services, reader: &rusqlite::Connection) -> ApiResult<Retained> {
    let mut done = Retained::default();
    let now = svc.clock.stamp();
    for _ in 0..RETENTION_JOBS_PER_ROUND {
        let mut ids = Vec::new();
        let mut bytes = 0;
        for (id, size) in logs::expired(reader, &now, RETENTION_BATCH)? {
            if !ids.is_empty() && bytes + size > RETENTION_BATCH_BYTES {
                break;
            }
            ids.push(id);
            bytes += size;
        }
        if ids.is_empty() {
            break;
        }
        let n = svc.db.write(move |tx| Ok(logs::delete_ids(tx, &ids)?))?;
        done.logs += n;
        done.log_bytes += bytes;
        if n == 0 {
            break;
        }
    }
    let cutoff = time::fmt(svc.clock.now() - TASK_OUTPUT_RETENTION);
    for _ in 0..RETENTION_JOBS_PER_ROUND {
        let ids = tasks::old_output(reader, &cutoff, RETENTION_BATCH)?;
        if ids.is_empty() {
            break;
        }
        let n = svc.db.write(move |tx| Ok(tasks::clear_output(tx, &ids)?))?;
        done.outputs += n;
        if n == 0 {
            break;
        }
    }
    if done != Retained::default() {
        log::info!(
            "janitor: retention deleted {} log(s) ({} bytes), cleared the output of {} task(s)",
            done.logs,
            done.log_bytes,
            done.outputs
        );
    }
    Ok(done)
}
