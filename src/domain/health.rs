//! Is the server well (`GET /health`), and what `GET /metrics` reads from the database when it
//! is scraped (README "Metrics"; the registry itself is `http::metrics`).

use crate::db::tasks::TaskStatus;
use crate::db::{devices, outbox, tasks};
use crate::domain::Cx;
use crate::error::{ApiError, ApiResult};
use crate::state::mail::Outcome;
use schemars::JsonSchema;
use serde::Serialize;

/// `GET /health`'s answer.
#[derive(Serialize, JsonSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
    /// `ok` when a read and an empty write both succeeded.
    pub database: &'static str,
    /// The server's version.
    pub version: &'static str,
}

/// Runs a trivial query on this thread's reader and asks the writer to commit an empty job,
/// so a stuck writer shows as unhealthy. Errors: 503.
pub fn check(cx: &Cx) -> ApiResult<Health> {
    cx.reader
        .query_row("SELECT count(*) FROM plans", [], |r| r.get::<_, i64>(0))
        .map_err(|e| ApiError::unavailable("Database unavailable", 5).with_log(e.to_string()))?;
    cx.write(|_| Ok(()))?;
    Ok(Health {
        status: "ok",
        database: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// What `/metrics` reads from the database at scrape time.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Tasks per status (statuses with none may be absent).
    pub tasks_by_status: Vec<(TaskStatus, i64)>,
    /// Devices whose status is not `offline`.
    pub devices_online: i64,
    /// The main database file (page count × page size).
    pub database_bytes: i64,
    /// The `-wal` file (0 when there is none).
    pub wal_bytes: i64,
    /// Mails in the outbox per status (`db::outbox::STATUSES`; statuses with none may be absent).
    pub email_outbox: Vec<(String, i64)>,
    /// Attempts to hand a mail to the relay so far: (provider, outcome, count).
    pub email_sends: Vec<(&'static str, Outcome, u64)>,
    /// HMACs computed for the inbound-mail webhook so far.
    pub inbound_signatures: u64,
}

/// Reads the scrape-time figures. Errors: 500 when the database cannot be read.
pub fn snapshot(cx: &Cx) -> ApiResult<Snapshot> {
    let mut wal = cx.svc.db.path().as_os_str().to_owned();
    wal.push("-wal");
    Ok(Snapshot {
        tasks_by_status: tasks::count_by_status(cx.reader)?,
        devices_online: devices::count_online(cx.reader)?,
        database_bytes: crate::db::file_bytes(cx.reader)?,
        wal_bytes: std::fs::metadata(&wal).map_or(0, |m| m.len() as i64),
        email_outbox: outbox::count_by_status(cx.reader)?,
        email_sends: cx.svc.mail.outcomes(),
        inbound_signatures: cx.svc.mail.signatures(),
    })
}
