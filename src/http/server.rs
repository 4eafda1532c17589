//! Sockets, threads and the per-request pipeline (docs/architecture.md "Requests"). It knows
//! no route by name: it asks the route table for the entry, and the entry says its body cap,
//! whether it hashes, and how to run.
//!
//! * The listener is made with socket2 so that `TCP_NODELAY`, `SO_SNDTIMEO` and `SO_KEEPALIVE`
//!   are set on it before tiny_http gets it (Linux copies them to accepted sockets). Never
//!   `SO_RCVTIMEO`: it would make `accept()` fail and kill tiny_http's accept thread.
//! * `workers` named threads loop on `Server::recv()`. An `Err` from `recv()` while not
//!   stopping means the accept thread is dead: the server reports a fatal error so the process
//!   exits non-zero and systemd restarts it.
//! * Each request: refuse ambiguous body framing (400) and bodies declared over the route's cap
//!   (413), closing the connection without reading the body (`net`); read the body if tiny_http
//!   already holds it, or else hand the request to the body readers of `net` (a worker never
//!   reads a client's socket); find its route, run it under `catch_unwind` (a panic is a 500 with
//!   no internals), respond, log one access line and count it in the metrics (by route pattern and status
//!   class). A route runs only once its caller is within its rate limit (`ratelimit`). `GET /health/live` is answered before all
//!   of that, with no database and no log line (the watchdog's sentinels, load balancers).
//! * Routes that hash passwords are handed whole to the hashing pool (`hashpool`), so workers
//!   never compute a hash.

use crate::config::Listen;
use crate::domain::Cx;
use crate::error::{ApiError, Code};
use crate::http::app::App;
use crate::http::events::Opening;
use crate::http::family::Family;
use crate::http::hashpool::HashPool;
use crate::http::metrics::Metrics;
use crate::http::net::{self, body::BodyError};
use crate::http::ratelimit;
use crate::http::route::{Call, Cap, Found, Outcome, authenticate_with};
use crate::http::{READ_HEADERS, Reply, Req, redact_url};
use crate::state::throttle::Key;
use socket2::{Domain, Protocol, Socket, TcpKeepalive, Type};
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `SO_SNDTIMEO`: how long a write to a client that does not read may block a thread.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Bodies declared over the route's cap by at most this much (16 MiB) are read and discarded
/// before the 413, off the workers and under the body deadlines, so that a client still sending
/// (an 11 MB log, a 10 MB mail) reads its 413 instead of a reset; declared lengths further over
/// the cap are refused without reading.
const DISCARD_OVERSIZED: usize = 16 * 1024 * 1024;

/// Binds the listener with the socket options tiny_http lacks.
pub fn bind(listen: &Listen) -> io::Result<tiny_http::Server> {
    let to_io = |e: Box<dyn std::error::Error + Send + Sync>| io::Error::other(e.to_string());
    match listen {
        Listen::Tcp(addr) => {
            let sock = Socket::new(
                Domain::for_address(*addr),
                Type::STREAM,
                Some(Protocol::TCP),
            )?;
            sock.set_reuse_address(true)?;
            sock.set_tcp_nodelay(true)?;
            sock.set_write_timeout(Some(SEND_TIMEOUT))?;
            sock.set_keepalive(true)?;
            sock.set_tcp_keepalive(
                &TcpKeepalive::new()
                    .with_time(Duration::from_secs(60))
                    .with_interval(Duration::from_secs(10))
                    .with_retries(6),
            )?;
            sock.bind(&(*addr).into())?;
            sock.listen(1024)?;
            let l: TcpListener = sock.into();
            tiny_http::Server::from_listener(l, None).map_err(to_io)
        }
        Listen::Unix(path) => {
            if path.exists() {
                std::fs::remove_file(path)?;
            }
            let l = std::os::unix::net::UnixListener::bind(path)?;
            tiny_http::Server::from_listener(l, None).map_err(to_io)
        }
    }
}

/// What the access log needs about a request, carried with it between threads.
pub struct AccessInfo {
    pub(crate) started: Instant,
    pub(crate) method: String,
    pub(crate) url: String,
    pub(crate) ip: String,
    pub(crate) request_id: String,
    /// The matched route's index in the table (`None`: no route), for the metrics.
    pub(crate) route: Option<usize>,
    /// Where the finished request is counted.
    pub(crate) metrics: Arc<Metrics>,
}

/// A new request id: a per-process random prefix and a counter.
fn next_request_id() -> String {
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let p = PREFIX.get_or_init(|| u32::from_le_bytes(crate::crypto::random_bytes::<4>()));
    format!("{p:08x}{:08x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn client_ip(raw: &tiny_http::Request, trusted_proxy: bool) -> String {
    if trusted_proxy
        && let Some(h) = raw
            .headers()
            .iter()
            .find(|h| h.field.equiv("X-Forwarded-For"))
        && let Some(last) = h.value.as_str().rsplit(',').next()
        && let Ok(ip) = last.trim().parse::<IpAddr>()
    {
        return ip.to_string();
    }
    match raw.remote_addr() {
        Some(a) => a.ip().to_string(),
        None => "unix".into(),
    }
}

/// The tiny_http response for `reply` with `body` (the reply's own, or none when the body is
/// written after an `upgrade`): status, content type, request id, no caching, the reply's
/// own headers.
fn response(
    reply: &Reply,
    body: Vec<u8>,
    info: &AccessInfo,
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    // The whole body is in memory: always send its length (tiny_http would switch bodies of
    // 32 KiB and more to chunked encoding, and a log download must say how long it is).
    let mut resp = tiny_http::Response::from_data(body)
        .with_status_code(reply.status)
        .with_chunked_threshold(usize::MAX);
    let mut add = |k: &str, v: &str| {
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            resp.add_header(h);
        }
    };
    add("Content-Type", reply.content_type);
    add("X-Request-Id", &info.request_id);
    add("Cache-Control", "no-store");
    for (k, v) in &reply.headers {
        add(k, v);
    }
    resp
}

impl AccessInfo {
    /// Counts the request in the metrics with `status` and its duration so far: as its answer
    /// is handed to the socket (before the write, so a client that sends its next request at
    /// once finds this one counted), or, for an event stream, when it ends.
    pub(crate) fn count(&self, status: u16) {
        self.metrics
            .observe(self.route, &self.method, status, self.started.elapsed());
    }

    /// The one access-log line of a request: `len` bytes of body were sent with `status`;
    /// `code` is the error's, `tail` marks an event stream.
    pub(crate) fn log(
        &self,
        status: u16,
        len: usize,
        code: Option<Code>,
        tail: &str,
        write_error: Option<std::io::Error>,
    ) {
        log::info!(
            target: "access",
            "{} \"{} {}\" {} {} {:.1}ms rid={}{}{}{}",
            self.ip,
            self.method,
            redact_url(&self.url),
            status,
            len,
            self.started.elapsed().as_secs_f64() * 1000.0,
            self.request_id,
            code.map(|c| format!(" code={c}")).unwrap_or_default(),
            tail,
            write_error.map(|e| format!(" write_error={e}")).unwrap_or_default(),
        );
    }
}

/// Writes `reply` to the client and logs the access line.
pub fn finish(raw: tiny_http::Request, mut reply: Reply, info: &AccessInfo) {
    let body = std::mem::take(&mut reply.body);
    let len = body.len();
    info.count(reply.status);
    let sent = raw.respond(response(&reply, body, info));
    info.log(reply.status, len, reply.error_code, "", sent.err());
}

/// An error reply in the family of the request's path.
pub fn error_reply(req: &Req, e: &ApiError) -> Reply {
    Family::of(&req.segments).err(req, e)
}

/// Runs the request's route on this thread (authenticate, parse, handle, render), turning a
/// panic into a 500.
pub fn run(app: &App, conn: &rusqlite::Connection, req: &Req) -> Outcome {
    let Some(route) = req.route.and_then(|i| app.table.get(i)) else {
        return Outcome::Reply(error_reply(req, &ApiError::not_found("Route")));
    };
    let cx = Cx::new(&app.svc, conn);
    let go = || match authenticate_with(route.auth, route.sources, &cx, req) {
        Ok(caller) => match ratelimit::admit(app, &cx, route.rate, caller.as_ref()) {
            Ok(Some(l)) if !l.verdict.allowed => Outcome::Reply(ratelimit::refuse(app, req, &l)),
            Ok(limited) => ratelimit::stamp(route.run(&Call::new(app, cx, req, caller)), limited),
            Err(e) => Outcome::Reply(error_reply(req, &e)),
        },
        Err(e) => Outcome::Reply(error_reply(req, &e)),
    };
    match catch_unwind(AssertUnwindSafe(go)) {
        Ok(o) => o,
        Err(p) => {
            let e = ApiError::internal(format!("panic: {}", crate::db::panic_text(&p)));
            log::error!("rid={} {} {}: {e}", req.request_id, req.method, req.path);
            Outcome::Reply(error_reply(req, &e))
        }
    }
}

/// Hands an outcome to the client, or a long-poll to the registry.
pub fn deliver(
    app: &App,
    conn: &rusqlite::Connection,
    raw: tiny_http::Request,
    req: Req,
    info: AccessInfo,
    outcome: Outcome,
) {
    match outcome {
        Outcome::Reply(reply) => finish(raw, reply, &info),
        Outcome::Park(park) => {
            if let Err(p) = app.polls.park(raw, req, info, park) {
                // Shutting down: answer now with what there is.
                let cx = Cx::new(&app.svc, conn);
                let reply = (p.park.recheck)(&cx, &p.req, true).unwrap_or_else(|| {
                    error_reply(&p.req, &ApiError::unavailable("Shutting down", 5))
                });
                finish(p.raw, reply, &p.info);
            }
        }
        Outcome::Stream(spec) => {
            let user_id = spec.user_id;
            if let Err(o) = app.events.open(Opening { raw, info, spec }) {
                app.events.release(user_id);
                let reply = error_reply(&req, &ApiError::unavailable("Shutting down", 5));
                finish(o.raw, reply, &o.info);
            }
        }
    }
}

/// Writes `reply` as the connection's last response and closes it without reading anything more
/// from the client (`net::Net::close_with`); logs the access line.
fn close(
    app: &App,
    raw: tiny_http::Request,
    reply: Reply,
    info: &AccessInfo,
    socket: Option<OwnedFd>,
) {
    info.count(reply.status);
    let mut resp = response(&reply, reply.body.clone(), info);
    if let Ok(h) = tiny_http::Header::from_bytes(&b"Connection"[..], &b"close"[..]) {
        resp.add_header(h);
    }
    let sent = app.net.close_with(raw, resp, socket);
    info.log(
        reply.status,
        reply.body.len(),
        reply.error_code,
        "",
        sent.err(),
    );
}

/// The request-taking loop of one worker thread. Returns `Err` if the accept thread died.
pub fn worker_loop(
    app: Arc<App>,
    server: Arc<tiny_http::Server>,
    hash: HashPool,
) -> Result<(), String> {
    let conn = app
        .svc
        .db
        .reader()
        .map_err(|e| format!("cannot open a reader connection: {e}"))?;
    loop {
        let raw = match server.recv() {
            Ok(r) => r,
            Err(e) => {
                if app.stopping() {
                    return Ok(());
                }
                return Err(format!("tiny_http stopped accepting connections: {e}"));
            }
        };
        serve(&app, &conn, raw, &hash);
    }
}

/// The body cap of a route's class (docs/limits.md "Sizes").
fn body_cap(cap: Cap, cfg: &crate::config::Config) -> usize {
    match cap {
        Cap::Json => cfg.max_body,
        Cap::Output => cfg.max_body.max(8 * cfg.max_output + 64 * 1024),
        Cap::Upload => cfg.max_log_upload + crate::domain::policy::LOG_UPLOAD_OVERHEAD,
        Cap::KvValue => cfg.max_kv_value,
    }
}

/// One request, from tiny_http to the client.
fn serve(
    app: &Arc<App>,
    conn: &rusqlite::Connection,
    mut raw: tiny_http::Request,
    hash: &HashPool,
) {
    // Ambiguous body framing (request smuggling): marked at once, so that a request tiny_http
    // already read behind this one on the connection is not served (answered below).
    let framing = net::framing::check(raw.headers());
    if framing.is_err() {
        app.net.poison(&raw);
    } else if app.net.is_poisoned(&raw) {
        // Read by tiny_http behind a request refused for ambiguous framing: never served.
        log::warn!(
            "dropped a request read behind a smuggling attempt from {:?}",
            raw.remote_addr()
        );
        let _ = app
            .net
            .close_with(raw, tiny_http::Response::empty(400), None);
        return;
    } else if raw.url() == "/health/live"
        && *raw.method() == tiny_http::Method::Get
        && net::body::buffered(&raw)
    {
        // The watchdog's sentinels and load balancers: no database, no log line.
        let _ = raw.respond(net::live_response());
        return;
    }
    let cfg = &app.svc.cfg;
    let mut info = AccessInfo {
        started: Instant::now(),
        method: raw.method().as_str().to_string(),
        url: raw.url().to_string(),
        ip: client_ip(&raw, cfg.trusted_proxy),
        request_id: next_request_id(),
        route: None,
        metrics: app.metrics.clone(),
    };
    let headers = raw
        .headers()
        .iter()
        .filter_map(|h| {
            let name = READ_HEADERS.iter().find(|n| h.field.equiv(n))?;
            Some((*name, h.value.as_str().to_string()))
        })
        .collect();
    let mut req = Req::new(&info.method, &info.url, headers, Vec::new());
    req.ip = info.ip.clone();
    req.request_id = info.request_id.clone();
    if let Err(why) = framing {
        let reply = error_reply(&req, &ApiError::bad_request(why));
        return close(app, raw, reply, &info, None);
    }
    let cap = match app.table.find(&req.method, &req.segments) {
        Found::Route(i, route, params) => {
            req.route = Some(i);
            req.params = params;
            info.route = Some(i);
            body_cap(route.cap, cfg)
        }
        Found::NotFound => cfg.max_body,
    };
    // No route: nothing would read the body, so it is not read (the connection is closed
    // after the 404, as after any refusal with a body left unread).
    if req.route.is_none() && !net::body::buffered(&raw) {
        let reply = error_reply(&req, &ApiError::not_found("Route"));
        return close(app, raw, reply, &info, None);
    }
    if let Some(n) = raw.body_length()
        && n > cap
    {
        // A client may be sending a modestly oversized body right now: read and discard it
        // (off the workers, under the same deadlines), so the 413 is not lost to the reset
        // that closing a socket with data still arriving causes. Larger ones: closed at once.
        if n - cap <= DISCARD_OVERSIZED {
            return read_off_pool(app, raw, req, info, BodyPlan::Discard(cap, n), hash);
        }
        let reply = error_reply(&req, &ApiError::too_large(cap));
        return close(app, raw, reply, &info, None);
    }
    // A body tiny_http has not read yet is read on a body thread, never on a worker.
    if !net::body::buffered(&raw) {
        return read_off_pool(app, raw, req, info, BodyPlan::Read(cap), hash);
    }
    let mut body = Vec::with_capacity(raw.body_length().unwrap_or(0));
    if let Err(e) = raw.as_reader().take(cap as u64 + 1).read_to_end(&mut body) {
        log::info!("rid={} body read failed: {e}", info.request_id);
        return finish(
            raw,
            error_reply(&req, &ApiError::bad_request("Could not read body")),
            &info,
        );
    }
    if body.len() > cap {
        let reply = error_reply(&req, &ApiError::too_large(cap));
        return close(app, raw, reply, &info, None);
    }
    req.body = body;
    proceed(app, conn, raw, req, info, hash);
}

/// The rest of a request once its body is read: the hashing pool, or the route on this thread.
fn proceed(
    app: &App,
    conn: &rusqlite::Connection,
    raw: tiny_http::Request,
    req: Req,
    info: AccessInfo,
    hash: &HashPool,
) {
    let hashing = req
        .route
        .and_then(|i| app.table.get(i))
        .is_some_and(|r| r.hashing);
    if hashing {
        if let Ok(ip) = req.ip.parse::<IpAddr>()
            && let Some(wait) = app.svc.throttle.check(&Key::Ip(ip))
        {
            let reply = error_reply(&req, &ApiError::rate_limited(wait));
            return finish(raw, reply, &info);
        }
        return hash.submit(raw, req, info);
    }
    let outcome = run(app, conn, &req);
    deliver(app, conn, raw, req, info, outcome);
}

/// What `read_off_pool` does with a body.
enum BodyPlan {
    /// Read up to the route's cap, then run the route.
    Read(usize),
    /// Declared over the route's cap (the first number) by little enough: read and discard the
    /// declared length (the second) while the client keeps sending, then answer 413. A client
    /// that pauses for `DISCARD_PAUSE` (one that waits for an answer before sending) is answered
    /// 413 then, and its connection closed.
    Discard(usize, usize),
}

/// The longest pause of a body being discarded before its 413 is sent anyway.
const DISCARD_PAUSE: Duration = Duration::from_secs(1);

/// Hands a request whose body tiny_http has not read to `net`'s body readers; the request then
/// continues on the body thread (`proceed`), or ends with 413, 408, 400 or 503.
fn read_off_pool(
    app: &Arc<App>,
    raw: tiny_http::Request,
    mut req: Req,
    info: AccessInfo,
    plan: BodyPlan,
    hash: &HashPool,
) {
    let (cap, read, idle, keep) = match plan {
        BodyPlan::Read(cap) => (cap, cap, None, true),
        BodyPlan::Discard(cap, declared) => (cap, declared, Some(DISCARD_PAUSE), false),
    };
    let (app2, hash) = (app.clone(), hash.clone());
    let then: net::body::Then = Box::new(move |raw, body, socket| {
        let app = &*app2;
        let err = match body {
            // Discarded whole: the connection may carry on.
            Ok(_) if read > cap => {
                return finish(raw, error_reply(&req, &ApiError::too_large(cap)), &info);
            }
            // Discarding stopped early (a pause, an early close): still the 413 it was for.
            Err(_) if read > cap => ApiError::too_large(cap),
            Ok(body) => {
                req.body = body;
                let open = || app.svc.db.reader();
                return app.net.bodies.with_reader(open, |conn| match conn {
                    Ok(conn) => proceed(app, conn, raw, req, info, &hash),
                    Err(e) => {
                        let e = ApiError::internal(format!("cannot open a reader: {e}"));
                        finish(raw, error_reply(&req, &e), &info)
                    }
                });
            }
            Err(BodyError::TooLarge) => ApiError::too_large(cap),
            Err(BodyError::TimedOut) => ApiError::new(
                crate::error::Code::RequestTimeout,
                "The request body did not arrive in time",
            ),
            Err(BodyError::Broken) => ApiError::bad_request("Could not read body"),
            Err(BodyError::Busy) => {
                ApiError::unavailable("Too many uploads at once; retry shortly", 2)
            }
        };
        close(app, raw, error_reply(&req, &err), &info, socket);
    });
    if let Err((raw, then)) = app.net.bodies.submit(raw, read, idle, keep, then) {
        then(raw, Err(BodyError::Busy), None);
    }
}

/// The address a TCP server is bound to (for tests on port 0).
pub fn local_addr(server: &tiny_http::Server) -> Option<SocketAddr> {
    server.server_addr().to_ip()
}
