//! The route tables, one per API family (SPEC §6), and the envelope each family renders.
//!
//! `handle` picks the family from the first path segments; each family's `dispatch` is a plain
//! `match` on method and path segments that shows which caller a route needs and calls the
//! shared domain functions in `api/`. Families differ only in paths, field names and
//! envelopes, never in rules. Per-route body caps and the list of routes that hash passwords
//! live here too, because the server needs them before it runs a route.

pub mod lite;
pub mod sessions;
pub mod v1;

use crate::app::Ctx;
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::http::{Reply, Req};
use crate::time;
use serde_json::{Map, Value, json};

/// What a route produced.
pub enum Outcome {
    /// Answer now.
    Reply(Reply),
}

/// The API families and their envelopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `/v1`: `{success, data, error: {code, message, details}, meta: {request_id, timestamp}}`.
    V1,
    /// Lite (`000_*`): `{ok, data, error: "message", code}`.
    Lite,
    /// Sessions (`003_*`): `{success, message?, ...fields}`; failures `{success: false, error}`.
    Sessions,
    /// Control (the CCJK daemon): `{success, data, error}` in camelCase.
    Control,
}

/// The family a request belongs to, from its path.
pub fn family_of(req: &Req) -> Family {
    match req.segs().as_slice() {
        ["v1", ..] => Family::V1,
        ["api", "control", ..] => Family::Control,
        ["api", ..] => Family::Sessions,
        _ => Family::Lite,
    }
}

impl Family {
    /// A success reply with `data` in this family's envelope. For Sessions, `data` must be an
    /// object; its fields go to the top level beside `success`.
    pub fn ok(self, req: &Req, status: u16, data: Value) -> Reply {
        let body = match self {
            Family::V1 => json!({"success": true, "data": data, "error": null, "meta": meta(req)}),
            Family::Lite => json!({"ok": true, "data": data, "error": null}),
            Family::Control => json!({"success": true, "data": data, "error": null}),
            Family::Sessions => {
                let mut m = Map::new();
                m.insert("success".into(), Value::Bool(true));
                if let Value::Object(fields) = data {
                    m.extend(fields);
                }
                Value::Object(m)
            }
        };
        Reply::json(status, &body)
    }

    /// An error reply in this family's envelope; internal details go to the log only.
    pub fn err(self, req: &Req, e: &ApiError) -> Reply {
        if let Some(detail) = &e.log {
            log::error!("rid={} {} {}: {}", req.request_id, req.method, req.path, detail);
        }
        let body = match self {
            Family::V1 => json!({
                "success": false, "data": null,
                "error": {"code": e.code, "message": e.message, "details": e.details},
                "meta": meta(req),
            }),
            Family::Lite => json!({"ok": false, "data": null, "error": e.message, "code": e.code}),
            Family::Control => json!({"success": false, "data": null, "error": e.message}),
            Family::Sessions => json!({"success": false, "error": e.message}),
        };
        Reply::json(e.status, &body).for_error(e)
    }

    /// Renders a route result: `ok_status` on success, the error's status otherwise.
    pub fn render(self, req: &Req, ok_status: u16, r: ApiResult<Value>) -> Outcome {
        Outcome::Reply(match r {
            Ok(v) => self.ok(req, ok_status, v),
            Err(e) => self.err(req, &e),
        })
    }
}

fn meta(req: &Req) -> Value {
    json!({"request_id": req.request_id, "timestamp": time::now()})
}

/// An error reply in the request's family (used by the server for 413, 429, 503, panics).
pub fn error_reply(req: &Req, e: &ApiError) -> Reply {
    family_of(req).err(req, e)
}

/// Every route, by family.
pub fn handle(cx: &Ctx) -> Outcome {
    let req = cx.req;
    match family_of(req) {
        Family::V1 => v1::dispatch(cx),
        Family::Sessions => sessions::dispatch(cx),
        Family::Lite => lite::dispatch(cx),
        Family::Control => Family::Control.render(req, 200, Err(not_found_route())),
    }
}

/// The 404 for a path no table knows.
pub fn not_found_route() -> ApiError {
    ApiError::not_found("Route")
}

/// The body cap of a request's route (SPEC §3): `CCJK_MAX_BODY` for JSON routes.
pub fn body_cap(_req: &Req, cfg: &Config) -> usize {
    cfg.max_body
}

/// Routes that compute password hashes and therefore run on the hashing pool (SPEC §8.1).
pub fn needs_hashing(req: &Req) -> bool {
    req.method == "POST"
        && matches!(
            req.segs().as_slice(),
            ["auth"]
                | ["v1", "auth", "register" | "login" | "password"]
                | ["api", "auth", "register" | "login"]
        )
}
