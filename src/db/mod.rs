//! The SQLite file: opening, pragmas, start-up checks, migrations, the one writer and the
//! readers (docs/architecture.md "Storage").
//!
//! Every write goes through the single writer (`writer`, group commit with after-commit
//! effects); every other thread reads through its own read-only connection (`Db::reader`), and
//! WAL lets readers run while the writer writes. SQL for each area lives in the sibling
//! modules (`db::users`, `db::sessions`, ...), one function per statement; they take a
//! `&Connection` and know nothing about HTTP.

pub mod api_keys;
pub mod apps;
pub mod backups;
pub mod devices;
pub mod effects;
pub mod email_configs;
pub mod inbound;
pub mod kv;
pub mod logs;
pub mod messages;
pub mod migrations;
pub mod outbox;
pub mod sessions;
pub mod stats;
pub mod status;
pub mod tasks;
pub mod users;
pub mod vault;
pub mod writer;

use crate::config::Synchronous;
use crate::error::ApiResult;
use effects::EffectSink;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
pub use writer::Tx;

/// The oldest bundled SQLite the server accepts (3.51.3: the release with the WAL fixes).
pub const MIN_SQLITE: i32 = 3_051_003;
/// How long a connection waits on a lock before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Handle to the database: the writer's queue and what readers need to open connections.
#[derive(Clone)]
pub struct Db {
    path: PathBuf,
    writer: writer::Writer,
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
    /// Opens (creating if needed) the database file with mode 0600, refuses an old SQLite or
    /// a corrupt file, applies the schema or migrations, and starts the writer thread.
    pub fn open(path: &Path, sync: Synchronous) -> Result<Db, OpenError> {
        let conn = open_writer(path, sync)?;
        let writer = writer::Writer::start(conn)
            .map_err(|e| OpenError(format!("cannot start the writer thread: {e}")))?;
        Ok(Db {
            path: path.to_path_buf(),
            writer,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer's counters (`/metrics`).
    pub fn writer_stats(&self) -> &writer::WriterStats {
        self.writer.stats()
    }

    /// Installs where after-commit effects go (once, at start-up).
    pub fn set_effect_sink(&self, sink: Arc<dyn EffectSink>) {
        self.writer.set_effect_sink(sink);
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
        // Plans never depend on bound values. Without this, SQLite marks a statement with
        // `WHERE col = ?` and an ORDER BY to be compiled again whenever that value is bound,
        // so a cached statement was re-prepared on every use (measured: ~60 µs per vault
        // lookup; the statements are cached to avoid exactly that).
        c.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        c.set_prepared_statement_cache_capacity(64);
        Ok(c)
    }

    /// Runs `f` on the writer connection inside the next group-commit transaction; see
    /// `writer::Writer::write` for the guarantees and errors.
    pub fn write<R, F>(&self, f: F) -> ApiResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Tx) -> ApiResult<R> + Send + 'static,
    {
        self.writer.write(f)
    }

    /// Queues `f` without waiting for its commit (see `writer::Writer::write_later`).
    pub fn write_later<F>(&self, f: F)
    where
        F: FnOnce(&Tx) -> ApiResult<()> + Send + 'static,
    {
        self.writer.write_later(f)
    }

    /// Checkpoints the WAL into the main file and truncates it (used at shutdown).
    pub fn checkpoint(&self) -> ApiResult<()> {
        let c = Connection::open(&self.path)?;
        c.busy_timeout(BUSY_TIMEOUT)?;
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

/// How far an online copy got: pages copied so far and pages in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyProgress {
    pub copied: i64,
    pub total: i64,
}

/// Copies the live database at `from` into the new file `to` with SQLite's online backup API,
/// `pages` pages per step, calling `progress` after each step (`ccjk-cloud backup` on a
/// terminal). The copy reads one snapshot: it holds a read transaction for the whole copy, so
/// writes by the running server neither block it nor make it start over. `to` should not exist
/// yet (create it empty with `create_private` first for its mode). Errors: SQLite's.
pub fn copy_online(
    from: &Path,
    to: &Path,
    pages: i32,
    mut progress: impl FnMut(CopyProgress),
) -> rusqlite::Result<()> {
    use rusqlite::backup::{Backup, StepResult};
    let src = Connection::open(from)?;
    src.busy_timeout(BUSY_TIMEOUT)?;
    src.execute_batch("BEGIN")?;
    src.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
    let mut dst = Connection::open(to)?;
    {
        let b = Backup::new(&src, &mut dst)?;
        loop {
            let step = b.step(pages)?;
            let p = b.progress();
            progress(CopyProgress {
                copied: i64::from(p.pagecount - p.remaining),
                total: i64::from(p.pagecount),
            });
            match step {
                StepResult::Done => break,
                StepResult::More => {}
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
    src.execute_batch("COMMIT")
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
    create_private(path)
        .map_err(|e| OpenError(format!("cannot create database {}: {e}", path.display())))?;
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

/// Creates `path` as an empty file readable by its owner only (0600) if it does not exist
/// yet. SQLite gives the `-wal` and `-shm` files it creates the database file's permissions, so
/// they are private too; an existing file keeps the mode an admin gave it.
pub fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
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

/// Query plans for the tests that check a statement uses its index (`EXPLAIN QUERY PLAN`).
#[cfg(test)]
pub(crate) mod plans {
    use rusqlite::Connection;
    use rusqlite::types::Value;

    /// A fresh in-memory database at the current schema, planning as the server's readers
    /// do (`Db::reader`: plans never depend on bound values).
    pub fn fresh() -> Connection {
        let c = Connection::open_in_memory().expect("db");
        crate::db::migrations::migrate(&c).expect("schema");
        c.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .expect("qpsg");
        c
    }

    /// The plan of `sql`, one line per step, with `args(n)` bound to its `n` parameters.
    pub fn explain(
        c: &Connection,
        sql: &str,
        args: impl FnOnce(usize) -> Vec<Value>,
    ) -> Vec<String> {
        let mut st = c
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan");
        let args = args(st.parameter_count());
        st.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("plan rows")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_online_copy_reports_its_pages_and_matches_the_source() {
        let dir = tempfile::tempdir().expect("dir");
        let (from, to) = (dir.path().join("a.db"), dir.path().join("b.db"));
        let c = Connection::open(&from).expect("db");
        c.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (x BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
             INSERT INTO t SELECT randomblob(3000) FROM n;",
        )
        .expect("fill");
        create_private(&to).expect("create");
        let mut seen = Vec::new();
        copy_online(&from, &to, 16, |p| {
            // The server keeps writing meanwhile; the copy is of the snapshot it started with.
            let _ = c.execute("INSERT INTO t VALUES (x'00')", []);
            seen.push(p);
        })
        .expect("copy");
        assert!(seen.len() > 5, "{seen:?}");
        let last = seen.last().expect("progress");
        assert_eq!(last.copied, last.total);
        assert!(seen.windows(2).all(|w| w[0].copied <= w[1].copied));
        let copy = Connection::open(&to).expect("copy opens");
        let n: i64 = copy
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("rows");
        assert_eq!(n, 200, "the snapshot of when the copy began");
        let ok: String = copy
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("check");
        assert_eq!(ok, "ok");
    }
}
