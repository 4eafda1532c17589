//! The bounded password-hashing pool (docs/security.md "Passwords").
//!
//! Routes that compute argon2id hashes (their table entries say `hashing`) are handed whole to
//! `hash_threads` `ccjk-hash-N` threads, so request workers never compute a hash and at most
//! that many run at once. The threads run `SCHED_IDLE` (`sched`): any other server thread
//! preempts a hash at once, so a login burst uses the CPU daemons leave idle. A request that
//! waited longer than `hash_queue_wait` for a thread, or found the queue full, gets 503 with
//! `Retry-After`.

use crate::error::ApiError;
use crate::http::Req;
use crate::http::app::App;
use crate::http::server::{AccessInfo, deliver, error_reply, finish, run};
use std::io;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;

/// Requests waiting for a hashing thread before new ones get 503 at once.
const QUEUE: usize = 64;

/// A request waiting for a hashing thread.
struct Job {
    raw: tiny_http::Request,
    req: Req,
    info: AccessInfo,
}

/// The queue into the hashing threads. Dropping every clone ends the threads once the queue
/// is empty.
#[derive(Clone)]
pub struct HashPool {
    tx: SyncSender<Job>,
}

impl HashPool {
    /// Starts `hash_threads` `ccjk-hash-N` threads.
    pub fn start(app: &Arc<App>) -> io::Result<(HashPool, Vec<thread::JoinHandle<()>>)> {
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::new();
        for i in 0..app.svc.cfg.hash_threads.max(1) {
            let (app, rx) = (app.clone(), rx.clone());
            handles.push(
                thread::Builder::new()
                    .name(format!("ccjk-hash-{i}"))
                    .spawn(move || hash_loop(&app, &rx))?,
            );
        }
        Ok((HashPool { tx }, handles))
    }

    /// Queues a request for a hashing thread; answers 503 at once when the queue is full.
    pub fn submit(&self, raw: tiny_http::Request, req: Req, info: AccessInfo) {
        match self.tx.try_send(Job { raw, req, info }) {
            Ok(()) => {}
            Err(TrySendError::Full(j) | TrySendError::Disconnected(j)) => {
                let e = ApiError::unavailable("Too many logins at once; retry shortly", 2);
                finish(j.raw, error_reply(&j.req, &e), &j.info);
            }
        }
    }
}

fn hash_loop(app: &App, rx: &Mutex<mpsc::Receiver<Job>>) {
    crate::sched::idle_current_thread();
    let conn = match app.svc.db.reader() {
        Ok(c) => c,
        Err(e) => return log::error!("hash thread cannot open the database: {e}"),
    };
    loop {
        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(j) => j,
            Err(_) => return,
        };
        if job.info.started.elapsed() > app.svc.cfg.hash_queue_wait {
            let e = ApiError::unavailable("Too many logins at once; retry shortly", 2);
            finish(job.raw, error_reply(&job.req, &e), &job.info);
            continue;
        }
        let outcome = run(app, &conn, &job.req);
        deliver(app, &conn, job.raw, job.req, job.info, outcome);
    }
}
