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
        Command::User(cfg, args) => cli::user(&cfg, &args),
        Command::Device(cfg, args) => cli::device(&cfg, &args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn serve(cfg: Config) -> ExitCode {
    ccjk_cloud::install_panic_policy();
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
                        stop.stop();
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
