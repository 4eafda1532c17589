//! ccjk-cloud: the cloud side of CCJK's remote control — one binary, one SQLite file.
//!
//! Daemons on developers' computers register, heartbeat, receive shell-command tasks and report
//! results; people sign up, manage devices and queue tasks. The README is the user's guide,
//! `docs/` explains the design, and `schema.sql` is the data model.
//!
//! # Layers (calls go one way: `http` → `domain` → `db`, shared state below)
//! * `http` — sockets and threads (`server`), the route tables (`route`, `routes`), the
//!   families' envelopes (`family`), the OpenAPI document, the long-poll registry and the
//!   hashing pool. A route-table entry says everything about its route.
//! * `domain` — every rule, over explicit inputs and the shared `Services`; the CLI and the
//!   background workers call it exactly as the routes do.
//! * `db` — SQL, migrations, and the one writer (group commit, after-commit effects).
//! * `state` — in-memory indexes and caches shared by all threads.
//! * `workers` — background threads: long-poll dispatcher, heartbeat flusher, janitor, watchdog,
//!   mailer; and where after-commit effects go.
//! * `relay` — the e-mail relays' HTTP APIs (the mailer and the CLI call it).
//! * `config`, `error`, `crypto`, `password`, `time`, `sched`, `cli` — the rest; `alloc` is
//!   the global allocator (the crate's only unsafe code: it makes tiny_http's drain of a huge
//!   declared body harmless, see `http::net`).
//!
//! # Request flow
//! 1. `http::server`: tiny_http accepts; `workers` named threads take requests from
//!    `Server::recv()`, find the route-table entry, read the body under the entry's cap.
//! 2. The entry resolves the caller its `Auth` asks for, parses the handler's input, calls it,
//!    and renders its answer in the family's envelope. Entries that hash passwords run on the
//!    `ccjk-hash-*` pool instead of a worker; long-polls park without holding a worker.
//! 3. Handlers call `domain` functions; reads use the thread's own read-only connection,
//!    writes go to the single writer, which commits concurrent writes together and then runs
//!    the effects they registered (wake parked polls, forget cached rows).

pub mod alloc;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod password;
pub mod relay;
pub mod sched;
pub mod state;
pub mod time;
pub mod workers;

use config::Config;
use domain::Services;
use http::app::App;
use http::hashpool::HashPool;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use workers::{EffectRouter, Stop, Workers};

/// A started server. Dropping it shuts it down.
pub struct Running {
    app: Arc<App>,
    server: Arc<tiny_http::Server>,
    addr: Option<SocketAddr>,
    requests: Mutex<Vec<JoinHandle<()>>>,
    hash: Mutex<Option<(HashPool, Vec<JoinHandle<()>>)>>,
    workers: Mutex<Workers>,
    stop: Stop,
    down: AtomicBool,
}

/// The services of a server over `cfg`: the database (migrated), the secret key and the dummy
/// hash. Errors: a message for the admin.
pub fn services(cfg: Config) -> Result<Services, String> {
    let problems = cfg.validate();
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    let db = db::Db::open(&cfg.db_path, cfg.synchronous).map_err(|e| e.to_string())?;
    domain::accounts::backfill_email_keys(&db)
        .map_err(|e| format!("cannot fill in e-mail keys: {e}"))?;
    let key_path = cfg.secret_key_path();
    let sealer = crypto::Sealer::load_or_create(&key_path)
        .map_err(|e| format!("secret key file {}: {e}", key_path.display()))?;
    let dummy_hash =
        password::hash(&crypto::hex(&crypto::random_bytes::<16>())).map_err(|e| e.to_string())?;
    Ok(Services::new(cfg, db, sealer, dummy_hash))
}

/// Opens the database and the key, binds the listener and starts the threads.
/// Errors: a message for the admin (bad database, unreadable key, address in use, ...).
pub fn start(cfg: Config) -> Result<Running, String> {
    let listen = cfg.listen.clone();
    let svc = Arc::new(services(cfg)?);
    seed_claimable(&svc).map_err(|e| format!("cannot read the task queue: {e}"))?;
    let server = Arc::new(
        http::server::bind(&listen).map_err(|e| format!("cannot listen on {listen:?}: {e}"))?,
    );
    let addr = http::server::local_addr(&server);
    let app = Arc::new(App::new(svc, http::routes::table(), addr.map(|a| a.port())));
    app.svc
        .db
        .set_effect_sink(Arc::new(EffectRouter::new(&app)));
    let stop = Stop::default();
    let target = workers::watchdog::Target::for_listener(addr, &listen);
    let workers = Workers::start(&app, &stop, target)
        .map_err(|e| format!("cannot start background threads: {e}"))?;
    let (hash, hash_threads) =
        HashPool::start(&app).map_err(|e| format!("cannot start hashing threads: {e}"))?;
    let mut requests = Vec::new();
    for i in 0..app.svc.cfg.workers {
        let (app, server, hash, stop) = (app.clone(), server.clone(), hash.clone(), stop.clone());
        let h = thread::Builder::new()
            .name(format!("ccjk-worker-{i}"))
            .spawn(move || {
                if let Err(why) = http::server::worker_loop(app, server, hash) {
                    log::error!("{why}; exiting so that the service manager restarts us");
                    stop.fatal(why);
                }
            })
            .map_err(|e| format!("cannot start worker threads: {e}"))?;
        requests.push(h);
    }
    log::info!(
        "ccjk-cloud {} listening on {listen:?}",
        env!("CARGO_PKG_VERSION")
    );
    Ok(Running {
        app,
        server,
        addr,
        requests: Mutex::new(requests),
        hash: Mutex::new(Some((hash, hash_threads))),
        workers: Mutex::new(workers),
        stop,
        down: AtomicBool::new(false),
    })
}

/// Marks every device and user that has pending tasks in the file (start-up), so the
/// claimable-work index starts complete.
fn seed_claimable(svc: &Services) -> rusqlite::Result<()> {
    let conn = svc.db.reader()?;
    for (device, user) in db::tasks::all_pending_targets(&conn)? {
        svc.claimable.mark(device, user);
    }
    Ok(())
}

impl Running {
    /// The bound TCP address (useful with port 0), or `None` for a Unix socket.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// The stop signal, to request a graceful stop from another thread (a signal handler).
    pub fn stop_handle(&self) -> Stop {
        self.stop.clone()
    }

    /// The services (tests reach the clock and the caches through them).
    pub fn services(&self) -> &Services {
        &self.app.svc
    }

    /// Blocks until a stop is requested (returns 0 after shutting down) or the server failed
    /// fatally (returns 1 after shutting down).
    pub fn wait(&self) -> i32 {
        let fatal = self.stop.wait();
        self.shutdown();
        i32::from(fatal.is_some())
    }

    /// Graceful stop, in one order: stop taking requests and answer parked long-polls, let
    /// in-flight requests finish, stop the background workers (their last round), write the
    /// last heartbeats, checkpoint the WAL. Idempotent.
    pub fn shutdown(&self) {
        if self.down.swap(true, Ordering::SeqCst) {
            return;
        }
        self.app.begin_stop();
        self.stop.request();
        // Parked long-polls are answered first, so daemons are not left waiting, and event
        // streams end (their clients reconnect to the next process with Last-Event-ID).
        self.app.polls.close();
        self.app.events.close();
        let requests =
            std::mem::take(&mut *self.requests.lock().unwrap_or_else(|p| p.into_inner()));
        for _ in 0..requests.len() {
            self.server.unblock();
        }
        for w in requests {
            let _ = w.join();
        }
        if let Some((pool, threads)) = self.hash.lock().unwrap_or_else(|p| p.into_inner()).take() {
            drop(pool);
            for t in threads {
                let _ = t.join();
            }
        }
        self.workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stop(&self.app);
        // Heartbeats recorded by the last requests, after the flusher's final round.
        if let Err(e) = workers::flusher::flush(&self.app.svc) {
            log::warn!("writing heartbeats at shutdown failed: {e}");
        }
        if let Err(e) = self.app.svc.db.checkpoint() {
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

/// Installs the process panic policy (docs/architecture.md "Failures"): a panic in one of our
/// threads (`ccjk-*`, `main`) is logged and isolated by the code around it; a panic in any
/// other thread (such as tiny_http's accept thread, whose death would leave a live process with
/// a dead port) aborts the process so systemd restarts it. Called by the binary only.
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
