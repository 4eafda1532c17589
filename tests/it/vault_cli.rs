//! `ccjk-cloud vault export|import` (docs/vault.md "Export and import"): a sealed export shows
//! no secret and restores on the same key (into another user too, with new ids and a working
//! blind index) but not on another; a plaintext export needs a terminal's confirmation or
//! `--yes` and records its reveals; an import never doubles a site unless asked to replace it.

use crate::common::{TestServer, assert_v1_ok};
use crate::vault_util::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Output;

/// `ccjk-cloud ARGS` over the database in `dir` (`common::cli`).
fn cli(dir: &Path, args: &[&str]) -> Output {
    crate::common::cli(dir, args, &[])
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const SECRET: &str = "sk-EXPORT-secret-0000001";
const PASSWORD: &str = "EXPORT-password-000001";

/// Alice's vault: `openai` (fields, two accounts, one active) and a site without fields.
fn alice(s: &TestServer) -> String {
    let (t, _, _) = s.register("alice@example.com");
    openai(s, &t);
    let a = account(
        s,
        &t,
        "openai",
        json!({"username": "main", "password": PASSWORD, "props": {"apiKey": SECRET, "token": "tok-1"}}),
    );
    account(
        s,
        &t,
        "openai",
        json!({"username": "spare", "props": {"apiKey": "sk-spare"}}),
    );
    assert_v1_ok(
        &put(
            s,
            "/v1/sites/openai/active",
            Some(&t),
            json!({"account_id": id(&a)}),
        ),
        200,
    );
    site(
        s,
        &t,
        json!({"key": "free", "login_url": "https://free.example"}),
    );
    account(s, &t, "free", json!({"props": {"anything": [1]}}));
    t
}

fn vault_of(s: &TestServer, t: &str) -> Vec<Value> {
    let r = assert_v1_ok(&s.get("/v1/accounts?reveal=true&limit=200", Some(t)), 200);
    r["accounts"].as_array().expect("accounts").clone()
}

#[test]
fn sealed_export_restores_on_the_same_key_and_plaintext_needs_a_confirmation() {
    let s = TestServer::start();
    let d = s.dir().to_path_buf();
    let t = alice(&s);
    let (bob, _, _) = s.register("bob@example.com");

    let sealed = ok(&cli(
        &d,
        &["vault", "export", "--user", "alice@example.com"],
    ));
    let doc: Value = serde_json::from_str(&sealed).expect("JSON");
    assert_eq!(
        (doc["format"].clone(), doc["sealed"].clone()),
        (json!("ccjk-vault"), json!(true))
    );
    assert!(
        !sealed.contains(SECRET) && !sealed.contains(PASSWORD),
        "{sealed}"
    );
    assert!(sealed.contains("password_sealed") && sealed.contains("tok-1"));
    let file = d.join("alice.json");
    let f = file.to_str().expect("utf-8");
    ok(&cli(
        &d,
        &["vault", "export", "--user", "alice@example.com", "--out", f],
    ));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).expect("file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        !cli(
            &d,
            &["vault", "export", "--user", "alice@example.com", "--out", f]
        )
        .status
        .success()
    );

    // Plaintext: refused without a terminal or --yes; with --yes, shown and recorded.
    let refused = cli(
        &d,
        &[
            "vault",
            "export",
            "--user",
            "alice@example.com",
            "--plaintext",
        ],
    );
    assert!(!refused.status.success());
    assert!(refused.stdout.is_empty());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    let before = assert_v1_ok(&s.get("/v1/vault/reveals", Some(&t)), 200)["count"].clone();
    assert_eq!(before, json!(0));
    let plain = ok(&cli(
        &d,
        &[
            "vault",
            "export",
            "--user",
            "alice@example.com",
            "--plaintext",
            "--yes",
        ],
    ));
    assert!(plain.contains(SECRET) && plain.contains(PASSWORD));
    let rs = assert_v1_ok(&s.get("/v1/vault/reveals", Some(&t)), 200);
    assert_eq!(rs["count"], json!(3), "one per account shown");
    assert_eq!(rs["reveals"][0]["actor"], json!("cli"));

    // Restore into Bob's vault: same content, new ids, the active account, the blind index.
    ok(&cli(
        &d,
        &["vault", "import", "--user", "bob@example.com", f],
    ));
    let (a, b) = (vault_of(&s, &t), vault_of(&s, &bob));
    let strip = |v: &[Value]| -> Vec<Value> {
        v.iter()
            .map(|x| {
                json!([
                    x["site"],
                    x["username"],
                    x["password"],
                    x["props"],
                    x["is_active"]
                ])
            })
            .collect()
    };
    assert_eq!(strip(&a), strip(&b));
    assert!(
        a.iter().all(|x| b.iter().all(|y| x["id"] != y["id"])),
        "new ids"
    );
    let found = assert_v1_ok(
        &s.get(&format!("/v1/accounts?prop.apiKey={SECRET}"), Some(&bob)),
        200,
    );
    assert_eq!(found["count"], json!(1));
    let free = assert_v1_ok(&s.get("/v1/sites/free", Some(&bob)), 200);
    assert_eq!(free["site"]["login_url"], json!("https://free.example"));
    assert!(
        !cli(&d, &["vault", "import", "--user", "bob@example.com", f])
            .status
            .success()
    );
    ok(&cli(
        &d,
        &[
            "vault",
            "import",
            "--user",
            "bob@example.com",
            f,
            "--replace",
        ],
    ));
    assert_eq!(vault_of(&s, &bob).len(), 3, "replaced, not doubled");

    // A plaintext export restores anywhere; a sealed one only under the same key.
    let other = tempfile::tempdir().expect("dir");
    let o = other.path();
    ok(&cli(o, &["user", "create", "carol@example.com"]));
    let pfile = o.join("plain.json");
    std::fs::write(&pfile, &plain).expect("write");
    assert!(
        !cli(o, &["vault", "import", "--user", "carol@example.com", f])
            .status
            .success()
    );
    ok(&cli(
        o,
        &[
            "vault",
            "import",
            "--user",
            "carol@example.com",
            pfile.to_str().expect("utf-8"),
        ],
    ));
    assert!(
        !cli(o, &["vault", "import", "--user", "nobody@example.com", f])
            .status
            .success()
    );
    assert!(
        !cli(o, &["vault", "frobnicate", "--user", "carol@example.com"])
            .status
            .success()
    );
}
