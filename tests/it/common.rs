//! The harness every integration test uses: a real server on an ephemeral loopback port over
//! its own SQLite file in a temporary directory, and an HTTP client that returns the status,
//! the headers and the parsed JSON body instead of turning 4xx/5xx into errors.
//!
//! `TestServer::start()` runs the library in-process (`ccjk_cloud::start`); `spawn_binary`
//! runs the built `ccjk-cloud` executable instead, for tests that need a process of their own
//! (signals, process-wide counters). Dropping a `TestServer` shuts the server down before the
//! temporary directory disappears. Every error response is checked for leaked internals (SQL,
//! file paths, panic text), so each test also checks that rule for the errors it provokes.

pub use crate::envelope::*;
use ccjk_cloud::config::{Config, Listen, Synchronous};
use ccjk_cloud::db::users::{self, Flag};
use serde_json::{Value, json};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The password every story uses unless it is about passwords.
pub const PASSWORD: &str = "correct horse battery staple";

enum Backend {
    InProcess(Box<ccjk_cloud::Running>),
    Binary(Child),
    Stopped,
}

/// A running server with its own database and client.
pub struct TestServer {
    // Declared first: the server must stop before the directory is deleted.
    backend: Backend,
    pub addr: SocketAddr,
    base: String,
    agent: ureq::Agent,
    dir: TempDir,
}

fn agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build();
    ureq::Agent::new_with_config(config)
}

/// Sends one request with `agent` and reads the whole answer; panics on a transport error and
/// checks every response for leaked internals. `body` is `(content type, bytes)`; an empty
/// content type sends none.
pub fn send(
    agent: &ureq::Agent,
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> Resp {
    let mut b = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let sent = match body {
        Some((ct, bytes)) => {
            if !ct.is_empty() {
                b = b.header("Content-Type", ct);
            }
            agent.run(b.body(bytes).expect("a valid request"))
        }
        None => agent.run(b.body(()).expect("a valid request")),
    };
    let mut r = sent.unwrap_or_else(|e| panic!("{method} {path}: transport error: {e}"));
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let text = r.body_mut().read_to_string().expect("a readable body");
    let resp = Resp {
        status: r.status().as_u16(),
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    };
    assert_no_leaks(&format!("{method} {path}"), &resp);
    resp
}

/// Reports a test that could not run because a program it drives is missing: a `SKIPPED:`
/// line on the stderr handle, which `cargo test` does not capture (it captures `eprint!`), and
/// which `.ci/run` fails on, since it installs every such program.
pub fn skipped(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
}

/// The first of `names` found in a directory of `PATH`, or else the first of `paths` that
/// exists (Debian keeps some programs outside `PATH`: `/usr/sbin/nginx`,
/// `/usr/lib/chromium/chromedriver`).
pub fn program(names: &[&str], paths: &[&str]) -> Option<PathBuf> {
    let dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    names
        .iter()
        .flat_map(|n| dirs.iter().map(move |d| d.join(n)))
        .chain(paths.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

/// Runs `ccjk-cloud ARGS` over the database in `dir` (with `env` added, stdin closed: not a
/// terminal) and returns what it printed; kills it and fails the test if it runs past 60 s.
/// The output is read while it runs, so a command printing more than a pipe holds never
/// blocks on it.
pub fn cli(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let child = binary()
        .env("CCJK_DB", dir.join("ccjk.db"))
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ccjk-cloud");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.expect("ccjk-cloud's output"),
        Err(_) => {
            // Our own child, not yet waited for (its waiter thread is still blocked).
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            panic!("ccjk-cloud {args:?} did not exit within 60 s");
        }
    }
}

/// Runs `script` with `bash -euo pipefail` (the README's walk-throughs, as a reader pastes
/// them); fails the test with its stderr unless it succeeds; returns its stdout.
pub fn run_bash(script: &str) -> String {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .output()
        .expect("bash (the README's walk-throughs need bash, curl, jq and openssl)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the script failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A `Command` for the built binary with no inherited `CCJK_*` settings and quiet logs.
pub fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ccjk-cloud"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CCJK_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_LOG", "warn");
    cmd
}

impl TestServer {
    /// An in-process server with the default configuration.
    pub fn start() -> TestServer {
        TestServer::start_with(|_| {})
    }

    /// An in-process server whose configuration `tweak` may change.
    pub fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = Config {
            listen: Listen::Tcp(SocketAddr::from(([127, 0, 0, 1], 0))),
            db_path: dir.path().join("ccjk.db"),
            // Parallel tests share two cores: never answer a login 503 because hashing is slow.
            hash_queue_wait: Duration::from_secs(30),
            ..Config::default()
        };
        tweak(&mut cfg);
        let running =
            ccjk_cloud::start(cfg).unwrap_or_else(|e| panic!("server did not start: {e}"));
        let addr = running.addr().expect("a TCP listener has an address");
        TestServer {
            backend: Backend::InProcess(Box::new(running)),
            addr,
            base: format!("http://{addr}"),
            agent: agent(),
            dir,
        }
    }

    /// The real binary (`ccjk-cloud serve`) on a free port, with extra environment `env`;
    /// returns once `/health` answers 200.
    pub fn spawn_binary(env: &[(&str, &str)]) -> TestServer {
        let mut dir = tempfile::tempdir().expect("temp dir");
        for _attempt in 0..3 {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
            let child = binary()
                .arg("serve")
                .env("CCJK_LISTEN", addr.to_string())
                .env("CCJK_DB", dir.path().join("ccjk.db"))
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn ccjk-cloud");
            let mut s = TestServer {
                backend: Backend::Binary(child),
                addr,
                base: format!("http://{addr}"),
                agent: agent(),
                dir,
            };
            if s.wait_healthy(Duration::from_secs(30)) {
                return s;
            }
            let log = std::fs::read_to_string(s.dir.path().join("server.log")).unwrap_or_default();
            s.stop();
            if !log.contains("in use") {
                panic!("ccjk-cloud did not become healthy; its log:\n{log}");
            }
            dir = std::mem::replace(&mut s.dir, tempfile::tempdir().expect("temp dir"));
        }
        panic!("no free port after three attempts")
    }

    /// The services of an in-process server (its clock, caches and writer). Panics for a
    /// server started with `spawn_binary`.
    pub fn services(&self) -> &ccjk_cloud::domain::Services {
        match &self.backend {
            Backend::InProcess(r) => r.services(),
            _ => panic!("services() needs an in-process server"),
        }
    }

    /// The server process's pid, for a server started with `spawn_binary`.
    pub fn pid(&self) -> Option<u32> {
        match &self.backend {
            Backend::Binary(child) => Some(child.id()),
            _ => None,
        }
    }

    /// Polls `/health` until it answers 200; false if the process exits or time runs out.
    fn wait_healthy(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Backend::Binary(child) = &mut self.backend
                && child.try_wait().expect("try_wait").is_some()
            {
                return false;
            }
            let url = format!("{}/health", self.base);
            if let Ok(r) = self.agent.get(&url).call()
                && r.status() == 200
            {
                return true;
            }
            sleep(Duration::from_millis(50));
        }
        false
    }

    /// The temporary directory holding the database and the key file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The SQLite file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("ccjk.db")
    }

    /// Kills a binary server with SIGKILL (a crash: no shutdown code runs). Panics for an
    /// in-process server.
    pub fn kill9(&mut self) {
        match std::mem::replace(&mut self.backend, Backend::Stopped) {
            Backend::Binary(mut child) => {
                child.kill().expect("SIGKILL the server");
                child.wait().expect("reap the server");
            }
            _ => panic!("kill9 needs a server started with spawn_binary"),
        }
    }

    /// The base URL, for clients of a test's own.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Shuts the server down (SIGTERM for a binary); the directory stays until drop.
    pub fn stop(&mut self) {
        self.terminate();
    }

    /// Shuts the server down; for a binary, its exit status if it exited within 10 s of
    /// SIGTERM (it is killed otherwise, and `None` returned).
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        match std::mem::replace(&mut self.backend, Backend::Stopped) {
            Backend::InProcess(running) => {
                drop(running);
                None
            }
            Backend::Binary(mut child) => {
                // The shell's built-in `kill`: `/bin/sh` exists wherever the tests run, a `kill`
                // binary (procps) not always, and the tests forbid `unsafe` FFI.
                let _ = Command::new("sh")
                    .args(["-c", &format!("kill -TERM {}", child.id())])
                    .status();
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Some(status);
                    }
                    sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
                None
            }
            Backend::Stopped => None,
        }
    }

    /// Any request. `body` is `(content type, bytes)`; an empty content type sends none.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Resp {
        send(&self.agent, &self.base, method, path, headers, body)
    }

    fn auth_headers(token: Option<&str>) -> Vec<(&'static str, String)> {
        token
            .map(|t| vec![("Authorization", format!("Bearer {t}"))])
            .unwrap_or_default()
    }

    /// A request with an optional bearer token and an optional JSON body.
    pub fn json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let h = TestServer::auth_headers(token);
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let body = body.map(|b| ("application/json", b.to_string().into_bytes()));
        self.call(method, path, &h, body)
    }

    /// `GET path` with an optional bearer token.
    pub fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.json("GET", path, token, None)
    }

    /// `POST path` with a JSON body and an optional bearer token.
    pub fn post_json(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.json("POST", path, token, Some(&body))
    }

    /// `PATCH path` with a JSON body and an optional bearer token.
    pub fn patch_json(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.json("PATCH", path, token, Some(&body))
    }

    /// `DELETE path` with an optional bearer token.
    pub fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.json("DELETE", path, token, None)
    }

    /// `GET path` with `X-Session-Token` (Sessions' header).
    pub fn get_with_session_header(&self, path: &str, token: &str) -> Resp {
        self.call("GET", path, &[("X-Session-Token", token)], None)
    }

    /// Registers through `/v1/auth/register` with `PASSWORD`: (token, refresh_token, user_id).
    pub fn register(&self, email: &str) -> (String, String, i64) {
        let r = self.post_json(
            "/v1/auth/register",
            None,
            json!({"email": email, "password": PASSWORD}),
        );
        let d = assert_v1_ok(&r, 201);
        (
            d["token"].as_str().expect("token").to_string(),
            d["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_string(),
            d["user"]["id"].as_i64().expect("user id"),
        )
    }

    /// `POST /v1/auth/login` with `{email, password}`.
    pub fn login(&self, login: &str, password: &str) -> Resp {
        self.post_json(
            "/v1/auth/login",
            None,
            json!({"email": login, "password": password}),
        )
    }

    /// Lite's `POST /auth`; asserts success and returns the device key.
    pub fn lite_auth(&self, email: &str, password: &str) -> String {
        let r = self.post_json("/auth", None, json!({"email": email, "password": password}));
        let d = assert_lite_ok(&r);
        d["device_key"].as_str().expect("device_key").to_string()
    }

    /// Creates an API key with `scopes` using a session token: (id, key).
    pub fn create_api_key(&self, token: &str, scopes: &[&str]) -> (i64, String) {
        let r = self.post_json(
            "/v1/api-keys",
            Some(token),
            json!({"name": "script", "scopes": scopes}),
        );
        let d = assert_v1_ok(&r, 201);
        (
            d["api_key"]["id"].as_i64().expect("api key id"),
            d["key"].as_str().expect("key").to_string(),
        )
    }

    /// The value of a counter or gauge from `GET /metrics`.
    pub fn metric(&self, name: &str) -> u64 {
        let r = self.get("/metrics", None);
        assert_eq!(r.status, 200, "{}", r.text);
        r.text
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("metric {name} missing from:\n{}", r.text))
            .trim()
            .parse()
            .expect("a numeric metric")
    }

    /// Asserts that `GET /health` answers 200 `{"status": "ok"}`; returns the response.
    pub fn assert_healthy(&self) -> Resp {
        let h = self.get("/health", None);
        assert_eq!(
            (h.status, h.body["status"].clone()),
            (200, json!("ok")),
            "{}",
            h.text
        );
        h
    }

    /// Enables or disables an account the way an admin would, through the library's `db`.
    pub fn set_active(&self, email: &str, active: bool) {
        let db = ccjk_cloud::db::Db::open(&self.db_path(), Synchronous::Full).expect("open db");
        let (email, v) = (email.to_string(), if active { "1" } else { "0" });
        let found = db
            .write(move |c| users::set_flag(c, &email, Flag::Active, v))
            .expect("set_flag");
        assert!(found, "no such user");
    }

    /// Sends `request` as raw bytes on a new connection and reads the answer (see `raw_read`).
    pub fn raw(&self, request: &[u8]) -> String {
        let mut s =
            TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        s.set_write_timeout(Some(Duration::from_secs(5)))
            .expect("write timeout");
        // The server may answer and stop reading before the whole request is written.
        let _ = s.write_all(request);
        raw_read(&mut s)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}
