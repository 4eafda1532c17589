//! The route tables, one per API family (SPEC §6), and the envelope each family renders.
//!
//! `handle` picks the family from the first path segments; each family's `dispatch` is a plain
//! `match` on method and path segments that shows which caller a route needs and calls the
//! shared domain functions in `api/`. Families differ only in paths, field names and
//! envelopes, never in rules. Per-route body caps and the list of routes that hash passwords
//! live here too, because the server needs them before it runs a route.

pub mod control;
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
    /// Park the request (a long-poll) until work arrives or its deadline.
    Park(crate::park::Spec),
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
        // Envelopes are serialized straight from these structs: no second JSON tree is built
        // around `data` on every reply (measured on the daemon hot path). `/v1` and Control
        // share a shape; only `/v1` adds `meta`.
        #[derive(serde::Serialize)]
        struct Meta<'a> {
            request_id: &'a str,
            timestamp: String,
        }
        #[derive(serde::Serialize)]
        struct Success<'a> {
            success: bool,
            data: &'a Value,
            error: (),
            #[serde(skip_serializing_if = "Option::is_none")]
            meta: Option<Meta<'a>>,
        }
        #[derive(serde::Serialize)]
        struct Lite<'a> {
            ok: bool,
            data: &'a Value,
            error: (),
        }
        let success = |meta| Success {
            success: true,
            data: &data,
            error: (),
            meta,
        };
        match self {
            Family::V1 => Reply::json(
                status,
                &success(Some(Meta {
                    request_id: &req.request_id,
                    timestamp: time::now(),
                })),
            ),
            Family::Control => Reply::json(status, &success(None)),
            Family::Lite => Reply::json(
                status,
                &Lite {
                    ok: true,
                    data: &data,
                    error: (),
                },
            ),
            Family::Sessions => {
                let mut m = Map::new();
                m.insert("success".into(), Value::Bool(true));
                if let Value::Object(fields) = data {
                    m.extend(fields);
                }
                Reply::json(status, &Value::Object(m))
            }
        }
    }

    /// An error reply in this family's envelope; internal details go to the log only.
    pub fn err(self, req: &Req, e: &ApiError) -> Reply {
        if let Some(detail) = &e.log {
            log::error!(
                "rid={} {} {}: {}",
                req.request_id,
                req.method,
                req.path,
                detail
            );
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
        Family::Control => control::dispatch(cx),
    }
}

/// The 404 for a path no table knows.
pub fn not_found_route() -> ApiError {
    ApiError::not_found("Route")
}

/// The body cap of a request's route (SPEC §3): `CCJK_MAX_BODY` for JSON routes; daemon
/// results and progress may carry up to four times `CCJK_MAX_OUTPUT` per stream, which is then
/// truncated rather than refused (a refused result would leave the task to run again after its
/// lease, and the Control daemon never retries a result).
pub fn body_cap(req: &Req, cfg: &Config) -> usize {
    let output_route = req.method == "POST"
        && matches!(
            req.segs().as_slice(),
            ["v1", "daemon", "tasks", _, "result" | "progress"]
                | ["daemon", "tasks", _, "result"]
                | ["api", "control", "commands", _, "result"]
        );
    if output_route {
        cfg.max_body.max(8 * cfg.max_output + 64 * 1024)
    } else {
        cfg.max_body
    }
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

/// Renders claimed tasks and cancels to deliver, in a family's shape.
pub type RenderPoll = fn(&Ctx, &[crate::db::tasks::Task], &[String]) -> Reply;

/// A daemon poll shared by the families: claims now; with nothing to claim and `wait_secs > 0`
/// parks the request (SPEC §7.1 long-poll) until work for the device arrives, a cancel for it
/// is requested, or the wait runs out (then an empty list). On every wake the credential is
/// checked again, so a key rotated or a device deleted meanwhile gets 401, never work.
pub fn poll(
    cx: &Ctx,
    dev: &crate::auth::DeviceCaller,
    limit: i64,
    wait_secs: u64,
    render: RenderPoll,
) -> Outcome {
    use crate::api::daemon;
    let fam = family_of(cx.req);
    match daemon::claim(cx, dev, limit) {
        Err(e) => Outcome::Reply(fam.err(cx.req, &e)),
        Ok(t) if !t.is_empty() || wait_secs == 0 => Outcome::Reply(render(cx, &t, &[])),
        Ok(_) => {
            let since = time::now();
            let device_id = dev.id;
            Outcome::Park(crate::park::Spec {
                device_id,
                user_id: dev.user_id,
                deadline: std::time::Instant::now() + std::time::Duration::from_secs(wait_secs),
                retry: Box::new(move |cx, last| {
                    let dev = match crate::auth::require_device(cx) {
                        Ok(d) if d.id == device_id => d,
                        Ok(_) => {
                            return Some(
                                fam.err(cx.req, &ApiError::unauthorized("Device key changed")),
                            );
                        }
                        Err(e) => return Some(fam.err(cx.req, &e)),
                    };
                    match daemon::claim(cx, &dev, limit) {
                        Err(e) => Some(fam.err(cx.req, &e)),
                        Ok(t) if !t.is_empty() => Some(render(cx, &t, &[])),
                        Ok(_) => match daemon::cancels_since(cx, &dev, &since) {
                            Err(e) => Some(fam.err(cx.req, &e)),
                            Ok(c) if !c.is_empty() || last => Some(render(cx, &[], &c)),
                            Ok(_) => None,
                        },
                    }
                }),
            })
        }
    }
}

/// `limit` for polls: default 10, 1..=50.
pub fn poll_limit(req: &Req) -> i64 {
    req.query("limit")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(10)
        .clamp(1, 50)
}

/// `wait` for polls, in seconds: 0..=60 (larger values are clamped). Errors: 400 if not a number.
pub fn poll_wait(req: &Req) -> ApiResult<u64> {
    match req.query("wait") {
        None | Some("") => Ok(0),
        Some(v) => v
            .parse::<u64>()
            .map(|w| w.min(60))
            .map_err(|_| ApiError::bad_request("wait must be seconds (0-60)")),
    }
}
