//! The README's "Apps and the KV store" walk-through runs as written (bash, curl and jq, as the
//! other walk-through tests), with `ccjk-cloud` the built binary on the test's database: the app
//! is registered by the CLI, authorised, written in three ways, read, listed by prefix, swapped
//! once and refused once, and revoked.

use crate::common::TestServer;

/// The shell block of the section, after a prelude that gives it what the walk-through defines
/// (`S`, `J`, `TOKEN`, `DEVICE_ID`) and a `ccjk-cloud` on the server's database.
fn script(base: &str, db: &str) -> String {
    let readme = include_str!("../../README.md");
    let block = readme
        .split("\n## Apps and the KV store\n")
        .nth(1)
        .and_then(|s| s.split("```sh\n").nth(1))
        .and_then(|b| b.split("\n```").next())
        .expect("a shell block in the KV section");
    format!(
        "export CCJK_DB='{db}'\n\
         ccjk-cloud() {{ '{bin}' \"$@\"; }}\n\
         S={base}; J='content-type: application/json'\n\
         TOKEN=$(curl -s $S/v1/auth/register -H \"$J\" -d '{{\"email\":\"me@example.com\",\"password\":\"correct horse\"}}' | jq -r .data.token)\n\
         DEVICE_ID=$(curl -s $S/v1/devices -H \"$J\" -H \"Authorization: Bearer $TOKEN\" -d '{{\"name\":\"laptop\"}}' | jq -r .data.device.id)\n\
         {block}\n",
        bin = env!("CARGO_BIN_EXE_ccjk-cloud"),
    )
}

#[test]
fn the_readme_kv_section_runs() {
    let s = TestServer::start_with(|c| c.rate_limit_user = 0);
    let db = s.db_path().display().to_string();
    let stdout = crate::common::run_bash(&script(s.base(), &db));
    for expected in [
        "content-type: text/plain",
        "\r\n\r\ndark",
        r#"{"open":[1,2]}"#,
        r#"["settings/font","settings/theme"]"#,
        r#""code":"PRECONDITION_FAILED""#,
        r#""note":"dashboard""#,
        r#"{"code":"UNAUTHORIZED","error":"Invalid app token"}"#,
    ] {
        assert!(
            stdout.to_lowercase().contains(&expected.to_lowercase()),
            "{expected} not in:\n{stdout}"
        );
    }
    // Exactly one of the two compare-and-swap writes took: the theme is "light".
    let n: i64 = crate::kv_util::sql(
        &s,
        "SELECT count(*) FROM kv_entries WHERE key = 'settings/theme' AND value = CAST('light' AS BLOB)",
    );
    assert_eq!(n, 1, "{stdout}");
}
