//! Lite — the unprefixed routes of `000_*` (SPEC §6.2), plus `GET /health`.
//!
//! Envelope `{ok, data, error}`; failures carry the message in `error` and the code in `code`.
//! Lite's clients authenticate with `X-Device-Key`; a session token or API key is accepted
//! where the seed shows one.

use super::{Family, Outcome, not_found_route};
use crate::api::{auth as accounts, health};
use crate::app::Ctx;
use crate::auth::{Caller, resolve_token};
use crate::db::users;
use crate::error::{ApiError, ApiResult};
use crate::http::Reply;
use serde_json::{Value, json};

const F: Family = Family::Lite;

/// The Lite route table.
pub fn dispatch(cx: &Ctx) -> Outcome {
    let req = cx.req;
    let r = match (req.method.as_str(), req.segs().as_slice()) {
        ("GET", ["health"]) => return health_reply(cx),
        ("GET", ["metrics"]) => return metrics_reply(cx),
        ("POST", ["auth"]) => register_or_login(cx),
        ("GET", ["auth", "verify"]) => verify(cx),
        _ => Err(not_found_route()),
    };
    F.render(req, 200, r)
}

/// `GET /health`: a flat `{status, database, version}`; 503 when the database is not answering.
fn health_reply(cx: &Ctx) -> Outcome {
    Outcome::Reply(match health::check(cx) {
        Ok(v) => Reply::json(200, &v),
        Err(e) => Reply::json(e.status, &json!({"status": "unavailable", "error": e.message})).for_error(&e),
    })
}

/// `GET /metrics`: Prometheus text, or a Lite error.
fn metrics_reply(cx: &Ctx) -> Outcome {
    match health::metrics(cx) {
        Ok(text) => Outcome::Reply(Reply { content_type: "text/plain; version=0.0.4", ..Reply::text(200, text) }),
        Err(e) => F.render(cx.req, 200, Err(e)),
    }
}

/// `POST /auth` {email, password}: registers the email if it is new, else logs in; either way
/// returns the key of the user's primary device, the same key every time.
fn register_or_login(cx: &Ctx) -> ApiResult<Value> {
    let b: accounts::RegisterInput = cx.req.json()?;
    let email = b.email.trim();
    let known = users::find_for_login(cx.db, email)?.is_some();
    let user_id = if known || !cx.cfg().signups_open {
        accounts::login(cx, email, &b.password)?.id
    } else {
        match accounts::register(cx, &b, None) {
            Ok((u, _)) => u.id,
            // Registered by a concurrent request a moment ago: log in instead.
            Err(e) if e.code == "EMAIL_TAKEN" => accounts::login(cx, email, &b.password)?.id,
            Err(e) => return Err(e),
        }
    };
    let key = accounts::primary_device_key(cx, user_id)?;
    Ok(json!({"device_key": key, "user_id": user_id}))
}

/// `GET /auth/verify?device_key=` (or `X-Device-Key`): `{valid, user_id}`.
fn verify(cx: &Ctx) -> ApiResult<Value> {
    let token = cx
        .req
        .query("device_key")
        .map(str::to_string)
        .or_else(|| crate::auth::credential(cx))
        .ok_or_else(|| ApiError::unauthorized("Missing device_key"))?;
    let user_id = match resolve_token(cx, &token)? {
        Caller::Device(d) => d.user_id,
        Caller::User(u) => u.user_id,
    };
    Ok(json!({"valid": true, "user_id": user_id}))
}
