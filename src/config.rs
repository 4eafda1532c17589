//! Every setting of the server, its default and its `CCJK_*` variable (README "Configuration").
//!
//! `Config::default()` is the one place defaults live; `Config::from_env()` reads the
//! environment once at start-up and `validate()` reports every problem together. Nothing else in
//! the crate reads the environment, so tests build a `Config` by hand and run several servers
//! with different settings in one process.

mod mail;

pub use mail::{MailConfig, Provider};
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
    /// `CCJK_HASH_THREADS`: password hashes computed at once, 1 or 2 (docs/security.md: at most two).
    /// Default: two, or one when the process may run on a single core (`taskset`, cgroup
    /// cpusets, a 1-vCPU VPS), where a second hash only doubles the memory (19 MiB each) and
    /// each login's latency without adding throughput, and where two idle-policy hashing
    /// threads held polls back by a 4 ms scheduler tick (fleet benchmark, `login` phase).
    pub hash_threads: usize,
    /// How long a login may wait for a hashing thread before it gets 503.
    pub hash_queue_wait: Duration,
    /// Added to a task's timeout to form its lease (docs/tasks.md: 30 s).
    pub lease_grace: Duration,
    /// How often the janitor runs (offline detection, lease expiry, idle sessions, retention).
    pub janitor_interval: Duration,
    /// `CCJK_EVENT_STREAMS_PER_USER`, default 16: open `GET /v1/events` streams per user (a
    /// few browser tabs, a phone and some scripts; each open stream holds a connection and
    /// tiny_http's thread for it, so the cap bounds what one account can hold open).
    pub event_streams_per_user: usize,
    /// How often event streams get a comment ping (keeps proxies from closing a quiet stream)
    /// and a credential check: 15 s.
    pub event_ping: Duration,
    /// Recent events kept for `Last-Event-ID` resumes, over all users: 4096 (and at most
    /// `policy::EVENT_BUFFER_BYTES` of them).
    pub event_buffer_frames: usize,
    /// How often heartbeats coalesced in memory are written, default 5 s: a crash loses at
    /// most this much of heartbeat times (never a status change, a task or a result). Not an
    /// environment setting; tests lengthen it to see the write at shutdown.
    pub heartbeat_flush_every: Duration,
    /// Outbound mail: the relay and the mailer's timing.
    pub mail: MailConfig,
    /// `CCJK_INBOUND_SECRET`: HMAC secrets of the inbound-mail webhook (comma-separated in
    /// the variable, for rotation); empty = the webhook answers 404.
    pub inbound_secrets: Vec<String>,
    /// Deadlines and bounds that keep slow or hostile clients from holding threads (`net`).
    pub net: NetLimits,
    /// `CCJK_RATE_LIMIT_USER`, default 100: requests per minute of a person using session
    /// tokens, per user; 0 = unlimited (README "Rate limits").
    pub rate_limit_user: u32,
    /// `CCJK_RATE_LIMIT_DAEMON`, default 1000: requests per minute of a daemon, per device;
    /// 0 = unlimited. (API keys follow their plan's `api_calls_per_minute`.)
    pub rate_limit_daemon: u32,
}

/// The server's own defences against clients that stall, strand or exhaust it (`src/net/`, the
/// README's "Behind nginx or Caddy"). Only `body_timeout` is read from the environment.
#[derive(Clone, Debug)]
pub struct NetLimits {
    /// `CCJK_BODY_TIMEOUT`, default 30 s: a request body that tiny_http has not already read
    /// (over 1 KiB, chunked, or `Expect: 100-continue`) must arrive within this plus
    /// `body_per_100k` for every 100 KiB declared (or allowed by the route, for chunked bodies),
    /// and may pause for at most half of it; a body that does not is cut off with 408 and its
    /// connection closed.
    pub body_timeout: Duration,
    /// Added to a body's deadline per 100 KiB, default 1 s (about 100 KiB/s at the least).
    pub body_per_100k: Duration,
    /// Threads reading such bodies at once, default 32; later ones wait for a free thread.
    pub body_threads: usize,
    /// Bodies waiting for a thread, default 1,024; past that a request gets 503 at once.
    pub body_queue: usize,
    /// How often the watchdog opens a sentinel connection to our own listener to detect
    /// connections that tiny_http's pool left without a thread; zero turns it off.
    pub watchdog_interval: Duration,
    /// How long the watchdog waits for a sentinel's answer before it calls the pool stuck.
    pub watchdog_deadline: Duration,
}

impl Default for NetLimits {
    fn default() -> Self {
        NetLimits {
            body_timeout: Duration::from_secs(30),
            body_per_100k: Duration::from_secs(1),
            body_threads: 32,
            body_queue: 1024,
            watchdog_interval: Duration::from_millis(250),
            watchdog_deadline: Duration::from_millis(100),
        }
    }
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
            event_streams_per_user: 16,
            event_ping: Duration::from_secs(15),
            event_buffer_frames: 4096,
            heartbeat_flush_every: Duration::from_secs(5),
            net: NetLimits::default(),
            mail: MailConfig {
                connect_timeout: Duration::from_secs(5),
                timeout: Duration::from_secs(20),
                backoff_base: Duration::from_secs(180),
                ..MailConfig::default()
            },
            inbound_secrets: Vec::new(),
            // README "Rate limits": a person 100 requests a minute, a daemon 1000.
            rate_limit_user: 100,
            rate_limit_daemon: 1000,
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
        if let Some(v) = get("CCJK_EVENT_STREAMS_PER_USER") {
            note(match v.parse::<usize>() {
                Ok(n) if (1..=100_000).contains(&n) => {
                    c.event_streams_per_user = n;
                    Ok(())
                }
                _ => Err(format!(
                    "CCJK_EVENT_STREAMS_PER_USER: {v:?} is not a number from 1 to 100000"
                )),
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
        if let Some(v) = get("CCJK_BODY_TIMEOUT") {
            note(match humantime::parse_duration(&v) {
                Ok(d) if d >= Duration::from_secs(1) => {
                    c.net.body_timeout = d;
                    Ok(())
                }
                _ => Err(format!(
                    "CCJK_BODY_TIMEOUT: {v:?} is not a duration of at least 1s such as 30s"
                )),
            });
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
        if let Some(v) = get("CCJK_EMAIL_PROVIDER") {
            note(Provider::parse(&v).map(|p| c.mail.provider = p));
        }
        let text = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        c.mail.api_key = text("CCJK_EMAIL_API_KEY");
        c.mail.from = text("CCJK_EMAIL_FROM");
        c.mail.api_url = text("CCJK_EMAIL_API_URL").map(|u| u.trim_end_matches('/').to_string());
        c.mail.domain = text("CCJK_EMAIL_DOMAIN");
        if let Some(v) = get("CCJK_EMAIL_RETRY_BASE") {
            note(match humantime::parse_duration(&v) {
                Ok(d) if d >= Duration::from_millis(10) => {
                    c.mail.backoff_base = d;
                    Ok(())
                }
                _ => Err(format!(
                    "CCJK_EMAIL_RETRY_BASE: {v:?} is not a duration of at least 10ms such as 3m"
                )),
            });
        }
        if let Some(v) = get("CCJK_INBOUND_SECRET") {
            c.inbound_secrets = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
        }
        for (name, slot) in [
            ("CCJK_RATE_LIMIT_USER", &mut c.rate_limit_user),
            ("CCJK_RATE_LIMIT_DAEMON", &mut c.rate_limit_daemon),
        ] {
            if let Some(v) = get(name) {
                note(match v.trim().parse::<u32>() {
                    Ok(n) => {
                        *slot = n;
                        Ok(())
                    }
                    Err(_) => Err(format!(
                        "{name}: {v:?} is not a number of requests per minute (0 = unlimited)"
                    )),
                });
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
        errs.extend(self.mail.validate());
        if self.inbound_secrets.iter().any(|s| s.len() < 16) {
            errs.push(
                "CCJK_INBOUND_SECRET: every secret must be at least 16 characters (use 32 random \
                 bytes, hex-encoded)"
                    .into(),
            );
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
            ("CCJK_RATE_LIMIT_USER", "lots"),
        ])
        .expect_err("six errors");
        assert_eq!(errs.len(), 6, "{errs:?}");
        let c = cfg(&[("CCJK_RATE_LIMIT_DAEMON", "0")]).expect("valid");
        assert_eq!((c.rate_limit_user, c.rate_limit_daemon), (100, 0));
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
    fn mail_settings_name_the_variable_at_fault() {
        let errs = cfg(&[("CCJK_EMAIL_PROVIDER", "pigeon")]).expect_err("unknown");
        assert!(errs[0].contains("CCJK_EMAIL_PROVIDER"), "{errs:?}");
        let errs = cfg(&[("CCJK_EMAIL_PROVIDER", "resend")]).expect_err("no key");
        assert!(
            errs.iter().any(|e| e.starts_with("CCJK_EMAIL_API_KEY")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.starts_with("CCJK_EMAIL_FROM")),
            "{errs:?}"
        );
        let errs = cfg(&[
            ("CCJK_EMAIL_PROVIDER", "webhook"),
            ("CCJK_EMAIL_API_KEY", "k"),
            ("CCJK_EMAIL_FROM", "ccjk@example.com"),
        ])
        .expect_err("no url");
        assert!(errs[0].starts_with("CCJK_EMAIL_API_URL"), "{errs:?}");
        let c = cfg(&[
            ("CCJK_EMAIL_PROVIDER", "Mailgun"),
            ("CCJK_EMAIL_API_KEY", "key-1"),
            ("CCJK_EMAIL_FROM", "CCJK <ccjk@mg.example.com>"),
            (
                "CCJK_INBOUND_SECRET",
                "0123456789abcdef, fedcba9876543210fedcba",
            ),
        ])
        .expect("valid");
        assert_eq!(c.mail.provider, Some(Provider::Mailgun));
        assert_eq!(c.mail.mailgun_domain().as_deref(), Some("mg.example.com"));
        assert_eq!(
            c.mail.base_url().as_deref(),
            Some("https://api.mailgun.net")
        );
        assert_eq!(c.inbound_secrets.len(), 2);
        assert!(cfg(&[("CCJK_INBOUND_SECRET", "short")]).is_err());
        let none = cfg(&[("CCJK_EMAIL_PROVIDER", "none")]).expect("none is valid");
        assert_eq!(none.mail.provider, None);
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
            ("CCJK_BODY_TIMEOUT", "2m"),
        ])
        .expect("valid");
        assert_eq!(c.net.body_timeout, Duration::from_secs(120));
        assert!(cfg(&[("CCJK_BODY_TIMEOUT", "10ms")]).is_err());
        assert_eq!(c.max_body, 2 * MIB);
        assert_eq!((c.kv_max_keys, c.kv_max_bytes), (50, 1024));
        assert_eq!(c.access_token_ttl, Some(Duration::from_secs(900)));
        assert_eq!(c.listen, Listen::Unix("/run/ccjk/sock".into()));
        assert_eq!(c.secret_key_path(), PathBuf::from("/var/lib/ccjk/ccjk.key"));
    }
}
