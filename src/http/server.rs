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
//! * Each request: find its route, read the body under the route's cap (413 before reading
//!   when the declared length is over it; a declared length over 256 MiB is never handed back
//!   to tiny_http, whose drop would allocate it), run the route under `catch_unwind` (a panic is
//!   a 500 with no internals), respond, and log one access line.
//! * Routes that hash passwords are handed whole to the hashing pool (`hashpool`), so workers
//!   never compute a hash.

use crate::config::Listen;
use crate::domain::Cx;
use crate::error::ApiError;
use crate::http::app::App;
use crate::http::family::Family;
use crate::http::hashpool::HashPool;
use crate::http::route::{Call, Cap, Found, Outcome, authenticate};
use crate::http::{READ_HEADERS, Reply, Req, redact_url};
use crate::state::throttle::Key;
use socket2::{Domain, Protocol, Socket, TcpKeepalive, Type};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Declared bodies larger than this are never dropped by tiny_http (it would allocate them).
const HUGE_BODY: usize = 256 * 1024 * 1024;
/// Connections answered 413 and drained at once; past this they are leaked instead.
const MAX_DRAINING: usize = 32;
/// `SO_SNDTIMEO`: how long a write to a client that does not read may block a thread.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

static DRAINING: AtomicUsize = AtomicUsize::new(0);

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
    let mut resp = tiny_http::Response::from_data(body).with_status_code(reply.status);
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

/// The one access-log line of a request: `len` bytes of body were sent with `reply`'s status.
fn log_access(info: &AccessInfo, reply: &Reply, len: usize, write_error: Option<std::io::Error>) {
    log::info!(
        target: "access",
        "{} \"{} {}\" {} {} {:.1}ms rid={}{}{}",
        info.ip,
        info.method,
        redact_url(&info.url),
        reply.status,
        len,
        info.started.elapsed().as_secs_f64() * 1000.0,
        info.request_id,
        reply.error_code.map(|c| format!(" code={c}")).unwrap_or_default(),
        write_error.map(|e| format!(" write_error={e}")).unwrap_or_default(),
    );
}

/// Writes `reply` to the client and logs the access line.
pub fn finish(raw: tiny_http::Request, mut reply: Reply, info: &AccessInfo) {
    let body = std::mem::take(&mut reply.body);
    let len = body.len();
    let sent = raw.respond(response(&reply, body, info));
    log_access(info, &reply, len, sent.err());
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
    let go = || match authenticate(route.auth, &cx, req) {
        Ok(caller) => route.run(&Call::new(app, cx, req, caller)),
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
    }
}

/// Answers a request whose body is over its cap without reading the body.
fn reject_oversized(raw: tiny_http::Request, reply: Reply, info: AccessInfo, huge: bool) {
    let draining = DRAINING.fetch_add(1, Ordering::SeqCst);
    if !huge && draining < MAX_DRAINING {
        // Dropping the request drains the unread body; do it off the worker so a client that
        // never sends the body cannot hold a worker.
        let r = response(&reply, reply.body.clone(), &info);
        let spawned = thread::Builder::new()
            .name("ccjk-drain".into())
            .spawn(move || {
                let _ = raw.respond(r);
                DRAINING.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            DRAINING.fetch_sub(1, Ordering::SeqCst);
        }
    } else {
        DRAINING.fetch_sub(1, Ordering::SeqCst);
        // tiny_http would allocate the whole declared body when this request is dropped:
        // answer through `upgrade` and leak the connection instead.
        log::warn!(
            "rid={} leaking a connection from {} that declared an oversized body",
            info.request_id,
            info.ip
        );
        let mut head = response(&reply, Vec::new(), &info);
        if let Ok(h) = tiny_http::Header::from_bytes(
            &b"Content-Length"[..],
            reply.body.len().to_string().as_bytes(),
        ) {
            head.add_header(h);
        }
        let mut stream = raw.upgrade("close", head);
        let _ = stream.write_all(&reply.body).and_then(|_| stream.flush());
        std::mem::forget(stream);
    }
    log_access(&info, &reply, reply.body.len(), None);
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
        Cap::KvValue => cfg.max_kv_value,
    }
}

/// One request, from tiny_http to the client.
fn serve(app: &App, conn: &rusqlite::Connection, mut raw: tiny_http::Request, hash: &HashPool) {
    let cfg = &app.svc.cfg;
    let info = AccessInfo {
        started: Instant::now(),
        method: raw.method().as_str().to_string(),
        url: raw.url().to_string(),
        ip: client_ip(&raw, cfg.trusted_proxy),
        request_id: next_request_id(),
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
    let (cap, hashing) = match app.table.find(&req.method, &req.segments) {
        Found::Route(i, route, params) => {
            req.route = Some(i);
            req.params = params;
            (body_cap(route.cap, cfg), route.hashing)
        }
        Found::NotFound => (cfg.max_body, false),
    };
    let declared = raw.body_length();
    if let Some(n) = declared
        && n > cap
    {
        let reply = error_reply(&req, &ApiError::too_large(cap));
        return reject_oversized(raw, reply, info, n > HUGE_BODY);
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
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
        return reject_oversized(raw, reply, info, false);
    }
    req.body = body;
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

/// The address a TCP server is bound to (for tests on port 0).
pub fn local_addr(server: &tiny_http::Server) -> Option<SocketAddr> {
    server.server_addr().to_ip()
}
