//! The events thread (docs/events.md): one `ccjk-events` thread writes every open
//! `GET /v1/events` stream, as the long-poll dispatcher answers every parked poll, so a stream
//! holds no worker thread.
//!
//! It owns the event log (`state::events`) and the open streams, and takes commands from one
//! channel (`http::events`): an event published by a committed write is rendered once, kept
//! for resumes and written to each stream of its user whose credential may hear it; a new
//! stream gets its response head (chunked framing, since tiny_http buffers responses built from
//! a `Read`), a `retry:` hint and whatever its `Last-Event-ID` missed; a re-check ends the
//! user's streams whose credential no longer authenticates. Every `event_ping` it writes a
//! comment ping to every stream and re-checks every credential. Each frame is one chunk; the
//! streams written to are flushed as soon as the channel has nothing more waiting (so a burst
//! of events costs each stream one write system call, and a lone event is flushed at once). A
//! stream whose write fails, or whose flush blocks longer than `EVENT_SLOW_WRITE` (a client
//! that stopped reading), is ended; its client resumes with `Last-Event-ID`.
//!
//! A write to a client that stopped reading blocks until the socket's send timeout, and this
//! thread writes every stream: the server's 30 s would hold every other user's events that
//! long. So every [`CHECK_EVERY`] while streams are open, the thread looks after their sockets
//! (found through `http::net::sockets`: one `/proc/self/fd` scan for all the streams opened
//! since the last check, then kept): a new stream's socket gets `EVENT_SLOW_WRITE` as its
//! `SO_SNDTIMEO`, and a stream whose client has closed its end (`poll` reports `POLLRDHUP`,
//! `POLLHUP` or `POLLERR`) is ended then, so that it gives back its place under the per-user
//! cap. Each write to a stream is also announced in `http::events::WriteWatch`, where the
//! watchdog cuts the connection off once the write has lasted `EVENT_SLOW_WRITE`: before the
//! socket is found, and for a client that reads a little at a time, which the per-call send
//! timeout does not stop.

use crate::crypto::random_bytes;
use crate::db::effects::EventKind;
use crate::domain::Cx;
use crate::domain::callers::{self, Caller};
use crate::domain::policy::{EVENT_BUFFER_BYTES, EVENT_RETRY_MS, EVENT_SLOW_WRITE};
use crate::http::app::App;
use crate::http::events::{Cmd, Opening, WriteWatch};
use crate::http::server::AccessInfo;
use crate::state::events::{EventLog, Frame};
use rustix::event::{PollFd, PollFlags};
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::thread;
use std::time::{Duration, Instant};

/// How often, while streams are open, new streams' sockets are looked up (one scan of the
/// process's descriptors for all of them) and every stream's socket is polled for a closed peer.
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// Checks in a row that do not find a stream's socket before the stream is taken for closed:
/// a connection that is no longer connected (reset by its client) has no peer to match.
const MAX_MISSES: u8 = 2;

/// One open stream.
struct Stream {
    user_id: i64,
    w: Box<dyn Write + Send>,
    /// HTTP/1.1: each frame is a chunk. HTTP/1.0: raw bytes, the connection closes at the end.
    chunked: bool,
    token: String,
    hears: Vec<EventKind>,
    /// Frames up to this sequence number were sent (or predate the stream).
    upto: u64,
    info: AccessInfo,
    bytes: usize,
    /// Written since the last flush.
    dirty: bool,
    /// The connection's peer, to find its socket by.
    peer: Option<SocketAddr>,
    /// A duplicate of the connection's socket once found (`None` before the next check, or
    /// where sockets cannot be found: a Unix-socket listener, a kernel before 5.6).
    sock: Option<OwnedFd>,
    /// Where writes are announced, for the watchdog.
    watch: Arc<WriteWatch>,
    /// Checks that did not find the socket.
    misses: u8,
}

impl Stream {
    /// Runs `f` on the writer where the watchdog sees it. The send timeout alone does not
    /// bound a write: it is per system call, and a client that reads a little at a time lets
    /// each call make some progress.
    fn io(&mut self, f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> std::io::Result<()> {
        let w: &mut dyn Write = &mut self.w;
        match self.peer {
            Some(peer) => self.watch.around(peer, || f(w)),
            None => f(w),
        }
    }

    /// Writes `data` as one chunk (not yet flushed). Errors: the client is gone.
    fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        let chunked = self.chunked;
        self.io(|w| {
            if chunked {
                write!(w, "{:x}\r\n", data.len())?;
                w.write_all(data)?;
                w.write_all(b"\r\n")
            } else {
                w.write_all(data)
            }
        })?;
        self.bytes += data.len();
        self.dirty = true;
        Ok(())
    }

    /// Flushes what `send` wrote. Errors: the client is gone, or the flush blocked past
    /// `EVENT_SLOW_WRITE` (its socket buffer was full: the client stopped reading).
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        self.dirty = false;
        let t0 = Instant::now();
        self.io(|w| w.flush())?;
        if t0.elapsed() > EVENT_SLOW_WRITE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading",
            ));
        }
        Ok(())
    }

    fn hears(&self, f: &Frame) -> bool {
        self.hears.iter().any(|k| k.as_str() == f.kind)
    }
}

/// The streams and the log, owned by the thread.
struct Hub {
    log: EventLog,
    streams: HashMap<i64, Vec<Stream>>,
    /// Users whose streams were written to since the last flush.
    dirty: Vec<i64>,
    /// Streams were opened since the last check whose sockets are still to be found.
    unfound: bool,
    /// When the streams' sockets were last checked.
    checked: Instant,
}

/// Commands handled before the streams written to are flushed: under a burst of events (a
/// batch, a busy writer) each stream gets one flush, and so one write system call, for all of
/// them; alone, an event is flushed at once.
const BATCH: usize = 256;

/// Starts the events thread. It ends when the streams are closed (shutdown).
pub fn spawn(app: Arc<App>) -> std::io::Result<thread::JoinHandle<()>> {
    let rx = app
        .events
        .take_receiver()
        .ok_or_else(|| std::io::Error::other("the events thread was already started"))?;
    thread::Builder::new()
        .name("ccjk-events".into())
        .spawn(move || {
            let conn = match app.svc.db.reader() {
                Ok(c) => c,
                Err(e) => return log::error!("events thread cannot open the database: {e}"),
            };
            let cx = Cx::new(&app.svc, &conn);
            let epoch = crate::crypto::hex(&random_bytes::<4>());
            let cfg = &app.svc.cfg;
            let mut hub = Hub {
                log: EventLog::new(epoch, cfg.event_buffer_frames, EVENT_BUFFER_BYTES),
                streams: HashMap::new(),
                dirty: Vec::new(),
                unfound: false,
                checked: Instant::now(),
            };
            let every = cfg.event_ping;
            let mut next_ping = Instant::now() + every;
            loop {
                let mut wait = next_ping.saturating_duration_since(Instant::now());
                if !hub.streams.is_empty() {
                    let check = hub.checked + CHECK_EVERY;
                    wait = wait.min(check.saturating_duration_since(Instant::now()));
                }
                let mut cmd = rx.recv_timeout(wait);
                for _ in 0..BATCH {
                    if matches!(cmd, Ok(Cmd::Close) | Err(RecvTimeoutError::Disconnected)) {
                        hub.flush(&app);
                        hub.close_all(&app);
                        return;
                    }
                    // A bug in one command must not end every stream for good: log it, go on.
                    let step =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match cmd {
                            Ok(Cmd::Event(e)) => {
                                let f = hub.log.push(&e);
                                hub.deliver(&app, &f);
                            }
                            Ok(Cmd::Open(o)) => hub.open(&app, *o),
                            Ok(Cmd::Recheck(user)) => hub.recheck(&app, &cx, Some(user)),
                            Ok(Cmd::Close) | Err(RecvTimeoutError::Disconnected) => {}
                            // A wake-up for the socket check comes before the ping is due.
                            Err(RecvTimeoutError::Timeout) if Instant::now() >= next_ping => {
                                hub.recheck(&app, &cx, None);
                                hub.ping(&app);
                                next_ping = Instant::now() + every;
                            }
                            Err(RecvTimeoutError::Timeout) => {}
                        }));
                    if let Err(p) = step {
                        log::error!("events thread: {}", crate::db::panic_text(&p));
                    }
                    match rx.try_recv() {
                        Ok(next) => cmd = Ok(next),
                        Err(_) => break,
                    }
                }
                hub.flush(&app);
                hub.check_sockets(&app);
            }
        })
}

/// The response head of a stream (written by hand: the request is answered through
/// `into_writer`).
fn head(info: &AccessInfo, chunked: bool) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n\
         Cache-Control: no-store\r\nX-Accel-Buffering: no\r\nX-Request-Id: {}\r\n{}\r\n",
        info.request_id,
        if chunked {
            "Transfer-Encoding: chunked\r\n"
        } else {
            "Connection: close\r\n"
        }
    )
}

impl Hub {
    /// Writes `f` to its user's streams that may hear it and have not had it yet.
    fn deliver(&mut self, app: &App, f: &Frame) {
        let Some(list) = self.streams.get_mut(&f.user_id) else {
            return;
        };
        let mut gone = Vec::new();
        for (i, s) in list.iter_mut().enumerate() {
            if f.seq <= s.upto {
                continue;
            }
            s.upto = f.seq;
            if s.hears(f) {
                match s.send(&f.bytes) {
                    Ok(()) => {}
                    Err(e) => gone.push((i, Some(e))),
                }
            }
        }
        if !self.dirty.contains(&f.user_id) {
            self.dirty.push(f.user_id);
        }
        self.drop_streams(app, f.user_id, gone);
    }

    /// Flushes every stream written to since the last flush.
    fn flush(&mut self, app: &App) {
        for u in std::mem::take(&mut self.dirty) {
            let mut gone = Vec::new();
            if let Some(list) = self.streams.get_mut(&u) {
                for (i, s) in list.iter_mut().enumerate() {
                    if let Err(e) = s.flush() {
                        gone.push((i, Some(e)));
                    }
                }
            }
            self.drop_streams(app, u, gone);
        }
    }

    /// Starts a stream: head, `retry:`, then `events.lost` and the missed frames of a resume.
    fn open(&mut self, app: &App, o: Opening) {
        let Opening { raw, info, spec } = o;
        let chunked = raw.http_version() >= &tiny_http::HTTPVersion(1, 1);
        let peer = raw.remote_addr().copied();
        self.unfound |= peer.is_some() && app.net.sockets.usable();
        let w = raw.into_writer();
        let head = head(&info, chunked);
        let resume = self.log.resume(spec.user_id, spec.last_event_id.as_deref());
        let mut s = Stream {
            user_id: spec.user_id,
            w,
            chunked,
            token: spec.token,
            hears: spec.hears,
            upto: resume.upto,
            info,
            bytes: 0,
            dirty: false,
            peer,
            sock: None,
            watch: app.events.watch.clone(),
            misses: 0,
        };
        let started = s.io(|w| w.write_all(head.as_bytes()).and_then(|_| w.flush()));
        let mut sent =
            started.and_then(|_| s.send(format!("retry: {EVENT_RETRY_MS}\n\n").as_bytes()));
        if let Some(lost) = &resume.lost {
            sent = sent.and_then(|_| s.send(lost));
        }
        for f in &resume.replay {
            if s.hears(f) {
                sent = sent.and_then(|_| s.send(&f.bytes));
            }
        }
        sent = sent.and_then(|_| s.flush());
        match sent {
            Ok(()) => self.streams.entry(s.user_id).or_default().push(s),
            Err(e) => end(app, s, Some(e)),
        }
    }

    /// At most once every [`CHECK_EVERY`]: finds the sockets of the streams opened since the
    /// last check and gives them `EVENT_SLOW_WRITE` as their send timeout, then ends the streams
    /// whose client has closed its end of the connection.
    fn check_sockets(&mut self, app: &App) {
        if self.streams.is_empty() || self.checked.elapsed() < CHECK_EVERY {
            return;
        }
        self.checked = Instant::now();
        if std::mem::take(&mut self.unfound) {
            let new = self.streams.values().flatten().filter(|s| s.sock.is_none());
            let peers: Vec<SocketAddr> = new.filter_map(|s| s.peer).collect();
            let mut found = app.net.sockets.find_many(&peers);
            for s in self.streams.values_mut().flatten() {
                let Some(peer) = s.peer.filter(|_| s.sock.is_none()) else {
                    continue;
                };
                let Some(fd) = found.remove(&peer) else {
                    // Reset or closed already (no longer connected), or a scan that failed:
                    // looked for again at the next check, and ended after `MAX_MISSES`.
                    s.misses += 1;
                    self.unfound = true;
                    continue;
                };
                let r = socket2::SockRef::from(&fd).set_write_timeout(Some(EVENT_SLOW_WRITE));
                if let Err(e) = r {
                    log::debug!("events: cannot set a stream's send timeout: {e}");
                }
                s.sock = Some(fd);
            }
        }
        let users: Vec<i64> = self.streams.keys().copied().collect();
        for u in users {
            let gone = match self.streams.get(&u) {
                Some(list) => closed(list),
                None => continue,
            };
            self.drop_streams(app, u, gone);
        }
    }

    /// Ends the streams (of `user`, or all) whose credential no longer authenticates as their
    /// user: revoked, expired, idle too long, or the account disabled. One check per credential.
    fn recheck(&mut self, app: &App, cx: &Cx, user: Option<i64>) {
        let users: Vec<i64> = match user {
            Some(u) => vec![u],
            None => self.streams.keys().copied().collect(),
        };
        for u in users {
            let Some(list) = self.streams.get(&u) else {
                continue;
            };
            let mut verdict: HashMap<&str, bool> = HashMap::new();
            let mut gone = Vec::new();
            for (i, s) in list.iter().enumerate() {
                let ok = *verdict.entry(s.token.as_str()).or_insert_with(|| {
                    matches!(callers::resolve(cx, &s.token), Ok(Caller::User(c)) if c.user_id() == u)
                });
                if !ok {
                    gone.push((i, None));
                }
            }
            self.drop_streams(app, u, gone);
        }
    }

    /// A comment line on every stream, so proxies see traffic and dead clients are found.
    fn ping(&mut self, app: &App) {
        let users: Vec<i64> = self.streams.keys().copied().collect();
        for u in users {
            let mut gone = Vec::new();
            if let Some(list) = self.streams.get_mut(&u) {
                for (i, s) in list.iter_mut().enumerate() {
                    if let Err(e) = s.send(b": ping\n\n").and_then(|_| s.flush()) {
                        gone.push((i, Some(e)));
                    }
                }
            }
            self.drop_streams(app, u, gone);
        }
    }

    /// Removes and ends the streams at `gone` (indexes into the user's list, ascending).
    fn drop_streams(&mut self, app: &App, user: i64, gone: Vec<(usize, Option<std::io::Error>)>) {
        if gone.is_empty() {
            return;
        }
        let Some(list) = self.streams.get_mut(&user) else {
            return;
        };
        for (i, why) in gone.into_iter().rev() {
            let s = list.swap_remove(i);
            end(app, s, why);
        }
        if list.is_empty() {
            self.streams.remove(&user);
        }
    }

    /// Ends every stream (shutdown).
    fn close_all(&mut self, app: &App) {
        for (_, list) in self.streams.drain() {
            for s in list {
                end(app, s, None);
            }
        }
    }
}

/// The streams of `list` whose client has closed its end, or whose socket was not found in
/// [`MAX_MISSES`] checks (indexes, ascending), as `drop_streams` takes them.
fn closed(list: &[Stream]) -> Vec<(usize, Option<std::io::Error>)> {
    let gone = || {
        std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "the client closed the stream",
        )
    };
    let lost = (0..list.len()).filter(|&i| list[i].misses >= MAX_MISSES);
    let known: Vec<usize> = (0..list.len())
        .filter(|&i| list[i].sock.is_some())
        .collect();
    let mut fds: Vec<PollFd> = known
        .iter()
        .filter_map(|&i| list[i].sock.as_ref())
        .map(|fd| PollFd::new(fd, PollFlags::RDHUP))
        .collect();
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    if rustix::event::poll(&mut fds, Some(&zero)).unwrap_or(0) == 0 {
        return lost.map(|i| (i, Some(gone()))).collect();
    }
    let hung_up = PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR;
    let closed = known
        .iter()
        .zip(&fds)
        .filter(|(_, p)| p.revents().intersects(hung_up))
        .map(|(&i, _)| i);
    let mut all: Vec<usize> = closed.chain(lost).collect();
    all.sort_unstable();
    all.into_iter().map(|i| (i, Some(gone()))).collect()
}

/// Ends a stream: the last chunk (unless its connection failed), its place under the user's
/// cap, its count in the metrics and its access-log line.
fn end(app: &App, mut s: Stream, failed: Option<std::io::Error>) {
    if failed.is_none() && s.chunked {
        let _ = s.io(|w| w.write_all(b"0\r\n\r\n").and_then(|_| w.flush()));
    }
    app.events.release(s.user_id);
    // Counted when it ends, with its whole duration (as a long-poll's wait is).
    s.info.count(200);
    s.info.log(200, s.bytes, None, " stream", failed);
}
