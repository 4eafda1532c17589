//! Reaching the socket behind a tiny_http request, so that it can be shut down.
//!
//! tiny_http 0.12 offers no way to a request's connection: the accepted socket lives in its
//! per-connection thread and in the request's reader and writer. The process can still reach
//! its own descriptors: `pidfd_getfd(2)` on a pidfd of itself duplicates one by number, and
//! `/proc/self/fd` lists the numbers. A connection is the socket whose peer is the request's
//! `remote_addr()` and whose local port is our listener's (the test clients and the watchdog in
//! the same process have the same pair the other way round). `shutdown(Read)` on the duplicate
//! makes a thread blocked reading the connection return end-of-file at once; `shutdown(Both)`
//! ends the connection. Both act on the socket, so they reach tiny_http's copies too; closing
//! our duplicate does not close theirs.
//!
//! Limits: Linux 5.6 or later (pidfd_getfd); a Unix-socket listener cannot be matched (its
//! peers have no address), so there `find` answers `None` and callers fall back to what they
//! did before (the README's nginx or Caddy front covers that deployment). A lookup reads
//! `/proc/self/fd` and costs a few system calls per open socket: callers use it only on the
//! rare paths (a refused or timed-out request), never per request.

use socket2::SockRef;
use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// The process's view of its own accepted TCP sockets.
pub struct Sockets {
    /// A pidfd of this process (`None` where the kernel lacks pidfds, or for a Unix listener).
    pidfd: Option<OwnedFd>,
    /// The port our listener is bound to: accepted sockets have it as their local port.
    port: u16,
}

impl Sockets {
    /// A finder for connections accepted on `listen_port`; `None` (a Unix-socket listener) gives
    /// a finder that never finds anything. Logs once at warn level if pidfds are unavailable.
    pub fn new(listen_port: Option<u16>) -> Sockets {
        let Some(port) = listen_port else {
            return Sockets {
                pidfd: None,
                port: 0,
            };
        };
        let me = rustix::process::getpid();
        match rustix::process::pidfd_open(me, rustix::process::PidfdFlags::empty()) {
            Ok(fd) => Sockets {
                pidfd: Some(fd),
                port,
            },
            Err(e) => {
                log::warn!(
                    "pidfd_open failed ({e}): stalled request bodies cannot be cut off \
                     (needs Linux 5.6 or later)"
                );
                Sockets {
                    pidfd: None,
                    port: 0,
                }
            }
        }
    }

    /// Whether lookups can succeed at all (TCP listener, pidfds available).
    pub fn usable(&self) -> bool {
        self.pidfd.is_some()
    }

    /// A duplicate of the accepted socket whose peer is `peer`, if it is still open.
    pub fn find(&self, peer: SocketAddr) -> Option<OwnedFd> {
        self.find_many(&[peer]).remove(&peer)
    }

    /// Duplicates of the accepted sockets whose peers are in `peers` (one `/proc/self/fd` scan
    /// for all of them). Peers with no open socket are missing from the map.
    pub fn find_many(&self, peers: &[SocketAddr]) -> HashMap<SocketAddr, OwnedFd> {
        let mut found = HashMap::new();
        let Some(pidfd) = &self.pidfd else {
            return found;
        };
        if peers.is_empty() {
            return found;
        }
        let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
            return found;
        };
        for entry in dir.flatten() {
            let Some(num) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if num == pidfd.as_raw_fd() || !is_socket_link(&entry.path()) {
                continue;
            }
            let Ok(dup) =
                rustix::process::pidfd_getfd(pidfd, num, rustix::process::PidfdGetfdFlags::empty())
            else {
                continue;
            };
            let Some(dup) = keep_if_socket(dup) else {
                continue;
            };
            let sock = SockRef::from(&dup);
            let local = sock.local_addr().ok().and_then(|a| a.as_socket());
            let remote = sock.peer_addr().ok().and_then(|a| a.as_socket());
            if let (Some(local), Some(remote)) = (local, remote)
                && local.port() == self.port
                && peers.contains(&remote)
                && !found.contains_key(&remote)
            {
                found.insert(remote, dup);
                if found.len() == peers.len() {
                    break;
                }
            }
        }
        found
    }
}

/// Whether `/proc/self/fd/N` names a socket (`socket:[inode]`). Checked before duplicating, so
/// that no other kind of file is ever duplicated (see `keep_if_socket`).
fn is_socket_link(path: &Path) -> bool {
    std::fs::read_link(path).is_ok_and(|t| t.as_os_str().as_encoded_bytes().starts_with(b"socket:"))
}

/// `dup` if it is a socket. Otherwise the number was closed and reused for a file between the
/// check and the duplication: the duplicate is leaked on purpose, because closing a second
/// descriptor of the SQLite file would release the process's POSIX locks on it.
fn keep_if_socket(dup: OwnedFd) -> Option<OwnedFd> {
    let file = std::fs::File::from(dup);
    if file.metadata().is_ok_and(|m| m.file_type().is_socket()) {
        return Some(OwnedFd::from(file));
    }
    log::warn!("a descriptor changed kind while being looked up; leaking its duplicate");
    std::mem::forget(file);
    None
}

/// `shutdown(2)` on a socket found by [`Sockets::find`]; errors (already shut down, reset)
/// mean there is nothing left to stop.
pub fn shutdown(socket: &OwnedFd, how: Shutdown) {
    let _ = SockRef::from(socket).shutdown(how);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    #[test]
    fn finds_an_accepted_socket_by_its_peer_and_shuts_it_down() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (mut accepted, peer) = listener.accept().expect("accept");
        assert_eq!(peer, client.local_addr().expect("client addr"));
        let sockets = Sockets::new(Some(port));
        assert!(
            sockets.usable(),
            "pidfd_open failed: this needs Linux 5.6 or later"
        );
        // The client's own socket has the same pair the other way round: not a match.
        let dup = sockets.find(peer).expect("the accepted socket is found");
        assert!(sockets.find("127.0.0.1:9".parse().expect("addr")).is_none());
        // A read blocked on the accepted socket returns end-of-file once the duplicate is shut.
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            accepted.read(&mut buf).map_err(|e| e.to_string())
        });
        std::thread::sleep(Duration::from_millis(50));
        shutdown(&dup, Shutdown::Read);
        assert_eq!(reader.join().expect("reader thread"), Ok(0));
        // `Both` ends the connection: the client sees end-of-file too.
        shutdown(&dup, Shutdown::Both);
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let _ = client.write_all(b"x");
        let mut buf = [0u8; 1];
        assert!(matches!(client.read(&mut buf), Ok(0) | Err(_)));
    }

    #[test]
    fn a_unix_listener_finds_nothing() {
        let s = Sockets::new(None);
        assert!(!s.usable());
        assert!(s.find("127.0.0.1:1".parse().expect("addr")).is_none());
    }
}
