//! SQL for statistics (README "Backups, logs and statistics"): finished tasks per UTC day, online
//! seconds, devices online. Every statement reads one index range: finished tasks come from
//! `tasks_user_finished`, an index on the two expressions below (the UTC day a task finished
//! and how long it ran), so SQLite reads them from the index, in day order, and no task row;
//! uptime comes from `device_uptime`'s primary key under the user's devices. The tests at the
//! bottom check the plans: no statement scans a table or sorts, and the task query is covered by
//! that index (which it is only while its expressions are the index's, word for word).

use rusqlite::{Connection, params};

/// Finished tasks of one UTC day.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DayRow {
    /// `2026-01-20`.
    pub day: String,
    /// Tasks that reached a final state that day.
    pub count: i64,
    pub completed: i64,
    /// `failed` and `timeout`.
    pub failed: i64,
    pub cancelled: i64,
    /// Σ (completed_at − started_at) of those that started, in milliseconds.
    pub run_ms: i64,
}

/// The UTC day a task finished: an expression of `tasks_user_finished` (schema.sql).
macro_rules! finished_day {
    () => {
        "substr(completed_at, 1, 10)"
    };
}
/// How long a task ran, in milliseconds (`NULL` if it never started): an expression of
/// `tasks_user_finished` (schema.sql).
macro_rules! run_ms {
    () => {
        "max(0, CAST(round((unixepoch(completed_at, 'subsec') - unixepoch(started_at, 'subsec')) * 1000) AS INTEGER))"
    };
}

/// The statements, by name (the plan test reads them).
const FINISHED_BY_DAY: &str = concat!(
    "SELECT ",
    finished_day!(),
    ", count(*), sum(status = 'completed'), sum(status IN ('failed', 'timeout')), \
     sum(status = 'cancelled'), coalesce(sum(",
    run_ms!(),
    "), 0) FROM tasks WHERE user_id = ?1 AND ",
    finished_day!(),
    " >= substr(?2, 1, 10) AND completed_at >= ?2 AND completed_at IS NOT NULL \
     AND (?3 IS NULL OR claimed_by = ?3) GROUP BY ",
    finished_day!(),
    " ORDER BY ",
    finished_day!()
);
const ONLINE_SECONDS: &str = "SELECT coalesce(sum(u.online_seconds), 0) FROM devices d \
    JOIN device_uptime u ON u.device_id = d.id \
    WHERE d.user_id = ?1 AND u.day >= ?2 AND (?3 IS NULL OR d.id = ?3)";
const DEVICES_ONLINE: &str =
    "SELECT count(*) FROM devices WHERE user_id = ?1 AND status != 'offline'";

/// The user's tasks that finished at or after `since` (a stored timestamp), per UTC day in day
/// order; only those that ran on `device` (it held their last attempt) when given. Days with
/// no finished task are absent.
pub fn finished_by_day(
    c: &Connection,
    user_id: i64,
    since: &str,
    device: Option<i64>,
) -> rusqlite::Result<Vec<DayRow>> {
    c.prepare_cached(FINISHED_BY_DAY)?
        .query_map(params![user_id, since, device], |r| {
            Ok(DayRow {
                day: r.get(0)?,
                count: r.get(1)?,
                completed: r.get(2)?,
                failed: r.get(3)?,
                cancelled: r.get(4)?,
                run_ms: r.get(5)?,
            })
        })?
        .collect()
}

/// Seconds the user's devices (or `device` alone) were online on UTC days from `first_day`.
pub fn online_seconds(
    c: &Connection,
    user_id: i64,
    first_day: &str,
    device: Option<i64>,
) -> rusqlite::Result<i64> {
    c.prepare_cached(ONLINE_SECONDS)?
        .query_row(params![user_id, first_day, device], |r| r.get(0))
}

/// How many of the user's devices are not `offline` now.
pub fn devices_online(c: &Connection, user_id: i64) -> rusqlite::Result<i64> {
    c.prepare_cached(DEVICES_ONLINE)?
        .query_row([user_id], |r| r.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `EXPLAIN QUERY PLAN` lines of `sql` with ids bound, as the server's readers plan.
    fn plan(c: &Connection, sql: &str) -> Vec<String> {
        crate::db::plans::explain(c, sql, |n| vec![rusqlite::types::Value::Integer(1); n])
    }

    #[test]
    fn no_statement_scans_a_table() {
        let c = crate::db::plans::fresh();
        for sql in [FINISHED_BY_DAY, ONLINE_SECONDS, DEVICES_ONLINE] {
            let p = plan(&c, sql);
            assert!(
                p.iter().all(|l| !l.starts_with("SCAN")),
                "{sql}\nscans: {p:?}"
            );
            assert!(
                !p.iter().any(|l| l.contains("TEMP B-TREE")),
                "{sql}\nsorts: {p:?}"
            );
        }
        let p = plan(&c, FINISHED_BY_DAY);
        assert!(
            p.iter()
                .any(|l| l.contains("USING COVERING INDEX tasks_user_finished")),
            "{p:?}"
        );
    }

    #[test]
    fn days_count_statuses_and_run_time() {
        let c = Connection::open_in_memory().expect("db");
        crate::db::migrations::migrate(&c).expect("schema");
        c.execute_batch(
            "INSERT INTO plans (name) VALUES ('t');
             INSERT INTO users (id, email, password_hash, plan, created_at, updated_at)
               VALUES (1, 'a@x', 'h', 't', '', '');
             INSERT INTO devices (id, uuid, user_id, name, key_prefix, key_hash, key_sealed, created_at, updated_at)
               VALUES (7, 'u7', 1, 'd', 'p', x'01', x'02', '', '');",
        )
        .expect("fixture");
        let task = |id: &str, status: &str, start: Option<&str>, end: &str| {
            c.execute(
                "INSERT INTO tasks (id, user_id, command, status, started_at, completed_at, claimed_by, created_at, updated_at) \
                 VALUES (?1, 1, 'x', ?2, ?3, ?4, 7, '', '')",
                params![id, status, start, end],
            )
            .expect("task");
        };
        task(
            "a",
            "completed",
            Some("2026-01-20T10:00:00.000Z"),
            "2026-01-20T10:00:01.500Z",
        );
        task(
            "b",
            "timeout",
            Some("2026-01-20T23:59:59.000Z"),
            "2026-01-21T00:00:02.000Z",
        );
        task("c", "cancelled", None, "2026-01-21T08:00:00.000Z");
        task(
            "d",
            "failed",
            Some("2026-01-19T08:00:00.000Z"),
            "2026-01-19T08:00:00.250Z",
        );
        let rows = finished_by_day(&c, 1, "2026-01-20T00:00:00.000Z", None).expect("rows");
        assert_eq!(
            rows,
            vec![
                DayRow {
                    day: "2026-01-20".into(),
                    count: 1,
                    completed: 1,
                    failed: 0,
                    cancelled: 0,
                    run_ms: 1500
                },
                DayRow {
                    day: "2026-01-21".into(),
                    count: 2,
                    completed: 0,
                    failed: 1,
                    cancelled: 1,
                    run_ms: 3000
                },
            ]
        );
        assert!(
            finished_by_day(&c, 1, "2026-01-01T00:00:00.000Z", Some(8))
                .expect("none")
                .is_empty()
        );
        assert_eq!(
            finished_by_day(&c, 2, "2026-01-01T00:00:00.000Z", None).expect("other user"),
            vec![]
        );
    }
}
