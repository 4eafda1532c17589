//! The rate limits on the request path (README "Rate limits"): after a request's caller is
//! known, its route's class (`route::Rate`) and the credential decide the key and the limit:
//!
//! | class | caller | key | requests per minute |
//! |---|---|---|---|
//! | `None`, `Login` | any | — (login throttling is separate) | — |
//! | `User`, `Daemon` | device key | the device | `CCJK_RATE_LIMIT_DAEMON` (1000) |
//! | `User`, `Daemon` | API key | the user's API keys together | the plan's `api_calls_per_minute` |
//! | `User`, `Daemon` | session token | the user | `CCJK_RATE_LIMIT_USER` (100) |
//!
//! | `Webhook` | none (signed body) | the sender's address, once the signature verified | 10 |
//!
//! A limit of 0 (or a plan's NULL) means unlimited: nothing is counted and no header is sent.
//! A class keyed by something the handler learns (the inbound webhook's sender, known only
//! after its signature and JSON are checked) is counted by the handler with `admit_key`.
//!
//! A request over its limit is answered 429 `RATE_LIMITED` with `Retry-After` before its handler
//! runs; every answer of a limited request carries `RateLimit-Limit`, `RateLimit-Remaining` and
//! `RateLimit-Reset` (seconds). The windows are in memory (`state::ratelimit`).

use crate::db::users;
use crate::domain::Cx;
use crate::domain::callers::Caller;
use crate::error::{ApiError, ApiResult, Code};
use crate::http::app::App;
use crate::http::route::{Outcome, Rate};
use crate::http::server::error_reply;
use crate::http::{Reply, Req};
use crate::state::ratelimit::{Key, Verdict};
use std::time::Instant;

/// A limited request's verdict and the class it was counted in (`user`, `api_key`, `daemon`).
#[derive(Clone, Copy, Debug)]
pub struct Limited {
    pub verdict: Verdict,
    pub class: &'static str,
}

/// Counts the request against its limit. `None`: the request is not limited. Errors: the
/// plan's limit could not be read.
pub fn admit(
    app: &App,
    cx: &Cx,
    rate: Rate,
    caller: Option<&Caller>,
) -> ApiResult<Option<Limited>> {
    let cfg = cx.cfg();
    let (key, limit, class) = match (rate, caller) {
        // The webhook is counted per sender by its handler (`admit_key`).
        (Rate::None | Rate::Login | Rate::Webhook, _) | (_, None) => return Ok(None),
        (Rate::User | Rate::Daemon, Some(Caller::Device(d))) => {
            (Key::Device(d.id), cfg.rate_limit_daemon, "daemon")
        }
        (Rate::User | Rate::Daemon, Some(Caller::User(u))) if u.api_key_id.is_some() => {
            let Some(n) = users::limits(cx.reader, u.user_id())?.api_calls_per_minute else {
                return Ok(None);
            };
            let n = u32::try_from(n.max(0)).unwrap_or(u32::MAX);
            (Key::ApiKeys(u.user_id()), n, "api_key")
        }
        (Rate::User | Rate::Daemon, Some(Caller::User(u))) => {
            (Key::User(u.user_id()), cfg.rate_limit_user, "user")
        }
        // App tokens (the KV family) share a budget per device, the daemon's size.
        (Rate::User | Rate::Daemon, Some(Caller::App(a))) => {
            (Key::Apps(a.device_id), cfg.rate_limit_daemon, "app")
        }
    };
    if limit == 0 {
        return Ok(None);
    }
    Ok(Some(admit_key(app, key, limit, class)))
}

/// Counts one request of `key` against `limit` per minute, in metrics class `class`.
pub fn admit_key(app: &App, key: Key, limit: u32, class: &'static str) -> Limited {
    Limited {
        verdict: app.rate.check(key, limit, Instant::now()),
        class,
    }
}

/// `reply` with the `RateLimit-*` headers of `l`.
pub fn with_headers(mut reply: Reply, l: &Limited) -> Reply {
    reply.headers.extend(headers(&l.verdict));
    reply
}

/// The three `RateLimit-*` headers of a verdict.
fn headers(v: &Verdict) -> [(&'static str, String); 3] {
    [
        ("RateLimit-Limit", v.limit.to_string()),
        ("RateLimit-Remaining", v.remaining.to_string()),
        ("RateLimit-Reset", v.reset_secs.to_string()),
    ]
}

/// The 429 of a request over its limit, in its family's envelope, with the headers.
pub fn refuse(app: &App, req: &Req, l: &Limited) -> Reply {
    app.metrics.rate_limited(l.class);
    let v = &l.verdict;
    let mut e = ApiError::new(
        Code::RateLimited,
        format!(
            "Rate limit exceeded: {} requests per minute; retry in {} s",
            v.limit, v.reset_secs
        ),
    );
    e.retry_after = Some(v.reset_secs);
    let mut r = error_reply(req, &e);
    r.headers.extend(headers(v));
    r
}

/// Adds a limited request's headers to its answer: now, or when a parked poll is answered.
pub fn stamp(outcome: Outcome, limited: Option<Limited>) -> Outcome {
    let Some(l) = limited else {
        return outcome;
    };
    match outcome {
        Outcome::Reply(r) => Outcome::Reply(with_headers(r, &l)),
        Outcome::Park(mut p) => {
            let inner = p.recheck;
            p.recheck =
                Box::new(move |cx, req, last| inner(cx, req, last).map(|r| with_headers(r, &l)));
            Outcome::Park(p)
        }
        // An event stream's headers are written by the events thread; the open was counted.
        Outcome::Stream(s) => Outcome::Stream(s),
    }
}
