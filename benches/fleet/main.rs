//! `cargo bench --bench fleet [-- PHASE ...] [--quick]`: ccjk-cloud's end-to-end benchmark
//! (README "Performance"). It starts the release server on a temporary database pinned to core 0, re-runs
//! itself pinned to core 1 as the load generator (and, for the ceiling, pinned to core 0 as a
//! constant-answer tiny_http server), drives loopback keep-alive connections through the phases
//! `hot`, `ceiling`, `login`, `closed`, `vault`, `fleet`, `idle`, `events`, `stats` and `kv` (`hot` and `ceiling` in alternating rounds,
//! so that a slow spell of the shared machine weighs on both sides of their ratio), and prints
//! one table and one `BENCH_JSON {…}` line. A phase in which the generator used more than 90 % of its core, found its core
//! saturated, or shared the server's core with other processes is run again (up to 3 times) once
//! the cores are quiet; if it stays so, the table is printed but marked `INVALID: client-bound`
//! (or `INVALID: noisy`) and the bench exits non-zero, as it does when a task is handed out twice
//! or the server fails. The run first waits for quiet cores (`--no-wait` skips that). `--quick`
//! runs a few seconds per phase (about 45 s in all; a full run takes about 75 s plus the build).
//! Without `--bench` in its arguments (which `cargo bench` passes), as under
//! `cargo test --benches`, it does nothing.
//!
//! The server inherits the bench's environment (except the four variables it sets, below), so
//! `CCJK_WORKERS=8 cargo bench --bench fleet` measures another setting; the
//! `CCJK_*`/`GLIBC_*` variables passed on are listed in the JSON. `CCJK_BENCH_SERVER_BIN=PATH`
//! runs another server binary (a build with symbols for `perf`, an older commit for A/B).
//!
//! Process layout, each started through `sh -c 'ulimit -n 65536 …; exec taskset -c N …'` so it
//! has file descriptors for thousands of connections without any `unsafe`:
//! * this process: orchestration only (spawn, wait, stop, render);
//! * `ccjk-cloud serve` on core 0 with `CCJK_DB=<tempdir>/bench.db`, `CCJK_LISTEN=127.0.0.1:<free
//!   port>`, `CCJK_DEFAULT_PLAN=enterprise` (no device quota), `CCJK_EVENT_STREAMS_PER_USER=1000`
//!   (the events phase's streams are one user's), `RUST_LOG=warn` (no access log; the
//!   log goes to a file, summarised at the end), and `CCJK_RATE_LIMIT_USER` and
//!   `CCJK_RATE_LIMIT_DAEMON` at a million a minute: a closed loop asks each device for far more
//!   than a daemon ever would, and the limits must not refuse it, while the limiter still counts
//!   every request (its cost is part of what `hot` measures);
//! * `<this> --ceiling-server PORT` on core 0 (`ceiling.rs`);
//! * `<this> --generator …` on core 1 (`generator.rs`), which prints its figures as JSON.

mod ceiling;
mod client;
mod closed;
mod events;
mod fleet;
mod generator;
mod kv;
mod phases;
mod procfs;
mod report;
mod setup;
mod stats;
mod summary;
mod vault;

use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const PHASES: [&str; 10] = [
    "hot", "ceiling", "login", "closed", "vault", "fleet", "idle", "events", "stats", "kv",
];
const FLAGS: [&str; 3] = ["--bench", "--quick", "--no-wait"];
/// Raise the soft fd limit (to the hard limit when 65536 is not allowed, as in containers).
const ULIMIT: &str = r#"ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -H -n)""#;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("--ceiling-server") => match args.get(1).and_then(|p| p.parse().ok()) {
            Some(port) => ceiling::serve(port).map(|()| 0),
            None => Err("--ceiling-server PORT".into()),
        },
        Some("--generator") => run_generator(&args[1..]),
        _ => orchestrate(&args),
    };
    match r {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("fleet bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--generator SERVER PID CEILING|- CEILING_PID|- PHASES quick|full DB`
fn run_generator(a: &[String]) -> Result<u8, String> {
    let [server, pid, ceiling, cpid, phases, mode, db] = a else {
        return Err(format!("bad generator arguments {a:?}"));
    };
    let addr = |s: &str| s.parse::<SocketAddr>().map_err(|e| format!("{s}: {e}"));
    let args = generator::Args {
        server: addr(server)?,
        server_pid: pid.clone(),
        ceiling: if ceiling == "-" {
            None
        } else {
            Some((addr(ceiling)?, cpid.clone()))
        },
        phases: phases.split(',').map(str::to_owned).collect(),
        quick: mode == "quick",
        db: db.into(),
    };
    let v = generator::run(&args)?;
    println!("{v}");
    Ok(0)
}

/// Children killed when the bench ends early.
struct Kids(Vec<Child>);

impl Drop for Kids {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The commit being measured and whether the working tree differs from it (read-only git:
/// `--no-optional-locks`, so it never takes the index lock from someone committing).
fn git_state() -> Value {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("--no-optional-locks")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let dirty = git(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        "src",
        "schema.sql",
        "Cargo.lock",
    ]);
    json!({"commit": git(&["rev-parse", "--short", "HEAD"]), "src_modified": dirty.map(|d| !d.is_empty())})
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// `sh -c 'ULIMIT; exec taskset -c CORE "$0" "$@"' program args…`
fn pinned(core: u8, program: &str, args: &[&str]) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("{ULIMIT}; exec taskset -c {core} \"$0\" \"$@\""))
        .arg(program)
        .args(args);
    c
}

/// The soft "Max open files" of a process.
fn nofile(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn orchestrate(args: &[String]) -> Result<u8, String> {
    if !args.iter().any(|a| a == "--bench") {
        eprintln!("fleet bench: not run (use `cargo bench --bench fleet`)");
        return Ok(0);
    }
    let quick = args.iter().any(|a| a == "--quick");
    let mut phases: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    if let Some(bad) = phases.iter().find(|p| !PHASES.contains(p)) {
        return Err(format!(
            "unknown phase {bad:?}; phases are {}",
            PHASES.join(" ")
        ));
    }
    if phases.is_empty() {
        phases = PHASES.to_vec();
    }
    phases.sort_by_key(|p| PHASES.iter().position(|x| x == p));
    phases.dedup();
    if let Some(bad) = args
        .iter()
        .find(|a| a.starts_with("--") && !FLAGS.contains(&a.as_str()))
    {
        return Err(format!(
            "unknown flag {bad:?}; flags are {}",
            FLAGS.join(" ")
        ));
    }
    let started = Instant::now();
    let quiet = if args.iter().any(|a| a == "--no-wait") {
        None
    } else {
        Some(procfs::wait_quiet(Duration::from_secs(if quick {
            30
        } else {
            180
        })))
    };
    let built = env!("CARGO_BIN_EXE_ccjk-cloud");
    let over = std::env::var("CCJK_BENCH_SERVER_BIN")
        .ok()
        .filter(|s| !s.is_empty());
    let bin = over.as_deref().unwrap_or(built);
    let bin_bytes = std::fs::metadata(bin)
        .map_err(|e| format!("{bin}: {e}"))?
        .len();
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let me = me.to_str().ok_or("non-UTF-8 executable path")?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let log_path = tmp.path().join("server.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let port = free_port()?;
    let server_addr = format!("127.0.0.1:{port}");
    let mut kids = Kids(Vec::new());
    let db_path = tmp.path().join("bench.db");
    let server = pinned(0, bin, &["serve"])
        .env("CCJK_DB", &db_path)
        .env("CCJK_LISTEN", &server_addr)
        .env("CCJK_DEFAULT_PLAN", "enterprise")
        .env("CCJK_RATE_LIMIT_USER", "1000000")
        .env("CCJK_RATE_LIMIT_DAEMON", "1000000")
        // The events phase opens 1,000 streams of one user (its fan-out worst case).
        .env(
            "CCJK_EVENT_STREAMS_PER_USER",
            std::env::var("CCJK_EVENT_STREAMS_PER_USER").unwrap_or_else(|_| "1000".into()),
        )
        .env("RUST_LOG", "warn")
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| format!("cannot start {bin}: {e}"))?;
    let server_pid = server.id();
    kids.0.push(server);
    let ceiling = if phases.contains(&"ceiling") {
        let cport = free_port()?.to_string();
        let c = pinned(0, me, &["--ceiling-server", &cport])
            .spawn()
            .map_err(|e| e.to_string())?;
        let r = (format!("127.0.0.1:{cport}"), c.id().to_string());
        kids.0.push(c);
        r
    } else {
        ("-".into(), "-".into())
    };
    if phases.contains(&"kv") {
        // The apps an admin would register with `ccjk-cloud app create`, once the server has
        // created its database (kv.rs).
        let addr: SocketAddr = server_addr.parse().map_err(|e| format!("{e}"))?;
        setup::wait_healthy(addr, Duration::from_secs(30))?;
        if let Err(e) = kv::create_apps(&tmp.path().join("bench.db")) {
            eprintln!("fleet bench: kv: {e}");
        }
    }
    eprintln!(
        "fleet bench: {} run, phases {}; server pid {server_pid} on core 0, generator on core 1",
        if quick { "quick" } else { "full" },
        phases.join(" ")
    );
    let pid_s = server_pid.to_string();
    let phase_list = phases.join(",");
    let mode = if quick { "quick" } else { "full" };
    let db_arg = db_path.to_str().ok_or("non-UTF-8 temporary path")?;
    let gen_args = [
        "--generator",
        &server_addr,
        &pid_s,
        &ceiling.0,
        &ceiling.1,
        &phase_list,
        mode,
        db_arg,
    ];
    let out = pinned(1, me, &gen_args)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start the generator: {e}"))?;
    let server_nofile = nofile(server_pid);
    // Stop the server gracefully and time it.
    let mut server = kids.0.remove(0);
    let crashed = server.try_wait().ok().flatten();
    let stop = Instant::now();
    let _ = Command::new("kill").args(["-TERM", &pid_s]).status();
    let mut exit = None;
    while stop.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(st)) = server.try_wait() {
            exit = Some(st);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let shutdown_ms = stop.elapsed().as_millis();
    if exit.is_none() {
        let _ = server.kill();
        let _ = server.wait();
    }
    drop(kids);
    let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let log_lines: Vec<&str> = log_text.lines().collect();
    let mut v: Value = if out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim())
            .map_err(|e| format!("generator output is not JSON ({e}): {text}"))?
    } else {
        json!({"valid": false, "generator_failed": out.status.to_string(), "failures": ["the load generator failed"]})
    };
    v["mode"] = json!(mode);
    v["phases"] = json!(phases);
    v["binary"] = json!({"path": bin, "bytes": bin_bytes, "overridden": over.is_some()});
    let passed: Vec<String> = std::env::vars()
        .filter(|(k, _)| {
            (k.starts_with("CCJK_") && !k.starts_with("CCJK_BENCH"))
                || k.starts_with("GLIBC_")
                || k.starts_with("MALLOC_")
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    v["server_env"] = json!(passed);
    v["server"]["nofile"] = json!(server_nofile);
    v["server"]["exited_during_run"] = json!(crashed.map(|s| s.to_string()));
    v["server"]["exit_after_sigterm"] = json!(exit.map(|s| s.to_string()));
    v["server"]["shutdown_ms"] = json!(shutdown_ms);
    v["server"]["log_lines"] = json!(log_lines.len());
    v["server"]["log_head"] = json!(log_lines.iter().take(10).collect::<Vec<_>>());
    v["quiet_wait"] = quiet.unwrap_or(Value::Null);
    v["git"] = git_state();
    v["total_seconds"] = json!(stats::r1(started.elapsed().as_secs_f64()));
    if crashed.is_some() || !exit.is_some_and(|s| s.success()) {
        if let Some(f) = v["failures"].as_array_mut() {
            f.push(json!(
                "the server did not run to the end and stop cleanly on SIGTERM"
            ));
        }
    }
    report::print(&v);
    let valid = v["valid"].as_bool() == Some(true);
    let failed = v["failures"].as_array().is_some_and(|f| !f.is_empty());
    Ok(if valid && !failed { 0 } else { 1 })
}
