//! The ceiling: a minimal tiny_http 0.12 server that answers every request with the same small
//! JSON body, run in its own process on the server's core (`taskset -c 0`). It is set up the way
//! ccjk-cloud sets up its listener (socket2, `TCP_NODELAY` on the listening socket, which Linux
//! copies to accepted sockets, `Server::from_listener`) with 4 worker threads calling `recv()`,
//! so `hot` against it measures what tiny_http and the kernel cost before any application code.

use socket2::{Domain, Protocol, Socket, Type};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

const BODY: &[u8] = br#"{"success":true,"data":{"tasks":[],"count":0},"error":null}"#;

/// Serves forever on 127.0.0.1:`port` (the bench kills the process).
pub fn serve(port: u16) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let sock =
        Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).map_err(|e| e.to_string())?;
    sock.set_reuse_address(true).map_err(|e| e.to_string())?;
    sock.set_tcp_nodelay(true).map_err(|e| e.to_string())?;
    sock.bind(&addr.into())
        .map_err(|e| format!("bind {addr}: {e}"))?;
    sock.listen(1024).map_err(|e| e.to_string())?;
    let listener: TcpListener = sock.into();
    let server =
        Arc::new(tiny_http::Server::from_listener(listener, None).map_err(|e| e.to_string())?);
    let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
        .map_err(|()| "bad header".to_string())?;
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (server, header) = (server.clone(), header.clone());
            std::thread::spawn(move || {
                while let Ok(req) = server.recv() {
                    let resp = tiny_http::Response::from_data(BODY).with_header(header.clone());
                    let _ = req.respond(resp);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    Err("tiny_http stopped accepting connections".into())
}
