//! The `vault` phase: one user with 10,000 accounts across 50 sites (each site's fields: a
//! secret `apiKey`, a plain `token`, an `expiresAt`), then the two lookups of README "Vault"
//! measured alone on one keep-alive connection in a closed loop (so each sample is the
//! server's own time plus loopback, never a queue): `GET /v1/accounts?prop.token=…` (the
//! `accounts_token` expression index) and `GET /v1/accounts?prop.apiKey=…` (the blind index),
//! each for a random account (two different ones in a round, so that the second lookup does not
//! find the first one's pages cached). Before measuring, each lookup and `expiring_within=7d` are
//! checked to find what they should. The accounts are created over HTTP on 16 connections
//! (group commit), which also times bulk creation.

use crate::client::{self, Conn};
use crate::generator;
use crate::phases::{self, Loop};
use crate::stats::{Rng, r1};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

pub const SITES: usize = 50;
pub const PER_SITE: usize = 200;
const CONNS: usize = 16;

/// The `token` and `apiKey` of account `i` (deterministic, so lookups can be formed later).
/// Whether the lookups' `checks` found what the populated vault holds: one account by token,
/// one by secret, none by a wrong secret, 196 expiring within 7 days.
pub fn checks_right(c: &Value) -> bool {
    c["token"] == 1 && c["apiKey"] == 1 && c["apiKey_wrong"] == 0 && c["expiring_7d"] == 196
}

fn token(i: usize) -> String {
    format!(
        "tok-{i:05}-{:08x}",
        (i as u64).wrapping_mul(0x9E37_79B9) as u32
    )
}
fn api_key(i: usize) -> String {
    format!(
        "sk-bench-{i:05}-{:016x}",
        (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D)
    )
}

fn data(c: &Conn) -> Value {
    serde_json::from_slice::<Value>(c.body()).map_or(Value::Null, |v| v["data"].clone())
}

/// Creates the sites and accounts for `bearer`; returns seconds taken, or why it failed.
fn populate(addr: SocketAddr, bearer: &str) -> Result<f64, String> {
    let start = Instant::now();
    let mut c = Conn::new(addr, Duration::from_secs(30));
    for s in 0..SITES {
        let body = json!({"key": format!("site-{s:02}"), "fields": [
            {"name": "apiKey", "type": "string", "secret": true, "required": true},
            {"name": "token", "type": "string", "required": true},
            {"name": "expiresAt", "type": "datetime"}
        ]})
        .to_string();
        let st = c
            .request(&client::post("/v1/sites", Some(bearer), &body))
            .map_err(|e| e.to_string())?;
        if st != 201 {
            return Err(format!(
                "POST /v1/sites: {st} {}",
                String::from_utf8_lossy(c.body())
            ));
        }
    }
    let total = SITES * PER_SITE;
    let handles: Vec<_> = (0..CONNS)
        .map(|k| {
            let bearer = bearer.to_string();
            thread::spawn(move || -> Result<(), String> {
                let mut c = Conn::new(addr, Duration::from_secs(30));
                let now = std::time::SystemTime::now();
                for i in (k..total).step_by(CONNS) {
                    let expires = now + Duration::from_secs((i % 365) as u64 * 86_400 + 3600);
                    let body = json!({"username": format!("user-{i}"), "password": format!("pw-{i}-secret"),
                        "props": {"apiKey": api_key(i), "token": token(i),
                                  "expiresAt": humantime::format_rfc3339_seconds(expires).to_string()}})
                    .to_string();
                    let path = format!("/v1/sites/site-{:02}/accounts", i % SITES);
                    let st = c
                        .request(&client::post(&path, Some(&bearer), &body))
                        .map_err(|e| e.to_string())?;
                    if st != 201 {
                        return Err(format!("POST {path}: {st} {}", String::from_utf8_lossy(c.body())));
                    }
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| "an account thread panicked".to_string())??;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// How many accounts a lookup answers (checked before measuring), page by page: 50 accounts
/// keep an answer under tiny_http's 32 KiB chunking threshold, which this client does not read.
fn found(addr: SocketAddr, bearer: &str, query: &str) -> Value {
    let mut c = Conn::new(addr, Duration::from_secs(30));
    let (mut n, mut offset) = (0, 0);
    loop {
        let path = format!("/v1/accounts?{query}&limit=50&offset={offset}");
        match c.request(&client::get(&path, Some(bearer))) {
            Ok(200) => {
                let d = data(&c);
                n += d["count"].as_u64().unwrap_or(0);
                if d["next_cursor"].is_null() {
                    return json!(n);
                }
                offset += 50;
            }
            Ok(st) => return json!(format!("status {st}")),
            Err(e) => return json!(e.to_string()),
        }
    }
}

/// Runs the phase for the user `bearer`; a window judged invalid (noise, client-bound) is run
/// again like every phase's (`generator::measured`), its reasons going to `invalid`.
pub fn run(
    addr: SocketAddr,
    pid: &str,
    bearer: &str,
    (warmup, window): (Duration, Duration),
    tck: f64,
    invalid: &mut Vec<String>,
) -> Value {
    let setup_s = match populate(addr, bearer) {
        Ok(s) => s,
        Err(e) => return json!({"failed": e}),
    };
    let total = SITES * PER_SITE;
    let mut rng = Rng::new(7);
    let (mut tok_first, mut key_first) = (Vec::new(), Vec::new());
    for _ in 0..2000 {
        // Two different accounts in a round, so the second lookup does not find the first
        // one's pages cached.
        let (i, j) = (rng.below(total), rng.below(total));
        let t = |i| {
            client::get(
                &format!("/v1/accounts?prop.token={}", token(i)),
                Some(bearer),
            )
        };
        let k = |i| {
            client::get(
                &format!("/v1/accounts?prop.apiKey={}", api_key(i)),
                Some(bearer),
            )
        };
        tok_first.push([t(i), k(j)]);
        key_first.push([k(i), t(j)]);
    }
    let checks = json!({
        "token": found(addr, bearer, &format!("prop.token={}", token(1234))),
        "apiKey": found(addr, bearer, &format!("prop.apiKey={}", api_key(1234))),
        "apiKey_wrong": found(addr, bearer, "prop.apiKey=sk-bench-none"),
        // Accounts i % 365 < 7 expire within 7 days: 7 of every 365.
        "expiring_7d": found(addr, bearer, "expiring_within=7d"),
    });
    // The first request of a round measures about twice the second, whichever it is (the
    // same lookup in both places shows it too): so each lookup is measured in both places, in
    // two windows, and the table shows it first, the slower place.
    let a = Loop {
        names: ["lookup_token", "lookup_secret_second"],
        reqs: Arc::new(tok_first),
    };
    let b = Loop {
        names: ["lookup_secret", "lookup_token_second"],
        reqs: Arc::new(key_first),
    };
    let half = window / 2;
    let w = generator::measured("vault", &["token_first", "secret_first"], invalid, || {
        json!({
            "token_first": phases::closed_loop(addr, pid, &a, 1, warmup, half, tck).json(a.names),
            "secret_first": phases::closed_loop(addr, pid, &b, 1, warmup, half, tck).json(b.names),
        })
    });
    let (ta, sb) = (&w["token_first"], &w["secret_first"]);
    let mut v = json!({
        "connections": 1,
        "lookup_token": ta["lookup_token"],
        "lookup_secret_second": ta["lookup_secret_second"],
        "lookup_secret": sb["lookup_secret"],
        "lookup_token_second": sb["lookup_token_second"],
        "windows": w,
    });
    let f = |x: &Value, k: &str| x[k].as_f64().unwrap_or(0.0);
    let cpu_s = f(ta, "server_cpu_pct") / 100.0 * f(ta, "seconds")
        + f(sb, "server_cpu_pct") / 100.0 * f(sb, "seconds");
    let n = f(ta, "requests") + f(sb, "requests");
    if n > 0.0 {
        v["server_cpu_us_per_request"] = json!(r1(cpu_s * 1e6 / n));
    }
    for k in [
        "server_cpu_pct",
        "generator_cpu_pct",
        "core0_busy_pct",
        "core1_busy_pct",
    ] {
        v[k] = json!(f(ta, k).max(f(sb, k)));
    }
    for k in ["errors", "reconnects", "requests"] {
        v[k] = json!(f(ta, k) + f(sb, k));
    }
    v["attempts"] = w["attempts"].clone();
    v["discarded_attempts"] = w["discarded_attempts"].clone();
    v["accounts"] = json!(total);
    v["sites"] = json!(SITES);
    v["populate_seconds"] = json!(r1(setup_s));
    v["accounts_per_s_created"] = json!((total as f64 / setup_s).round());
    v["checks"] = checks;
    v
}
