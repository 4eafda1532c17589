//! The server's life around requests: a Unix-socket listener, parked long-polls answered at
//! shutdown, and the fatal path — when tiny_http's accept thread dies (here: out of file
//! descriptors), the process must exit non-zero so that systemd restarts it rather than live on
//! with a dead port (docs/architecture.md, README "Behind nginx or Caddy").

use crate::common::*;
use ccjk_cloud::config::{Config, Listen};
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn a_unix_socket_listener_serves_requests() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sock = dir.path().join("ccjk.sock");
    let cfg = Config {
        listen: Listen::Unix(sock.clone()),
        db_path: dir.path().join("ccjk.db"),
        ..Config::default()
    };
    let running = ccjk_cloud::start(cfg).expect("start on a unix socket");
    assert_eq!(running.addr(), None, "no TCP address");
    let mut s = UnixStream::connect(&sock).expect("connect to the socket");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"status\":\"ok\""), "{out}");
}

#[test]
fn parked_polls_are_answered_at_shutdown() {
    let mut s = TestServer::start();
    let (token, _, _) = s.register("parked@example.com");
    let d = assert_v1_ok(
        &s.post_json("/v1/devices", Some(&token), json!({"name": "box"})),
        201,
    );
    let key = d["device_key"].as_str().expect("key").to_string();
    let url = format!("{}/v1/daemon/tasks/pending?wait=30", s.base());
    let poll = std::thread::spawn(move || {
        let started = Instant::now();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(40)))
            .build()
            .into();
        let mut r = agent
            .get(&url)
            .header("Authorization", &format!("Bearer {key}"))
            .call()
            .expect("the parked poll is answered");
        let body = r.body_mut().read_to_string().expect("body");
        (r.status().as_u16(), body, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    s.stop();
    let (status, body, took) = poll.join().expect("poll thread");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"count\":0"), "{body}");
    assert!(
        took < Duration::from_secs(10),
        "answered at shutdown, not at the deadline: {took:?}"
    );
}

#[test]
fn the_process_exits_non_zero_when_the_accept_thread_dies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    // A low descriptor limit: accept() fails with EMFILE once the connections below use them up,
    // which ends tiny_http's accept thread for good.
    let bin = env!("CARGO_BIN_EXE_ccjk-cloud");
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n 48 && exec {bin} serve"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "error")
        .env("CCJK_LISTEN", format!("127.0.0.1:{port}"))
        .env("CCJK_DB", dir.path().join("ccjk.db"))
        .env("CCJK_WORKERS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn under ulimit");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut conns = Vec::new();
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the server kept running with a dead accept thread"
        );
        if let Ok(c) = TcpStream::connect(("127.0.0.1", port)) {
            conns.push(c);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(!status.success(), "exit status {status:?}; stderr: {err}");
    // Depending on where accept() fails, tiny_http either reports the error through recv()
    // (the server logs it and exits 1) or its accept thread panics (the panic policy aborts).
    assert!(
        err.contains("stopped accepting") || err.contains("which is not ours"),
        "the reason is logged: {err}"
    );
}
