//! The server's defences against tiny_http 0.12's defects, applied from outside the crate.
//!
//! tiny_http reads small bodies itself but leaves larger ones to whoever holds the request, with
//! no read timeout; it drains an unread body on drop into a buffer of the declared size; it keeps
//! a connection open whatever the response says; it accepts ambiguous body framing; and its
//! connection pool can leave a new connection without a thread. This module owns the answers,
//! which `server` calls from a few marked places:
//! * `framing`: requests with ambiguous framing (request smuggling) are refused, 400.
//! * `body`: bodies tiny_http has not read are read on a small bounded pool of `ccjk-body-*`
//!   threads under deadlines (`CCJK_BODY_TIMEOUT`), never on a worker.
//! * `sockets`: the accepted socket behind a request, found through `/proc/self/fd` and
//!   `pidfd_getfd`, so that a stalled read can be woken and a connection really closed.
//! * [`Net::close_with`]: the last response of a connection, written without waiting on the
//!   client, after which the connection is shut down (413, 408, 400 for smuggling, 503).
//! * The `ccjk-watchdog` thread (`workers::watchdog`) cuts off expired body reads and sends
//!   sentinel requests to our own listener to get stranded connections a thread; its counters
//!   live here.
//!
//! `crate::alloc` complements this: it makes the drain of a huge declared body cheap.

pub mod body;
pub mod framing;
pub mod sockets;

use crate::config::NetLimits;
use sockets::Sockets;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The largest declared body whose request may be dropped once its socket is shut down: tiny_http
/// then allocates the declared size (`crate::alloc` maps it without touching it). Larger
/// declarations cannot be reserved in the address space at all (47 bits on x86-64); those
/// connections are shut down and their request leaked instead (one thread and two descriptors).
const MAX_DROPPABLE: usize = 1 << 44;
/// Declared bodies of this size or more are dropped one at a time (one reservation at a time).
const BIG_DROP: usize = crate::alloc::HUGE;
/// Unix listener only (no socket to shut down): connections answered 413 and drained at once
/// on a thread of their own; past this they are leaked instead.
const MAX_DRAINING: usize = 32;
/// How long a refused connection's socket stays open, discarding what the client still sends.
const LINGER: Duration = Duration::from_secs(2);
/// The most sockets lingering at once.
const MAX_LINGERING: usize = 128;
/// How long a peer whose connection was refused for ambiguous framing stays refused.
const POISON_FOR: Duration = Duration::from_secs(10);

/// What the watchdog (`workers::watchdog`) has done since start (for tests and the log).
#[derive(Default)]
pub struct WatchdogCounters {
    /// Sentinels sent.
    pub sentinels: AtomicU64,
    /// Sentinels sent after the first of a round (the pool had no idle thread, or was stuck).
    pub extra: AtomicU64,
    /// Sentinels not answered within the deadline.
    pub unanswered: AtomicU64,
}

/// What the defences share: built once per server, kept in `App`.
pub struct Net {
    /// Finds the socket behind a request.
    pub sockets: Sockets,
    /// The off-worker body readers and their deadlines.
    pub bodies: Arc<body::Bodies>,
    /// Peers refused for ambiguous framing, whose next request tiny_http may already have read.
    poisoned: Mutex<Vec<(SocketAddr, Instant)>>,
    /// Whether `poisoned` is non-empty (read on every request without taking the lock).
    any_poisoned: AtomicBool,
    /// Closed connections' sockets kept open a little longer (see `linger`).
    lingering: Mutex<Vec<(std::net::TcpStream, Instant)>>,
    /// Serialises drops of requests with a huge unread body (see [`BIG_DROP`]).
    big_drop: Mutex<()>,
    /// Unix listener fallback: connections being drained on their own thread.
    draining: Arc<AtomicUsize>,
    /// Requests leaked because their declared body could not be dropped (see [`MAX_DROPPABLE`]).
    pub leaked: AtomicU64,
    /// What the watchdog's sentinels found.
    pub watchdog: WatchdogCounters,
}

impl Net {
    /// The defences for a server listening on `listen_port` (`None`: a Unix socket).
    pub fn new(limits: &NetLimits, listen_port: Option<u16>) -> Net {
        Net {
            sockets: Sockets::new(listen_port),
            bodies: Arc::new(body::Bodies::new(limits.clone())),
            poisoned: Mutex::new(Vec::new()),
            any_poisoned: AtomicBool::new(false),
            lingering: Mutex::new(Vec::new()),
            big_drop: Mutex::new(()),
            draining: Arc::new(AtomicUsize::new(0)),
            leaked: AtomicU64::new(0),
            watchdog: Default::default(),
        }
    }

    /// Whether `raw` came on a connection that was just refused for ambiguous framing: tiny_http
    /// read it from the bytes behind the refused request, so it must not be served.
    pub fn is_poisoned(&self, raw: &tiny_http::Request) -> bool {
        if !self.any_poisoned.load(Ordering::Acquire) {
            return false;
        }
        let Some(peer) = raw.remote_addr() else {
            return false;
        };
        let mut list = self.poisoned.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|(_, at)| at.elapsed() < POISON_FOR);
        self.any_poisoned.store(!list.is_empty(), Ordering::Release);
        list.iter().any(|(p, _)| p == peer)
    }

    /// Marks `raw`'s connection as refused for ambiguous framing (see `is_poisoned`).
    pub fn poison(&self, raw: &tiny_http::Request) {
        if let Some(peer) = raw.remote_addr() {
            let mut list = self.poisoned.lock().unwrap_or_else(|p| p.into_inner());
            list.push((*peer, Instant::now()));
            self.any_poisoned.store(true, Ordering::Release);
        }
    }

    /// Writes `resp` as the last response on `raw`'s connection, then shuts the connection down,
    /// never waiting for the client to send anything: the unread body (if any) is not read, and
    /// no request tiny_http may already have read behind this one can answer on it. `socket` is
    /// the connection's socket if the caller already holds it. The response should carry
    /// `Connection: close`. Errors are the write's (the client may be gone).
    ///
    /// On a Unix listener (no socket to shut down) a request with an unread body is answered on a
    /// thread of its own that drains the body, or leaked when too many are draining.
    pub fn close_with<R: Read + Send + 'static>(
        &self,
        raw: tiny_http::Request,
        resp: tiny_http::Response<R>,
        socket: Option<OwnedFd>,
    ) -> io::Result<()> {
        let socket = socket.or_else(|| raw.remote_addr().and_then(|p| self.sockets.find(*p)));
        let Some(socket) = socket else {
            return self.close_without_socket(raw, resp);
        };
        // The drain in the request's drop, and the connection thread's next read, now see
        // end-of-file as soon as what has already arrived is consumed.
        sockets::shutdown(&socket, Shutdown::Read);
        let declared = raw.body_length().unwrap_or(0);
        if declared > MAX_DROPPABLE {
            return self.leak(raw, resp, &socket);
        }
        let version = raw.http_version().clone();
        let headers = raw.headers().to_vec();
        let head = raw.method() == &tiny_http::Method::Head;
        let mut writer = {
            let _one_at_a_time = (declared >= BIG_DROP)
                .then(|| self.big_drop.lock().unwrap_or_else(|p| p.into_inner()));
            // Drops the request: tiny_http drains what had arrived of the body and stops.
            raw.into_writer()
        };
        let written = resp
            .raw_print(&mut writer, version, &headers, head, None)
            .and_then(|()| writer.flush());
        // FIN after the response; a response queued behind ours (a smuggled request tiny_http
        // read already) can no longer be written, since our writer is still held here.
        sockets::shutdown(&socket, Shutdown::Both);
        drop(writer);
        self.linger(socket);
        written
    }

    /// Keeps our duplicate of a closed connection's socket open for [`LINGER`], discarding what
    /// the client still sends (`reap_lingering`). Closing the last descriptor of a socket with
    /// unread data makes the kernel answer with a reset, which can destroy the response before
    /// the client reads it: a client still sending the body we refused would see "connection
    /// reset" instead of its 413. Past [`MAX_LINGERING`] sockets the duplicate is closed at once.
    fn linger(&self, socket: OwnedFd) {
        let mut l = self.lingering.lock().unwrap_or_else(|p| p.into_inner());
        if l.len() < MAX_LINGERING {
            l.push((std::net::TcpStream::from(socket), Instant::now()));
        }
    }

    /// Discards what lingering sockets received and closes those older than [`LINGER`]. Called
    /// by the watchdog thread. The sockets are shut down for reading, so a read never blocks:
    /// it returns what has arrived, then end-of-file.
    pub fn reap_lingering(&self) {
        let mut l = self.lingering.lock().unwrap_or_else(|p| p.into_inner());
        let mut buf = [0u8; 4096];
        l.retain_mut(|(s, since)| {
            for _ in 0..64 {
                match s.read(&mut buf) {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
            }
            since.elapsed() < LINGER
        });
    }

    /// A request whose declared body cannot be dropped: answer, end the connection, and leak
    /// the request (tiny_http's thread for the connection waits for it for good).
    fn leak<R: Read>(
        &self,
        raw: tiny_http::Request,
        resp: tiny_http::Response<R>,
        socket: &OwnedFd,
    ) -> io::Result<()> {
        self.leaked.fetch_add(1, Ordering::Relaxed);
        log::warn!(
            "leaking a connection from {:?} that declared a {}-byte body",
            raw.remote_addr(),
            raw.body_length().unwrap_or(0)
        );
        let mut stream = raw.upgrade("close", resp);
        let written = stream.flush();
        sockets::shutdown(socket, Shutdown::Both);
        std::mem::forget(stream);
        written
    }

    /// `close_with` when the socket cannot be reached (a Unix listener).
    fn close_without_socket<R: Read + Send + 'static>(
        &self,
        raw: tiny_http::Request,
        resp: tiny_http::Response<R>,
    ) -> io::Result<()> {
        if body::buffered(&raw) {
            return raw.respond(resp);
        }
        let declared = raw.body_length().unwrap_or(0);
        if declared <= crate::alloc::HUGE {
            if self.draining.fetch_add(1, Ordering::SeqCst) < MAX_DRAINING {
                // Dropping the request drains the unread body: do it off the caller's thread.
                let draining = self.draining.clone();
                let spawned =
                    std::thread::Builder::new()
                        .name("ccjk-drain".into())
                        .spawn(move || {
                            let _ = raw.respond(resp);
                            draining.fetch_sub(1, Ordering::SeqCst);
                        });
                if spawned.is_err() {
                    self.draining.fetch_sub(1, Ordering::SeqCst);
                }
                return spawned.map(|_| ());
            }
            self.draining.fetch_sub(1, Ordering::SeqCst);
        }
        self.leaked.fetch_add(1, Ordering::Relaxed);
        log::warn!(
            "leaking a connection on the Unix listener that declared a {declared}-byte body"
        );
        let mut stream = raw.upgrade("close", resp);
        let written = stream.flush();
        std::mem::forget(stream);
        written
    }
}

/// The answer to `GET /health/live`: the process is up and a worker took the request. Touches
/// no database; the watchdog's sentinels and load balancers use it.
pub fn live_response() -> tiny_http::Response<io::Cursor<Vec<u8>>> {
    let mut resp = tiny_http::Response::from_data(&b"{\"status\":\"live\"}"[..]);
    for (k, v) in [
        ("Content-Type", "application/json"),
        ("Cache-Control", "no-store"),
    ] {
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            resp.add_header(h);
        }
    }
    resp
}
