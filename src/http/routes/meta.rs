//! Routes about the server itself: `GET /health`, `GET /health/live`, `GET /metrics` and
//! `GET /v1/openapi.json` (README "Operations").

use crate::domain::health::{self, Health};
use crate::error::ApiResult;
use crate::http::Reply;
use crate::http::openapi;
use crate::http::route::{Auth, Call, Out, Route, get};

/// The meta routes.
#[rustfmt::skip]
pub fn routes() -> Vec<Route> {
    vec![
        get("/health").bare()
            .to("Is the database answering (a read and an empty write)", health),
        get("/health/live").bare()
            .to("Is the process serving (no database; for load balancers and the watchdog)", live),
        get("/metrics").auth(Auth::LoopbackOrAdmin).raw(crate::http::metrics::CONTENT_TYPE)
            .to_out("Prometheus metrics (loopback clients and admins)", metrics),
        get("/v1/openapi.json").raw("application/json")
            .to_out("This document: OpenAPI 3.1 for every family", document),
    ]
}

/// `GET /health`: a flat `{status, database, version}`; 503 when the database is not answering.
fn health(call: &Call, _: ()) -> ApiResult<Health> {
    health::check(&call.cx)
}

/// `{"status": "live"}`.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Live {
    pub status: &'static str,
}

/// `GET /health/live`. A plain `GET` without a body is answered before the route table
/// (`http::server`, no database and no access-log line); this entry documents it and answers
/// the rest (a query string, `HEAD`).
fn live(_: &Call, _: ()) -> ApiResult<Live> {
    Ok(Live { status: "live" })
}

/// `GET /metrics`: the Prometheus text format (README "Metrics").
fn metrics(call: &Call, _: ()) -> ApiResult<Out<()>> {
    let snap = health::snapshot(&call.cx)?;
    let app = &call.app;
    let text = app
        .metrics
        .render(&snap, app.polls.len(), app.events.open_count());
    Ok(Out::Reply(Reply {
        content_type: crate::http::metrics::CONTENT_TYPE,
        ..Reply::text(200, text)
    }))
}

/// `GET /v1/openapi.json`.
fn document(call: &Call, _: ()) -> ApiResult<Out<()>> {
    Ok(Out::Reply(Reply::json(
        200,
        &openapi::document(&call.app.table),
    )))
}
