//! The long-poll parking lot (SPEC §7.1 long-poll, §8.5 "parking must never also hold a
//! worker").
//!
//! A poll that finds nothing to claim and asked to `wait` is parked here with its tiny_http
//! request; the worker goes back to `recv()`. One `ccjk-park` thread owns the parked requests:
//! when a task becomes claimable for a device (or for any device of its owner), or a cancel is
//! pending for it, `wake_*` marks it and the thread re-runs the poll's `retry` at once, newest
//! poll first; at the deadline it runs it one last time (which answers with an empty list). At
//! shutdown every parked request is answered.

use crate::app::{App, Ctx};
use crate::http::{Reply, Req};
use crate::server::{Meta, finish};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Re-runs a parked poll: `last` is true at the deadline or shutdown. `None` = keep waiting.
pub type Retry = Box<dyn Fn(&Ctx, bool) -> Option<Reply> + Send>;

/// What a route asks for when it parks a request.
pub struct Spec {
    pub device_id: i64,
    pub user_id: i64,
    pub deadline: Instant,
    pub retry: Retry,
}

struct Parked {
    raw: tiny_http::Request,
    req: Req,
    meta: Meta,
    spec: Spec,
    /// When the poll first parked (kept when a retry finds nothing and re-parks it).
    parked_at: Instant,
}

#[derive(Default)]
struct State {
    /// Parked polls by device, so a wake touches only that device's entries. Boxed, so that
    /// taking entries out moves pointers, not requests.
    #[allow(clippy::vec_box)]
    by_device: HashMap<i64, Vec<Box<Parked>>>,
    /// No parked deadline is earlier than this (it may be earlier than the true minimum after
    /// wakes took entries out; a pass then finds nothing expired and recomputes it).
    next_deadline: Option<Instant>,
    woken_devices: HashSet<i64>,
    woken_users: HashSet<i64>,
    closing: bool,
}

impl State {
    /// Takes out every entry matching `pick`, dropping emptied devices.
    #[allow(clippy::vec_box)] // see `by_device`
    fn take_where(&mut self, pick: impl Fn(&Parked) -> bool, out: &mut Vec<Box<Parked>>) {
        self.by_device.retain(|_, v| {
            let mut i = 0;
            while i < v.len() {
                if pick(&v[i]) {
                    out.push(v.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            !v.is_empty()
        });
    }
}

/// Parked long-polls, shared by all threads.
#[derive(Default)]
pub struct ParkingLot {
    state: Mutex<State>,
    cv: Condvar,
}

/// A parked poll handed back because the lot is closing: answer it now.
pub struct Closed(pub tiny_http::Request, pub Req, pub Meta, pub Spec);

impl ParkingLot {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parks a request until a wake or its deadline. The park thread re-runs it once right
    /// away: work that arrived between the route's own attempt and this call would otherwise
    /// wake nobody. Errors: the lot is closing.
    pub fn park(
        &self,
        raw: tiny_http::Request,
        req: Req,
        meta: Meta,
        spec: Spec,
    ) -> Result<(), Box<Closed>> {
        self.insert(
            Box::new(Parked {
                raw,
                req,
                meta,
                spec,
                parked_at: Instant::now(),
            }),
            true,
        )
    }

    fn insert(&self, p: Box<Parked>, wake: bool) -> Result<(), Box<Closed>> {
        let mut st = self.lock();
        if st.closing {
            return Err(Box::new(Closed(p.raw, p.req, p.meta, p.spec)));
        }
        if wake {
            st.woken_devices.insert(p.spec.device_id);
        }
        let deadline = p.spec.deadline;
        st.next_deadline = Some(st.next_deadline.map_or(deadline, |d| d.min(deadline)));
        st.by_device.entry(p.spec.device_id).or_default().push(p);
        drop(st);
        self.cv.notify_one();
        Ok(())
    }

    /// Work may be claimable for this device, or a cancel is pending for it.
    pub fn wake_device(&self, device_id: i64) {
        self.lock().woken_devices.insert(device_id);
        self.cv.notify_one();
    }

    /// Work may be claimable for any device of this user.
    pub fn wake_user(&self, user_id: i64) {
        self.lock().woken_users.insert(user_id);
        self.cv.notify_one();
    }

    /// How many requests are parked now (metrics).
    pub fn len(&self) -> usize {
        self.lock().by_device.values().map(Vec::len).sum()
    }

    /// Whether nothing is parked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts answering everything and refuses new requests (shutdown).
    pub fn close(&self) {
        self.lock().closing = true;
        self.cv.notify_all();
    }

    /// Waits for parked requests that are due (woken or past their deadline). Returns them and
    /// whether the lot is closing.
    #[allow(clippy::vec_box)] // see `State::by_device`
    fn due(&self) -> (Vec<Box<Parked>>, bool) {
        let mut st = self.lock();
        loop {
            let mut ready = Vec::new();
            if st.closing {
                st.take_where(|_| true, &mut ready);
                return (ready, true);
            }
            let now = Instant::now();
            let woken: Vec<i64> = st.woken_devices.drain().collect();
            for d in woken {
                if let Some(v) = st.by_device.remove(&d) {
                    ready.extend(v);
                }
            }
            if !st.woken_users.is_empty() {
                let users = std::mem::take(&mut st.woken_users);
                st.take_where(|p| users.contains(&p.spec.user_id), &mut ready);
            }
            if st.next_deadline.is_some_and(|d| d <= now) {
                st.take_where(|p| p.spec.deadline <= now, &mut ready);
                st.next_deadline = st
                    .by_device
                    .values()
                    .flatten()
                    .map(|p| p.spec.deadline)
                    .min();
            }
            if !ready.is_empty() {
                // Newest first: a daemon that lost its connection mid-poll and polls again has
                // its old request still parked (until its deadline), and the work must go to the
                // live one, not into the dead socket to wait for its lease to expire. Older polls
                // of the device find nothing left and park again.
                ready.sort_unstable_by_key(|p| std::cmp::Reverse(p.parked_at));
                return (ready, false);
            }
            let wait = st.next_deadline.map_or(Duration::from_secs(3600), |d| {
                d.saturating_duration_since(now)
            });
            st = self
                .cv
                .wait_timeout(st, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Starts the `ccjk-park` thread; it returns once the lot is closed and emptied.
pub fn spawn(app: Arc<App>) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("ccjk-park".into())
        .spawn(move || {
            let conn = match app.db.reader() {
                Ok(c) => c,
                Err(e) => return log::error!("park thread cannot open the database: {e}"),
            };
            loop {
                let (ready, closing) = app.park.due();
                let now = Instant::now();
                for p in ready {
                    let cx = Ctx {
                        app: &app,
                        db: &conn,
                        req: &p.req,
                    };
                    let last = closing || p.spec.deadline <= now;
                    let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        (p.spec.retry)(&cx, last)
                    }))
                    .unwrap_or_else(|_| {
                        let e = crate::error::ApiError::internal("panic in a parked poll");
                        Some(crate::routes::error_reply(&p.req, &e))
                    });
                    match reply {
                        Some(r) => finish(p.raw, r, &p.meta),
                        None => {
                            if let Err(c) = app.park.insert(p, false) {
                                let Closed(raw, req, meta, spec) = *c;
                                let cx = Ctx {
                                    app: &app,
                                    db: &conn,
                                    req: &req,
                                };
                                if let Some(r) = (spec.retry)(&cx, true) {
                                    finish(raw, r, &meta);
                                }
                            }
                        }
                    }
                }
                if closing {
                    return;
                }
            }
        })
}
