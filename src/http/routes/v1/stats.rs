//! `/v1/stats/*` handlers (README "Backups, logs and statistics"): a user's summary and one
//! device's, over `?period=24h|7d|30d|90d` (default 7d). The definitions are in `domain::stats`.

use crate::domain::stats::{self, DeviceSummary, Period, Summary};
use crate::error::ApiResult;
use crate::http::route::{Call, Query};
use schemars::JsonSchema;
use serde::Deserialize;

/// `?period=`.
#[derive(Deserialize, JsonSchema, Default)]
pub struct PeriodQuery {
    /// `24h`, `7d` (default), `30d` or `90d`.
    pub period: Option<String>,
}

/// `GET /v1/stats/summary?period=`.
pub fn summary(call: &Call, Query(q): Query<PeriodQuery>) -> ApiResult<Summary> {
    let p = Period::parse(q.period.as_deref())?;
    stats::summary(&call.cx, call.user()?.user_id(), p)
}

/// `GET /v1/stats/device/{id}?period=`.
pub fn device(call: &Call, Query(q): Query<PeriodQuery>) -> ApiResult<DeviceSummary> {
    let p = Period::parse(q.period.as_deref())?;
    stats::device(&call.cx, call.user()?.user_id(), call.param("id"), p)
}
