//! The API families and their envelopes (docs/families.md).
//!
//! A family is chosen by an explicit path prefix, so an unknown path answers in the envelope
//! of the family its prefix names. Each family renders success and failure its own way; the
//! HTTP status is always the meaningful one. Success envelopes are serialized straight from
//! the route's typed data (no intermediate JSON tree on the daemon hot path). The matching
//! JSON Schemas for the OpenAPI document live here too, so the document and the bytes on the
//! wire come from one place.

use crate::error::ApiError;
use crate::http::{Reply, Req};
use crate::time;
use serde::Serialize;
use serde_json::{Value, json};

/// The API families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// `/v1`: `{success, data, error: {code, message, details}, meta: {request_id, timestamp}}`.
    V1,
    /// Lite (unprefixed): `{ok, data, error: "message", code}`.
    Lite,
    /// Sessions (`/api/auth`, `/api/sessions`): the seed's flat `{success, message?, ...}`;
    /// failures `{success: false, error}`.
    Sessions,
    /// Control (`/api/control`, the CCJK daemon): `{success, data, error}` in camelCase.
    Control,
    /// KV (`/apps`, `/kv`): the seed's flat objects; failures `{error, code}`.
    Kv,
}

impl Family {
    /// Every family, for the OpenAPI document.
    pub const ALL: [Family; 5] = [
        Family::V1,
        Family::Lite,
        Family::Sessions,
        Family::Control,
        Family::Kv,
    ];

    /// The family a path belongs to, from its first segments. Unprefixed paths are Lite's.
    pub fn of(segs: &[String]) -> Family {
        match (
            segs.first().map(String::as_str),
            segs.get(1).map(String::as_str),
        ) {
            (Some("v1"), _) => Family::V1,
            (Some("api"), Some("control")) => Family::Control,
            (Some("api"), _) => Family::Sessions,
            (Some("apps" | "kv"), _) => Family::Kv,
            _ => Family::Lite,
        }
    }

    /// The name used in the OpenAPI document's tags.
    pub fn tag(self) -> &'static str {
        match self {
            Family::V1 => "v1",
            Family::Lite => "lite",
            Family::Sessions => "sessions",
            Family::Control => "control",
            Family::Kv => "kv",
        }
    }

    /// A success reply with `data` in this family's envelope. For Sessions and KV, `data`
    /// must serialize as an object; its fields go to the top level (beside `success` for
    /// Sessions).
    pub fn ok<T: Serialize>(self, req: &Req, status: u16, data: &T) -> Reply {
        #[derive(Serialize)]
        struct Meta<'a> {
            request_id: &'a str,
            timestamp: String,
        }
        #[derive(Serialize)]
        struct Success<'a, T> {
            success: bool,
            data: &'a T,
            error: (),
            #[serde(skip_serializing_if = "Option::is_none")]
            meta: Option<Meta<'a>>,
        }
        #[derive(Serialize)]
        struct Lite<'a, T> {
            ok: bool,
            data: &'a T,
            error: (),
        }
        #[derive(Serialize)]
        struct Flat<'a, T> {
            success: bool,
            #[serde(flatten)]
            data: &'a T,
        }
        let success = |meta| Success {
            success: true,
            data,
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
                    data,
                    error: (),
                },
            ),
            Family::Sessions => Reply::json(
                status,
                &Flat {
                    success: true,
                    data,
                },
            ),
            Family::Kv => Reply::json(status, data),
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
        let code = e.code.as_str();
        let body = match self {
            Family::V1 => json!({
                "success": false, "data": null,
                "error": {"code": code, "message": e.message, "details": e.details},
                "meta": {"request_id": req.request_id, "timestamp": time::now()},
            }),
            Family::Lite => json!({"ok": false, "data": null, "error": e.message, "code": code}),
            Family::Control => json!({"success": false, "data": null, "error": e.message}),
            Family::Sessions => json!({"success": false, "error": e.message}),
            Family::Kv => json!({"error": e.message, "code": code}),
        };
        Reply::json(e.status(), &body).for_error(e)
    }

    /// The JSON Schema of a success envelope around `data` (a schema or a `$ref`).
    pub fn ok_schema(self, data: Value) -> Value {
        let obj = |props: Value, required: &[&str]| json!({"type": "object", "properties": props, "required": required});
        match self {
            Family::V1 => obj(
                json!({
                    "success": {"const": true},
                    "data": data,
                    "error": {"type": "null"},
                    "meta": {"$ref": "#/components/schemas/Meta"},
                }),
                &["success", "data", "error", "meta"],
            ),
            Family::Control => obj(
                json!({"success": {"const": true}, "data": data, "error": {"type": "null"}}),
                &["success", "data", "error"],
            ),
            Family::Lite => obj(
                json!({"ok": {"const": true}, "data": data, "error": {"type": "null"}}),
                &["ok", "data", "error"],
            ),
            Family::Sessions => json!({"allOf": [
                obj(json!({"success": {"const": true}}), &["success"]),
                data,
            ]}),
            Family::Kv => data,
        }
    }

    /// The name of this family's error schema in `components.schemas`.
    pub fn error_schema_name(self) -> &'static str {
        match self {
            Family::V1 => "V1Error",
            Family::Lite => "LiteError",
            Family::Sessions => "SessionsError",
            Family::Control => "ControlError",
            Family::Kv => "KvError",
        }
    }

    /// The JSON Schema of this family's error body, with `codes` the catalog's codes.
    pub fn error_schema(self, codes: &[&str]) -> Value {
        let code = json!({"type": "string", "enum": codes});
        match self {
            Family::V1 => json!({
                "type": "object",
                "properties": {
                    "success": {"const": false},
                    "data": {"type": "null"},
                    "error": {
                        "type": "object",
                        "properties": {
                            "code": code,
                            "message": {"type": "string"},
                            "details": {"type": "object"},
                        },
                        "required": ["code", "message", "details"],
                    },
                    "meta": {"$ref": "#/components/schemas/Meta"},
                },
                "required": ["success", "data", "error", "meta"],
            }),
            Family::Lite => json!({
                "type": "object",
                "properties": {
                    "ok": {"const": false},
                    "data": {"type": "null"},
                    "error": {"type": "string"},
                    "code": code,
                },
                "required": ["ok", "data", "error", "code"],
            }),
            Family::Control => json!({
                "type": "object",
                "properties": {
                    "success": {"const": false},
                    "data": {"type": "null"},
                    "error": {"type": "string"},
                },
                "required": ["success", "data", "error"],
            }),
            Family::Sessions => json!({
                "type": "object",
                "properties": {
                    "success": {"const": false},
                    "error": {"type": "string"},
                    "valid": {"const": false},
                },
                "required": ["success", "error"],
            }),
            Family::Kv => json!({
                "type": "object",
                "properties": {"error": {"type": "string"}, "code": code},
                "required": ["error", "code"],
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        p.split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn families_by_prefix() {
        assert_eq!(Family::of(&segs("/v1/nope")), Family::V1);
        assert_eq!(Family::of(&segs("/api/control/x")), Family::Control);
        assert_eq!(Family::of(&segs("/api/sessions")), Family::Sessions);
        assert_eq!(Family::of(&segs("/apps/1")), Family::Kv);
        assert_eq!(Family::of(&segs("/kv/key")), Family::Kv);
        assert_eq!(Family::of(&segs("/tasks")), Family::Lite);
        assert_eq!(Family::of(&segs("/")), Family::Lite);
    }
}
