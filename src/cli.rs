//! The admin subcommands (README "Operations"): `serve` flags, `migrate`, `check`,
//! `backup PATH`, `openapi`, `user list|create|set-plan|set-admin|disable|enable|
//! reset-password`, `device create`, `email test TO`, `outbox [list|retry ID]`, `stats`,
//! `vault export|import` (`cli/vault.rs`), `app create|list|delete` (`cli/app.rs`); `email` and
//! `outbox` are in `cli/mail.rs`.
//!
//! Arguments are parsed with lexopt. Each command opens the database itself (the server may be
//! running: SQLite's locking and the busy timeout make that safe), calls the same domain
//! functions the routes call, and prints plain text for an admin's terminal. `main.rs` only
//! maps the result to an exit code.

use crate::config::{Config, Listen};
use crate::crypto;
use crate::db::users::{self, Flag};
use crate::db::{self, Db};
use crate::domain::accounts::{self, RegisterInput};
use crate::domain::{Cx, devices};
use crate::password;
use lexopt::prelude::*;
use std::path::PathBuf;

pub mod app;
pub mod mail;
pub mod vault;

/// What the command line asked for.
pub enum Command {
    Serve(Config),
    Migrate(Config),
    Check(Config),
    Backup(Config, PathBuf),
    OpenApi,
    User(Config, Vec<String>),
    Device(Config, Vec<String>),
    Email(Config, Vec<String>),
    Outbox(Config, Vec<String>),
    Stats(Config, Vec<String>),
    Vault(Config, Vec<String>),
    App(Config, Vec<String>),
    Help,
    Version,
}

/// Usage text.
pub const USAGE: &str = "\
ccjk-cloud — self-hosted backend for CCJK remote control

USAGE:
  ccjk-cloud [serve] [--listen ADDR] [--db PATH] [--workers N] [--public]
  ccjk-cloud migrate                 apply schema migrations and exit
  ccjk-cloud check                   integrity_check + foreign_key_check
  ccjk-cloud backup PATH             consistent online copy, mode 0600 (pages copied on a terminal)
  ccjk-cloud openapi                 print the OpenAPI 3.1 document of every route
  ccjk-cloud user list
  ccjk-cloud user create EMAIL [--username NAME] [--password PW] [--admin] [--plan PLAN]
  ccjk-cloud user set-plan EMAIL PLAN
  ccjk-cloud user set-admin EMAIL true|false
  ccjk-cloud user disable EMAIL      (and: user enable EMAIL)
  ccjk-cloud user reset-password EMAIL [--password PW]
  ccjk-cloud device create --user EMAIL --name NAME   (prints the device key)
  ccjk-cloud email test TO           send a test mail through the configured relay now
  ccjk-cloud outbox [list]           the newest 50 mails of the outbox and their state
  ccjk-cloud outbox retry ID         queue a failed or unsent mail again
  ccjk-cloud stats [--user EMAIL] [--period 24h|7d|30d|90d]   (every user, or one in detail)
  ccjk-cloud vault export --user EMAIL [--plaintext [--yes]] [--out FILE]
                                     a user's sites and accounts as JSON, secrets sealed
                                     (--plaintext asks first, or takes --yes)
  ccjk-cloud vault import --user EMAIL FILE|- [--replace]
  ccjk-cloud app create --name NAME --developer NAME [--homepage URL] [--developer-link URL]
                        [--description TEXT]          (prints the app id and site key)
  ccjk-cloud app list
  ccjk-cloud app delete ID           (its tokens stop working; the keys it wrote stay)

Settings come from CCJK_* environment variables (see README); serve flags override them.
A password that is not given is generated and printed once.
";

/// Parses the command line (without the program name) over a config from the environment.
pub fn parse(args: Vec<String>, mut cfg: Config) -> Result<Command, String> {
    let mut p = lexopt::Parser::from_args(args);
    let mut cmd: Option<String> = None;
    let mut rest: Vec<String> = Vec::new();
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Long("listen") => cfg.listen = Listen::parse(&value(&mut p)?)?,
            Long("db") => cfg.db_path = PathBuf::from(value(&mut p)?),
            Long("workers") => {
                cfg.workers = value(&mut p)?
                    .parse()
                    .ok()
                    .filter(|n| (1..=256).contains(n))
                    .ok_or("--workers takes a number from 1 to 256")?
            }
            Long("public") => cfg.public = true,
            Long(flag)
                if matches!(
                    cmd.as_deref(),
                    Some("user" | "device" | "stats" | "vault" | "app")
                ) =>
            {
                let flag = flag.to_string();
                rest.push(format!("--{flag}"));
                if !["admin", "plaintext", "yes", "replace"].contains(&flag.as_str()) {
                    rest.push(value(&mut p)?);
                }
            }
            Value(v) => {
                let v = v.into_string().map_err(|_| "arguments must be UTF-8")?;
                if cmd.is_none() {
                    cmd = Some(v);
                } else {
                    rest.push(v);
                }
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    let problems = cfg.validate();
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    Ok(match cmd.as_deref().unwrap_or("serve") {
        "serve" => Command::Serve(cfg),
        "migrate" => Command::Migrate(cfg),
        "check" => Command::Check(cfg),
        "backup" => match rest.as_slice() {
            [path] => Command::Backup(cfg, PathBuf::from(path)),
            _ => return Err("usage: ccjk-cloud backup PATH".into()),
        },
        "openapi" => Command::OpenApi,
        "user" => Command::User(cfg, rest),
        "device" => Command::Device(cfg, rest),
        "email" => Command::Email(cfg, rest),
        "outbox" => Command::Outbox(cfg, rest),
        "stats" => Command::Stats(cfg, rest),
        "vault" => Command::Vault(cfg, rest),
        "app" => Command::App(cfg, rest),
        other => return Err(format!("unknown command {other:?}; see --help")),
    })
}

fn value(p: &mut lexopt::Parser) -> Result<String, String> {
    p.value()
        .map_err(|e| e.to_string())?
        .into_string()
        .map_err(|_| "arguments must be UTF-8".into())
}

/// `migrate`: opening the database applies the migrations; then existing accounts get their
/// e-mail comparison keys.
pub fn migrate(cfg: &Config) -> Result<(), String> {
    let db = Db::open(&cfg.db_path, cfg.synchronous).map_err(|e| e.to_string())?;
    accounts::backfill_email_keys(&db).map_err(|e| e.message)?;
    println!(
        "database {} is at schema version {}",
        cfg.db_path.display(),
        db::migrations::LATEST
    );
    Ok(())
}

/// `check`: full integrity check and foreign-key check; error if either finds a problem.
pub fn check(cfg: &Config) -> Result<(), String> {
    let c = rusqlite::Connection::open_with_flags(
        &cfg.db_path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .map_err(|e| format!("cannot open {}: {e}", cfg.db_path.display()))?;
    let integrity: Vec<String> = c
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| e.to_string())?;
    let fk: i64 = c
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .map_err(|e| e.to_string())?;
    println!("integrity_check: {}", integrity.join("; "));
    println!("foreign_key_check: {fk} violation(s)");
    if integrity != ["ok"] || fk > 0 {
        return Err("the database has problems; restore a backup".into());
    }
    Ok(())
}

/// `openapi`: the document, as `GET /v1/openapi.json` serves it.
pub fn openapi() -> Result<(), String> {
    let doc = crate::http::openapi::document(&crate::http::routes::table());
    println!(
        "{}",
        serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// `backup PATH`: a consistent copy of the live database, readable by its owner only (the copy
/// holds everything the database does). On a terminal it copies with SQLite's online backup
/// API and shows the pages copied as it goes; otherwise (cron, scripts) it runs `VACUUM INTO`,
/// which also compacts the copy.
pub fn backup(cfg: &Config, to: &std::path::Path) -> Result<(), String> {
    use std::io::{IsTerminal, Write};
    if to.exists() {
        return Err(format!("{} exists; choose a new file", to.display()));
    }
    db::create_private(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    if std::io::stdout().is_terminal() {
        let mut out = std::io::stdout();
        db::copy_online(&cfg.db_path, to, BACKUP_STEP_PAGES, |p| {
            let pct = if p.total > 0 {
                p.copied * 100 / p.total
            } else {
                100
            };
            let _ = write!(out, "\rcopied {} of {} pages ({pct} %)", p.copied, p.total);
            let _ = out.flush();
        })
        .map_err(|e| format!("\nbackup failed: {e}"))?;
        println!("\nbacked up {} to {}", cfg.db_path.display(), to.display());
        return Ok(());
    }
    let c = rusqlite::Connection::open(&cfg.db_path).map_err(|e| e.to_string())?;
    c.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let dest = to.to_str().ok_or("backup path must be UTF-8")?;
    c.execute("VACUUM INTO ?1", [dest])
        .map_err(|e| format!("backup failed: {e}"))?;
    println!("backed up {} to {}", cfg.db_path.display(), to.display());
    Ok(())
}

/// Pages `backup` copies per step on a terminal (4 MiB with 4 KiB pages): progress about every
/// few milliseconds on a fast disk.
const BACKUP_STEP_PAGES: i32 = 1024;

/// The value after `--name` in `args`, if one follows it. A next argument that is itself an
/// option (`--…`) is not a value: `--name --developer X` has no name.
pub(crate) fn option(args: &[String], name: &str) -> Option<String> {
    args.windows(2)
        .find(|w| w[0] == name)
        .map(|w| w[1].clone())
        .filter(|v| !v.starts_with("--"))
}

/// `stats [--user EMAIL] [--period P]`: one user's summary with its daily breakdown, or a line
/// per user.
pub fn stats(cfg: &Config, args: &[String]) -> Result<(), String> {
    use crate::domain::stats::{self, Period};
    let opt = |name: &str| crate::cli::option(args, name);
    let period = Period::parse(opt("--period").as_deref()).map_err(|e| e.message)?;
    let svc = crate::services(cfg.clone())?;
    let reader = svc.db.reader().map_err(|e| e.to_string())?;
    let cx = Cx::new(&svc, &reader);
    let mb = |b: i64| format!("{:.1} MB", b as f64 / 1e6);
    let Some(email) = opt("--user") else {
        println!(
            "{:<32} {:>9} {:>7} {:>10} {:>7} {:>10} {:>9}",
            "email", "completed", "failed", "run time", "online", "storage", "uptime h"
        );
        for u in users::list(&reader).map_err(|e| e.to_string())? {
            let s = stats::summary(&cx, u.id, period).map_err(|e| e.message)?;
            println!(
                "{:<32} {:>9} {:>7} {:>9}s {:>7} {:>10} {:>9.2}",
                u.email,
                s.tasks_completed,
                s.tasks_failed,
                s.total_execution_time,
                s.devices_online,
                mb(s.storage_used),
                s.uptime_hours
            );
        }
        println!("(last {}; `--user EMAIL` for one user's days)", period.name);
        return Ok(());
    };
    let user = users::find_for_login(&reader, &email, &crate::domain::text::email_key(&email))
        .map_err(|e| e.to_string())?
        .map(|(u, _)| u)
        .ok_or("no user with that email")?;
    let s = stats::summary(&cx, user.id, period).map_err(|e| e.message)?;
    println!(
        "{} — last {} ({} to {})",
        user.email, s.period, s.since, s.until
    );
    println!(
        "tasks: {} completed, {} failed, {} cancelled; run time {} s",
        s.tasks_completed, s.tasks_failed, s.tasks_cancelled, s.total_execution_time
    );
    let quota = s.storage_quota.map_or("unlimited".into(), mb);
    println!(
        "devices online: {}; uptime {:.2} h; storage {} of {quota}",
        s.devices_online,
        s.uptime_hours,
        mb(s.storage_used)
    );
    println!(
        "{:<12} {:>7} {:>9} {:>7}",
        "day", "count", "completed", "failed"
    );
    for d in &s.daily_breakdown {
        println!(
            "{:<12} {:>7} {:>9} {:>7}",
            d.date, d.count, d.completed, d.failed
        );
    }
    Ok(())
}

/// `user …`.
pub fn user(cfg: &Config, args: &[String]) -> Result<(), String> {
    let db = Db::open(&cfg.db_path, cfg.synchronous).map_err(|e| e.to_string())?;
    let reader = db.reader().map_err(|e| e.to_string())?;
    let opt = |name: &str| crate::cli::option(args, name);
    let positional: Vec<&String> = {
        let mut v = Vec::new();
        let mut i = 0;
        while i < args.len() {
            if args[i] == "--admin" {
                i += 1;
            } else if args[i].starts_with("--") {
                i += 2;
            } else {
                v.push(&args[i]);
                i += 1;
            }
        }
        v
    };
    let sub = positional.first().map(|s| s.as_str()).unwrap_or("");
    let email = || {
        positional
            .get(1)
            .map(|s| s.to_string())
            .ok_or("this command needs an EMAIL")
    };
    let flag = |f: Flag, v: &str| -> Result<(), String> {
        let (email, v) = (email()?, v.to_string());
        let found = db
            .write(move |c| users::set_flag(c, &email, f, &v))
            .map_err(|e| e.message)?;
        if found {
            Ok(())
        } else {
            Err("no user with that email".into())
        }
    };
    match sub {
        "list" => {
            println!(
                "{:>5}  {:<32} {:<16} {:<11} admin active created_at",
                "id", "email", "username", "plan"
            );
            for u in users::list(&reader).map_err(|e| e.to_string())? {
                println!(
                    "{:>5}  {:<32} {:<16} {:<11} {:<5} {:<6} {}",
                    u.id,
                    u.email,
                    u.username.as_deref().unwrap_or("-"),
                    u.plan,
                    u.is_admin,
                    u.is_active,
                    u.created_at
                );
            }
            Ok(())
        }
        "create" => {
            let email = email()?;
            let (pw, generated) = password_arg(opt("--password"))?;
            let input = RegisterInput {
                email,
                password: pw.clone(),
                username: opt("--username"),
                display_name: None,
            };
            let admin = args.iter().any(|a| a == "--admin");
            let user =
                accounts::create_by_admin(&db, &input, opt("--plan"), admin, &cfg.default_plan)
                    .map_err(|e| e.message)?;
            println!(
                "created user {} <{}> on plan {}",
                user.id, user.email, user.plan
            );
            if generated {
                println!("password: {pw}");
            }
            Ok(())
        }
        "set-plan" => {
            let plan = positional.get(2).ok_or("usage: user set-plan EMAIL PLAN")?;
            flag(Flag::Plan, plan)
        }
        "set-admin" => match positional.get(2).map(|s| s.as_str()) {
            Some("true") => flag(Flag::Admin, "1"),
            Some("false") => flag(Flag::Admin, "0"),
            _ => Err("usage: user set-admin EMAIL true|false".into()),
        },
        "disable" => flag(Flag::Active, "0"),
        "enable" => flag(Flag::Active, "1"),
        "reset-password" => {
            let email = email()?;
            let (pw, generated) = password_arg(opt("--password"))?;
            let revoked =
                accounts::reset_password(&db, &reader, &email, &pw).map_err(|e| e.message)?;
            println!("password reset; {revoked} session(s) signed out");
            if generated {
                println!("password: {pw}");
            }
            Ok(())
        }
        _ => Err(
            "usage: ccjk-cloud user list|create|set-plan|set-admin|disable|enable|reset-password …"
                .into(),
        ),
    }
}

/// The `--password` value, validated, or a generated one (returned with `true`).
fn password_arg(given: Option<String>) -> Result<(String, bool), String> {
    match given {
        Some(pw) => {
            password::validate("password", &pw).map_err(|e| e.message)?;
            Ok((pw, false))
        }
        None => Ok((crypto::hex(&crypto::random_bytes::<12>()), true)),
    }
}

/// `device create --user EMAIL --name NAME`: a device with a pre-shared key for a daemon (the
/// CCJK CLI is configured with one); prints the key. The plan's device quota applies.
pub fn device(cfg: &Config, args: &[String]) -> Result<(), String> {
    let opt = |name: &str| crate::cli::option(args, name);
    if args.first().map(String::as_str) != Some("create") {
        return Err("usage: ccjk-cloud device create --user EMAIL --name NAME".into());
    }
    let email = opt("--user").ok_or("device create needs --user EMAIL")?;
    let name = opt("--name").ok_or("device create needs --name NAME")?;
    let svc = crate::services(cfg.clone())?;
    let reader = svc.db.reader().map_err(|e| e.to_string())?;
    let cx = Cx::new(&svc, &reader);
    let user = users::find_for_login(&reader, &email, &crate::domain::text::email_key(&email))
        .map_err(|e| e.to_string())?
        .map(|(u, _)| u)
        .ok_or("no user with that email")?;
    let (d, key) = devices::create(&cx, user.id, &name).map_err(|e| e.message)?;
    println!("device {} ({}) for {}", d.uuid, d.name, user.email);
    println!("device key: {key}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::option;

    #[test]
    fn an_option_takes_the_next_argument_unless_it_is_an_option() {
        let args: Vec<String> = ["app", "create", "--name", "--developer", "Me"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(option(&args, "--developer"), Some("Me".into()));
        assert_eq!(option(&args, "--name"), None);
        assert_eq!(option(&args, "--homepage"), None);
    }
}
