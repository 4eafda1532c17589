//! Is the server well (`GET /health`), and what an admin watches (`GET /metrics`, Prometheus
//! text; README "Operations").

use crate::db::{devices, outbox, tasks};
use crate::domain::Cx;
use crate::error::{ApiError, ApiResult};
use schemars::JsonSchema;
use serde::Serialize;

/// `GET /health`'s answer.
#[derive(Serialize, JsonSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
    /// `ok` when a read and an empty write both succeeded.
    pub database: &'static str,
    /// The server's version.
    pub version: &'static str,
}

/// Runs a trivial query on this thread's reader and asks the writer to commit an empty job,
/// so a stuck writer shows as unhealthy. Errors: 503.
pub fn check(cx: &Cx) -> ApiResult<Health> {
    cx.reader
        .query_row("SELECT count(*) FROM plans", [], |r| r.get::<_, i64>(0))
        .map_err(|e| ApiError::unavailable("Database unavailable", 5).with_log(e.to_string()))?;
    cx.write(|_| Ok(()))?;
    Ok(Health {
        status: "ok",
        database: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// The Prometheus exposition of what the domain knows, plus `parked_polls` from the HTTP side.
pub fn metrics(cx: &Cx, parked_polls: usize) -> ApiResult<String> {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, v: u64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        ));
    };
    gauge(
        "ccjk_password_hashes_total",
        "argon2id computations (hash and verify)",
        "counter",
        crate::password::computed(),
    );
    let size = crate::db::file_bytes(cx.reader)?;
    gauge(
        "ccjk_database_bytes",
        "size of the main database file",
        "gauge",
        size.max(0) as u64,
    );
    gauge(
        "ccjk_parked_polls",
        "long-polls waiting for work",
        "gauge",
        parked_polls as u64,
    );
    let online = devices::count_online(cx.reader)?;
    gauge(
        "ccjk_devices_online",
        "devices not offline",
        "gauge",
        online.max(0) as u64,
    );
    out.push_str("# HELP ccjk_tasks tasks by status\n# TYPE ccjk_tasks gauge\n");
    for (status, n) in tasks::count_by_status(cx.reader)? {
        out.push_str(&format!("ccjk_tasks{{status=\"{status}\"}} {n}\n"));
    }
    mail_metrics(cx, &mut out)?;
    Ok(out)
}

/// The outbox depth by status (every status, zeros too), the relay outcomes by provider, and
/// the webhook signatures computed.
fn mail_metrics(cx: &Cx, out: &mut String) -> ApiResult<()> {
    let counts = outbox::count_by_status(cx.reader)?;
    out.push_str("# HELP ccjk_email_outbox mails in the outbox by status\n");
    out.push_str("# TYPE ccjk_email_outbox gauge\n");
    for status in outbox::STATUSES {
        let n = counts
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n);
        out.push_str(&format!("ccjk_email_outbox{{status=\"{status}\"}} {n}\n"));
    }
    out.push_str(
        "# HELP ccjk_email_sends_total attempts to hand a mail to the relay, by outcome\n",
    );
    out.push_str("# TYPE ccjk_email_sends_total counter\n");
    for (provider, outcome, n) in cx.svc.mail.outcomes() {
        out.push_str(&format!(
            "ccjk_email_sends_total{{provider=\"{provider}\",outcome=\"{}\"}} {n}\n",
            outcome.name()
        ));
    }
    out.push_str(&format!(
        "# HELP ccjk_inbound_signatures_total HMACs computed for the inbound-mail webhook\n\
         # TYPE ccjk_inbound_signatures_total counter\nccjk_inbound_signatures_total {}\n",
        cx.svc.mail.signatures()
    ));
    Ok(())
}
