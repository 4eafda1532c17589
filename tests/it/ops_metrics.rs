//! `GET /metrics` (README "Metrics"): the exposition parses (prometheus-parse, as a scraper
//! would; and `promtool check metrics` where promtool is installed, e.g. Debian's `prometheus`
//! package: the test says SKIPPED by name otherwise), carries every family an admin watches, and
//! its figures move with requests: request counts by route pattern (never the raw path) and
//! status class, latency histograms, tasks by status and queue depth, writer batches, devices
//! online.

use crate::common::TestServer;
use crate::queue_util::{new_device, queue_cmd};
use prometheus_parse::{Scrape, Value};
use std::io::Write;
use std::process::{Command, Stdio};

fn scrape(s: &TestServer) -> (String, Scrape) {
    let r = s.get("/metrics", None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let lines = r.text.lines().map(|l| Ok(l.to_string()));
    let parsed = Scrape::parse(lines).expect("the exposition parses");
    (r.text, parsed)
}

/// The value of the sample `name` whose labels include every `(key, value)` of `labels`
/// (a histogram's count for histograms); 0 when there is none.
fn value(p: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    p.samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(b) => b.iter().map(|c| c.count).fold(0.0, f64::max),
            Value::Summary(_) => f64::NAN,
        })
        .sum()
}

#[test]
fn the_exposition_parses_and_its_figures_move_with_requests() {
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    let (dev, key) = new_device(&s, &token, "laptop");
    let (text, before) = scrape(&s);
    for family in [
        "ccjk_http_requests_total",
        "ccjk_http_request_duration_seconds",
        "ccjk_tasks",
        "ccjk_queue_depth",
        "ccjk_devices_online",
        "ccjk_parked_polls",
        "ccjk_event_streams",
        "ccjk_database_bytes",
        "ccjk_wal_bytes",
        "ccjk_writer_batch_jobs",
        "ccjk_writer_commit_seconds",
        "ccjk_writer_queue_jobs",
        "ccjk_password_hashes_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{text}"
        );
    }
    assert!(value(&before, "ccjk_database_bytes", &[]) > 0.0);
    assert!(value(&before, "ccjk_password_hashes_total", &[]) >= 1.0);
    let me = [
        ("route", "/v1/auth/me"),
        ("method", "GET"),
        ("status", "2xx"),
    ];
    let base = value(&before, "ccjk_http_requests_total", &me);

    for _ in 0..3 {
        s.get("/v1/auth/me", Some(&token));
    }
    let task = queue_cmd(&s, &token, &dev, "echo hi");
    s.get(&format!("/v1/tasks/{task}"), Some(&token));
    s.get(
        "/v1/tasks/00000000-0000-4000-8000-000000000000",
        Some(&token),
    );
    let (text, after) = scrape(&s);
    assert_eq!(value(&after, "ccjk_http_requests_total", &me), base + 3.0);
    assert_eq!(
        value(&after, "ccjk_http_request_duration_seconds", &me),
        base + 3.0,
        "the histogram counts the same requests"
    );
    // prometheus-parse reads label values up to the first `}`, so series whose route pattern
    // has a parameter are checked by their exact line (promtool reads them properly).
    for status in ["2xx", "4xx"] {
        let line = format!(
            "ccjk_http_requests_total{{route=\"/v1/tasks/{{id}}\",method=\"GET\",status=\"{status}\"}} 1\n"
        );
        assert!(text.contains(&line), "{line} missing from\n{text}");
    }
    assert!(!text.contains(&task), "raw paths never become labels");
    assert_eq!(value(&after, "ccjk_tasks", &[("status", "pending")]), 1.0);
    assert_eq!(value(&after, "ccjk_queue_depth", &[]), 1.0);
    assert!(
        value(&after, "ccjk_writer_batch_jobs", &[])
            > value(&before, "ccjk_writer_batch_jobs", &[]),
        "the task's write was a batch"
    );
    assert_eq!(value(&after, "ccjk_event_streams", &[]), 0.0);
    let auth = format!("Bearer {token}");
    let stream = crate::sse::open(s.addr, "/v1/events", &[("Authorization", &auth)]).stream();
    assert_eq!(value(&scrape(&s).1, "ccjk_event_streams", &[]), 1.0);
    drop(stream);
    let unmatched = [("route", "unmatched"), ("status", "4xx")];
    s.get("/v1/no/such/route", None);
    let (_, last) = scrape(&s);
    assert_eq!(value(&last, "ccjk_http_requests_total", &unmatched), 1.0);
    assert_eq!(value(&last, "ccjk_devices_online", &[]), 0.0);
    crate::queue_util::heartbeat(&s, &key, serde_json::json!({"status": "online"}));
    let (_, online) = scrape(&s);
    assert_eq!(value(&online, "ccjk_devices_online", &[]), 1.0);
}

#[test]
fn promtool_accepts_the_exposition() {
    let Ok(out) = Command::new("promtool").arg("--version").output() else {
        // .ci/run installs it (Debian's prometheus package); the line shows in `cargo test`.
        crate::common::skipped(
            "ops_metrics::promtool_accepts_the_exposition",
            "promtool is not installed",
        );
        return;
    };
    assert!(out.status.success());
    let s = TestServer::start();
    let (token, _, _) = s.register("owner@example.com");
    s.get("/v1/auth/me", Some(&token));
    let (text, _) = scrape(&s);
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool output");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
