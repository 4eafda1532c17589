//! Event streams whose client stops reading or goes away (docs/events.md, "Ending"): one thread
//! writes every stream, so a client that stops reading may hold other users' events for about a
//! second (the send timeout of a stream's socket), not for the server's 30 s; and a stream its
//! client closed gives back its place under the per-user cap within a second, not at the next
//! write or ping.

use crate::common::{TestServer, assert_v1_ok};
use crate::queue_util::{new_device, pending, queue_cmd};
use crate::sse::{self, Opened};
use serde_json::json;
use socket2::{Domain, Socket, Type};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Opens `GET /v1/events` on a socket with a 4 KiB receive buffer, reads the response head and
/// returns the socket, which the caller then never reads again.
fn stalled_stream(addr: SocketAddr, token: &str) -> Socket {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    sock.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    sock.connect_timeout(&addr.into(), Duration::from_secs(5))
        .expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let mut s: std::net::TcpStream = sock.try_clone().expect("clone").into();
    let req =
        format!("GET /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut head = [0u8; 12];
    s.read_exact(&mut head).expect("status line");
    assert_eq!(&head[9..12], b"200", "{}", String::from_utf8_lossy(&head));
    sock
}

/// The largest send buffer the kernel grows a socket's to (`tcp_wmem`'s maximum), or 4 MiB.
fn max_send_buffer() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|t| t.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4 << 20)
}

#[test]
fn a_client_that_stops_reading_holds_other_users_events_for_a_second_not_thirty() {
    let s = TestServer::start_with(|c| c.rate_limit_daemon = 0);
    let (stalled_token, _, _) = s.register("stalled@example.com");
    let (reader_token, _, _) = s.register("reader@example.com");
    let (dev, key) = new_device(&s, &stalled_token, "busy");
    let (other_dev, _) = new_device(&s, &reader_token, "quiet");
    let _stalled = stalled_stream(s.addr, &stalled_token);
    let auth = format!("Bearer {reader_token}");
    let mut reader = sse::open(s.addr, "/v1/events", &[("Authorization", &auth)]).stream();

    // Each report's output is new, so its event carries the last 16 KiB of it: twice what the
    // server's socket buffer can grow to, and the stalled client's 4 KiB, are soon full.
    let id = queue_cmd(&s, &stalled_token, &dev, "yes");
    pending(&s, &key, "limit=1");
    let reports = 2 * max_send_buffer() / (16 << 10) + 16;
    for i in 0..reports {
        let out = format!("{i:08}{}", "y".repeat(20 << 10));
        let r = s.post_json(
            &format!("/v1/daemon/tasks/{id}/progress"),
            Some(&key),
            json!({"progress": 50, "stdout": out}),
        );
        assert_v1_ok(&r, 200);
    }

    // The other user's event comes through while the flood is still being written.
    let t0 = Instant::now();
    let task = queue_cmd(&s, &reader_token, &other_dev, "echo hi");
    let e = reader
        .next_within(Duration::from_secs(8))
        .expect("the other user's event within 8 s (the server's send timeout is 30 s)");
    assert_eq!(
        (e.event.as_str(), &e.payload()["task_id"]),
        ("task.created", &json!(task))
    );
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t0.elapsed()
    );
}

#[test]
fn a_closed_stream_gives_back_its_place_under_the_cap_without_a_write() {
    // No ping within the test: only the socket check can find the closed stream.
    let s = TestServer::start_with(|c| {
        c.event_streams_per_user = 2;
        c.event_ping = Duration::from_secs(600);
    });
    let (token, _, _) = s.register("cap@example.com");
    let auth = format!("Bearer {token}");
    let open = || sse::open(s.addr, "/v1/events", &[("Authorization", &auth)]);
    let first = open().stream();
    let _second = open().stream();
    assert!(matches!(open(), Opened::Refused(429, _)), "over the cap");
    drop(first);
    let third = crate::queue_util::eventually(
        "a place under the cap",
        Duration::from_secs(5),
        || match open() {
            Opened::Stream(st) => Some(st),
            Opened::Refused(429, _) => None,
            Opened::Refused(st, body) => panic!("{st} {body}"),
        },
    );
    drop(third);
}
