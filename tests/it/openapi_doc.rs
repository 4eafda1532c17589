//! `GET /v1/openapi.json` (docs/families.md "The document"): every route of every family is in
//! it, generated from the route table; it is a valid OpenAPI 3.1 document by the official
//! schema (tests/it/openapi/), and every schema in it is a valid JSON Schema 2020-12.

use crate::common::*;
use ccjk_cloud::http::routes::table;
use serde_json::{Value, json};

fn document(s: &TestServer) -> Value {
    let r = s.get("/v1/openapi.json", None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("application/json"),
        "{:?}",
        r.headers
    );
    r.body
}

#[test]
fn every_route_of_the_table_is_documented() {
    let s = TestServer::start();
    let doc = document(&s);
    let mut missing = Vec::new();
    let t = table();
    for r in t.routes() {
        let op = &doc["paths"][r.path][r.method.lower()];
        if !op.is_object() {
            missing.push(format!("{:?} {}", r.method, r.path));
            continue;
        }
        assert_eq!(op["summary"], Value::from(r.summary), "{}", r.path);
        for status in &r.statuses {
            assert!(
                op["responses"][status.to_string()].is_object(),
                "{:?} {} lacks its {status} answer",
                r.method,
                r.path
            );
        }
    }
    assert!(missing.is_empty(), "undocumented routes: {missing:?}");
    let documented: usize = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|p| p.as_object().map_or(0, |o| o.len()))
        .sum();
    assert_eq!(
        documented,
        t.routes().len(),
        "the document lists routes the table lacks"
    );
    let ids: std::collections::BTreeSet<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|p| p.as_object().expect("path item").values())
        .map(|op| op["operationId"].as_str().expect("operationId").to_string())
        .collect();
    assert_eq!(ids.len(), documented, "operation ids are unique");
    // Every operation's tag is declared; the panel's pages are not filed under Lite.
    let declared: Vec<&Value> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| &t["name"])
        .collect();
    for item in doc["paths"].as_object().expect("paths").values() {
        for op in item.as_object().expect("path item").values() {
            assert!(declared.contains(&&op["tags"][0]), "{op}");
        }
    }
    assert_eq!(doc["paths"]["/"]["get"]["tags"], json!(["panel"]));
    assert_eq!(
        doc["paths"]["/assets/{name}"]["get"]["tags"],
        json!(["panel"])
    );
    assert_eq!(doc["paths"]["/health"]["get"]["tags"], json!(["lite"]));
    // Every way a credential may travel is documented: the panel's cookie on /v1 user routes,
    // `?token=` where a browser's EventSource needs it.
    let security = |path: &str| doc["paths"][path]["get"]["security"].to_string();
    assert!(security("/v1/tasks").contains("panelCookie"));
    assert!(security("/v1/events").contains("queryToken"));
    assert!(!security("/v1/daemon/tasks/pending").contains("panelCookie"));
    assert!(doc["components"]["securitySchemes"]["panelCookie"].is_object());
    let live = s.get("/health/live?probe=1", None);
    assert_eq!(
        (live.status, live.body["status"].clone()),
        (200, json!("live"))
    );
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let s = TestServer::start();
    let doc = document(&s);
    let oas: Value = serde_json::from_str(include_str!("openapi/oas-3.1-schema.json"))
        .expect("the OpenAPI 3.1 schema");
    let v = jsonschema::validator_for(&oas).expect("compile the OpenAPI 3.1 schema");
    let errors: Vec<String> = v
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .take(20)
        .collect();
    assert!(
        errors.is_empty(),
        "not valid OpenAPI 3.1:\n{}",
        errors.join("\n")
    );
    // The validator is not vacuous: a broken operation is caught.
    let mut broken = doc.clone();
    broken["paths"]["/v1/tasks"]["post"]["responses"]["201"] = Value::from("no description");
    assert!(
        !v.is_valid(&broken),
        "a broken response object passed validation"
    );
    for (name, schema) in doc["components"]["schemas"].as_object().expect("schemas") {
        if let Err(e) = jsonschema::draft202012::meta::validate(schema) {
            panic!("components.schemas.{name} is not a valid JSON Schema: {e}");
        }
    }
    // Every $ref points at something that exists.
    let text = doc.to_string();
    for (i, _) in text.match_indices("\"$ref\":\"#/components/") {
        let rest = &text[i + 8..];
        let target = &rest[..rest.find('"').expect("end of ref")];
        let mut node = &doc;
        for part in target.trim_start_matches("#/").split('/') {
            node = &node[part];
        }
        assert!(!node.is_null(), "dangling $ref {target}");
    }
}

#[test]
fn the_cli_prints_the_same_document() {
    let out = binary()
        .arg("openapi")
        .output()
        .expect("run ccjk-cloud openapi");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let s = TestServer::start();
    assert_eq!(printed["paths"], document(&s)["paths"]);
}
