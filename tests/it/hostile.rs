//! Clients that try to stall, strand or exhaust the server (README "Behind nginx or Caddy"):
//! uploads that never finish, absurd `Content-Length`s, request smuggling, and bursts of new
//! connections. Each test checks that the server keeps answering promptly, drops what it must
//! after its documented timeout, and ends with as many descriptors and threads as it started
//! with. Every loop here is bounded by a count and a deadline.

use crate::common::{TestServer, raw_read, raw_status};
use crate::queue_util::new_device;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// `CCJK_BODY_TIMEOUT` in these tests: an upload pausing 1 s, or unfinished after 2 s plus 1 s
/// per 100 KiB, is cut off.
const BODY_TIMEOUT: Duration = Duration::from_secs(2);

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    s.set_write_timeout(Some(Duration::from_secs(5)))
        .expect("write timeout");
    s
}

/// One request on a new connection (`Connection: close`): (status, time to the answer).
fn timed(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Duration) {
    let started = Instant::now();
    let mut s = connect(addr);
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let answer = raw_read(&mut s);
    (raw_status(&answer), started.elapsed())
}

/// The median of `n` timings of `f`, asserting every status is `status`.
fn median_ms(n: usize, status: u16, mut f: impl FnMut() -> (u16, Duration)) -> f64 {
    let mut t: Vec<f64> = (0..n)
        .map(|_| {
            let (s, d) = f();
            assert_eq!(s, status);
            d.as_secs_f64() * 1000.0
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[n / 2]
}

/// Opens `n` uploads to `POST /auth` that never finish: half declare 5,000 bytes and send `{`,
/// half are chunked and send one chunk. The connections are returned held open.
fn stalled_uploads(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = connect(addr);
            let head = if i % 2 == 0 {
                "POST /auth HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
                 Content-Length: 5000\r\n\r\n{"
            } else {
                "POST /auth HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
                 Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n"
            };
            s.write_all(head.as_bytes()).expect("send a stalled upload");
            s
        })
        .collect()
}

/// Waits for the server to answer and close each stalled upload; returns the statuses seen
/// (0 for a connection closed without an answer). Panics if one is still open after `within`.
fn dropped(uploads: Vec<TcpStream>, within: Duration) -> Vec<u16> {
    let deadline = Instant::now() + within;
    uploads
        .into_iter()
        .map(|mut s| {
            let left = deadline.saturating_duration_since(Instant::now());
            s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("timeout");
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                    Err(e) => panic!("a stalled upload was still open after {within:?}: {e}"),
                }
            }
            raw_status(&String::from_utf8_lossy(&got))
        })
        .collect()
}

/// A user with a device: (session token, device key).
fn user_with_device(s: &TestServer, email: &str) -> (String, String) {
    let (token, _, _) = s.register(email);
    let (_, key) = new_device(s, &token, "laptop");
    (token, key)
}

#[test]
fn stalled_uploads_hold_no_worker_and_are_cut_off_after_their_timeout() {
    let s = TestServer::start_with(|c| c.net.body_timeout = BODY_TIMEOUT);
    let (_, key) = user_with_device(&s, "stall@example.com");
    let auth = format!("Bearer {key}");
    let uploads = stalled_uploads(s.addr, 200);
    let opened = Instant::now();
    sleep(Duration::from_millis(200));
    // With 4 workers, four such uploads used to freeze every route until the clients gave up.
    let health = median_ms(9, 200, || timed(s.addr, "GET", "/health", &[]));
    let poll = median_ms(9, 200, || {
        timed(
            s.addr,
            "GET",
            "/v1/daemon/tasks/pending",
            &[("Authorization", &auth)],
        )
    });
    assert!(health < 50.0, "GET /health took {health:.1} ms");
    assert!(poll < 50.0, "a daemon's poll took {poll:.1} ms");
    // Each upload pauses past half the timeout: cut off by ~1 s, answered 408 where it can be.
    let statuses = dropped(uploads, Duration::from_secs(10));
    let elapsed = opened.elapsed();
    assert!(
        elapsed >= BODY_TIMEOUT / 2,
        "cut off before the idle timeout: {elapsed:?}"
    );
    let timed_out = statuses.iter().filter(|&&c| c == 408).count();
    assert!(
        timed_out >= 190,
        "expected 408 on (nearly) every stalled upload: {statuses:?}"
    );
    s.assert_healthy();
}

#[test]
fn an_upload_that_keeps_trickling_is_cut_off_at_its_total_deadline() {
    let s = TestServer::start_with(|c| c.net.body_timeout = BODY_TIMEOUT);
    let mut up = connect(s.addr);
    up.write_all(
        b"POST /v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
          Content-Length: 5000\r\n\r\n",
    )
    .expect("send");
    // One byte every 300 ms: never idle for 1 s, never done; the deadline is 2 s + 1 s.
    let started = Instant::now();
    let mut cut = None;
    for _ in 0..40 {
        sleep(Duration::from_millis(300));
        if up.write_all(b" ").is_err() {
            cut = Some(started.elapsed());
            break;
        }
        up.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 512];
        let peeked = up.peek(&mut buf);
        up.set_nonblocking(false).expect("blocking");
        if let Ok(n) = peeked
            && n > 0
        {
            assert_eq!(raw_status(&String::from_utf8_lossy(&buf[..n])), 408);
            cut = Some(started.elapsed());
            break;
        }
    }
    let cut = cut.expect("the trickling upload was never cut off");
    assert!(
        cut >= Duration::from_millis(2500) && cut < Duration::from_secs(5),
        "cut off after {cut:?}, expected about 3 s"
    );
    s.assert_healthy();
}

/// Sends `request` on a new connection and returns everything the server writes before it
/// closes the connection (panics if it does not close it within 5 s).
fn until_closed(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = connect(addr);
    let _ = s.write_all(request);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "the connection stayed open ({e}); got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Requests with ambiguous framing, each followed by a smuggled `GET /health`.
fn smuggling_pairs() -> Vec<Vec<u8>> {
    let second = "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
    let head = "POST /v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n";
    [
        // Content-Length and Transfer-Encoding: a proxy using the length forwards the rest.
        format!("{head}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{second}"),
        format!(
            "{head}Transfer-Encoding: chunked\r\nContent-Length: {}\r\n\r\n0\r\n\r\n{second}",
            5 + second.len()
        ),
        // Two lengths, equal or not.
        format!("{head}Content-Length: 0\r\nContent-Length: 0\r\n\r\n{second}"),
        format!(
            "{head}Content-Length: 2\r\nContent-Length: {}\r\n\r\n{{}}{second}",
            2 + second.len()
        ),
        // A transfer coding other than chunked, and a length that is not a number.
        format!("{head}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n{second}"),
        format!("{head}Transfer-Encoding: identity\r\n\r\n{second}"),
        format!("{head}Content-Length: +2\r\n\r\n{{}}{second}"),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

#[test]
fn smuggled_requests_get_400_and_the_request_behind_is_never_answered() {
    let s = TestServer::start();
    for (i, req) in smuggling_pairs().iter().enumerate() {
        for _round in 0..5 {
            let answer = until_closed(s.addr, req);
            assert_eq!(raw_status(&answer), 400, "pair {i}: {answer:?}");
            assert_eq!(
                answer.matches("HTTP/1.").count(),
                1,
                "pair {i}: the smuggled request was answered: {answer:?}"
            );
            assert!(answer.contains("BAD_REQUEST"), "pair {i}: {answer:?}");
        }
    }
    s.assert_healthy();
}

#[test]
fn a_body_over_the_cap_is_refused_and_its_connection_closed_at_once() {
    let s = TestServer::start();
    // Over the 1 MiB cap and never sent: the server answers 413 and closes, it does not wait.
    let held: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut c = connect(s.addr);
            c.write_all(
                b"POST /v1/auth/register HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
                  Content-Length: 10000000\r\n\r\n{",
            )
            .expect("send");
            c
        })
        .collect();
    let statuses = dropped(held, Duration::from_secs(5));
    assert!(statuses.iter().all(|&c| c == 413), "{statuses:?}");
    s.assert_healthy();
}
