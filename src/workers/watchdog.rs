//! The `ccjk-watchdog` thread: cuts off expired body reads and event-stream writes that block
//! (`http::events::WriteWatch`), and gets a thread for connections that tiny_http's connection
//! pool left without one.
//!
//! tiny_http 0.12 gives each connection to a thread of its pool (`TaskPool::spawn`). When it
//! believes a thread is idle it queues the connection and wakes one; otherwise it starts a new
//! thread, which serves that connection and then takes the front of the queue. It counts idle
//! threads before the woken thread has taken its connection, so in a burst of new connections
//! several can be queued behind one wake-up: they then wait, with their first request unread,
//! until some thread finishes a connection, which with keep-alive clients may be never.
//!
//! From outside the crate, the one lever is a new connection. Every `watchdog_interval` (250 ms)
//! the watchdog opens a sentinel connection to our own listener and sends
//! `GET /health/live` with `Connection: close`, then reads the process's thread count:
//! * answered, and no thread was started for it: an idle thread took it from the queue, which
//!   is first in, first out, so every connection queued before it has a thread. Done.
//! * answered, and a thread was started for it: the pool had no idle thread. That thread,
//!   once the sentinel closes, takes the queue's front (a stranded connection, if any) or
//!   becomes idle. Send another sentinel, until one is served without a new thread.
//! * not answered within `watchdog_deadline` (100 ms): it is queued behind a stuck queue (or
//!   the server is very busy). Keep it open and send more, each of which, finding no idle
//!   thread, starts one that frees a queue entry after it; stop when every sentinel is answered
//!   and the last one started no thread.
//!
//! While sentinels keep starting threads they are sent in batches opened at once, doubling up
//! to 32, so a queue of many stranded connections is emptied in a few round trips.
//!
//! A round sends at most [`MAX_SENTINELS`] sentinels. Connections are only ever queued when
//! they are accepted, so a round runs only if the kernel set up a TCP connection in our network
//! namespace since the last round that found the pool clear (`Tcp: PassiveOpens` in
//! `/proc/net/snmp`, one small read per tick; always on a Unix listener): at the next tick
//! after a burst ([`BURST`] or more), at most once a second for a trickle. A server whose
//! clients keep their connections (daemons on keep-alive) sends no sentinel at all; one with
//! new connections all the time sends one a second, served by the pool thread the previous
//! round left idle (the README's Performance section gives the measured cost). Each sentinel
//! wakes the pool's longest-idle thread, so while rounds run once a second, up to 5 idle pool
//! threads (tiny_http retires one after 5 s without work) stay instead of ending.
//! Thread counts are read from `/proc/self/stat`; another thread starting or ending at the same
//! moment can make a round stop early or send one sentinel too many, which the next round
//! corrects.

use crate::domain::policy::EVENT_SLOW_WRITE;
use crate::http::app::App;
use crate::workers::Stop;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The most sentinels one round sends (each frees at most one stranded connection).
pub const MAX_SENTINELS: usize = 256;
/// The most sentinels opened at once.
const MAX_BATCH: usize = 32;
/// New TCP connections since the last clear round that make the next round run at once.
const BURST: u64 = 8;
/// How often a round runs while fewer new connections than a burst keep arriving.
const TRICKLE_EVERY: Duration = Duration::from_secs(1);
/// How often expired body reads are looked for when the sentinels are off.
const REAP_EVERY: Duration = Duration::from_millis(250);
const REQUEST: &[u8] =
    b"GET /health/live HTTP/1.1\r\nHost: ccjk-watchdog\r\nConnection: close\r\n\r\n";

/// Where the sentinels connect: our own listener.
#[derive(Clone, Debug)]
pub enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Target {
    /// The address to reach a listener bound to `listen` (`0.0.0.0` and `[::]` are reached on
    /// loopback).
    pub fn for_listener(bound: Option<SocketAddr>, listen: &crate::config::Listen) -> Target {
        match (bound, listen) {
            (Some(mut a), _) => {
                if a.ip().is_unspecified() {
                    a.set_ip(match a {
                        SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                        SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                    });
                }
                Target::Tcp(a)
            }
            (None, crate::config::Listen::Unix(p)) => Target::Unix(p.clone()),
            (None, crate::config::Listen::Tcp(a)) => Target::Tcp(*a),
        }
    }
}

/// Starts the `ccjk-watchdog` thread; it ends when the server stops (`stop`).
pub fn spawn(app: Arc<App>, target: Target, stop: &Stop) -> io::Result<JoinHandle<()>> {
    let stop = stop.clone();
    std::thread::Builder::new()
        .name("ccjk-watchdog".into())
        .spawn(move || {
            let limits = app.svc.cfg.net.clone();
            let sentinels = !limits.watchdog_interval.is_zero();
            let every = if sentinels {
                limits.watchdog_interval
            } else {
                REAP_EVERY
            };
            // `Tcp: PassiveOpens` after the last round that found the pool clear, and when.
            let mut clear_at: Option<u64> = None;
            let mut last_round = Instant::now();
            while stop.sleep(every) {
                app.net.bodies.reap(&app.net.sockets);
                app.net.reap_lingering();
                app.events
                    .watch
                    .cut_stalled(&app.net.sockets, EVENT_SLOW_WRITE);
                if !sentinels {
                    continue;
                }
                let opens = match target {
                    Target::Tcp(_) => passive_opens(),
                    Target::Unix(_) => None,
                };
                let new = match (opens, clear_at) {
                    (Some(now), Some(then)) => now.saturating_sub(then),
                    _ => u64::MAX,
                };
                // Nothing accepted since the pool was clear: nothing can be stranded. A few
                // connections (not a burst) are checked at most once a second.
                if new == 0 || (new < BURST && last_round.elapsed() < TRICKLE_EVERY) {
                    continue;
                }
                last_round = Instant::now();
                // Each sentinel frees at most one stranded connection, and only connections
                // accepted since the pool was last clear can be stranded.
                let budget = usize::try_from(new.saturating_add(1))
                    .unwrap_or(MAX_SENTINELS)
                    .min(MAX_SENTINELS);
                clear_at = match round(&app, &target, limits.watchdog_deadline, budget) {
                    Some(sent) => opens.map(|n| n + sent as u64),
                    None => None,
                };
            }
        })
}

/// One sentinel connection with its request sent.
struct Sentinel {
    stream: Box<dyn ReadWrite>,
    got: Vec<u8>,
}

trait ReadWrite: Read + Write + Send {
    fn set_timeout(&self, d: Option<Duration>) -> io::Result<()>;
}

impl ReadWrite for TcpStream {
    fn set_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(d)
    }
}

impl ReadWrite for UnixStream {
    fn set_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(d)
    }
}

impl Sentinel {
    fn open(target: &Target, deadline: Duration) -> io::Result<Sentinel> {
        let mut stream: Box<dyn ReadWrite> = match target {
            Target::Tcp(a) => {
                let s = TcpStream::connect_timeout(a, deadline)?;
                s.set_nodelay(true)?;
                s.set_write_timeout(Some(deadline))?;
                Box::new(s)
            }
            Target::Unix(p) => {
                let s = UnixStream::connect(p)?;
                s.set_write_timeout(Some(deadline))?;
                Box::new(s)
            }
        };
        stream.write_all(REQUEST)?;
        Ok(Sentinel {
            stream,
            got: Vec::new(),
        })
    }

    /// Waits up to `wait` (at least 1 ms) for the status line; true once it has arrived.
    fn answered(&mut self, wait: Duration) -> bool {
        if self.got.windows(2).any(|w| w == b"\r\n") {
            return true;
        }
        let until = Instant::now() + wait;
        let mut buf = [0u8; 256];
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if self
                .stream
                .set_timeout(Some(left.max(Duration::from_millis(1))))
                .is_err()
            {
                return false;
            }
            match self.stream.read(&mut buf) {
                // Closed by the server: a pool thread handled the connection.
                Ok(0) => return true,
                Ok(n) => {
                    self.got.extend_from_slice(&buf[..n]);
                    if self.got.windows(2).any(|w| w == b"\r\n") {
                        return true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Timed out (WouldBlock / TimedOut) or reset.
                Err(_) => return false,
            }
            if Instant::now() >= until {
                return false;
            }
        }
    }
}

/// The process's current thread count (`/proc/self/stat`, field 20), or 0 if unreadable.
pub fn threads() -> usize {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // The command name (field 2) is in parentheses and may contain spaces: count after it.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(17))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// TCP connections the kernel has set up for any listener in our network namespace since boot
/// (`Tcp: PassiveOpens` in `/proc/net/snmp`), or `None` if unreadable.
pub fn passive_opens() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next()?, tcp.next()?);
    let at = names.split_whitespace().position(|n| n == "PassiveOpens")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// One round of sentinels (see the module doc): one, then growing batches opened at once (up
/// to [`MAX_BATCH`]) while the last batch started a thread for each of its sentinels or left
/// some unanswered, at most `budget` in all. A batch whose sentinels are all answered and which
/// started fewer threads than it had sentinels ends the round: at least one of them was queued
/// and taken by an idle thread, so everything queued before it has a thread. Returns how many
/// were sent if the round ended with the pool clear, `None` if it gave up.
fn round(app: &App, target: &Target, deadline: Duration, budget: usize) -> Option<usize> {
    let counters = &app.net.watchdog;
    let mut waiting: Vec<Sentinel> = Vec::new();
    let (mut sent, mut batch) = (0, 1);
    while sent < budget {
        if app.stopping() {
            return None;
        }
        let batch_now = batch.min(budget - sent);
        let before = threads();
        let mut opened = Vec::with_capacity(batch_now);
        for _ in 0..batch_now {
            match Sentinel::open(target, deadline) {
                Ok(s) => opened.push(s),
                Err(e) => {
                    log::debug!("watchdog: cannot open a sentinel connection: {e}");
                    return None;
                }
            }
        }
        counters
            .sentinels
            .fetch_add(batch_now as u64, Ordering::Relaxed);
        if sent > 0 {
            counters
                .extra
                .fetch_add(batch_now as u64, Ordering::Relaxed);
        }
        sent += batch_now;
        let until = Instant::now() + deadline;
        for mut s in opened {
            if !s.answered(until.saturating_duration_since(Instant::now())) {
                counters.unanswered.fetch_add(1, Ordering::Relaxed);
                waiting.push(s);
            }
        }
        let started = threads().saturating_sub(before);
        // Earlier unanswered sentinels: answered by now?
        waiting.retain_mut(|w| !w.answered(Duration::ZERO));
        if waiting.is_empty() && started < batch_now {
            if sent > 1 {
                log::debug!("watchdog: {sent} sentinels until an idle pool thread");
            }
            return Some(sent);
        }
        batch = if started >= batch_now {
            (batch * 2).min(MAX_BATCH)
        } else {
            1
        };
    }
    if !waiting.is_empty() {
        log::warn!(
            "watchdog: {} sentinels still unanswered after {sent}; the server may be overloaded",
            waiting.len()
        );
    }
    None
}
