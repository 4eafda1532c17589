//! The janitor thread (SPEC §2, §7.1 leases, §7.2 offline detection, §7.4 idle sessions).
//!
//! Every `janitor_interval` it gives back attempts whose lease expired (pending again while
//! retries remain, else `timeout`), marks devices that stopped heartbeating `offline` (one
//! `device_offline` message per transition) and revokes sessions idle past
//! `CCJK_SESSION_IDLE_TTL`. Each step is its own writer job; a failing step is logged and
//! retried on the next round.

use crate::api::daemon::record_transition;
use crate::api::lifecycle::give_back;
use crate::app::App;
use crate::db::{devices, sessions, tasks};
use crate::error::ApiResult;
use crate::time;
use std::sync::Arc;
use std::thread;

/// Starts the `ccjk-janitor` thread; it stops when the server stops.
pub fn spawn(app: Arc<App>) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("ccjk-janitor".into())
        .spawn(move || {
            let conn = match app.db.reader() {
                Ok(c) => c,
                Err(e) => return log::error!("janitor cannot open the database: {e}"),
            };
            while app.ticker.sleep(app.cfg.janitor_interval) {
                if let Err(e) = run_once(&app, &conn) {
                    log::error!("janitor round failed: {e}");
                }
            }
        })
}

/// One round of every chore.
pub fn run_once(app: &App, conn: &rusqlite::Connection) -> ApiResult<()> {
    let now = time::now();
    let expired = tasks::expired_leases(conn, &now)?;
    if !expired.is_empty() {
        log::info!("janitor: {} lease(s) expired", expired.len());
        give_back(
            app,
            expired,
            "Lease expired: the daemon did not report in time",
        )?;
    }
    let silent = devices::silent(conn, &now)?;
    if !silent.is_empty() {
        let n = silent.len();
        let ids = silent.clone();
        app.db.write(move |c| {
            // The row as it stands inside the job (a beat may have renamed it meanwhile).
            for id in silent {
                if devices::set_status(c, id, "offline")?
                    && let Some(d) = devices::beat_row(c, id)?
                {
                    record_transition(c, d.user_id, d.id, &d.name, &d.uuid, "device_offline")?;
                }
            }
            Ok(())
        })?;
        for id in ids {
            app.presence.forget_row(id);
        }
        log::info!("janitor: {n} device(s) went offline");
    }
    if let Some(ttl) = app.cfg.session_idle_ttl {
        let cutoff = time::before(ttl);
        let n = app
            .db
            .write(move |c| Ok(sessions::revoke_idle(c, &cutoff)?))?;
        if n > 0 {
            log::info!("janitor: revoked {n} idle session(s)");
        }
    }
    Ok(())
}
