//! Schema versions, keyed by `PRAGMA user_version` (docs/architecture.md "Storage").
//!
//! A fresh file gets `schema.sql` (the complete current schema) and the latest version number.
//! An older file is brought forward by the ordered steps below, each in its own transaction.
//! Step 1 is the frozen baseline (`migrations/v1.sql`); every later step is the SQL that turns
//! version N-1 into N. The test at the bottom checks that both routes end with the same tables,
//! columns, indexes and foreign keys.

use rusqlite::Connection;

/// The complete current schema, applied to fresh databases.
pub const SCHEMA: &str = include_str!("../../schema.sql");

/// Ordered upgrade steps: `STEPS[i]` turns version `i` into `i + 1`.
const STEPS: &[&str] = &[
    include_str!("migrations/v1.sql"),
    include_str!("migrations/v2.sql"),
    include_str!("migrations/v3.sql"),
    include_str!("migrations/v4.sql"),
    include_str!("migrations/v5.sql"),
    include_str!("migrations/v6.sql"),
    include_str!("migrations/v7.sql"),
];

/// The version a database has after `migrate`.
pub const LATEST: i32 = STEPS.len() as i32;

/// Brings `conn` to `LATEST`. Errors: a file from a newer ccjk-cloud, a non-empty file that
/// is not a ccjk-cloud database, or a failing step.
pub fn migrate(conn: &Connection) -> Result<(), String> {
    let version: i32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if version > LATEST {
        return Err(format!(
            "database schema version {version} is newer than this binary understands ({LATEST}); \
             upgrade ccjk-cloud"
        ));
    }
    if version == LATEST {
        return Ok(());
    }
    if version == 0 {
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| e.to_string())?;
        if tables > 0 {
            return Err(
                "the file has tables but no ccjk-cloud schema version; refusing to touch it".into(),
            );
        }
        return apply(conn, SCHEMA, LATEST);
    }
    for (i, step) in STEPS.iter().enumerate().skip(version as usize) {
        apply(conn, step, i as i32 + 1)?;
        log::info!("migrated database to schema version {}", i + 1);
    }
    Ok(())
}

fn apply(conn: &Connection, sql: &str, to: i32) -> Result<(), String> {
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {to};\nCOMMIT;"
    ))
    .map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        format!("step to version {to}: {e}")
    })
}

#[cfg(test)]
pub(crate) fn apply_steps_up_to(conn: &Connection, version: i32) {
    for (i, step) in STEPS.iter().enumerate().take(version as usize) {
        apply(conn, step, i as i32 + 1).expect("step applies");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table's columns, indexes and foreign keys, as comparable text.
    fn shape(c: &Connection) -> Vec<String> {
        let mut out = Vec::new();
        let mut names: Vec<String> = c
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("tables");
        names.retain(|n| !n.starts_with("sqlite_"));
        for t in names {
            for q in ["table_xinfo", "index_list", "foreign_key_list"] {
                let mut s = c
                    .prepare(&format!("SELECT * FROM pragma_{q}('{t}')"))
                    .expect("pragma");
                let n = s.column_count();
                let rows: Vec<String> = s
                    .query_map([], |r| {
                        let cols: Vec<String> = (0..n)
                            .map(|i| {
                                format!(
                                    "{:?}",
                                    r.get_ref(i).map(|v| v.as_str().map(str::to_owned).ok())
                                )
                            })
                            .collect();
                        Ok(cols.join("|"))
                    })
                    .and_then(|r| r.collect())
                    .expect("rows");
                let mut rows = rows;
                rows.sort();
                out.push(format!("{t} {q}: {}", rows.join(" / ")));
            }
        }
        let idx: Vec<String> = c
            .prepare("SELECT name || ':' || coalesce(sql, '') FROM sqlite_schema WHERE type = 'index' ORDER BY name")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("indexes");
        out.extend(idx);
        out
    }

    #[test]
    fn fresh_and_upgraded_databases_match() {
        let fresh = Connection::open_in_memory().expect("db");
        migrate(&fresh).expect("fresh");
        for start in 1..=LATEST {
            let old = Connection::open_in_memory().expect("db");
            apply_steps_up_to(&old, start);
            migrate(&old).expect("upgrade");
            assert_eq!(shape(&fresh), shape(&old), "upgrading from v{start}");
            let v: i32 = old
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .expect("v");
            assert_eq!(v, LATEST);
        }
    }

    #[test]
    fn newer_and_foreign_files_are_refused() {
        let c = Connection::open_in_memory().expect("db");
        c.execute_batch(&format!("PRAGMA user_version = {}", LATEST + 1))
            .expect("set");
        assert!(migrate(&c).expect_err("newer").contains("newer"));
        let c = Connection::open_in_memory().expect("db");
        c.execute_batch("CREATE TABLE other (x)").expect("foreign");
        assert!(migrate(&c).expect_err("foreign").contains("refusing"));
    }
}
