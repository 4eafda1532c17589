//! The README's "Vault" section runs as written (bash, curl and jq, as the walk-through test):
//! a site with fields, two accounts, switching the active one, a lookup by a secret prop, an
//! expiring-soon query and the daemon's read, against a fresh server.

use crate::common::{TestServer, assert_v1_ok};
use serde_json::json;

/// The shell block of the README's Vault section, after a prelude that gives it what the
/// walk-through defines (`S`, `J`, `TOKEN`, `KEY`).
fn script(base: &str) -> String {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("\n## Vault\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Vault section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a shell block");
    format!(
        "S={base}; J='content-type: application/json'\n\
         TOKEN=$(curl -s $S/v1/auth/register -H \"$J\" -d '{{\"email\":\"me@example.com\",\"password\":\"correct horse\"}}' | jq -r .data.token)\n\
         KEY=$(curl -s $S/v1/devices -H \"$J\" -H \"Authorization: Bearer $TOKEN\" -d '{{\"name\":\"laptop\"}}' | jq -r .data.device_key)\n\
         {block}\n"
    )
}

#[test]
fn the_readme_vault_section_runs() {
    let s = TestServer::start();
    let stdout = crate::common::run_bash(&script(s.base()));
    for expected in [
        r#""props.apiKey": "does not match ^sk-""#,
        r#"{"username":"home","is_active":true}"#,
        r#""password":"••••aple""#,
        "sk-live-0123456789abcd",
        r#""actor":"session""#,
        r#"{"site":"openai","user":"home"}"#,
    ] {
        assert!(stdout.contains(expected), "{expected} not in:\n{stdout}");
    }
    let expiring = stdout
        .lines()
        .filter(|l| l.contains(r#""expires":"#))
        .count();
    assert_eq!(expiring, 1, "one account expires within 7 days:\n{stdout}");
    let login = assert_v1_ok(&s.login("me@example.com", "correct horse"), 200);
    let token = login["token"].as_str().expect("token");
    let site = assert_v1_ok(&s.get("/v1/sites/openai", Some(token)), 200);
    assert_eq!(site["site"]["account_count"], json!(2));
}
