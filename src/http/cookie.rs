//! The web panel's login cookie and its CSRF token (README "Web panel").
//!
//! The panel logs in through `POST /v1/panel/login`, which puts the session token in an
//! `HttpOnly`, `SameSite=Strict` cookie (`Secure`, and named `__Host-ccjk_session`, when
//! `CCJK_PUBLIC_URL` is https), so the page's scripts never see the token. The route table
//! accepts the cookie only on `/v1` routes that take a session or user credential
//! (`route::Sources`), and never on a state-changing request (any method but `GET`) unless it
//! carries the CSRF token in `X-CSRF-Token`: `hex(SHA-256("ccjk-csrf\0" ‖ token))`, bound to the
//! session, which the panel reads from `GET /v1/panel/me` (a cross-site page can neither read
//! that answer nor the cookie).

use crate::config::Config;
use crate::crypto::{hex, sha256};
use crate::http::Req;

/// The cookie's name: `__Host-` prefixed (browsers then insist on `Secure`, `Path=/` and no
/// `Domain`) when the server is reached over https.
pub fn name(cfg: &Config) -> &'static str {
    if secure(cfg) {
        "__Host-ccjk_session"
    } else {
        "ccjk_session"
    }
}

/// Whether the panel is served over https (`CCJK_PUBLIC_URL` says so).
pub fn secure(cfg: &Config) -> bool {
    cfg.public_url
        .as_deref()
        .is_some_and(|u| u.len() >= 8 && u[..8].eq_ignore_ascii_case("https://"))
}

/// How long the browser keeps the cookie (the session itself lives until revoked, or as
/// `CCJK_ACCESS_TOKEN_TTL` says): 30 days.
pub const MAX_AGE_SECS: u64 = 30 * 86_400;

/// The session token in the request's login cookie, if any.
pub fn token<'r>(req: &'r Req, cfg: &Config) -> Option<&'r str> {
    let want = name(cfg);
    req.header("cookie")?
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == want)
        .map(|(_, v)| v.trim().trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` value that stores `token` (`None`: clears the cookie).
pub fn set(cfg: &Config, token: Option<&str>) -> String {
    let (value, age) = match token {
        Some(t) => (t, MAX_AGE_SECS),
        None => ("", 0),
    };
    format!(
        "{}={value}; Path=/; Max-Age={age}; HttpOnly; SameSite=Strict{}",
        name(cfg),
        if secure(cfg) { "; Secure" } else { "" }
    )
}

/// The CSRF token of the session whose token is `token`.
pub fn csrf(token: &str) -> String {
    hex(&sha256(&format!("ccjk-csrf\0{token}")))
}

/// Whether `presented` is the CSRF token of `token` (constant time).
pub fn csrf_ok(token: &str, presented: Option<&str>) -> bool {
    let Some(p) = presented else {
        return false;
    };
    let want = csrf(token);
    let (a, b) = (want.as_bytes(), p.trim().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_attributes_follow_the_public_url() {
        let mut cfg = Config::default();
        let plain = set(&cfg, Some("ccs_x"));
        assert_eq!(
            plain,
            "ccjk_session=ccs_x; Path=/; Max-Age=2592000; HttpOnly; SameSite=Strict"
        );
        cfg.public_url = Some("HTTPS://ccjk.example.com".into());
        let s = set(&cfg, None);
        assert!(
            s.starts_with("__Host-ccjk_session=; Path=/; Max-Age=0;"),
            "{s}"
        );
        assert!(s.ends_with("; Secure"), "{s}");
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let cfg = Config::default();
        let r = Req::new(
            "GET",
            "/",
            vec![("cookie", "a=1; ccjk_session=ccs_tok ; b=2".into())],
            vec![],
        );
        assert_eq!(token(&r, &cfg), Some("ccs_tok"));
        let r = Req::new(
            "GET",
            "/",
            vec![("cookie", "xccjk_session=1".into())],
            vec![],
        );
        assert_eq!(token(&r, &cfg), None);
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_session() {
        let t = csrf("ccs_a");
        assert_eq!(t.len(), 64);
        assert!(csrf_ok("ccs_a", Some(&t)));
        assert!(!csrf_ok("ccs_b", Some(&t)));
        assert!(!csrf_ok("ccs_a", None));
        assert!(!csrf_ok("ccs_a", Some("")));
    }
}
