//! Request bodies that tiny_http has not read, read off the worker pool under deadlines.
//!
//! tiny_http reads a body itself, before the request reaches a worker, only when it declares at
//! most 1 KiB and no `Expect: 100-continue` ([`buffered`]); any other body (over 1 KiB, chunked,
//! or with `Expect`) is read from the socket by whoever holds the request, with no timeout. A
//! worker that did so could be held for good by a client that stops sending, and four such
//! clients would freeze every route. Such requests are handed to [`Bodies::submit`] instead:
//! * at most `body_threads` `ccjk-body-N` threads read bodies at once (started on demand, gone
//!   when there is nothing to read); up to `body_queue` more requests wait in line, past that a
//!   request gets 503 at once;
//! * every submitted body is watched from the moment it is submitted: it must be complete within
//!   `body_timeout` plus `body_per_100k` per 100 KiB of its declared length (for a chunked body,
//!   of the route's cap), and may make no progress for at most half of `body_timeout`. The
//!   `ccjk-watchdog` thread calls [`Bodies::reap`] a few times a second, which shuts the expired
//!   connections' sockets for reading: the blocked read returns end-of-file, and the request is
//!   answered 408 and its connection closed (`Net::close_with`), releasing its thread and both
//!   descriptors;
//! * after the body is read, the request continues on the same thread through the normal
//!   pipeline with a read connection from a small shared pool ([`Bodies::with_reader`]).

use super::sockets::{self, Sockets};
use crate::config::NetLimits;
use rusqlite::Connection;
use std::collections::{HashMap, VecDeque};
use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bodies up to this size without `Expect` are read by tiny_http before `recv()` returns.
const TINY_HTTP_BUFFERS: usize = 1024;
/// Read size on a body thread (on its stack).
const CHUNK: usize = 16 * 1024;
/// The unit of the deadline's size term.
const PER: usize = 100 * 1024;

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// More than the route's cap arrived (chunked bodies; declared ones are checked before).
    TooLarge,
    /// The deadline or the idle timeout passed; the socket is shut down.
    TimedOut,
    /// The client closed the connection early or sent malformed chunks.
    Broken,
    /// Every body thread is busy and the line is full: nothing was read (503).
    Busy,
}

/// What happens once a body is read (or not): gets the request, the body, and the connection's
/// socket when the reaper already found it (for `Net::close_with`).
pub type Then =
    Box<dyn FnOnce(tiny_http::Request, Result<Vec<u8>, BodyError>, Option<OwnedFd>) + Send>;

/// Whether tiny_http already holds the whole body of `raw` in memory (or there is none): the
/// worker may read it at no risk. This is the hot path: a length check, and a header scan only
/// for small declared bodies.
pub fn buffered(raw: &tiny_http::Request) -> bool {
    match raw.body_length() {
        Some(0) => true,
        Some(n) => n <= TINY_HTTP_BUFFERS && !raw.headers().iter().any(|h| h.field.equiv("Expect")),
        None => !raw
            .headers()
            .iter()
            .any(|h| h.field.equiv("Transfer-Encoding")),
    }
}

/// The deadline of a body of `len` bytes (declared, or the cap for chunked bodies) under
/// `limits`: `body_timeout` plus `body_per_100k` for each started 100 KiB.
pub fn deadline(limits: &NetLimits, len: usize) -> Duration {
    let units = u32::try_from(len.div_ceil(PER)).unwrap_or(u32::MAX);
    limits
        .body_timeout
        .saturating_add(limits.body_per_100k.saturating_mul(units))
}

/// One watched body read.
struct Watch {
    peer: Option<SocketAddr>,
    started: Instant,
    /// Total deadline.
    until: Instant,
    /// Longest pause allowed between two reads that returned data.
    idle: Duration,
    /// Milliseconds after `started` of the last read that returned data.
    last: AtomicU64,
    /// Set by the reaper when the read has been cut off.
    cut: AtomicBool,
    /// The connection's socket, once the reaper found it.
    socket: Mutex<Option<OwnedFd>>,
}

impl Watch {
    fn progressed(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    fn expired(&self, now: Instant) -> bool {
        let last = self.started + Duration::from_millis(self.last.load(Ordering::Relaxed));
        now >= self.until || now.saturating_duration_since(last) >= self.idle
    }
}

/// A request waiting for (or on) a body thread.
struct Job {
    id: u64,
    raw: tiny_http::Request,
    cap: usize,
    /// Keep the bytes (`false`: a body read only to be discarded, counted, not stored).
    keep: bool,
    watch: Arc<Watch>,
    then: Then,
}

#[derive(Default)]
struct Line {
    threads: usize,
    waiting: VecDeque<Job>,
}

/// The body readers: threads, their queue, the watched reads and a pool of read connections.
pub struct Bodies {
    limits: NetLimits,
    line: Mutex<Line>,
    watches: Mutex<HashMap<u64, Arc<Watch>>>,
    next_id: AtomicU64,
    readers: Mutex<Vec<Connection>>,
    /// Body reads cut off by the reaper since start (for tests and the log).
    pub cut_off: AtomicU64,
}

impl Bodies {
    /// Readers under `limits`; no thread runs until a body is submitted.
    pub fn new(limits: NetLimits) -> Bodies {
        Bodies {
            limits,
            line: Mutex::new(Line::default()),
            watches: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            readers: Mutex::new(Vec::new()),
            cut_off: AtomicU64::new(0),
        }
    }

    /// Reads `raw`'s body (at most `cap` bytes) on a body thread, then calls `then` there with
    /// the bytes (with `keep`; otherwise an empty body once they are read and dropped). The
    /// read may pause for at most `idle` (default: half of `body_timeout`). `Err` gives the
    /// request back when the line is full or no thread can be started; the caller answers 503
    /// (`Net::close_with`).
    #[allow(clippy::result_large_err)]
    pub fn submit(
        self: &Arc<Self>,
        raw: tiny_http::Request,
        cap: usize,
        idle: Option<Duration>,
        keep: bool,
        then: Then,
    ) -> Result<(), (tiny_http::Request, Then)> {
        let now = Instant::now();
        let len = raw.body_length().unwrap_or(cap).min(cap);
        let watch = Arc::new(Watch {
            peer: raw.remote_addr().copied(),
            started: now,
            until: now + deadline(&self.limits, len),
            idle: idle.unwrap_or(self.limits.body_timeout / 2),
            last: AtomicU64::new(0),
            cut: AtomicBool::new(false),
            socket: Mutex::new(None),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let job = Job {
            id,
            raw,
            cap,
            keep,
            watch: watch.clone(),
            then,
        };
        let mut line = self.line.lock().unwrap_or_else(|p| p.into_inner());
        if line.threads < self.limits.body_threads.max(1) {
            line.threads += 1;
            drop(line);
            self.watch(id, watch);
            let me = self.clone();
            let n = id % 1000;
            let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(1);
            let spawned = std::thread::Builder::new()
                .name(format!("ccjk-body-{n}"))
                .spawn(move || {
                    if let Ok(job) = rx.recv() {
                        me.run(job);
                    }
                });
            return match spawned {
                Ok(_) => {
                    let _ = tx.send(job);
                    Ok(())
                }
                Err(e) => {
                    log::error!("cannot start a body thread: {e}");
                    self.unwatch(id);
                    self.line.lock().unwrap_or_else(|p| p.into_inner()).threads -= 1;
                    Err((job.raw, job.then))
                }
            };
        }
        if line.waiting.len() >= self.limits.body_queue {
            return Err((job.raw, job.then));
        }
        line.waiting.push_back(job);
        drop(line);
        self.watch(id, watch);
        Ok(())
    }

    fn watch(&self, id: u64, w: Arc<Watch>) {
        self.watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, w);
    }

    fn unwatch(&self, id: u64) {
        self.watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// A body thread: this job, then whatever waits in line, then exit.
    fn run(&self, mut job: Job) {
        loop {
            let read = read_body(&mut job.raw, job.cap, job.keep, &job.watch);
            self.unwatch(job.id);
            let socket = job
                .watch
                .socket
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            let (raw, then) = (job.raw, job.then);
            if catch_unwind(AssertUnwindSafe(|| then(raw, read, socket))).is_err() {
                log::error!("a request panicked after its body was read");
            }
            let mut line = self.line.lock().unwrap_or_else(|p| p.into_inner());
            match line.waiting.pop_front() {
                Some(next) => job = next,
                None => {
                    line.threads -= 1;
                    return;
                }
            }
        }
    }

    /// Cuts off every watched read past its deadline or idle timeout: marks it and shuts its
    /// connection's socket for reading (one `/proc/self/fd` scan for all of them), so the read
    /// returns. Called by the watchdog thread. Returns how many were cut off.
    pub fn reap(&self, sockets: &Sockets) -> usize {
        let now = Instant::now();
        let expired: Vec<Arc<Watch>> = self
            .watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|w| !w.cut.load(Ordering::Acquire) && w.expired(now))
            .cloned()
            .collect();
        if expired.is_empty() {
            return 0;
        }
        let peers: Vec<SocketAddr> = expired.iter().filter_map(|w| w.peer).collect();
        let mut found = sockets.find_many(&peers);
        for w in &expired {
            w.cut.store(true, Ordering::Release);
            let socket = w.peer.and_then(|p| found.remove(&p));
            match socket {
                Some(s) => {
                    sockets::shutdown(&s, Shutdown::Read);
                    *w.socket.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
                }
                None => log::warn!(
                    "a request body from {:?} timed out, but its socket was not found \
                     (Unix listener?): its thread stays until the client goes away",
                    w.peer
                ),
            }
        }
        self.cut_off
            .fetch_add(expired.len() as u64, Ordering::Relaxed);
        log::info!("cut off {} stalled request bodies", expired.len());
        expired.len()
    }

    /// Runs `f` with a read connection from the shared pool, opening one with `open` if none is
    /// free (`f` gets the error if that fails); the connection goes back to the pool afterwards
    /// (at most `body_threads` are kept).
    pub fn with_reader<T>(
        &self,
        open: impl FnOnce() -> rusqlite::Result<Connection>,
        f: impl FnOnce(rusqlite::Result<&Connection>) -> T,
    ) -> T {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => match open() {
                Ok(c) => c,
                Err(e) => return f(Err(e)),
            },
        };
        let out = f(Ok(&conn));
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < self.limits.body_threads.max(1) {
            pool.push(conn);
        }
        out
    }
}

/// Reads `raw`'s body, at most `cap` bytes, noting progress on `watch`; keeps the bytes only
/// with `keep` (else answers an empty body once all were read). A read that returns
/// end-of-file because the reaper shut the socket is `TimedOut`; a declared body that ends
/// early, or a chunked one that is malformed, is `Broken`.
fn read_body(
    raw: &mut tiny_http::Request,
    cap: usize,
    keep: bool,
    watch: &Watch,
) -> Result<Vec<u8>, BodyError> {
    let declared = raw.body_length();
    let room = if keep {
        declared.unwrap_or(0).min(cap).min(64 * 1024)
    } else {
        0
    };
    let mut body = Vec::with_capacity(room);
    let mut len = 0;
    let mut buf = [0u8; CHUNK];
    let reader = raw.as_reader();
    let cut = || watch.cut.load(Ordering::Acquire);
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if len + n > cap {
                    return Err(BodyError::TooLarge);
                }
                len += n;
                if keep {
                    body.extend_from_slice(&buf[..n]);
                }
                watch.progressed();
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) if cut() => return Err(BodyError::TimedOut),
            Err(_) => return Err(BodyError::Broken),
        }
    }
    match declared {
        Some(d) if len == d => Ok(body),
        None if !cut() => Ok(body),
        _ if cut() => Err(BodyError::TimedOut),
        _ => Err(BodyError::Broken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_grow_with_the_declared_size() {
        let l = NetLimits::default();
        assert_eq!(deadline(&l, 0), Duration::from_secs(30));
        assert_eq!(deadline(&l, 1), Duration::from_secs(31));
        assert_eq!(deadline(&l, 100 * 1024), Duration::from_secs(31));
        assert_eq!(deadline(&l, 1024 * 1024), Duration::from_secs(41));
        assert_eq!(deadline(&l, 10 * 1024 * 1024), Duration::from_secs(133));
        assert!(deadline(&l, usize::MAX) > Duration::from_secs(86_400));
    }

    #[test]
    fn a_watch_expires_at_its_deadline_or_after_a_pause() {
        let start = Instant::now();
        let w = Watch {
            peer: None,
            started: start,
            until: start + Duration::from_secs(10),
            idle: Duration::from_secs(2),
            last: AtomicU64::new(0),
            cut: AtomicBool::new(false),
            socket: Mutex::new(None),
        };
        assert!(!w.expired(start + Duration::from_millis(1900)));
        assert!(w.expired(start + Duration::from_millis(2000)));
        w.last.store(5000, Ordering::Relaxed);
        assert!(!w.expired(start + Duration::from_millis(6900)));
        assert!(w.expired(start + Duration::from_millis(7000)));
        w.last.store(9500, Ordering::Relaxed);
        assert!(w.expired(start + Duration::from_secs(10)));
    }
}
