//! What the HTTP side shares between its threads: the domain's services, the route table, the
//! long-poll registry, the event streams, the defences against hostile clients (`net`), the
//! rate-limit windows and the metrics registry, plus the shutdown flag the request loops read.

use crate::domain::Services;
use crate::domain::policy::RATE_WINDOW;
use crate::http::events::EventStreams;
use crate::http::longpoll::LongPolls;
use crate::http::metrics::Metrics;
use crate::http::net::Net;
use crate::http::route::Table;
use crate::state::ratelimit::RateLimiter;
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
    /// Defences against slow and hostile clients: body readers, sockets, smuggling, sentinels.
    pub net: Net,
    /// Request windows of the rate limits (README "Rate limits").
    pub rate: RateLimiter,
    /// What `/metrics` shows; every request's access record moves it.
    pub metrics: Arc<Metrics>,
    /// Set once shutdown has begun: request loops stop instead of treating a closed queue as
    /// a dead accept thread.
    stopping: AtomicBool,
}

impl App {
    /// The HTTP side over `svc`, serving `table`; `port` is the listener's TCP port (`None`
    /// for a Unix socket), so the defences can find their connections' sockets.
    pub fn new(svc: Arc<Services>, table: Table, port: Option<u16>) -> App {
        let net = Net::new(&svc.cfg.net, port);
        let routes = table.routes().iter().map(|r| (r.method.lower(), r.path));
        let metrics = Arc::new(Metrics::new(svc.db.writer_stats(), routes));
        App {
            svc,
            table,
            polls: LongPolls::default(),
            events: EventStreams::default(),
            net,
            rate: RateLimiter::new(RATE_WINDOW),
            metrics,
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
