//! The load generator's HTTP/1.1 client: one keep-alive `TcpStream` per connection with
//! `TCP_NODELAY`, requests pre-formatted as bytes and sent with one `write_all`, responses read
//! into a reused buffer (status line and headers up to `\r\n\r\n`, then exactly `Content-Length`
//! body bytes; the server always sends it). No pipelining: a connection carries one request at a
//! time. On any error the connection is dropped and the next request reconnects; errors and
//! reconnects are counted so a run can show them. Every new connection is first checked with a
//! `GET /health` under a short timeout; one that tiny_http leaves unserved (its pool race,
//! README "Behind nginx or Caddy") is counted as a failure of the run, not replaced. Cheap per request: usually one `write` and one
//! `read` system call, no allocation.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The request that checks a new connection is served (`Conn::open_served`).
pub const PROBE: &[u8] = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
/// How long a new connection may wait for its first answer before it counts as unserved.
pub const PROBE_WAIT: Duration = Duration::from_secs(2);

/// Streams of a phase, kept so the phase can shut them down (unblocking parked reads) at its end.
pub type Registry = Arc<Mutex<Vec<TcpStream>>>;

/// One keep-alive client connection.
pub struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    timeout: Duration,
    buf: Vec<u8>,
    /// Bytes of the last response's body within `buf`.
    body: (usize, usize),
    registry: Option<Registry>,
    /// Failed requests (I/O error, timeout, malformed response).
    pub errors: u64,
    /// Connections reopened by a request after an error or `Connection: close`.
    pub reconnects: u64,
    /// New connections the server left unanswered (see `open_served`).
    pub unserved: u64,
    /// The last error, for the report.
    pub last_error: Option<String>,
    opened: u64,
}

impl Conn {
    /// A connection to `addr` whose reads time out after `timeout`; nothing is opened yet.
    pub fn new(addr: SocketAddr, timeout: Duration) -> Conn {
        Conn {
            addr,
            stream: None,
            timeout,
            buf: vec![0; 16 * 1024],
            body: (0, 0),
            registry: None,
            errors: 0,
            reconnects: 0,
            unserved: 0,
            last_error: None,
            opened: 0,
        }
    }

    /// Registers every stream this connection opens in `r`.
    pub fn with_registry(mut self, r: Registry) -> Conn {
        self.registry = Some(r);
        self
    }

    /// Opens the connection now (otherwise the first request does).
    pub fn connect(&mut self) -> io::Result<()> {
        let s = TcpStream::connect_timeout(&self.addr, self.timeout)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(self.timeout))?;
        s.set_write_timeout(Some(self.timeout))?;
        if let Some(r) = &self.registry {
            r.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(s.try_clone()?);
        }
        self.opened += 1;
        self.stream = Some(s);
        Ok(())
    }

    /// Opens the connection and checks that the server serves it: tiny_http can leave a new
    /// connection unserved until another one closes (its pool race, README "Behind nginx or Caddy"), which the
    /// server must prevent. `probe` is sent with a short `wait`; without an answer the
    /// connection counts in `unserved` (a failure of the run) and is dropped, not replaced by a
    /// fresh one that would hide the problem. Returns whether a served connection is open.
    pub fn open_served(&mut self, probe: &[u8], wait: Duration) -> bool {
        self.stream = None;
        if let Err(e) = self.connect() {
            self.errors += 1;
            self.last_error = Some(format!("connect: {e}"));
            return false;
        }
        let Some(s) = self.stream.as_mut() else {
            return false;
        };
        let answered = s.set_read_timeout(Some(wait)).is_ok()
            && s.write_all(probe).is_ok()
            && read_response(s, &mut self.buf).is_ok()
            && s.set_read_timeout(Some(self.timeout)).is_ok();
        if !answered {
            self.unserved += 1;
            self.stream = None;
        }
        answered
    }

    /// Sends `req` (a complete request) and reads the response; returns its status code. The
    /// body is then in `body()`. On error the connection is closed and `errors` counts it.
    pub fn request(&mut self, req: &[u8]) -> io::Result<u16> {
        match self.exchange(req) {
            Ok(status) => Ok(status),
            Err(e) => {
                self.errors += 1;
                self.last_error = Some(format!("{:?}: {e}", e.kind()));
                self.stream = None;
                Err(e)
            }
        }
    }

    /// The last response's body.
    pub fn body(&self) -> &[u8] {
        &self.buf[self.body.0..self.body.1]
    }

    fn exchange(&mut self, req: &[u8]) -> io::Result<u16> {
        if self.stream.is_none() {
            if self.opened > 0 {
                self.reconnects += 1;
            }
            if !self.open_served(PROBE, PROBE_WAIT) {
                return Err(io::Error::other("no new connection was served"));
            }
        }
        let Some(s) = self.stream.as_mut() else {
            return Err(io::Error::other("not connected"));
        };
        s.write_all(req)?;
        let r = read_response(s, &mut self.buf)?;
        self.body = r.body;
        if r.close {
            self.stream = None;
        }
        Ok(r.status)
    }
}

/// A response read by `read_response`.
pub struct Resp {
    pub status: u16,
    /// The body's range in the buffer.
    pub body: (usize, usize),
    /// The server said `Connection: close`.
    pub close: bool,
}

/// Reads one response from `s` into `buf` (grown as needed): the head up to `\r\n\r\n`, then
/// exactly `Content-Length` bytes.
pub fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Resp> {
    let mut filled = 0;
    let head_end = loop {
        if filled == buf.len() {
            buf.resize(buf.len().max(1024) * 2, 0);
        }
        let n = s.read(&mut buf[filled..])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ));
        }
        let from = filled.saturating_sub(3);
        filled += n;
        if let Some(i) = find(&buf[from..filled], b"\r\n\r\n") {
            break from + i + 4;
        }
    };
    let head = &buf[..head_end];
    let status = parse_status(head).ok_or_else(|| io::Error::other("malformed status line"))?;
    let (len, close) = parse_headers(head);
    let len = len.ok_or_else(|| io::Error::other("response without Content-Length"))?;
    let end = head_end + len;
    if buf.len() < end {
        buf.resize(end, 0);
    }
    while filled < end {
        let n = s.read(&mut buf[filled..end])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed mid-body",
            ));
        }
        filled += n;
    }
    Ok(Resp {
        status,
        body: (head_end, end),
        close,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_status(head: &[u8]) -> Option<u16> {
    let code = head.get(9..12)?;
    if !head.starts_with(b"HTTP/1.") || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(code.iter().fold(0u16, |a, d| a * 10 + u16::from(d - b'0')))
}

/// `(Content-Length, Connection: close)` from a response head.
fn parse_headers(head: &[u8]) -> (Option<usize>, bool) {
    let (mut len, mut close) = (None, false);
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            len = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
        } else if name.eq_ignore_ascii_case(b"connection") {
            close = value.eq_ignore_ascii_case(b"close");
        }
    }
    (len, close)
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b
        && first.is_ascii_whitespace()
    {
        b = rest;
    }
    while let [rest @ .., last] = b
        && last.is_ascii_whitespace()
    {
        b = rest;
    }
    b
}

/// A complete `GET` request.
pub fn get(path: &str, bearer: Option<&str>) -> Vec<u8> {
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n").into_bytes()
}

/// A complete `POST` request with a JSON body.
pub fn post(path: &str, bearer: Option<&str>, body: &str) -> Vec<u8> {
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
