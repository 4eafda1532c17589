//! A Server-Sent Events client for the tests: opens `GET /v1/events` on a raw connection (so a
//! test sees the response head, the chunked framing and the end of the stream exactly as sent),
//! decodes chunks and splits them into events. Every read is bounded by a deadline.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One event of the stream.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: Option<String>,
    pub event: String,
    /// The parsed `data:` (the seed's `{type, data}` message).
    pub data: Value,
}

impl Event {
    /// The payload: `data.data`.
    pub fn payload(&self) -> &Value {
        &self.data["data"]
    }
}

/// An open stream.
pub struct Sse {
    r: BufReader<TcpStream>,
    /// Decoded bytes not yet split into events.
    text: String,
    ended: bool,
}

/// What opening a stream gave: the stream, or the status and body of a refusal.
pub enum Opened {
    Stream(Sse),
    Refused(u16, String),
}

impl Opened {
    /// The stream; panics with the refusal otherwise.
    pub fn stream(self) -> Sse {
        match self {
            Opened::Stream(s) => s,
            Opened::Refused(st, body) => panic!("stream refused: {st} {body}"),
        }
    }
}

/// Opens `path` (e.g. `/v1/events`) on `addr` with extra request `headers`.
pub fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Opened {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send request");
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).expect("read head") == 0 {
            panic!("connection closed in the head: {head}");
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let status: u16 = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let lower = head.to_ascii_lowercase();
    if status != 200 {
        let len = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        r.read_exact(&mut body).expect("read refusal body");
        return Opened::Refused(status, String::from_utf8_lossy(&body).into_owned());
    }
    assert!(lower.contains("content-type: text/event-stream"), "{head}");
    assert!(lower.contains("transfer-encoding: chunked"), "{head}");
    Opened::Stream(Sse {
        r,
        text: String::new(),
        ended: false,
    })
}

impl Sse {
    /// Reads one chunk into `text`; false at the end of the stream (last chunk or EOF) or at
    /// the read timeout.
    fn read_chunk(&mut self, deadline: Instant) -> bool {
        if self.ended {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = self.r.get_ref().set_read_timeout(Some(left));
        let mut line = String::new();
        match self.r.read_line(&mut line) {
            Ok(0) => {
                self.ended = true;
                return false;
            }
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false;
            }
            Err(_) => {
                self.ended = true;
                return false;
            }
        }
        let size = usize::from_str_radix(line.trim(), 16)
            .unwrap_or_else(|_| panic!("not a chunk size: {line:?}"));
        if size == 0 {
            let mut end = String::new();
            let _ = self.r.read_line(&mut end);
            self.ended = true;
            return false;
        }
        let mut buf = vec![0; size + 2];
        self.r.read_exact(&mut buf).expect("a whole chunk");
        assert_eq!(&buf[size..], b"\r\n", "chunk framing");
        self.text.push_str(&String::from_utf8_lossy(&buf[..size]));
        true
    }

    /// Whether the stream is still open: `next_within` answers `None` both at its deadline and
    /// when the stream ended, and a test that expects silence checks this too.
    pub fn is_open(&self) -> bool {
        !self.ended
    }

    /// The next event (comments and `retry:` skipped) within `within`, or `None`.
    pub fn next_within(&mut self, within: Duration) -> Option<Event> {
        let deadline = Instant::now() + within;
        loop {
            while let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                if let Some(e) = parse(&block) {
                    return Some(e);
                }
            }
            if !self.read_chunk(deadline) {
                return None;
            }
        }
    }

    /// The next event within 5 s; panics with `what` when none comes.
    pub fn next(&mut self, what: &str) -> Event {
        self.next_within(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("no event within 5 s: expected {what}"))
    }

    /// The next event, which must be `kind`.
    pub fn expect(&mut self, kind: &str) -> Event {
        let e = self.next(kind);
        assert_eq!(e.event, kind, "{e:?}");
        assert_eq!(e.data["type"], Value::from(kind), "{e:?}");
        e
    }

    /// Whether the server ended the stream within `within` (events before the end are
    /// dropped).
    pub fn ends_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.ended {
                return true;
            }
            self.text.clear();
            if !self.read_chunk(deadline) && self.ended {
                return true;
            }
        }
        self.ended
    }

    /// Whether the comment ping arrived within `within`.
    pub fn pinged_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.text.contains(": ping\n\n") {
                return true;
            }
            if !self.read_chunk(deadline) {
                return false;
            }
        }
    }
}

/// Parses one SSE block; `None` for a block with no `data:` (a comment or `retry:`).
fn parse(block: &str) -> Option<Event> {
    let (mut id, mut event, mut data) = (None, String::from("message"), None::<String>);
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("event: ") {
            event = v.to_string();
        } else if let Some(v) = line.strip_prefix("data: ") {
            data = Some(v.to_string());
        }
    }
    let data = data?;
    Some(Event {
        id,
        event,
        data: serde_json::from_str(&data).unwrap_or_else(|e| panic!("bad data {data:?}: {e}")),
    })
}
