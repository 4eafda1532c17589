//! `ccjk-cloud stats` (README "Operations"): a line per user, or one user's summary and days,
//! from the database an admin points it at; an unknown period or user is an error.

use rusqlite::params;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, SystemTime};

/// `ccjk-cloud ARGS` over the database in `dir` (`common::cli`).
fn cli(dir: &Path, args: &[&str]) -> Output {
    crate::common::cli(dir, args, &[])
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn stats_prints_every_user_or_one_in_detail() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    for email in ["ann@example.com", "bob@example.com"] {
        let o = cli(d, &["user", "create", email]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let c = rusqlite::Connection::open(d.join("ccjk.db")).expect("db");
    let stamp = |ago: u64| {
        humantime::format_rfc3339_millis(SystemTime::now() - Duration::from_secs(ago)).to_string()
    };
    for (i, status) in ["completed", "completed", "failed"].iter().enumerate() {
        c.execute(
            "INSERT INTO tasks (id, user_id, command, status, started_at, completed_at, created_at, updated_at) \
             VALUES (?1, (SELECT id FROM users WHERE email = 'ann@example.com'), 'x', ?2, ?3, ?4, ?4, ?4)",
            params![format!("t{i}"), status, stamp(3_600 + 20), stamp(3_600)],
        )
        .expect("a task");
    }
    drop(c);
    let all = cli(d, &["stats"]);
    assert!(all.status.success());
    let text = stdout(&all);
    let ann = text
        .lines()
        .find(|l| l.starts_with("ann@example.com"))
        .unwrap_or_else(|| panic!("no line for ann in {text}"));
    let cols: Vec<&str> = ann.split_whitespace().collect();
    assert_eq!(&cols[1..4], ["2", "1", "60s"], "{ann}");
    assert!(
        text.lines().any(|l| l.starts_with("bob@example.com")),
        "{text}"
    );

    let one = stdout(&cli(
        d,
        &["stats", "--user", "ann@example.com", "--period", "24h"],
    ));
    assert!(
        one.contains("tasks: 2 completed, 1 failed, 0 cancelled; run time 60 s"),
        "{one}"
    );
    let day = &stamp(3_600)[..10];
    assert!(
        one.lines()
            .any(|l| l.starts_with(day) && l.split_whitespace().nth(1) == Some("3")),
        "{one}"
    );
    assert!(!cli(d, &["stats", "--period", "1y"]).status.success());
    assert!(
        !cli(d, &["stats", "--user", "ghost@example.com"])
            .status
            .success()
    );
}
