//! Every setting of the server, its default and its `CCJK_*` variable (SPEC §3).
//!
//! `Config::default()` is the one place defaults live; `Config::from_env()` reads the
//! environment once at start-up and `validate()` reports every problem together. Nothing else in
//! the crate reads the environment, so tests build a `Config` by hand and run several servers
//! with different settings in one process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the server listens: a TCP address or a Unix socket path (`unix:/path`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Listen {
    /// Parses `host:port` or `unix:/path/to/socket`.
    pub fn parse(s: &str) -> Result<Listen, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("CCJK_LISTEN: unix: needs a socket path".into());
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        s.parse::<SocketAddr>()
            .map(Listen::Tcp)
            .map_err(|_| format!("CCJK_LISTEN: {s:?} is neither host:port nor unix:/path"))
    }
}

/// `PRAGMA synchronous` for the writer: `Full` survives power loss, `Normal` only crashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synchronous {
    Full,
    Normal,
}

/// The whole configuration. Durations are `std::time::Duration`; sizes are bytes.
#[derive(Clone, Debug)]
pub struct Config {
    /// `CCJK_LISTEN`, default `127.0.0.1:3000`.
    pub listen: Listen,
    /// `CCJK_PUBLIC=1` allows a non-loopback TCP address (tiny_http has no header or timeout
    /// limits of its own; see the README's nginx and Caddy configurations).
    pub public: bool,
    /// `CCJK_DB`, default `./ccjk.db`.
    pub db_path: PathBuf,
    /// `CCJK_SECRET_KEY_FILE`, default `<dir of CCJK_DB>/ccjk.key`.
    pub secret_key_file: Option<PathBuf>,
    /// `CCJK_WORKERS`, default 4: threads taking requests from tiny_http.
    pub workers: usize,
    /// `CCJK_PUBLIC_URL`, default `http://<listen>`.
    pub public_url: Option<String>,
    /// `CCJK_SYNCHRONOUS`, default `full`.
    pub synchronous: Synchronous,
    /// `CCJK_TRUSTED_PROXY=1`: the client IP is the last hop of `X-Forwarded-For`.
    pub trusted_proxy: bool,
    /// `CCJK_DEFAULT_PLAN`, default `free`.
    pub default_plan: String,
    /// `CCJK_SIGNUPS`: `open` (default) or `closed`.
    pub signups_open: bool,
    /// `CCJK_ACCESS_TOKEN_TTL`, e.g. `15m`; `None` = session tokens live until revoked.
    pub access_token_ttl: Option<Duration>,
    /// Lifetime of a refresh token when `access_token_ttl` is set (Full: 30 days).
    pub refresh_token_ttl: Duration,
    /// `CCJK_SESSION_IDLE_TTL`, e.g. `90d`: sessions unused that long are revoked.
    pub session_idle_ttl: Option<Duration>,
    /// `CCJK_MAX_BODY`, default 1 MiB: the cap on JSON request bodies.
    pub max_body: usize,
    /// `CCJK_MAX_OUTPUT`, default 1 MiB: the cap on a task's stdout and on its stderr.
    pub max_output: usize,
    /// `CCJK_MAX_LOG_UPLOAD`, default 10 MiB.
    pub max_log_upload: usize,
    /// `CCJK_MAX_KV_VALUE`, default 1 MiB.
    pub max_kv_value: usize,
    /// `CCJK_KV_MAX_KEYS`, default 10,000: keys one device's KV store may hold.
    pub kv_max_keys: usize,
    /// `CCJK_KV_MAX_BYTES`, default 64 MiB: bytes (keys + values) one device's KV store may
    /// hold; the plan's storage quota counts them too.
    pub kv_max_bytes: usize,
    /// `CCJK_HASH_THREADS`: password hashes computed at once, 1 or 2 (SPEC §8.1: at most two).
    /// Default: two, or one when the process may run on a single core (`taskset`, cgroup
    /// cpusets, a 1-vCPU VPS), where a second hash only doubles the memory (19 MiB each) and
    /// each login's latency without adding throughput, and where two idle-policy hashing
    /// threads held polls back by a 4 ms scheduler tick (fleet benchmark, `login` phase).
    pub hash_threads: usize,
    /// How long a login may wait for a hashing thread before it gets 503.
    pub hash_queue_wait: Duration,
    /// Added to a task's timeout to form its lease (SPEC §7.1: 30 s).
    pub lease_grace: Duration,
    /// How often the janitor runs (offline detection, lease expiry, idle sessions).
    pub janitor_interval: Duration,
}

/// 1 MiB.
const MIB: usize = 1024 * 1024;

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: Listen::Tcp(SocketAddr::from(([127, 0, 0, 1], 3000))),
            public: false,
            db_path: PathBuf::from("./ccjk.db"),
            secret_key_file: None,
            workers: 4,
            public_url: None,
            synchronous: Synchronous::Full,
            trusted_proxy: false,
            default_plan: "free".into(),
            signups_open: true,
            access_token_ttl: None,
            refresh_token_ttl: Duration::from_secs(30 * 86_400),
            session_idle_ttl: None,
            max_body: MIB,
            max_output: MIB,
            max_log_upload: 10 * MIB,
            max_kv_value: MIB,
            kv_max_keys: 10_000,
            kv_max_bytes: 64 * MIB,
            hash_threads: cores_up_to_two(),
            hash_queue_wait: Duration::from_secs(2),
            lease_grace: Duration::from_secs(30),
            janitor_interval: Duration::from_secs(5),
        }
    }
}

/// The cores this process may run on (its CPU affinity: `taskset`, a cpuset, the VPS size),
/// capped at two: the sizing rule of the hashing pool and of glibc's malloc arenas.
pub fn cores_up_to_two() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

impl Config {
    /// Reads every `CCJK_*` variable over the defaults. Returns all problems at once.
    pub fn from_env() -> Result<Config, Vec<String>> {
        Config::from_vars(|k| std::env::var(k).ok())
    }

    /// Like `from_env`, with a lookup function (tests pass a map).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Config, Vec<String>> {
        let mut c = Config::default();
        let mut errs = Vec::new();
        let mut note = |r: Result<(), String>| {
            if let Err(e) = r {
                errs.push(e)
            }
        };
        if let Some(v) = get("CCJK_LISTEN") {
            note(Listen::parse(&v).map(|l| c.listen = l));
        }
        if let Some(v) = get("CCJK_PUBLIC") {
            note(parse_bool("CCJK_PUBLIC", &v).map(|b| c.public = b));
        }
        if let Some(v) = get("CCJK_DB") {
            c.db_path = PathBuf::from(v);
        }
        if let Some(v) = get("CCJK_SECRET_KEY_FILE") {
            c.secret_key_file = Some(PathBuf::from(v));
        }
        if let Some(v) = get("CCJK_WORKERS") {
            note(match v.parse::<usize>() {
                Ok(n) if (1..=256).contains(&n) => {
                    c.workers = n;
                    Ok(())
                }
                _ => Err(format!("CCJK_WORKERS: {v:?} is not a number from 1 to 256")),
            });
        }
        if let Some(v) = get("CCJK_HASH_THREADS") {
            note(match v.as_str() {
                "1" | "2" => {
                    c.hash_threads = usize::from(v == "2") + 1;
                    Ok(())
                }
                _ => Err(format!("CCJK_HASH_THREADS: {v:?} is not 1 or 2")),
            });
        }
        if let Some(v) = get("CCJK_PUBLIC_URL") {
            c.public_url = Some(v.trim_end_matches('/').to_string());
        }
        if let Some(v) = get("CCJK_SYNCHRONOUS") {
            let sync = match v.to_ascii_lowercase().as_str() {
                "full" => Ok(Synchronous::Full),
                "normal" => Ok(Synchronous::Normal),
                _ => Err(format!("CCJK_SYNCHRONOUS: {v:?} is not full or normal")),
            };
            note(sync.map(|s| c.synchronous = s));
        }
        if let Some(v) = get("CCJK_TRUSTED_PROXY") {
            note(parse_bool("CCJK_TRUSTED_PROXY", &v).map(|b| c.trusted_proxy = b));
        }
        if let Some(v) = get("CCJK_DEFAULT_PLAN") {
            c.default_plan = v;
        }
        if let Some(v) = get("CCJK_SIGNUPS") {
            let open = match v.as_str() {
                "open" => Ok(true),
                "closed" => Ok(false),
                _ => Err(format!("CCJK_SIGNUPS: {v:?} is not open or closed")),
            };
            note(open.map(|o| c.signups_open = o));
        }
        for (name, slot) in [
            ("CCJK_ACCESS_TOKEN_TTL", &mut c.access_token_ttl),
            ("CCJK_SESSION_IDLE_TTL", &mut c.session_idle_ttl),
        ] {
            if let Some(v) = get(name) {
                note(parse_ttl(name, &v).map(|d| *slot = d));
            }
        }
        for (name, slot) in [
            ("CCJK_MAX_BODY", &mut c.max_body),
            ("CCJK_MAX_OUTPUT", &mut c.max_output),
            ("CCJK_MAX_LOG_UPLOAD", &mut c.max_log_upload),
            ("CCJK_MAX_KV_VALUE", &mut c.max_kv_value),
            ("CCJK_KV_MAX_BYTES", &mut c.kv_max_bytes),
        ] {
            if let Some(v) = get(name) {
                note(parse_size(name, &v).map(|n| *slot = n));
            }
        }
        if let Some(v) = get("CCJK_KV_MAX_KEYS") {
            note(match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => {
                    c.kv_max_keys = n;
                    Ok(())
                }
                _ => Err(format!("CCJK_KV_MAX_KEYS: {v:?} is not a positive number")),
            });
        }
        errs.extend(c.validate());
        if errs.is_empty() { Ok(c) } else { Err(errs) }
    }

    /// Checks the combination of settings; returns every problem found.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if let Listen::Tcp(addr) = &self.listen
            && !addr.ip().is_loopback()
            && !self.public
        {
            errs.push(format!(
                "CCJK_LISTEN={addr} is not a loopback address. tiny_http has no header, timeout \
                 or connection limits: put nginx or Caddy in front (see README) and listen on \
                 127.0.0.1 or a unix: socket, or set CCJK_PUBLIC=1 to accept the risk"
            ));
        }
        if self.max_body < 1024 {
            errs.push("CCJK_MAX_BODY must be at least 1 KiB".into());
        }
        if self.max_output < 128 * 1024 {
            errs.push("CCJK_MAX_OUTPUT must be at least 128 KiB".into());
        }
        errs
    }

    /// The secret key file: `CCJK_SECRET_KEY_FILE`, else `ccjk.key` beside the database.
    pub fn secret_key_path(&self) -> PathBuf {
        match &self.secret_key_file {
            Some(p) => p.clone(),
            None => {
                let dir = self.db_path.parent().filter(|p| !p.as_os_str().is_empty());
                dir.unwrap_or(Path::new(".")).join("ccjk.key")
            }
        }
    }
}

fn parse_bool(name: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("{name}: {v:?} is not 1 or 0")),
    }
}

/// `none`/empty = no TTL; otherwise a humantime duration such as `15m` or `90d`.
fn parse_ttl(name: &str, v: &str) -> Result<Option<Duration>, String> {
    if v.is_empty() || v.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    match humantime::parse_duration(v) {
        Ok(d) if d >= Duration::from_secs(60) => Ok(Some(d)),
        Ok(_) => Err(format!("{name}: {v:?} is shorter than one minute")),
        Err(_) => Err(format!(
            "{name}: {v:?} is not a duration such as 15m or 90d"
        )),
    }
}

/// A byte count: plain digits, or with a `K`, `M` or `G` suffix (binary units; `KiB` also read).
fn parse_size(name: &str, v: &str) -> Result<usize, String> {
    let t = v.trim().to_ascii_uppercase();
    let t = t.trim_end_matches("IB").trim_end_matches('B');
    let (digits, mul) = match t.chars().last() {
        Some('K') => (&t[..t.len() - 1], 1024),
        Some('M') => (&t[..t.len() - 1], MIB),
        Some('G') => (&t[..t.len() - 1], 1024 * MIB),
        _ => (t, 1),
    };
    digits
        .trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{name}: {v:?} is not a size such as 1048576 or 1M"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_are_loopback_and_full_sync() {
        let c = cfg(&[]).expect("defaults are valid");
        assert_eq!(
            c.listen,
            Listen::Tcp("127.0.0.1:3000".parse().expect("addr"))
        );
        assert_eq!(c.synchronous, Synchronous::Full);
        assert_eq!(c.secret_key_path(), PathBuf::from("./ccjk.key"));
    }

    #[test]
    fn public_address_needs_ccjk_public() {
        let errs = cfg(&[("CCJK_LISTEN", "0.0.0.0:3000")]).expect_err("refused");
        assert!(errs[0].contains("CCJK_PUBLIC=1"), "{errs:?}");
        assert!(cfg(&[("CCJK_LISTEN", "0.0.0.0:3000"), ("CCJK_PUBLIC", "1")]).is_ok());
    }

    #[test]
    fn every_bad_value_is_reported() {
        let errs = cfg(&[
            ("CCJK_WORKERS", "zero"),
            ("CCJK_SYNCHRONOUS", "off"),
            ("CCJK_MAX_BODY", "lots"),
            ("CCJK_ACCESS_TOKEN_TTL", "soon"),
            ("CCJK_HASH_THREADS", "3"),
        ])
        .expect_err("five errors");
        assert_eq!(errs.len(), 5, "{errs:?}");
    }

    #[test]
    fn hashing_threads_default_to_the_cores_and_at_most_two() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let c = cfg(&[]).expect("defaults are valid");
        assert_eq!(c.hash_threads, cores.min(2));
        assert_eq!(cores_up_to_two(), cores.min(2));
        assert_eq!(
            cfg(&[("CCJK_HASH_THREADS", "1")]).map(|c| c.hash_threads),
            Ok(1)
        );
        assert_eq!(
            cfg(&[("CCJK_HASH_THREADS", "2")]).map(|c| c.hash_threads),
            Ok(2)
        );
        assert!(cfg(&[("CCJK_HASH_THREADS", "0")]).is_err());
    }

    #[test]
    fn sizes_ttls_and_sockets_parse() {
        let c = cfg(&[
            ("CCJK_MAX_BODY", "2M"),
            ("CCJK_KV_MAX_KEYS", "50"),
            ("CCJK_KV_MAX_BYTES", "1K"),
            ("CCJK_ACCESS_TOKEN_TTL", "15m"),
            ("CCJK_LISTEN", "unix:/run/ccjk/sock"),
            ("CCJK_DB", "/var/lib/ccjk/ccjk.db"),
        ])
        .expect("valid");
        assert_eq!(c.max_body, 2 * MIB);
        assert_eq!((c.kv_max_keys, c.kv_max_bytes), (50, 1024));
        assert_eq!(c.access_token_ttl, Some(Duration::from_secs(900)));
        assert_eq!(c.listen, Listen::Unix("/run/ccjk/sock".into()));
        assert_eq!(c.secret_key_path(), PathBuf::from("/var/lib/ccjk/ccjk.key"));
    }
}
