//! The one writer (docs/architecture.md "Writes"): group commit with a savepoint per job, and
//! after-commit effects.
//!
//! Exactly one connection writes. It lives on the `ccjk-writer` thread, which takes write jobs
//! (closures) from a channel and runs them in one `BEGIN IMMEDIATE` transaction per batch, each
//! job inside its own savepoint: one fsync for many requests, and a job that fails rolls back
//! only itself. A job sees a `Tx`: the connection, plus `after_commit` to register effects.
//! Once the batch has committed, the writer hands the effects of every job that succeeded to
//! the installed `EffectSink` (in registration order), then delivers each job's result; a
//! failed job's effects, or all of them when the commit fails, are dropped. A caller gets its
//! result only after the commit, so an acknowledged write is durable. `WriterStats` counts what
//! an admin watches in `/metrics`: jobs waiting, batch sizes, commit latency.

use super::effects::{Effect, EffectSink};
use crate::error::{ApiError, ApiResult};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use rusqlite::Connection;
use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Most jobs committed together in one transaction.
const MAX_BATCH: usize = 128;
/// Write jobs waiting for the writer before `write` blocks its caller.
const QUEUE: usize = 1024;

/// The writer connection as a job sees it: a `&Connection` (through `Deref`), and a list of
/// effects to run once the job's transaction has committed.
pub struct Tx<'a> {
    conn: &'a Connection,
    effects: RefCell<Vec<Effect>>,
}

impl std::ops::Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Tx<'_> {
    /// Registers `e` to run after this job's transaction commits (never on rollback).
    pub fn after_commit(&self, e: Effect) {
        let mut v = self.effects.borrow_mut();
        if !v.contains(&e) {
            v.push(e);
        }
    }
}

/// A write job as the writer thread sees it: run on the writer connection inside a savepoint,
/// returning its effects and how to deliver its result once the batch has committed. `None`
/// means the transaction could not begin: the job must not run, only report.
type Job = Box<dyn FnOnce(Option<&Connection>) -> Completion + Send>;

struct Completion {
    ok: bool,
    effects: Vec<Effect>,
    deliver: Box<dyn FnOnce(Result<(), ApiError>) + Send>,
}

/// Where effects go; set once at start-up (a server without it, such as a CLI command, drops
/// them: there is nothing in memory to wake or forget).
type Sink = Arc<OnceLock<Arc<dyn EffectSink>>>;

/// What the writer does, for `/metrics` (each field is a handle on shared counters).
#[derive(Clone, Debug)]
pub struct WriterStats {
    /// Jobs committed together per transaction.
    pub batch_jobs: Histogram,
    /// Seconds each `COMMIT` took.
    pub commit_seconds: Histogram,
    /// Jobs sent and not yet taken by the writer.
    pub queued: Gauge,
}

impl Default for WriterStats {
    fn default() -> WriterStats {
        WriterStats {
            batch_jobs: Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]),
            commit_seconds: Histogram::new([
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0,
            ]),
            queued: Gauge::default(),
        }
    }
}

/// The writer's queue. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::SyncSender<Job>,
    sink: Sink,
    stats: WriterStats,
}

impl Writer {
    /// Starts the `ccjk-writer` thread on `conn`. Errors: the thread could not start.
    pub fn start(conn: Connection) -> std::io::Result<Writer> {
        let (jobs, rx) = mpsc::sync_channel::<Job>(QUEUE);
        let sink: Sink = Arc::default();
        let stats = WriterStats::default();
        let (s, st) = (sink.clone(), stats.clone());
        std::thread::Builder::new()
            .name("ccjk-writer".into())
            .spawn(move || writer_loop(conn, rx, s, st))?;
        Ok(Writer { jobs, sink, stats })
    }

    /// The writer's counters.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Sends a job to the writer thread, counted as waiting until the writer takes it.
    fn send(&self, job: Job) -> Result<(), mpsc::SendError<Job>> {
        self.stats.queued.inc();
        self.jobs.send(job).inspect_err(|_| {
            self.stats.queued.dec();
        })
    }

    /// Installs where after-commit effects go. Only the first call has an effect.
    pub fn set_effect_sink(&self, sink: Arc<dyn EffectSink>) {
        let _ = self.sink.set(sink);
    }

    /// Runs `f` inside the next group-commit transaction and returns its result once that
    /// transaction has committed. If `f` returns `Err` (or panics), only its own changes are
    /// rolled back and its effects dropped. Errors: whatever `f` returns; `INTERNAL` if the
    /// commit fails; `SERVICE_UNAVAILABLE` if the writer has stopped.
    pub fn write<R, F>(&self, f: F) -> ApiResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Tx) -> ApiResult<R> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel::<ApiResult<R>>(1);
        let job: Job = Box::new(move |conn: Option<&Connection>| {
            let (r, effects) = match conn {
                Some(conn) => {
                    let t = Tx {
                        conn,
                        effects: RefCell::default(),
                    };
                    let r = catch_unwind(AssertUnwindSafe(|| f(&t))).unwrap_or_else(|p| {
                        Err(ApiError::internal(format!(
                            "panic in write: {}",
                            super::panic_text(&p)
                        )))
                    });
                    (r, t.effects.into_inner())
                }
                None => (
                    Err(ApiError::unavailable("Database busy, retry shortly", 1)),
                    Vec::new(),
                ),
            };
            Completion {
                ok: r.is_ok(),
                effects,
                deliver: Box::new(move |commit| {
                    let _ = tx.send(commit.and(r));
                }),
            }
        });
        self.send(job)
            .map_err(|_| ApiError::unavailable("The server is shutting down", 5))?;
        rx.recv()
            .unwrap_or_else(|_| Err(ApiError::unavailable("The server is shutting down", 5)))
    }
}

impl Writer {
    /// Queues `f` like `write` but does not wait for it: for bookkeeping whose caller must not
    /// be slowed by the commit (a failed login's counter). A failure is logged.
    pub fn write_later<F>(&self, f: F)
    where
        F: FnOnce(&Tx) -> ApiResult<()> + Send + 'static,
    {
        let job: Job = Box::new(move |conn: Option<&Connection>| {
            let r = match conn {
                Some(conn) => {
                    let t = Tx {
                        conn,
                        effects: RefCell::default(),
                    };
                    catch_unwind(AssertUnwindSafe(|| f(&t)))
                        .unwrap_or_else(|_| Err(ApiError::internal("panic in a background write")))
                }
                None => Err(ApiError::unavailable("Database busy", 1)),
            };
            if let Err(e) = &r {
                log::warn!("background write failed: {e}");
            }
            Completion {
                ok: r.is_ok(),
                effects: Vec::new(),
                deliver: Box::new(|commit| {
                    if let Err(e) = commit {
                        log::warn!("background write not committed: {e}");
                    }
                }),
            }
        });
        if self.send(job).is_err() {
            log::warn!("background write dropped: the writer has stopped");
        }
    }
}

/// The writer thread: batches jobs into one transaction each, a savepoint per job.
fn writer_loop(conn: Connection, rx: mpsc::Receiver<Job>, sink: Sink, stats: WriterStats) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        stats.queued.dec_by(batch.len() as i64);
        stats.batch_jobs.observe(batch.len() as f64);
        if let Err(e) = run(&conn, "BEGIN IMMEDIATE") {
            log::error!("BEGIN IMMEDIATE failed: {e}");
            for job in batch.drain(..) {
                (job(None).deliver)(Ok(()));
            }
            continue;
        }
        let mut done = Vec::with_capacity(batch.len());
        for job in batch.drain(..) {
            let sp = run(&conn, "SAVEPOINT job");
            let mut c = job(Some(&conn));
            c.ok &= sp.is_ok();
            let end = if c.ok {
                run(&conn, "RELEASE job")
            } else {
                run(&conn, "ROLLBACK TO job").and_then(|_| run(&conn, "RELEASE job"))
            };
            if let Err(e) = end {
                log::error!("savepoint handling failed: {e}");
            }
            done.push(c);
        }
        let t = Instant::now();
        let commit = run(&conn, "COMMIT").map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            ApiError::internal(format!("commit failed: {e}"))
        });
        stats.commit_seconds.observe(t.elapsed().as_secs_f64());
        if commit.is_ok()
            && let Some(sink) = sink.get()
        {
            let effects: Vec<Effect> = done
                .iter_mut()
                .filter(|c| c.ok)
                .flat_map(|c| std::mem::take(&mut c.effects))
                .collect();
            if !effects.is_empty() {
                sink.apply(effects);
            }
        }
        for c in done {
            (c.deliver)(commit.clone());
        }
    }
    log::debug!("writer thread stopped");
}

/// Runs a transaction-control statement from the statement cache (parsing `BEGIN`, `SAVEPOINT`,
/// `RELEASE` and `COMMIT` anew for every batch and job showed in profiles).
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Record(Mutex<Vec<Effect>>);
    impl EffectSink for Record {
        fn apply(&self, effects: Vec<Effect>) {
            self.0.lock().expect("lock").extend(effects);
        }
    }

    #[test]
    fn effects_run_after_commit_and_never_on_rollback() {
        let conn = Connection::open_in_memory().expect("db");
        conn.execute_batch("CREATE TABLE t (x INTEGER)")
            .expect("table");
        let w = Writer::start(conn).expect("writer");
        let rec = Arc::new(Record::default());
        w.set_effect_sink(rec.clone());
        w.write(|t| {
            t.execute("INSERT INTO t VALUES (1)", [])?;
            t.after_commit(Effect::DeviceWork(1));
            t.after_commit(Effect::DeviceWork(1));
            Ok(())
        })
        .expect("ok job");
        let failed: ApiResult<()> = w.write(|t| {
            t.execute("INSERT INTO t VALUES (2)", [])?;
            t.after_commit(Effect::UserWork(2));
            Err(ApiError::bad_request("no"))
        });
        assert!(failed.is_err());
        let n: i64 = w
            .write(|t| Ok(t.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?))
            .expect("count");
        assert_eq!(n, 1, "the failed job rolled back");
        assert_eq!(
            *rec.0.lock().expect("lock"),
            vec![Effect::DeviceWork(1)],
            "one effect, registered once; none from the rolled-back job"
        );
    }
}
