//! What the HTTP side shares between its threads: the domain's services, the route table and
//! the long-poll registry and the event streams, plus the shutdown flag the request loops read.

use crate::domain::Services;
use crate::http::events::EventStreams;
use crate::http::longpoll::LongPolls;
use crate::http::route::Table;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The HTTP side's shared state. Built once by `lib::start`.
pub struct App {
    pub svc: Arc<Services>,
    /// Every route of every family.
    pub table: Table,
    /// Parked long-polls.
    pub polls: LongPolls,
    /// Open event streams (the channel to the events thread).
    pub events: EventStreams,
    /// Set once shutdown has begun: request loops stop instead of treating a closed queue as
    /// a dead accept thread.
    stopping: AtomicBool,
}

impl App {
    /// The HTTP side over `svc`, serving `table`.
    pub fn new(svc: Arc<Services>, table: Table) -> App {
        App {
            svc,
            table,
            polls: LongPolls::default(),
            events: EventStreams::default(),
            stopping: AtomicBool::new(false),
        }
    }

    /// Whether shutdown has begun.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Marks the start of shutdown.
    pub fn begin_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }
}
