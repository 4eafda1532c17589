//! The HTTP side (docs/architecture.md "Requests"): the route tables, the families'
//! envelopes, the OpenAPI document, the server's sockets and threads, long-polls and the
//! hashing pool. This module itself owns the request as routes see it and the reply they
//! produce.
//!
//! `Req` is an owned copy of what a route needs (method, decoded path segments, query, the
//! headers, the body already read under its cap, client IP, request id, the matched route and
//! its path parameters), so a request can be handed to another thread (the hashing pool, the
//! long-poll registry) without tiny_http. `Reply` is status + headers + bytes. JSON bodies are
//! checked here: content type (415), nesting depth (400 past 32 levels), syntax (400) and shape
//! (422). No business rules.

pub mod app;
pub mod cookie;
pub mod events;
pub mod family;
pub mod hashpool;
pub mod longpoll;
pub mod metrics;
pub mod multipart;
pub mod net;
pub mod openapi;
pub mod ratelimit;
pub mod route;
pub mod routes;
pub mod server;
pub mod views;

use crate::error::{ApiError, ApiResult, Code};
use serde::de::DeserializeOwned;

/// Deepest JSON nesting accepted (docs/limits.md).
pub const MAX_JSON_DEPTH: usize = 32;

/// An HTTP request with its body read.
#[derive(Clone, Debug)]
pub struct Req {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path without the query string, as sent.
    pub path: String,
    /// Percent-decoded, non-empty path segments.
    pub segments: Vec<String>,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// The query string as sent (without `?`), for typed parsing.
    pub raw_query: String,
    /// The headers the server reads (`READ_HEADERS`, names lowercase); others are not copied.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Client IP (`X-Forwarded-For`'s last hop behind a trusted proxy), or `unix`.
    pub ip: String,
    /// Echoed in `X-Request-Id` and in the access log.
    pub request_id: String,
    /// The matched route-table entry (an index into the table), if any.
    pub route: Option<usize>,
    /// Path parameters of the matched route, by name.
    pub params: Vec<(&'static str, String)>,
}

/// The request headers any route or the auth layer reads. Only these are copied out of
/// tiny_http's request: a daemon's heartbeat carries several more (Host, Accept, ...), and
/// copying every header cost two allocations each on the hot path.
pub const READ_HEADERS: [&str; 16] = [
    "authorization",
    "content-type",
    "cookie",
    "idempotency-key",
    "if-match",
    "if-none-match",
    "last-event-id",
    "user-agent",
    "x-csrf-token",
    "x-device-id",
    "x-device-key",
    "x-device-token",
    "x-email-signature",
    "x-email-timestamp",
    "x-session-token",
    "x-site-key",
];

impl Req {
    /// Builds a request from its parts; `url` is the request target (`/path?query`).
    pub fn new(
        method: &str,
        url: &str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    ) -> Req {
        let (path, query_str) = url.split_once('?').unwrap_or((url, ""));
        let segments = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let query = form_urlencoded::parse(query_str.as_bytes())
            .into_owned()
            .collect();
        Req {
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
            segments,
            query,
            raw_query: query_str.to_string(),
            headers,
            body,
            ip: String::new(),
            request_id: String::new(),
            route: None,
            params: Vec::new(),
        }
    }

    /// The first value of a header (name in any case). Only `READ_HEADERS` are kept; asking for
    /// another is a bug that debug builds (the tests) catch.
    pub fn header(&self, name: &str) -> Option<&str> {
        debug_assert!(
            READ_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)),
            "add {name} to READ_HEADERS"
        );
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Path segments as `&str`.
    pub fn segs(&self) -> Vec<&str> {
        self.segments.iter().map(String::as_str).collect()
    }

    /// A path parameter of the matched route (`""` if the route has none of that name).
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(k, _)| *k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The query string parsed into `T`. Errors: 400 naming the bad parameter.
    pub fn typed_query<T: DeserializeOwned>(&self) -> ApiResult<T> {
        serde_urlencoded::from_str(&self.raw_query)
            .map_err(|e| ApiError::bad_request(format!("Invalid query: {e}")))
    }

    /// Whether the body is empty or whitespace.
    pub fn body_is_empty(&self) -> bool {
        self.body.iter().all(u8::is_ascii_whitespace)
    }

    /// The token of `Authorization: Bearer <token>`.
    pub fn bearer(&self) -> Option<&str> {
        let v = self.header("authorization")?;
        let (scheme, token) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }

    /// Whether the body is declared as JSON (`application/json` or `…+json`).
    pub fn is_json(&self) -> bool {
        let ct = self.header("content-type").unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        mime.eq_ignore_ascii_case("application/json")
            || mime.to_ascii_lowercase().ends_with("+json")
    }

    /// Parses the body as JSON into `T`. Errors: 415 if the body is not declared as JSON,
    /// 400 for bad syntax or nesting past 32 levels, 422 for a body of the wrong shape.
    pub fn json<T: DeserializeOwned>(&self) -> ApiResult<T> {
        if !self.is_json() {
            return Err(ApiError::unsupported_media_type());
        }
        parse_json(&self.body)
    }

    /// Like `json`, but an empty body (with or without a content type) means `T::default()`.
    pub fn json_or_default<T: DeserializeOwned + Default>(&self) -> ApiResult<T> {
        if self.body_is_empty() {
            return Ok(T::default());
        }
        self.json()
    }

    /// Reads the body as JSON whatever the content type says; empty means `T::default()`
    /// (Control's daemon sends results with varying content types and never retries them).
    pub fn json_lenient<T: DeserializeOwned + Default>(&self) -> ApiResult<T> {
        if self.body_is_empty() {
            return Ok(T::default());
        }
        parse_json(&self.body)
    }
}

/// Parses JSON bytes with the depth limit, mapping errors to 400/422.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    if json_depth(body) > MAX_JSON_DEPTH {
        return Err(ApiError::bad_request(format!(
            "JSON nested deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::new(Code::ValidationFailed, format!("Invalid request body: {e}"))
        }
        _ => ApiError::bad_request(format!("Invalid JSON: {e}")),
    })
}

/// Deepest nesting of arrays and objects in `body`, ignoring brackets inside strings.
pub fn json_depth(body: &[u8]) -> usize {
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &b in body {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// What a route produced: status, content type, extra headers and body bytes.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// The error code, for the access log.
    pub error_code: Option<Code>,
}

impl Reply {
    /// A JSON reply.
    pub fn json(status: u16, v: &impl serde::Serialize) -> Reply {
        let mut body = Vec::with_capacity(256);
        if serde_json::to_writer(&mut body, v).is_err() {
            body = b"{}".to_vec();
        }
        Reply {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body,
            error_code: None,
        }
    }

    /// A plain-text reply.
    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: body.into(),
            error_code: None,
        }
    }

    /// Adds the headers an error implies (`Retry-After`) and records its code.
    pub fn for_error(mut self, e: &ApiError) -> Reply {
        self.error_code = Some(e.code);
        if let Some(s) = e.retry_after {
            self.headers.push(("Retry-After", s.to_string()));
        }
        self
    }
}

/// Replaces the values of credential-bearing query parameters, and path segments that are
/// credentials (`DELETE /apps/tokens/cca_…`), for the access log: tokens and keys, and every
/// vault lookup value (`prop.<name>`, which may be a secret looked up through the blind index).
/// Names are compared after percent-decoding (`device%5Fkey` is `device_key`).
pub fn redact_url(url: &str) -> String {
    // Most URLs have nothing to redact: no query, nothing percent-encoded, and no segment that
    // could start with a credential prefix (all begin with `cc`).
    if !url.contains(['?', '%']) && !url.contains("/cc") {
        return url.to_string();
    }
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    use crate::crypto::{
        API_KEY_PREFIX, APP_PREFIX, DEVICE_PREFIX, REFRESH_PREFIX, SESSION_PREFIX,
    };
    let prefixes = [
        APP_PREFIX,
        SESSION_PREFIX,
        REFRESH_PREFIX,
        API_KEY_PREFIX,
        DEVICE_PREFIX,
    ];
    let path = path
        .split('/')
        .map(|seg| {
            let decoded = percent_encoding::percent_decode_str(seg).decode_utf8_lossy();
            if prefixes.iter().any(|p| decoded.starts_with(p)) {
                "REDACTED"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    if query.is_empty() && !url.contains('?') {
        return path;
    }
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| {
            let key = kv.split('=').next().unwrap_or("");
            let lower = form_urlencoded::parse(key.as_bytes())
                .next()
                .map(|(k, _)| k.to_ascii_lowercase())
                .unwrap_or_default();
            if [
                "token",
                "device_key",
                "key",
                "refresh_token",
                "password",
                "api_key",
            ]
            .contains(&lower.as_str())
                || lower.starts_with("prop.")
            {
                format!("{key}=REDACTED")
            } else {
                kv.to_string()
            }
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_query_are_decoded() {
        let r = Req::new("get", "/v1/tasks/a%2Fb/?status=done&x=1+2", vec![], vec![]);
        assert_eq!(r.segs(), vec!["v1", "tasks", "a/b"]);
        assert_eq!(r.query("status"), Some("done"));
        assert_eq!(r.query("x"), Some("1 2"));
        assert_eq!(r.method, "GET");
    }

    #[test]
    fn depth_ignores_strings() {
        assert_eq!(json_depth(br#"{"a":[1,{"b":"[[[[\"]]"}]}"#), 3);
        let deep = format!("{}{}", "[".repeat(33), "]".repeat(33));
        let e = parse_json::<serde_json::Value>(deep.as_bytes()).expect_err("too deep");
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn content_type_and_shape_errors() {
        let h = |ct: &str| vec![("content-type", ct.to_string())];
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct B {
            email: String,
        }
        let r = Req::new("POST", "/", h("text/plain"), b"{}".to_vec());
        assert_eq!(r.json::<B>().expect_err("415").status(), 415);
        let r = Req::new(
            "POST",
            "/",
            h("application/json; charset=utf-8"),
            b"{".to_vec(),
        );
        assert_eq!(r.json::<B>().expect_err("400").status(), 400);
        let r = Req::new("POST", "/", h("application/json"), b"{}".to_vec());
        assert_eq!(r.json::<B>().expect_err("422").status(), 422);
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("/auth/verify?device_key=ccjk_x&a=1&token=cca_y"),
            "/auth/verify?device_key=REDACTED&a=1&token=REDACTED"
        );
        assert_eq!(redact_url("/health"), "/health");
        assert_eq!(
            redact_url("/apps/tokens/cca_0123?x=1"),
            "/apps/tokens/REDACTED?x=1"
        );
        assert_eq!(
            redact_url("/apps/tokens/%63ca_0123"),
            "/apps/tokens/REDACTED"
        );
        assert_eq!(redact_url("/kv/account"), "/kv/account");
        // Without a query or an escape, a credential segment is still found.
        assert_eq!(redact_url("/apps/tokens/cca_0123"), "/apps/tokens/REDACTED");
        assert_eq!(redact_url("/v1/devices/ccjk_1/x"), "/v1/devices/REDACTED/x");
        assert_eq!(
            redact_url("/auth/verify?device%5Fkey=ccjk_x&Token=y"),
            "/auth/verify?device%5Fkey=REDACTED&Token=REDACTED"
        );
        assert_eq!(
            redact_url("/v1/accounts?site=a&prop.apiKey=sk-1&prop%2Etoken=t"),
            "/v1/accounts?site=a&prop.apiKey=REDACTED&prop%2Etoken=REDACTED"
        );
    }
}
