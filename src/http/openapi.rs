//! The OpenAPI 3.1 document of every route of every family, generated from the route table
//! and the Rust types of each route's input and answer (schemars). `GET /v1/openapi.json` and
//! `ccjk-cloud openapi` serve it; a test checks that every table entry is in it and validates
//! it against the official OpenAPI 3.1 schema. Nothing here is written by hand but the fixed
//! parts: the security schemes, the per-family error bodies, and the rules that map a route's
//! properties (credential kind, body, parameters) to the error statuses it documents.

use crate::error::Code;
use crate::http::family::Family;
use crate::http::route::{Auth, Route, Table};
use crate::http::views::Meta;
use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

/// The whole document.
pub fn document(table: &Table) -> Value {
    let mut generator = SchemaGenerator::new(
        SchemaSettings::draft2020_12().with(|s| s.definitions_path = "/components/schemas".into()),
    );
    generator.subschema_for::<Meta>();
    let mut paths: Map<String, Value> = Map::new();
    for r in table.routes() {
        let op = operation(r, &mut generator);
        let item = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        item[r.method.lower()] = op;
    }
    let mut schemas = generator.take_definitions(true);
    let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    let mut responses = Map::new();
    for f in Family::ALL {
        schemas.insert(f.error_schema_name().into(), f.error_schema(&codes));
        responses.insert(
            f.error_schema_name().into(),
            json!({
                "description": format!("An error in the {} family's envelope (see the README's error table)", f.tag()),
                "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{}", f.error_schema_name())}}},
            }),
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ccjk-cloud",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "The cloud side of CCJK's remote control: one binary, one SQLite file.",
            "description": "Five API families over one set of rules: the canonical /v1, Lite (unprefixed), Sessions (/api/auth, /api/sessions), Control (/api/control, the CCJK daemon) and KV (/apps, /kv). Every id is resolved inside the caller's own data: another user's id answers exactly like a missing one (404).",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": "/"}],
        "tags": tags(),
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "A session token (ccs_…), an API key (cck_…) or, on daemon routes, a device key (ccjk_…)."},
                "sessionToken": {"type": "apiKey", "in": "header", "name": "X-Session-Token", "description": "A session token (Sessions)."},
                "deviceKey": {"type": "apiKey", "in": "header", "name": "X-Device-Key", "description": "A device key (Lite)."},
                "deviceToken": {"type": "apiKey", "in": "header", "name": "X-Device-Token", "description": "A device key (Control: the CCJK daemon's pre-shared token)."},
                "appBearer": {"type": "http", "scheme": "bearer", "description": "An app token (cca_…) from POST /apps/{appId}/authorize. It may also travel as {\"token\": …} in a JSON body."},
                "appToken": {"type": "apiKey", "in": "query", "name": "token", "description": "An app token (cca_…) in the query string."},
                "queryToken": {"type": "apiKey", "in": "query", "name": "token", "description": "A session token or API key in the query string, for a browser's EventSource, which cannot send headers (the access log prints token=REDACTED)."},
                "panelCookie": {"type": "apiKey", "in": "cookie", "name": "ccjk_session", "description": "The web panel's login cookie (a session; __Host-ccjk_session behind https). Any method but GET needs the session's CSRF token in X-CSRF-Token."},
            },
        },
    })
}

/// The families' tags, then the web panel's.
fn tags() -> Vec<Value> {
    let mut tags: Vec<Value> = Family::ALL
        .iter()
        .map(|f| json!({"name": f.tag(), "description": family_text(*f)}))
        .collect();
    tags.push(json!({
        "name": crate::http::routes::panel::PANEL_TAG,
        "description": "The web panel's page and assets (README \"Web panel\"); errors in the Lite envelope.",
    }));
    tags
}

fn family_text(f: Family) -> &'static str {
    match f {
        Family::V1 => "The canonical API: {success, data, error, meta}.",
        Family::Lite => "The minimal design's unprefixed routes: {ok, data, error, code}.",
        Family::Sessions => "Named sessions and their jobs: flat {success, …}.",
        Family::Control => "The CCJK CLI daemon's contract: {success, data, error} in camelCase.",
        Family::Kv => "Apps and the per-device key-value store: flat objects, {error, code}.",
    }
}

/// The security requirements of a route: alternatives, each naming one scheme.
fn security(r: &Route) -> Value {
    let mut v = requirements(r, r.auth);
    let scope: &[&str] = match r.auth {
        Auth::User(scope) | Auth::UserOrDevice(scope) => &[scope],
        _ => &[],
    };
    if r.sources.query && !matches!(r.auth, Auth::App { .. }) {
        v.push(json!({ "queryToken": scope }));
    }
    if r.sources.cookie {
        // A session: it holds every scope.
        v.push(json!({ "panelCookie": [] }));
    }
    Value::Array(v)
}

fn requirements(r: &Route, auth: Auth) -> Vec<Value> {
    let scheme = |name: &str, scopes: &[&str]| json!({ name: scopes });
    let device = match r.family {
        Family::Lite => vec![scheme("deviceKey", &[]), scheme("bearerAuth", &[])],
        Family::Control => vec![scheme("deviceToken", &[]), scheme("bearerAuth", &[])],
        _ => vec![scheme("bearerAuth", &[])],
    };
    match auth {
        Auth::Public => vec![],
        Auth::User(scope) => vec![scheme("bearerAuth", &[scope])],
        Auth::Session => vec![scheme("bearerAuth", &[]), scheme("sessionToken", &[])],
        Auth::Device => device,
        Auth::UserOrDevice(scope) => vec![scheme("deviceKey", &[]), scheme("bearerAuth", &[scope])],
        Auth::Any => vec![
            scheme("bearerAuth", &[]),
            scheme("sessionToken", &[]),
            scheme("deviceKey", &[]),
            scheme("deviceToken", &[]),
        ],
        Auth::LoopbackOrAdmin => vec![json!({}), scheme("bearerAuth", &[])],
        Auth::App { .. } => vec![scheme("appBearer", &[]), scheme("appToken", &[])],
        Auth::Optional(inner) => {
            let mut v = vec![json!({})];
            v.extend(requirements(r, *inner));
            v
        }
    }
}

/// The error statuses a route documents, from its properties.
fn error_statuses(r: &Route, has_query: bool, strict_json: bool) -> Vec<u16> {
    // An optional credential, when sent, fails the way the inner kind does.
    let auth = match r.auth {
        Auth::Optional(inner) => *inner,
        a => a,
    };
    let mut s = Vec::new();
    if r.takes_body || has_query || r.method != crate::http::route::Method::Get {
        s.push(400);
    }
    // A webhook is public, but its signature is checked (401 `INVALID_SIGNATURE`).
    if !matches!(r.auth, Auth::Public | Auth::LoopbackOrAdmin)
        || r.rate == crate::http::route::Rate::Webhook
    {
        s.push(401);
    }
    if matches!(
        auth,
        Auth::User(_) | Auth::UserOrDevice(_) | Auth::LoopbackOrAdmin | Auth::App { .. }
    ) || r.hashing
    {
        s.push(403);
    }
    if r.params().next().is_some() || r.family == Family::Lite || r.family == Family::Sessions {
        s.push(404);
    }
    if r.method != crate::http::route::Method::Get && !matches!(r.auth, Auth::Public) {
        s.push(409);
    }
    // Writes to one key take If-Match / If-None-Match (compare-and-swap).
    if matches!(auth, Auth::App { writes: true }) && r.params().next().is_some() {
        s.push(412);
    }
    if r.takes_body {
        s.push(413);
    }
    if strict_json {
        s.push(415);
    }
    if r.takes_body || has_query {
        s.push(422);
    }
    if r.hashing || r.rate != crate::http::route::Rate::None {
        s.push(429);
    }
    s.extend([500, 503]);
    s
}

fn operation(r: &Route, generator: &mut SchemaGenerator) -> Value {
    let (input, data) = r.document(generator);
    let mut params: Vec<Value> = r
        .params()
        .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    for (name, schema, required, desc) in &input.query {
        let mut p = json!({"name": name, "in": "query", "required": required, "schema": schema});
        if let Some(d) = desc {
            p["description"] = json!(d);
        }
        params.push(p);
    }
    let mut responses = Map::new();
    for status in &r.statuses {
        let content = match (r.raw, &data) {
            (Some(ct), _) if ct.starts_with("application/json") => {
                json!({ ct: {"schema": {"type": "object"}} })
            }
            (Some(ct), _) => json!({ ct: {"schema": {"type": "string"}} }),
            (None, Some(d)) => {
                let schema = if r.envelope {
                    r.family.ok_schema(d.clone())
                } else {
                    d.clone()
                };
                json!({"application/json": {"schema": schema}})
            }
            (None, None) => json!({}),
        };
        responses.insert(
            status.to_string(),
            json!({"description": success_text(*status), "content": content}),
        );
    }
    let strict = input.body.as_ref().is_some_and(|(_, required)| *required);
    for status in error_statuses(r, !input.query.is_empty(), strict) {
        responses.insert(
            status.to_string(),
            json!({"$ref": format!("#/components/responses/{}", r.family.error_schema_name())}),
        );
    }
    let mut op = json!({
        "operationId": operation_id(r),
        "summary": r.summary,
        "tags": [r.tag.unwrap_or(r.family.tag())],
        "security": security(r),
        "responses": responses,
    });
    if !params.is_empty() {
        op["parameters"] = Value::Array(params);
    }
    if let Some((schema, required)) = input.body {
        let media = input.media.unwrap_or("application/json");
        let content = if input.raw_body {
            json!({
                media: {"schema": schema},
                "*/*": {"schema": {}},
            })
        } else {
            json!({media: {"schema": schema}})
        };
        op["requestBody"] = json!({"required": required, "content": content});
    }
    if r.hashing {
        op["description"] = json!(
            "Computes a password hash on the bounded hashing pool; throttled per client address and per account."
        );
    }
    op
}

fn success_text(status: u16) -> &'static str {
    match status {
        201 => "Created",
        _ => "OK",
    }
}

/// `post_v1_tasks_id_cancel` for `POST /v1/tasks/{id}/cancel`.
fn operation_id(r: &Route) -> String {
    let mut id = r.method.lower().to_string();
    for seg in r.path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        id.extend(
            seg.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .filter(|c| *c != '{' && *c != '}'),
        );
    }
    id.replace("__", "_").trim_end_matches('_').to_string()
}
