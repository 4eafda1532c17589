//! `GET /health`: is the database answering? (SPEC §6.1 meta, §9.)

use crate::app::Ctx;
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
    Ok(json!({ "status": "ok", "database": "ok", "plans": one, "version": env!("CARGO_PKG_VERSION") }))
}
