//! The README's nginx configuration in front of the server (README "Behind nginx or Caddy"):
//! an event stream passes through it unbuffered. The test starts nginx from Debian's package
//! with the `server` block copied from the README (only the listen address, the upstream
//! address and the TLS lines changed), so the README's snippet is what is tested. Without
//! nginx installed it prints a `SKIPPED` line that `cargo test` shows (`.ci/run` installs
//! nginx, so CI always runs it).

use crate::common::{TestServer, assert_v1_ok, free_port, program, skipped};
use crate::queue_util::{new_device, queue_cmd};
use crate::sse;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The README's nginx `server { … }` and `upstream` lines, pointed at `upstream` and listening
/// on `port` without TLS.
fn readme_config(upstream: &str, port: u16) -> String {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("```nginx\n")
        .expect("the README has an nginx block")
        + 9;
    let len = readme[start..].find("```").expect("the block ends");
    readme[start..start + len]
        .lines()
        .filter(|l| !l.trim_start().starts_with("# ssl_") && !l.contains("ssl_certificate"))
        .map(|l| {
            if l.trim_start().starts_with("listen ") {
                format!("    listen 127.0.0.1:{port};")
            } else {
                l.replace("127.0.0.1:3000", upstream)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_event_stream_goes_through_the_readme_nginx_unbuffered() {
    let Some(nginx) = program(&["nginx"], &["/usr/sbin/nginx"]) else {
        return skipped(
            "nginx::an_event_stream_goes_through_the_readme_nginx_unbuffered",
            "nginx is not installed (apt-get install nginx; .ci/run does)",
        );
    };
    let s = TestServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path().display().to_string();
    let port = free_port();
    let conf = format!(
        "worker_processes 1;\nerror_log {p}/error.log warn;\npid {p}/nginx.pid;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n\
         fastcgi_temp_path {p}/fcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n\
         {}\n}}\n",
        readme_config(&s.addr.to_string(), port)
    );
    assert!(
        conf.contains("proxy_buffering off;"),
        "the README turns buffering off"
    );
    std::fs::write(dir.path().join("nginx.conf"), &conf).expect("write nginx.conf");
    let child = Command::new(&nginx)
        .args([
            "-p",
            &p,
            "-c",
            &format!("{p}/nginx.conf"),
            "-g",
            "daemon off;",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nginx");
    let _guard = Nginx(child);
    let front: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(front).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {}\n{conf}",
            std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (token, _, _) = s.register("nginx@example.com");
    let (dev, _) = new_device(&s, &token, "d");
    let auth = format!("Bearer {token}");
    let mut es = sse::open(front, "/v1/events", &[("Authorization", &auth)]).stream();
    // Each event arrives on its own, while the stream stays open: nothing waits in a buffer.
    for i in 0..3 {
        let sent = Instant::now();
        let id = queue_cmd(&s, &token, &dev, &format!("through nginx {i}"));
        let e = es.expect("task.created");
        assert_eq!(e.payload()["task_id"], json!(id));
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "event {i} took {:?} through nginx",
            sent.elapsed()
        );
    }
    // And the API answers through it as usual.
    let r = s.get("/v1/devices", Some(&token));
    assert_v1_ok(&r, 200);
}
