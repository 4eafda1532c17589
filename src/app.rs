//! The shared state of a running server (`App`) and the per-request context (`Ctx`).
//!
//! `App` is built once by `lib::start` and shared by every thread through an `Arc`. `Ctx` is
//! what a route function gets: the app, this thread's read-only connection, and the request.

use crate::config::Config;
use crate::crypto::Sealer;
use crate::db::Db;
use crate::error::ApiResult;
use crate::http::Req;
use crate::park::ParkingLot;
use crate::throttle::Throttle;
use rusqlite::Connection;
use std::sync::atomic::AtomicBool;

/// Everything the threads share.
pub struct App {
    pub cfg: Config,
    pub db: Db,
    /// Seals and opens stored secrets (SPEC §8.3).
    pub sealer: Sealer,
    /// Login throttling (SPEC §8.2).
    pub throttle: Throttle,
    /// A PHC string of a random password: unknown accounts are verified against it, so they
    /// cost the same hash as known ones (SPEC §8.1).
    pub dummy_hash: String,
    /// Parked long-polls (SPEC §7.1).
    pub park: ParkingLot,
    /// Recently validated device keys.
    pub device_keys: crate::keycache::KeyCache,
    /// Heartbeats not yet written (SPEC §10 coalescing).
    pub presence: crate::presence::Presence,
    /// Which devices and users may have claimable work.
    pub hints: std::sync::Arc<crate::hints::Hints>,
    /// Wakes the janitor early at shutdown.
    pub ticker: Ticker,
    /// Set once shutdown has begun.
    pub stopping: AtomicBool,
    /// Defences against slow and hostile clients (`net`): body readers, sockets, watchdog.
    pub net: crate::net::Net,
}

impl App {
    /// A device's row or key was changed by something other than its own heartbeat (rename,
    /// config, re-registration, key rotation, deletion): its cached key and heartbeat row are
    /// forgotten, and its parked polls wake to re-check their credential (a rotated or deleted
    /// device's poll answers 401 now rather than at its deadline). One place, so no caller
    /// can forget one of the three.
    pub fn device_changed(&self, device_id: i64) {
        self.device_keys.forget_device(device_id);
        self.presence.forget_row(device_id);
        self.park.wake_device(device_id);
    }
}

/// One request being handled.
pub struct Ctx<'a> {
    pub app: &'a App,
    /// This thread's read-only connection.
    pub db: &'a Connection,
    pub req: &'a Req,
}

impl Ctx<'_> {
    /// The configuration.
    pub fn cfg(&self) -> &Config {
        &self.app.cfg
    }

    /// Runs `f` on the writer connection (see `Db::write`).
    pub fn write<R, F>(&self, f: F) -> ApiResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> ApiResult<R> + Send + 'static,
    {
        self.app.db.write(f)
    }
}

/// A sleep that shutdown interrupts (the janitor's clock).
#[derive(Default)]
pub struct Ticker {
    stopped: std::sync::Mutex<bool>,
    cv: std::sync::Condvar,
}

impl Ticker {
    /// Sleeps for `d`; returns `false` if the server is stopping.
    pub fn sleep(&self, d: std::time::Duration) -> bool {
        let g = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        let (g, _) = self
            .cv
            .wait_timeout_while(g, d, |s| !*s)
            .unwrap_or_else(|p| p.into_inner());
        !*g
    }

    /// Ends every current and future `sleep`.
    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
    }
}
