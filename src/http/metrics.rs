//! What an admin watches (`GET /metrics`; README "Metrics"): one prometheus-client registry in
//! the Prometheus text format (0.0.4), so Prometheus, `promtool check metrics` and any
//! exposition parser read it.
//!
//! Moved by the server as requests finish: request counts and latency by route (the route
//! table's path pattern, never the raw path, so ids cannot blow up the series) and status
//! class; rate-limit refusals by class. Moved by the writer (`db::writer`): batch sizes, commit
//! latency, jobs waiting. Read at scrape time: tasks by status, queue depth, devices online,
//! parked polls, database and WAL size, the e-mail outbox by status, relay outcomes by provider
//! and webhook signatures computed (a snapshot from `domain::health`), and the password hashes
//! computed by this process.

use crate::db::tasks::TaskStatus;
use crate::db::writer::WriterStats;
use crate::domain::health::Snapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Latency buckets of a request, in seconds: 100 µs to a minute (long-polls wait up to 60 s).
const LATENCY_BUCKETS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// A request's labels: its route pattern (`unmatched` for no route), method and status class.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub method: &'static str,
    pub status: &'static str,
}

/// A label naming a class (rate limits) or a status (tasks).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

type Latency = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// Status classes a route's series are kept for, in `status_class` order.
const CLASSES: usize = 5;

/// A matched route's labels and its series per status class, made on first use and kept, so a
/// request is counted with two atomic additions and no lookup (the hot path counts every one).
struct RouteSeries {
    method: &'static str,
    path: &'static str,
    by_class: [OnceLock<(Counter, Histogram)>; CLASSES],
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The password hashes this process computed (a counter kept by `password`).
#[derive(Debug)]
struct PasswordHashes;

impl Collector for PasswordHashes {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = ConstCounter::new(crate::password::computed());
        let m = encoder.encode_descriptor(
            "ccjk_password_hashes",
            "argon2id computations by this process (hash and verify)",
            None,
            c.metric_type(),
        )?;
        c.encode(m)
    }
}

/// The mail counters as of the last scrape (kept by `state::mail`, copied in by `render`).
#[derive(Debug, Default)]
struct MailCounters {
    /// (provider, outcome, attempts).
    sends: Vec<(&'static str, &'static str, u64)>,
    signatures: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SendLabels {
    provider: &'static str,
    outcome: &'static str,
}

/// Encodes `MailCounters` as two counter families.
#[derive(Debug, Default)]
struct MailCollector(Arc<Mutex<MailCounters>>);

impl Collector for MailCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let kind = ConstCounter::new(0u64).metric_type();
        let mut family = encoder.encode_descriptor(
            "ccjk_email_sends",
            "Attempts to hand a mail to the relay, by provider and outcome (sent, retry, failed)",
            None,
            kind,
        )?;
        for &(provider, outcome, n) in &m.sends {
            let labels = SendLabels { provider, outcome };
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
        let c = ConstCounter::new(m.signatures);
        let one = encoder.encode_descriptor(
            "ccjk_inbound_signatures",
            "HMACs computed for the inbound-mail webhook",
            None,
            kind,
        )?;
        c.encode(one)
    }
}

/// The registry and the metrics the server moves.
pub struct Metrics {
    registry: Registry,
    /// By route-table index.
    routes: Vec<RouteSeries>,
    requests: Family<RequestLabels, Counter>,
    latency: Latency,
    rate_limited: Family<ClassLabel, Counter>,
    tasks: Family<StatusLabel, Gauge>,
    queue_depth: Gauge,
    devices_online: Gauge,
    parked_polls: Gauge,
    event_streams: Gauge,
    database_bytes: Gauge,
    wal_bytes: Gauge,
    email_outbox: Family<StatusLabel, Gauge>,
    mail: Arc<Mutex<MailCounters>>,
}

impl Metrics {
    /// A registry with every metric, the writer's among them; `routes` are the route table's
    /// `(method, path pattern)`, in table order.
    pub fn new(
        writer: &WriterStats,
        routes: impl IntoIterator<Item = (&'static str, &'static str)>,
    ) -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            routes: routes
                .into_iter()
                .map(|(method, path)| RouteSeries {
                    method: method_label(method),
                    path,
                    by_class: Default::default(),
                })
                .collect(),
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            rate_limited: Family::default(),
            tasks: Family::default(),
            queue_depth: Gauge::default(),
            devices_online: Gauge::default(),
            parked_polls: Gauge::default(),
            event_streams: Gauge::default(),
            database_bytes: Gauge::default(),
            wal_bytes: Gauge::default(),
            email_outbox: Family::default(),
            mail: Arc::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "ccjk_http_requests",
            "Requests answered, by route pattern, method and status class",
            m.requests.clone(),
        );
        r.register(
            "ccjk_http_request_duration_seconds",
            "Time from taking a request to handing its answer to the socket (long-polls include their wait)",
            m.latency.clone(),
        );
        r.register(
            "ccjk_rate_limited",
            "Requests refused with 429 by the rate limits, by class (user, api_key, daemon, app, webhook)",
            m.rate_limited.clone(),
        );
        r.register("ccjk_tasks", "Tasks by status", m.tasks.clone());
        r.register(
            "ccjk_queue_depth",
            "Tasks waiting to be claimed (pending)",
            m.queue_depth.clone(),
        );
        r.register(
            "ccjk_devices_online",
            "Devices whose status is not offline",
            m.devices_online.clone(),
        );
        r.register(
            "ccjk_parked_polls",
            "Long-polls waiting for work",
            m.parked_polls.clone(),
        );
        r.register(
            "ccjk_event_streams",
            "Open GET /v1/events streams",
            m.event_streams.clone(),
        );
        r.register(
            "ccjk_database_bytes",
            "Size of the main database file",
            m.database_bytes.clone(),
        );
        r.register(
            "ccjk_wal_bytes",
            "Size of the write-ahead log file",
            m.wal_bytes.clone(),
        );
        r.register(
            "ccjk_writer_batch_jobs",
            "Write jobs committed together in one transaction",
            writer.batch_jobs.clone(),
        );
        r.register(
            "ccjk_writer_commit_seconds",
            "Time a batch's COMMIT took (the fsync)",
            writer.commit_seconds.clone(),
        );
        r.register(
            "ccjk_writer_queue_jobs",
            "Write jobs waiting for the writer",
            writer.queued.clone(),
        );
        r.register(
            "ccjk_email_outbox",
            "Mails in the outbox by status",
            m.email_outbox.clone(),
        );
        r.register_collector(Box::new(PasswordHashes));
        r.register_collector(Box::new(MailCollector(m.mail.clone())));
        Metrics { registry, ..m }
    }

    /// Counts one answered request: of the route at this table index, or of no route (labelled
    /// `unmatched` with the request's method).
    pub fn observe(&self, route: Option<usize>, method: &str, status: u16, took: Duration) {
        let class = status_index(status);
        let secs = took.as_secs_f64();
        if let Some(r) = route.and_then(|i| self.routes.get(i)) {
            let (count, latency) = r.by_class[class].get_or_init(|| {
                let labels = RequestLabels {
                    route: r.path,
                    method: r.method,
                    status: STATUS_CLASSES[class],
                };
                (
                    self.requests.get_or_create_owned(&labels),
                    self.latency.get_or_create_owned(&labels),
                )
            });
            count.inc();
            latency.observe(secs);
            return;
        }
        let labels = RequestLabels {
            route: "unmatched",
            method: method_label(method),
            status: STATUS_CLASSES[class],
        };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(secs);
    }

    /// Counts one request refused by a rate limit of `class`.
    pub fn rate_limited(&self, class: &'static str) {
        self.rate_limited.get_or_create(&ClassLabel { class }).inc();
    }

    /// The exposition, with the scrape-time figures set from `snap`.
    pub fn render(&self, snap: &Snapshot, parked_polls: usize, event_streams: usize) -> String {
        for s in TaskStatus::ALL {
            let n = snap
                .tasks_by_status
                .iter()
                .find(|(t, _)| *t == s)
                .map_or(0, |(_, n)| *n);
            self.tasks
                .get_or_create(&StatusLabel { status: s.as_str() })
                .set(n);
            if s == TaskStatus::Pending {
                self.queue_depth.set(n);
            }
        }
        self.devices_online.set(snap.devices_online);
        self.parked_polls.set(parked_polls as i64);
        self.event_streams.set(event_streams as i64);
        self.database_bytes.set(snap.database_bytes);
        self.wal_bytes.set(snap.wal_bytes);
        for status in crate::db::outbox::STATUSES {
            let n = snap
                .email_outbox
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n);
            self.email_outbox
                .get_or_create(&StatusLabel { status })
                .set(n);
        }
        *self.mail.lock().unwrap_or_else(|p| p.into_inner()) = MailCounters {
            sends: snap
                .email_sends
                .iter()
                .map(|&(p, o, n)| (p, o.name(), n))
                .collect(),
            signatures: snap.inbound_signatures,
        };
        let mut out = String::with_capacity(16 * 1024);
        if prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry).is_err() {
            log::error!("encoding /metrics failed");
        }
        out
    }
}

/// The method as a label (a closed set, whatever the case it came in).
fn method_label(m: &str) -> &'static str {
    const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];
    METHODS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(m))
        .copied()
        .unwrap_or("OTHER")
}

/// The status classes, as labels.
const STATUS_CLASSES: [&str; CLASSES] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The index of a status's class in `STATUS_CLASSES`.
fn status_index(s: u16) -> usize {
    usize::from((s / 100).clamp(1, 5) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_family() {
        let m = Metrics::new(&WriterStats::default(), [("get", "/v1/tasks/{id}")]);
        m.observe(Some(0), "GET", 404, Duration::from_millis(3));
        m.observe(Some(0), "HEAD", 204, Duration::from_millis(1));
        m.observe(None, "get", 404, Duration::from_millis(1));
        m.rate_limited("daemon");
        let snap = Snapshot {
            tasks_by_status: vec![(TaskStatus::Pending, 4)],
            devices_online: 2,
            database_bytes: 4096,
            wal_bytes: 0,
            email_outbox: vec![("sent".into(), 3)],
            email_sends: vec![("resend", crate::state::mail::Outcome::Retry, 2)],
            inbound_signatures: 5,
        };
        let text = m.render(&snap, 1, 2);
        for want in [
            "ccjk_http_requests_total{route=\"/v1/tasks/{id}\",method=\"GET\",status=\"4xx\"} 1",
            "ccjk_http_request_duration_seconds_bucket{route=\"/v1/tasks/{id}\",method=\"GET\",status=\"4xx\",le=\"0.005\"} 1",
            "ccjk_rate_limited_total{class=\"daemon\"} 1",
            "ccjk_http_requests_total{route=\"/v1/tasks/{id}\",method=\"GET\",status=\"2xx\"} 1",
            "ccjk_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"4xx\"} 1",
            "ccjk_tasks{status=\"pending\"} 4",
            "ccjk_tasks{status=\"timeout\"} 0",
            "ccjk_queue_depth 4",
            "ccjk_parked_polls 1",
            "ccjk_event_streams 2",
            "# TYPE ccjk_password_hashes_total counter",
            "# TYPE ccjk_writer_commit_seconds histogram",
            "ccjk_email_outbox{status=\"sent\"} 3",
            "ccjk_email_outbox{status=\"unsent\"} 0",
            "ccjk_email_sends_total{provider=\"resend\",outcome=\"retry\"} 2",
            "ccjk_inbound_signatures_total 5",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
    }
}
