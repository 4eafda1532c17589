//! Event streams as the HTTP side hands them over (docs/events.md): a `GET /v1/events` route
//! answers `Out::Stream`, and the server gives the tiny_http request, with what the stream needs
//! to know, to the one events thread (`workers::events`), which writes every stream; the worker
//! that took the request goes back to `recv()` at once, as it does for a parked long-poll.
//!
//! Everything reaches the events thread through one channel, in order: new streams, events
//! published by committed writes (`EffectRouter`), "re-check this user's credentials", and the
//! shutdown. Ordering new streams and events through the same channel is what makes a
//! `Last-Event-ID` resume exact. The per-user stream count is kept here, so a route can refuse
//! a stream over the cap before handing anything over.

use crate::db::effects::{Event, EventKind};
use crate::error::{ApiError, ApiResult};
use crate::http::server::AccessInfo;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

/// What a stream needs to know, from the route that opened it.
pub struct StreamSpec {
    pub user_id: i64,
    /// The credential it was opened with, checked again on every ping and whenever the user's
    /// credentials are revoked: the stream ends when it no longer authenticates.
    pub token: String,
    /// Event kinds the credential may hear (an API key hears the kinds its scopes cover).
    pub hears: Vec<EventKind>,
    /// The client's `Last-Event-ID` (header or `last_event_id` query parameter).
    pub last_event_id: Option<String>,
}

/// A stream on its way to the events thread.
pub struct Opening {
    pub raw: tiny_http::Request,
    pub info: AccessInfo,
    pub spec: StreamSpec,
}

/// What the events thread is told.
pub enum Cmd {
    /// A committed write published this event.
    Event(Box<Event>),
    /// A new stream.
    Open(Box<Opening>),
    /// Some of this user's credentials were revoked: check its streams now.
    Recheck(i64),
    /// Shutdown: end every stream and stop.
    Close,
}

/// The handle every thread shares: the channel to the events thread and the stream counts.
pub struct EventStreams {
    tx: Sender<Cmd>,
    rx: Mutex<Option<Receiver<Cmd>>>,
    counts: Mutex<HashMap<i64, usize>>,
    closed: AtomicBool,
}

impl Default for EventStreams {
    fn default() -> Self {
        let (tx, rx) = channel();
        EventStreams {
            tx,
            rx: Mutex::new(Some(rx)),
            counts: Mutex::default(),
            closed: AtomicBool::new(false),
        }
    }
}

impl EventStreams {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<i64, usize>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The receiving end, for the events thread (once).
    pub fn take_receiver(&self) -> Option<Receiver<Cmd>> {
        self.rx.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Counts one more stream for `user_id`. Errors: 429 when the user already has `cap`
    /// streams open, 503 when shutting down.
    pub fn reserve(&self, user_id: i64, cap: usize) -> ApiResult<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(ApiError::unavailable("Shutting down", 5));
        }
        let mut c = self.counts();
        let n = c.entry(user_id).or_default();
        if *n >= cap {
            let mut e = ApiError::rate_limited(5);
            e.message =
                format!("At most {cap} event streams may be open per user; close one first");
            return Err(e);
        }
        *n += 1;
        Ok(())
    }

    /// Forgets one stream of `user_id` (it ended, or never started).
    pub fn release(&self, user_id: i64) {
        let mut c = self.counts();
        if let Some(n) = c.get_mut(&user_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.remove(&user_id);
            }
        }
    }

    /// Open streams now, over all users (metrics).
    pub fn open_count(&self) -> usize {
        self.counts().values().sum()
    }

    /// Hands a stream to the events thread. Errors: the events thread is gone (shutdown); the
    /// stream is handed back to be answered 503.
    pub fn open(&self, o: Opening) -> Result<(), Box<Opening>> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Box::new(o));
        }
        self.tx.send(Cmd::Open(Box::new(o))).map_err(|e| match e.0 {
            Cmd::Open(o) => o,
            _ => unreachable!("sent an Open"),
        })
    }

    /// Publishes an event (after its write committed).
    pub fn publish(&self, e: Box<Event>) {
        let _ = self.tx.send(Cmd::Event(e));
    }

    /// Asks for the user's streams to check their credentials now.
    pub fn recheck(&self, user_id: i64) {
        let _ = self.tx.send(Cmd::Recheck(user_id));
    }

    /// Ends every stream and refuses new ones (shutdown).
    pub fn close(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            let _ = self.tx.send(Cmd::Close);
        }
    }
}
