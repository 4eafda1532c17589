//! What domain functions work with: the shared `Services` (configuration, the writer, the
//! sealer, the caches and indexes, the clock) and the per-call context `Cx` (those services
//! plus the calling thread's read-only connection). Neither knows anything about HTTP, so the
//! routes, the CLI, the background workers and the unit tests all call the domain the same way.

use crate::config::Config;
use crate::crypto::Sealer;
use crate::db::{Db, Tx};
use crate::error::ApiResult;
use crate::state::claimable::ClaimableIndex;
use crate::state::keycache::KeyCache;
use crate::state::mail::MailState;
use crate::state::presence::Presence;
use crate::state::throttle::Throttle;
use crate::state::touches::Touches;
use rusqlite::Connection;
use std::sync::Arc;
use std::time::SystemTime;

/// Everything the domain shares across threads. Built once by `Services::new`.
pub struct Services {
    pub cfg: Config,
    /// The database: `write` for the one writer, `reader()` for new read connections.
    pub db: Db,
    /// Seals and opens stored secrets (docs/security.md "Stored secrets"); shared so that a
    /// write job can seal inside its transaction (the vault does).
    pub sealer: Arc<Sealer>,
    /// Login throttling (docs/security.md "Brute force").
    pub throttle: Throttle,
    /// A PHC string of a random password: unknown accounts are verified against it, so they
    /// cost the same hash as known ones.
    pub dummy_hash: String,
    /// Which devices and users may have claimable work (shared with write jobs).
    pub claimable: Arc<ClaimableIndex>,
    /// Heartbeats not yet written, and cached device rows.
    pub presence: Presence,
    /// Recently validated device keys.
    pub device_keys: KeyCache,
    /// App tokens whose `last_used_at` write was queued lately.
    pub app_touches: Touches,
    /// Sessions (`s<id>`) and API keys (`k<id>`) whose `last_used_at` write was queued lately.
    pub credential_touches: Touches,
    /// The clock rules read.
    pub clock: Clock,
    /// The mailer's wake-up signal and the mail counters.
    pub mail: MailState,
}

impl Services {
    /// Services over an open database; `dummy_hash` is a PHC string of a random password.
    pub fn new(cfg: Config, db: Db, sealer: Sealer, dummy_hash: String) -> Services {
        use crate::domain::policy::{DEVICE_KEY_TTL, DEVICE_ROW_TTL, LAST_USED_EVERY};
        let touch_every = crate::domain::callers::touch_every(&cfg);
        Services {
            cfg,
            db,
            sealer: Arc::new(sealer),
            throttle: Throttle::default(),
            dummy_hash,
            claimable: Arc::default(),
            presence: Presence::new(DEVICE_ROW_TTL),
            device_keys: KeyCache::new(DEVICE_KEY_TTL),
            app_touches: Touches::new(LAST_USED_EVERY),
            credential_touches: Touches::new(touch_every),
            clock: Clock::default(),
            mail: MailState::default(),
        }
    }
}

/// The clock domain rules read (expiry, idle sessions). `skew` lets a test move time forward
/// without sleeping.
#[derive(Default)]
pub struct Clock {
    skew: std::sync::Mutex<std::time::Duration>,
}

impl Clock {
    /// Now.
    pub fn now(&self) -> SystemTime {
        SystemTime::now() + *self.skew.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Now, as stored (`2026-01-20T10:00:00.000Z`).
    pub fn stamp(&self) -> String {
        crate::time::fmt(self.now())
    }

    /// Moves this clock forward by `d` (tests).
    pub fn advance(&self, d: std::time::Duration) {
        *self.skew.lock().unwrap_or_else(|p| p.into_inner()) += d;
    }
}

/// One call into the domain: the services and this thread's read-only connection.
#[derive(Clone, Copy)]
pub struct Cx<'a> {
    pub svc: &'a Services,
    /// This thread's read-only connection (writes go through `write`).
    pub reader: &'a Connection,
}

impl<'a> Cx<'a> {
    /// A context over `svc` reading through `reader`.
    pub fn new(svc: &'a Services, reader: &'a Connection) -> Cx<'a> {
        Cx { svc, reader }
    }

    /// The configuration.
    pub fn cfg(&self) -> &'a Config {
        &self.svc.cfg
    }

    /// Runs `f` on the writer inside the next group-commit transaction (see `db::Db::write`).
    pub fn write<R, F>(&self, f: F) -> ApiResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Tx) -> ApiResult<R> + Send + 'static,
    {
        self.svc.db.write(f)
    }
}

/// Where a call came from, for the records that keep it (sessions, devices): the client
/// address (`X-Forwarded-For`'s last hop behind a trusted proxy, or `unix`) and user agent.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub ip: String,
    pub user_agent: Option<String>,
}

impl Origin {
    /// The origin of a call made by an admin on the command line.
    pub fn cli() -> Origin {
        Origin {
            ip: "cli".into(),
            user_agent: Some("ccjk-cloud cli".into()),
        }
    }
}

/// A page of a list: `limit` rows after skipping `offset` (docs/limits.md "Pagination").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Default for Page {
    fn default() -> Page {
        Page {
            limit: crate::domain::policy::DEFAULT_PAGE,
            offset: 0,
        }
    }
}

/// One page of rows, and whether more follow.
#[derive(Clone, Debug)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub page: Page,
    pub more: bool,
}

impl<T> Paged<T> {
    /// Builds a page from up to `page.limit + 1` rows read (the extra row only says "more").
    pub fn from_rows(mut rows: Vec<T>, page: Page) -> Paged<T> {
        let more = rows.len() as i64 > page.limit;
        rows.truncate(page.limit.max(0) as usize);
        Paged {
            items: rows,
            page,
            more,
        }
    }

    /// The cursor of the next page (its offset), if there is one.
    pub fn next_cursor(&self) -> Option<String> {
        self.more
            .then(|| (self.page.offset + self.page.limit).to_string())
    }

    /// Maps the rows, keeping the page.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Paged<U> {
        Paged {
            items: self.items.into_iter().map(f).collect(),
            page: self.page,
            more: self.more,
        }
    }
}
