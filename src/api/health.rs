//! `GET /health` (is the database answering?) and `GET /metrics` (Prometheus text), SPEC §6.1
//! meta rows and §9.

use crate::app::Ctx;
use crate::db::{devices, tasks};
use crate::error::{ApiError, ApiResult};
use serde_json::{Value, json};

/// Runs a trivial query on this thread's reader and asks the writer to commit an empty job,
/// so a stuck writer shows as unhealthy. Errors: 503.
pub fn check(cx: &Ctx) -> ApiResult<Value> {
    let one: i64 = cx
        .db
        .query_row("SELECT count(*) FROM plans", [], |r| r.get(0))
        .map_err(|e| ApiError::unavailable("Database unavailable", 5).with_log(e.to_string()))?;
    cx.write(|_| Ok(()))?;
    Ok(
        json!({ "status": "ok", "database": "ok", "plans": one, "version": env!("CARGO_PKG_VERSION") }),
    )
}

/// `GET /metrics`: Prometheus text. Only from loopback or for an admin (SPEC §6.1).
/// Errors: 403 for anyone else.
pub fn metrics(cx: &Ctx) -> ApiResult<String> {
    let loopback = cx
        .req
        .ip
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
        || cx.req.ip == "unix";
    if !loopback {
        let admin =
            matches!(crate::auth::resolve(cx), Ok(crate::auth::Caller::User(u)) if u.user.is_admin);
        if !admin {
            return Err(ApiError::forbidden(
                "Metrics are for loopback clients and admins",
            ));
        }
    }
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
    let size = crate::db::file_bytes(cx.db)?;
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
        cx.app.park.len() as u64,
    );
    let online = devices::count_online(cx.db)?;
    gauge(
        "ccjk_devices_online",
        "devices not offline",
        "gauge",
        online.max(0) as u64,
    );
    out.push_str("# HELP ccjk_tasks tasks by status\n# TYPE ccjk_tasks gauge\n");
    for (status, n) in tasks::count_by_status(cx.db)? {
        out.push_str(&format!("ccjk_tasks{{status=\"{status}\"}} {n}\n"));
    }
    Ok(out)
}
