//! ccjk-cloud: the cloud side of CCJK's remote control — one binary, one SQLite file.
//!
//! Daemons on developers' computers register, heartbeat, receive shell-command tasks and report
//! results; people sign up, manage devices and queue tasks. SPEC.md (beside the repository) is
//! the specification; `schema.sql` is the data model.
//!
//! # Request flow
//! 1. `server`: tiny_http accepts connections; `workers` named threads take requests from
//!    `Server::recv()`, read the body under the route's cap and build an owned `http::Req`.
//! 2. `routes::handle` picks the API family (`/v1`, Lite, Sessions, Control) and its table
//!    matches method and path, resolves the caller (`auth`) and calls a domain function in
//!    `api/`, which validates and calls SQL in `db/`.
//! 3. Reads use the thread's own read-only connection; writes go to the single writer thread
//!    (`db::Db::write`), which commits concurrent writes together (group commit).
//! 4. The family renders `Ok`/`Err` into its envelope; `server` writes it and logs one line.
//!    Routes that hash passwords run on the bounded `ccjk-hash-*` pool instead of a worker.
//!    Bodies tiny_http has not read (over 1 KiB, chunked) are read on `net`'s `ccjk-body-*`
//!    threads under deadlines, never on a worker; the request then continues there.
//!
//! # Modules
//! `config` settings · `server` sockets and threads · `http` request/reply · `routes` tables
//! and envelopes · `auth` callers and scopes · `api` domain functions · `db` SQL, migrations
//! and the writer · `crypto` tokens and sealing · `password` argon2id · `throttle` brute-force
//! limits · `time` timestamps · `cli` admin subcommands · `net` defences against tiny_http's
//! defects (stalled bodies, smuggling, the pool race) · `alloc` the global allocator (the
//! crate's only unsafe code).

pub mod alloc;
pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod db;
pub mod error;
pub mod hints;
pub mod http;
pub mod janitor;
pub mod keycache;
pub mod net;
pub mod park;
pub mod password;
pub mod presence;
pub mod routes;
pub mod sched;
pub mod server;
pub mod throttle;
pub mod time;

use app::App;
use config::Config;
use server::HashPool;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};

/// Why `Running::wait` returned.
#[derive(Default)]
struct Stop {
    requested: bool,
    fatal: Option<String>,
}

/// A handle that asks a running server to stop (from a signal thread).
#[derive(Clone)]
pub struct StopHandle(Arc<(Mutex<Stop>, Condvar)>);

impl StopHandle {
    /// Asks for a graceful stop; `Running::wait` then shuts down and returns 0.
    pub fn stop(&self) {
        let (m, cv) = &*self.0;
        m.lock().unwrap_or_else(|p| p.into_inner()).requested = true;
        cv.notify_all();
    }

    fn fatal(&self, why: String) {
        let (m, cv) = &*self.0;
        m.lock()
            .unwrap_or_else(|p| p.into_inner())
            .fatal
            .get_or_insert(why);
        cv.notify_all();
    }
}

/// A started server. Dropping it shuts it down.
pub struct Running {
    app: Arc<App>,
    server: Arc<tiny_http::Server>,
    addr: Option<SocketAddr>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    hash: Mutex<Option<(HashPool, Vec<JoinHandle<()>>)>>,
    /// The park thread and the janitor.
    background: Mutex<Vec<JoinHandle<()>>>,
    stop: StopHandle,
    down: AtomicBool,
}

/// Opens the database and the key, binds the listener and starts the threads.
/// Errors: a message for the admin (bad database, unreadable key, address in use, ...).
pub fn start(cfg: Config) -> Result<Running, String> {
    let problems = cfg.validate();
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    let db = db::Db::open(&cfg.db_path, cfg.synchronous).map_err(|e| e.to_string())?;
    let key_path = cfg.secret_key_path();
    let sealer = crypto::Sealer::load_or_create(&key_path)
        .map_err(|e| format!("secret key file {}: {e}", key_path.display()))?;
    let dummy_hash =
        password::hash(&crypto::hex(&crypto::random_bytes::<16>())).map_err(|e| e.to_string())?;
    let server = Arc::new(
        server::bind(&cfg.listen).map_err(|e| format!("cannot listen on {:?}: {e}", cfg.listen))?,
    );
    let addr = server::local_addr(&server);
    let workers_n = cfg.workers;
    let cfg_net = cfg.net.clone();
    let app = Arc::new(App {
        cfg,
        db,
        sealer,
        throttle: Default::default(),
        dummy_hash,
        park: Default::default(),
        hints: Default::default(),
        presence: Default::default(),
        device_keys: Default::default(),
        ticker: Default::default(),
        stopping: AtomicBool::new(false),
        net: net::Net::new(&cfg_net, addr.map(|a| a.port())),
    });
    seed_hints(&app).map_err(|e| format!("cannot read the task queue: {e}"))?;
    let mut background =
        vec![park::spawn(app.clone()).map_err(|e| format!("cannot start the park thread: {e}"))?];
    background
        .push(janitor::spawn(app.clone()).map_err(|e| format!("cannot start the janitor: {e}"))?);
    background.push(
        presence::spawn(app.clone()).map_err(|e| format!("cannot start the flush thread: {e}"))?,
    );
    let sentinel_target = net::watchdog::Target::for_listener(addr, &app.cfg.listen);
    background.push(
        net::watchdog::spawn(app.clone(), sentinel_target)
            .map_err(|e| format!("cannot start the watchdog: {e}"))?,
    );
    let stop = StopHandle(Arc::new((Mutex::new(Stop::default()), Condvar::new())));
    let (hash, hash_threads) =
        HashPool::start(&app).map_err(|e| format!("cannot start hashing threads: {e}"))?;
    let mut workers = Vec::new();
    for i in 0..workers_n {
        let (app, server, hash, stop) = (app.clone(), server.clone(), hash.clone(), stop.clone());
        let h = thread::Builder::new()
            .name(format!("ccjk-worker-{i}"))
            .spawn(move || {
                if let Err(why) = server::worker_loop(app, server, hash) {
                    log::error!("{why}; exiting so that the service manager restarts us");
                    stop.fatal(why);
                }
            })
            .map_err(|e| format!("cannot start worker threads: {e}"))?;
        workers.push(h);
    }
    log::info!(
        "ccjk-cloud {} listening on {:?}",
        env!("CARGO_PKG_VERSION"),
        app.cfg.listen
    );
    Ok(Running {
        app,
        server,
        addr,
        workers: Mutex::new(workers),
        hash: Mutex::new(Some((hash, hash_threads))),
        background: Mutex::new(background),
        stop,
        down: AtomicBool::new(false),
    })
}

/// Marks every device and user that has pending tasks in the file (start-up, SPEC §10 index).
fn seed_hints(app: &App) -> rusqlite::Result<()> {
    let conn = app.db.reader()?;
    for (device, user) in db::tasks::all_pending_targets(&conn)? {
        app.hints.mark(device, user);
    }
    Ok(())
}

impl Running {
    /// The bound TCP address (useful with port 0), or `None` for a Unix socket.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// A handle to request a graceful stop from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Blocks until a stop is requested (returns 0 after shutting down) or the server failed
    /// fatally (returns 1 after shutting down).
    pub fn wait(&self) -> i32 {
        let (m, cv) = &*self.stop.0;
        let mut s = m.lock().unwrap_or_else(|p| p.into_inner());
        while !s.requested && s.fatal.is_none() {
            s = cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        let code = if s.fatal.is_some() { 1 } else { 0 };
        drop(s);
        self.shutdown();
        code
    }

    /// Graceful stop: stop taking requests, let in-flight ones finish, checkpoint the WAL.
    /// Idempotent.
    pub fn shutdown(&self) {
        if self.down.swap(true, Ordering::SeqCst) {
            return;
        }
        self.app.stopping.store(true, Ordering::SeqCst);
        // Parked long-polls are answered first, so daemons are not left waiting.
        self.app.park.close();
        self.app.ticker.stop();
        let workers: Vec<_> =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        for _ in 0..workers.len() {
            self.server.unblock();
        }
        for w in workers {
            let _ = w.join();
        }
        if let Some((pool, threads)) = self.hash.lock().unwrap_or_else(|p| p.into_inner()).take() {
            drop(pool);
            for t in threads {
                let _ = t.join();
            }
        }
        for t in std::mem::take(&mut *self.background.lock().unwrap_or_else(|p| p.into_inner())) {
            let _ = t.join();
        }
        // Heartbeats recorded by the last requests, after the flush thread's final round.
        if let Err(e) = presence::flush(&self.app) {
            log::warn!("writing heartbeats at shutdown failed: {e}");
        }
        if let Err(e) = self.app.db.checkpoint() {
            log::warn!("checkpoint at shutdown failed: {e}");
        }
        log::info!("ccjk-cloud stopped");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Installs the process panic policy (SPEC §8.4): a panic in one of our threads (`ccjk-*`,
/// `main`) is logged and isolated by the code around it; a panic in any other thread (such as
/// tiny_http's accept thread, whose death would leave a live process with a dead port) aborts
/// the process so systemd restarts it. Called by the binary only, not by tests.
pub fn install_panic_policy() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        let name = thread::current().name().map(str::to_owned);
        let ours = name
            .as_deref()
            .is_some_and(|n| n.starts_with("ccjk-") || n == "main");
        if !ours {
            eprintln!(
                "panic in thread {name:?}, which is not ours: aborting so the service restarts"
            );
            std::process::abort();
        }
    }));
}
