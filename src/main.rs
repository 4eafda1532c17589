//! The `ccjk-cloud` binary: reads the configuration, runs a subcommand, maps the result to an
//! exit code. Everything worth testing lives in the library.

use ccjk_cloud::cli::{self, Command};
use ccjk_cloud::config::Config;
use signal_hook::consts::{SIGINT, SIGTERM};
use std::process::ExitCode;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cfg = match Config::from_env() {
        Ok(c) => c,
        Err(errs) => return fail(&errs.join("\n")),
    };
    let cmd = match cli::parse(std::env::args().skip(1).collect(), cfg) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let result = match cmd {
        Command::Help => {
            print!("{}", cli::USAGE);
            Ok(())
        }
        Command::Version => {
            println!("ccjk-cloud {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Serve(cfg) => return serve(cfg),
        Command::Migrate(cfg) => cli::migrate(&cfg),
        Command::Check(cfg) => cli::check(&cfg),
        Command::Backup(cfg, path) => cli::backup(&cfg, &path),
        Command::OpenApi => cli::openapi(),
        Command::User(cfg, args) => cli::user(&cfg, &args),
        Command::Device(cfg, args) => cli::device(&cfg, &args),
        Command::Email(cfg, args) => cli::mail::email(&cfg, &args),
        Command::Outbox(cfg, args) => cli::mail::outbox(&cfg, &args),
        Command::Stats(cfg, args) => cli::stats(&cfg, &args),
        Command::Vault(cfg, args) => cli::vault::run(&cfg, &args),
        Command::App(cfg, args) => cli::app::run(&cfg, &args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// glibc malloc settings for the server (README "Performance" has the measurements):
/// * `mmap_threshold=131072`: argon2's 19 MiB buffers are mmap'd and returned at free instead
///   of staying in glibc's arenas once its dynamic threshold has risen;
/// * `tcache_count=0`: tiny_http's thread-per-connection threads keep no per-thread caches;
/// * `arena_max`: one arena per core, at most two.
///
/// Set through the environment, since mallopt needs unsafe code: the binary re-executes itself
/// once with the tunables added (an admin's own `GLIBC_TUNABLES` setting of the threshold wins
/// and skips the re-execution).
fn malloc_tunables() -> String {
    let arenas = ccjk_cloud::config::cores_up_to_two();
    format!(
        "glibc.malloc.mmap_threshold=131072:glibc.malloc.tcache_count=0:glibc.malloc.arena_max={arenas}"
    )
}

/// Re-executes the binary with `malloc_tunables()` unless it is already in effect. Returns only if
/// that is not needed or not possible.
fn reexec_with_malloc_tunable() {
    use std::os::unix::process::CommandExt;
    let current = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    if current.contains("glibc.malloc.mmap_threshold") {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let ours = malloc_tunables();
    let tunables = if current.is_empty() {
        ours.clone()
    } else {
        format!("{current}:{ours}")
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("GLIBC_TUNABLES", tunables)
        .exec();
    log::warn!("could not re-execute with {ours} ({err}); memory use after logins will be higher");
}

fn serve(cfg: Config) -> ExitCode {
    reexec_with_malloc_tunable();
    ccjk_cloud::install_panic_policy();
    // Before any thread is spawned, so all of them inherit it (the hashing threads then switch
    // to SCHED_IDLE); see `sched`.
    ccjk_cloud::sched::batch_current_thread();
    let running = match ccjk_cloud::start(cfg) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let stop = running.stop_handle();
    match signal_hook::iterator::Signals::new([SIGTERM, SIGINT]) {
        Ok(mut signals) => {
            let spawned = std::thread::Builder::new()
                .name("ccjk-signals".into())
                .spawn(move || {
                    if let Some(sig) = signals.forever().next() {
                        log::info!("received signal {sig}; shutting down");
                        stop.request();
                    }
                });
            if let Err(e) = spawned {
                return fail(&format!("cannot start the signal thread: {e}"));
            }
        }
        Err(e) => return fail(&format!("cannot install signal handlers: {e}")),
    }
    match running.wait() {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("ccjk-cloud: {msg}");
    ExitCode::FAILURE
}
