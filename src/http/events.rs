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
use crate::http::net::sockets::{self, Sockets};
use crate::http::server::AccessInfo;
use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// The write the events thread is in, so that the watchdog can cut the connection off when the
/// write lasts too long: the events thread writes every stream, and a client that stopped
/// reading (before its socket is found, its send timeout is the server's 30 s) or reads a little
/// at a time must not hold the others' events (docs/events.md, "Ending").
#[derive(Default)]
pub struct WriteWatch {
    /// The stream's peer, and when the write began.
    now: Mutex<Option<(SocketAddr, Instant)>>,
}

impl WriteWatch {
    fn now(&self) -> std::sync::MutexGuard<'_, Option<(SocketAddr, Instant)>> {
        self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `write`, a write to the connection of `peer`, where the watchdog can see it.
    pub fn around<T>(&self, peer: SocketAddr, write: impl FnOnce() -> T) -> T {
        *self.now() = Some((peer, Instant::now()));
        let r = write();
        *self.now() = None;
        r
    }

    /// For the watchdog: shuts down the connection of a write that has been blocked for longer
    /// than `after`, which makes the write fail at once. Finding the socket scans the process's
    /// descriptors (`http::net::sockets`), so this costs something only when a write is stuck.
    pub fn cut_stalled(&self, sockets: &Sockets, after: Duration) {
        let stalled = match *self.now() {
            Some((peer, since)) if since.elapsed() > after => Some(peer),
            _ => None,
        };
        let Some(peer) = stalled else { return };
        if let Some(fd) = sockets.find(peer) {
            sockets::shutdown(&fd, Shutdown::Both);
            log::info!("events: a write to {peer} blocked past {after:?}; connection shut down");
        }
        let mut now = self.now();
        if now.is_some_and(|(p, _)| p == peer) {
            *now = None;
        }
    }
}

/// The handle every thread shares: the channel to the events thread and the stream counts.
pub struct EventStreams {
    tx: Sender<Cmd>,
    rx: Mutex<Option<Receiver<Cmd>>>,
    counts: Mutex<HashMap<i64, usize>>,
    closed: AtomicBool,
    /// The events thread's write in progress.
    pub watch: Arc<WriteWatch>,
}

impl Default for EventStreams {
    fn default() -> Self {
        let (tx, rx) = channel();
        EventStreams {
            tx,
            rx: Mutex::new(Some(rx)),
            counts: Mutex::default(),
            closed: AtomicBool::new(false),
            watch: Arc::default(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn the_watchdog_cuts_off_a_write_that_blocks() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let _client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (mut accepted, peer) = listener.accept().expect("accept");
        let sockets = Sockets::new(Some(port));
        assert!(sockets.usable(), "pidfd_open failed: needs Linux 5.6");
        let watch = Arc::new(WriteWatch::default());
        let w = watch.clone();
        // The client never reads: the writes block once both socket buffers are full.
        let writer = std::thread::spawn(move || {
            let chunk = vec![b'x'; 64 << 10];
            w.around(peer, || {
                loop {
                    if let Err(e) = accepted.write_all(&chunk) {
                        return e;
                    }
                }
            })
        });
        // Nothing to cut while the write is young.
        watch.cut_stalled(&sockets, Duration::from_secs(3600));
        assert!(!writer.is_finished());
        let t0 = Instant::now();
        while !writer.is_finished() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the write was not cut off"
            );
            std::thread::sleep(Duration::from_millis(100));
            watch.cut_stalled(&sockets, Duration::from_millis(500));
        }
        let e = writer.join().expect("writer thread");
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::NotConnected
                    | std::io::ErrorKind::ConnectionReset
            ),
            "{e:?}"
        );
        assert!(watch.now().is_none());
    }
}
