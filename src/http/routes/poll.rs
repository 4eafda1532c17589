//! A daemon's poll, shared by the families (docs/tasks.md "Long-poll"): claim now; with
//! nothing to claim and `wait > 0`, park the request until work for the device arrives, a
//! cancel for it is requested, or the wait runs out (then an empty list). On every wake the
//! credential is checked again, so a key rotated or a device deleted meanwhile gets 401, never
//! work.

use crate::db::tasks::Task;
use crate::domain::callers::{Caller, DeviceCaller};
use crate::domain::policy::{DEFAULT_POLL_LIMIT, MAX_POLL_LIMIT, MAX_POLL_WAIT};
use crate::domain::{Cx, daemon};
use crate::error::{ApiError, ApiResult};
use crate::http::family::Family;
use crate::http::longpoll::Park;
use crate::http::route::{Auth, Call, Out, authenticate};
use crate::http::{Reply, Req};
use crate::time;
use schemars::JsonSchema;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// `limit` and `wait` of a poll.
#[derive(Deserialize, JsonSchema, Default)]
pub struct PollQuery {
    /// Tasks to claim at most: default 10, 1–50 (others are clamped).
    pub limit: Option<u64>,
    /// Seconds to wait for work when there is none: 0–60 (larger is clamped).
    pub wait: Option<u64>,
}

impl PollQuery {
    /// (limit, wait seconds), clamped.
    pub fn bounds(&self) -> (i64, u64) {
        let limit = self.limit.map_or(DEFAULT_POLL_LIMIT, |l| {
            l.clamp(1, MAX_POLL_LIMIT as u64) as i64
        });
        (limit, self.wait.unwrap_or(0).min(MAX_POLL_WAIT))
    }
}

/// Renders claimed tasks and cancels to deliver, in a family's shape.
pub type Render = fn(&Req, Family, &DeviceCaller, &[Task], &[String]) -> Reply;

/// Claims for `dev` now, or parks the request (see the module doc).
pub fn poll<T>(call: &Call, q: &PollQuery, render: Render) -> ApiResult<Out<T>> {
    let dev = call.device()?.clone();
    let (limit, wait) = q.bounds();
    let fam = call.family;
    let claimed = daemon::claim(&call.cx, &dev, limit)?;
    if !claimed.is_empty() || wait == 0 {
        return Ok(Out::Reply(render(call.req, fam, &dev, &claimed, &[])));
    }
    let since = time::now();
    let device_id = dev.id;
    Ok(Out::Park(Park {
        device_id,
        user_id: dev.user_id,
        deadline: Instant::now() + Duration::from_secs(wait),
        recheck: Box::new(move |cx: &Cx, req: &Req, last| {
            let dev = match authenticate(Auth::Device, cx, req) {
                Ok(Some(Caller::Device(d))) if d.id == device_id => d,
                Ok(_) => {
                    return Some(fam.err(req, &ApiError::unauthorized("Device key changed")));
                }
                Err(e) => return Some(fam.err(req, &e)),
            };
            match daemon::claim(cx, &dev, limit) {
                Err(e) => Some(fam.err(req, &e)),
                Ok(t) if !t.is_empty() => Some(render(req, fam, &dev, &t, &[])),
                Ok(_) => match daemon::cancels_since(cx, &dev, &since) {
                    Err(e) => Some(fam.err(req, &e)),
                    Ok(c) if !c.is_empty() || last => Some(render(req, fam, &dev, &[], &c)),
                    Ok(_) => None,
                },
            }
        }),
    }))
}
