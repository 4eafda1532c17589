//! The SQLite file: opening, pragmas, start-up checks, migrations, the one writer and the
//! readers (SPEC §2).
//!
//! Exactly one connection writes. It lives on the `ccjk-writer` thread, which takes write jobs
//! (closures) from a channel and runs them in one `BEGIN IMMEDIATE` transaction per batch, each
//! job inside its own savepoint (group commit: one fsync for many requests, and a job that fails
//! rolls back only itself). A caller gets its result only after the batch has committed, so an
//! acknowledged write is durable. Every other thread reads through its own read-only
//! connection (`Db::reader`); WAL lets readers run while the writer writes.
//!
//! SQL for each area lives in the sibling modules (`db::users`, `db::sessions`, ...), one
//! function per statement; they take a `&Connection` and know nothing about HTTP.

pub mod api_keys;
pub mod devices;
pub mod messages;
pub mod migrations;
pub mod sessions;
pub mod tasks;
pub mod users;

use crate::config::Synchronous;
use crate::error::{ApiError, ApiResult};
use rusqlite::{Connection, OpenFlags};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The oldest bundled SQLite the server accepts (SPEC §2: WAL fixes up to 3.51.3).
pub const MIN_SQLITE: i32 = 3_051_003;
/// How long a connection waits on a lock before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Most jobs committed together in one transaction.
const MAX_BATCH: usize = 128;

/// A write job as the writer thread sees it: run on the writer connection inside a savepoint,
/// returning whether it succeeded and how to deliver its result once the batch has committed.
/// `None` means the transaction could not begin: the job must not run, only report.
type Job = Box<dyn FnOnce(Option<&Connection>) -> Completion + Send>;

struct Completion {
    ok: bool,
    deliver: Box<dyn FnOnce(Result<(), ApiError>) + Send>,
}

/// Handle to the database: the writer's queue and what readers need to open connections.
#[derive(Clone)]
pub struct Db {
    path: PathBuf,
    jobs: mpsc::SyncSender<Job>,
}

/// Why the database could not be opened; the message is meant for the admin.
#[derive(Debug)]
pub struct OpenError(pub String);

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Db {
    /// Opens (creating if needed) the database file, refuses an old SQLite or a corrupt file,
    /// applies the schema or migrations, and starts the writer thread.
    pub fn open(path: &Path, sync: Synchronous) -> Result<Db, OpenError> {
        let conn = open_writer(path, sync)?;
        let (jobs, rx) = mpsc::sync_channel::<Job>(1024);
        thread::Builder::new()
            .name("ccjk-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| OpenError(format!("cannot start the writer thread: {e}")))?;
        Ok(Db {
            path: path.to_path_buf(),
            jobs,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new read-only connection (WAL, `query_only`, foreign keys, busy timeout). Each
    /// worker thread opens one at start and keeps it.
    pub fn reader(&self) -> rusqlite::Result<Connection> {
        let c = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        c.busy_timeout(BUSY_TIMEOUT)?;
        c.execute_batch("PRAGMA foreign_keys = ON; PRAGMA query_only = ON;")?;
        c.set_prepared_statement_cache_capacity(64);
        Ok(c)
    }

    /// Runs `f` on the writer connection inside the next group-commit transaction and returns
    /// its result once that transaction has committed. If `f` returns `Err` (or panics), only
    /// its own changes are rolled back. Errors: whatever `f` returns; `INTERNAL` if the commit
    /// fails; `SERVICE_UNAVAILABLE` if the writer has stopped.
    pub fn write<R, F>(&self, f: F) -> ApiResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> ApiResult<R> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel::<ApiResult<R>>(1);
        let job: Job = Box::new(move |conn: Option<&Connection>| {
            let r = match conn {
                Some(conn) => catch_unwind(AssertUnwindSafe(|| f(conn))).unwrap_or_else(|p| {
                    Err(ApiError::internal(format!(
                        "panic in write: {}",
                        panic_text(&p)
                    )))
                }),
                None => Err(ApiError::unavailable("Database busy, retry shortly", 1)),
            };
            Completion {
                ok: r.is_ok(),
                deliver: Box::new(move |commit| {
                    let _ = tx.send(commit.and(r));
                }),
            }
        });
        self.jobs
            .send(job)
            .map_err(|_| ApiError::unavailable("The server is shutting down", 5))?;
        rx.recv()
            .unwrap_or_else(|_| Err(ApiError::unavailable("The server is shutting down", 5)))
    }

    /// Checkpoints the WAL into the main file and truncates it (used at shutdown).
    pub fn checkpoint(&self) -> ApiResult<()> {
        let c = Connection::open(&self.path)?;
        c.busy_timeout(BUSY_TIMEOUT)?;
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

/// Size of the main database file in bytes (page count × page size), for `/metrics`.
pub fn file_bytes(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT page_count * page_size FROM pragma_page_count, pragma_page_size",
        [],
        |r| r.get(0),
    )
}

/// Text of a caught panic payload, for the log.
pub fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Opens the writer connection and brings the file to the current schema.
fn open_writer(path: &Path, sync: Synchronous) -> Result<Connection, OpenError> {
    let version = rusqlite::version_number();
    if version < MIN_SQLITE {
        return Err(OpenError(format!(
            "SQLite {} is too old: ccjk-cloud needs 3.51.3 or newer",
            rusqlite::version()
        )));
    }
    let conn = Connection::open(path)
        .map_err(|e| OpenError(format!("cannot open database {}: {e}", path.display())))?;
    let setup = |c: &Connection| -> Result<(), String> {
        c.busy_timeout(BUSY_TIMEOUT).map_err(|e| e.to_string())?;
        let mode: String = c
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| e.to_string())?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!("journal_mode is {mode}, not wal"));
        }
        c.execute_batch(match sync {
            Synchronous::Full => "PRAGMA synchronous = FULL;",
            Synchronous::Normal => "PRAGMA synchronous = NORMAL;",
        })
        .map_err(|e| e.to_string())?;
        c.execute_batch("PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 1000;")
            .map_err(|e| e.to_string())?;
        c.set_prepared_statement_cache_capacity(128);
        Ok(())
    };
    setup(&conn)
        .map_err(|e| OpenError(format!("cannot configure database {}: {e}", path.display())))?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| OpenError(format!("database {} is not readable: {e}", path.display())))?;
    if check != "ok" {
        return Err(OpenError(format!(
            "database {} failed PRAGMA quick_check ({check}); restore a backup or run `ccjk-cloud check`",
            path.display()
        )));
    }
    migrations::migrate(&conn).map_err(|e| OpenError(format!("migration failed: {e}")))?;
    Ok(conn)
}

/// The writer thread: batches jobs into one transaction each, savepoint per job.
fn writer_loop(conn: Connection, rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let mut done = Vec::with_capacity(batch.len());
        let begun = run(&conn, "BEGIN IMMEDIATE");
        if let Err(e) = begun {
            log::error!("BEGIN IMMEDIATE failed: {e}");
            for job in batch.drain(..) {
                let c = job(None);
                (c.deliver)(Ok(()));
            }
            continue;
        }
        for job in batch.drain(..) {
            let sp = run(&conn, "SAVEPOINT job");
            let c = job(Some(&conn));
            let end = if c.ok && sp.is_ok() {
                run(&conn, "RELEASE job")
            } else {
                run(&conn, "ROLLBACK TO job").and_then(|_| run(&conn, "RELEASE job"))
            };
            if let Err(e) = end {
                log::error!("savepoint handling failed: {e}");
            }
            done.push(c);
        }
        let commit = run(&conn, "COMMIT").map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            ApiError::internal(format!("commit failed: {e}"))
        });
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

/// Helper for optional single-row queries.
pub trait OptionalRow<T> {
    /// `Ok(None)` for no row instead of `Err(QueryReturnedNoRows)`.
    fn optional(self) -> rusqlite::Result<Option<T>>;
}

impl<T> OptionalRow<T> for rusqlite::Result<T> {
    fn optional(self) -> rusqlite::Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
