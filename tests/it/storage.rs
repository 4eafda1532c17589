//! Stored secrets (docs/security.md): after a full authentication flow in every family, a copy of the
//! database alone reveals no live credential. The test collects every token, key and password
//! the server handed out or received, stops the server, and searches the raw bytes of
//! `ccjk.db` and its `-wal` (and `-shm`) for each of them; it also checks that the secret key
//! file was created with mode 0600.

use crate::common::{PASSWORD, TestServer, assert_v1_ok};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

/// Does `needle` occur anywhere in `hay`?
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Raw bytes of the database and its companions that exist.
fn database_bytes(s: &TestServer) -> Vec<(String, Vec<u8>)> {
    ["ccjk.db", "ccjk.db-wal", "ccjk.db-shm"]
        .iter()
        .filter_map(|name| {
            let bytes = std::fs::read(s.dir().join(name)).ok()?;
            Some((name.to_string(), bytes))
        })
        .collect()
}

#[test]
fn the_database_file_holds_no_plaintext_credential() {
    let mut s = TestServer::start_with(|c| c.access_token_ttl = Some(Duration::from_secs(15 * 60)));
    let mut secrets: Vec<String> =
        vec![PASSWORD.to_string(), "another secret password".to_string()];

    let (token, refresh, _) = s.register("vault@example.com");
    secrets.extend([token.clone(), refresh.clone()]);
    let device_key = s.lite_auth("vault@example.com", PASSWORD);
    secrets.push(device_key);
    let lite_only = s.lite_auth("lite@example.com", "another secret password");
    secrets.push(lite_only);

    let login = s.post_json(
        "/api/auth/login",
        None,
        json!({"email": "vault@example.com", "password": PASSWORD}),
    );
    assert_eq!(login.status, 200, "{}", login.text);
    secrets.push(
        login.body["session"]["token"]
            .as_str()
            .expect("token")
            .to_string(),
    );
    let fresh = s.post_json("/api/sessions/new", Some(&token), json!({"name": "second"}));
    assert_eq!(fresh.status, 201, "{}", fresh.text);
    secrets.push(
        fresh.body["session"]["token"]
            .as_str()
            .expect("token")
            .to_string(),
    );
    let v1_session = assert_v1_ok(
        &s.post_json("/v1/sessions", Some(&token), json!({"name": "third"})),
        201,
    );
    for k in ["token", "refresh_token"] {
        secrets.push(v1_session[k].as_str().expect("credential").to_string());
    }

    let (_, api_key) = s.create_api_key(&token, &["user:read", "task:read"]);
    assert_v1_ok(&s.get("/v1/auth/me", Some(&api_key)), 200);
    secrets.push(api_key);

    let d = assert_v1_ok(
        &s.post_json("/v1/auth/refresh", None, json!({"refresh_token": refresh})),
        200,
    );
    let new_token = d["token"].as_str().expect("token").to_string();
    assert_v1_ok(&s.get("/v1/auth/me", Some(&new_token)), 200);
    secrets.extend([
        new_token,
        d["refresh_token"].as_str().expect("refresh").to_string(),
    ]);

    // Sessions' login now hands back a token the server had to unseal.
    let again = s.post_json(
        "/api/auth/login",
        None,
        json!({"username": "vault@example.com", "password": PASSWORD}),
    );
    assert_eq!(again.status, 200, "{}", again.text);
    secrets.push(
        again.body["session"]["token"]
            .as_str()
            .expect("token")
            .to_string(),
    );

    s.stop();
    let files = database_bytes(&s);
    assert!(
        files.iter().any(|(n, b)| n == "ccjk.db" && b.len() > 4096),
        "no database file"
    );
    // A positive control: what is not secret is stored in the clear, so the search works.
    assert!(
        files.iter().any(|(_, b)| contains(b, b"vault@example.com")),
        "the search finds nothing"
    );

    for secret in &secrets {
        // The whole credential, and its random part without the kind prefix.
        let random = secret.split_once('_').map(|(_, r)| r).unwrap_or(secret);
        for needle in [secret.as_str(), random] {
            for (name, bytes) in &files {
                assert!(
                    !contains(bytes, needle.as_bytes()),
                    "{name} holds plaintext {needle:?}"
                );
            }
        }
    }
    let mode = std::fs::metadata(s.dir().join("ccjk.key"))
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "key file mode {:o}", mode & 0o777);
    assert_eq!(
        std::fs::read(s.dir().join("ccjk.key")).expect("key").len(),
        32
    );
}

#[test]
fn a_custom_key_file_is_used_and_the_data_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key_path = dir.path().join("secret.key");
    let mut first = {
        let key_path = key_path.clone();
        TestServer::start_with(move |c| c.secret_key_file = Some(key_path))
    };
    let key = first.lite_auth("kept@example.com", PASSWORD);
    let login = assert_v1_ok(&first.login("kept@example.com", PASSWORD), 200);
    let token = login["token"].as_str().expect("token").to_string();
    assert!(key_path.exists(), "the configured key file was created");
    assert!(
        !first.dir().join("ccjk.key").exists(),
        "no default key beside the database"
    );
    let db = first.db_path();
    first.stop();

    // A second server over the same files opens the sealed device key and sessions.
    let copy = dir.path().join("ccjk.db");
    std::fs::copy(&db, &copy).expect("copy the database");
    let second = TestServer::start_with(|c| {
        c.db_path = copy.clone();
        c.secret_key_file = Some(key_path.clone());
    });
    assert_eq!(second.lite_auth("kept@example.com", PASSWORD), key);
    assert_v1_ok(&second.get("/v1/auth/me", Some(&token)), 200);
    let login = second.post_json(
        "/api/auth/login",
        None,
        json!({"email": "kept@example.com", "password": PASSWORD}),
    );
    assert_eq!(
        login.body["session"]["token"].as_str(),
        Some(token.as_str()),
        "{}",
        login.text
    );
}
