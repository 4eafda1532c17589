//! The long-poll registry (docs/tasks.md "Long-poll"): parked polls never hold a worker.
//!
//! A poll that finds nothing to claim and asked to `wait` is parked here with its tiny_http
//! request; the worker goes back to `recv()`. The long-poll dispatcher (`workers::dispatcher`,
//! one thread) takes parked polls out when they are due: when a task becomes claimable for a
//! device (or for any device of its owner), or a cancel is pending for it, `wake_*` marks it and
//! the dispatcher re-checks the poll at once, newest poll first; at the deadline it re-checks it
//! one last time (which answers with an empty list). At shutdown every parked poll is answered.

use crate::domain::Cx;
use crate::http::server::AccessInfo;
use crate::http::{Reply, Req};
use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Re-checks a parked poll: `last` is true at the deadline or shutdown. `None` = keep waiting.
pub type Recheck = Box<dyn Fn(&Cx, &Req, bool) -> Option<Reply> + Send>;

/// What a route asks for when it parks a request.
pub struct Park {
    pub device_id: i64,
    pub user_id: i64,
    pub deadline: Instant,
    pub recheck: Recheck,
}

/// A parked poll.
pub struct Parked {
    pub raw: tiny_http::Request,
    pub req: Req,
    pub info: AccessInfo,
    pub park: Park,
    /// When the poll first parked (kept when a recheck finds nothing and re-parks it).
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
pub struct LongPolls {
    state: Mutex<State>,
    cv: Condvar,
}

impl LongPolls {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parks a request until a wake or its deadline. The dispatcher re-checks it once right
    /// away: work that arrived between the route's own attempt and this call would otherwise
    /// wake nobody. Errors: the registry is closing (the poll is handed back to answer now).
    pub fn park(
        &self,
        raw: tiny_http::Request,
        req: Req,
        info: AccessInfo,
        park: Park,
    ) -> Result<(), Box<Parked>> {
        self.insert(
            Box::new(Parked {
                raw,
                req,
                info,
                park,
                parked_at: Instant::now(),
            }),
            true,
        )
    }

    /// Puts back a poll whose recheck found nothing. Errors: the registry is closing.
    pub fn repark(&self, p: Box<Parked>) -> Result<(), Box<Parked>> {
        self.insert(p, false)
    }

    fn insert(&self, p: Box<Parked>, wake: bool) -> Result<(), Box<Parked>> {
        let mut st = self.lock();
        if st.closing {
            return Err(p);
        }
        if wake {
            st.woken_devices.insert(p.park.device_id);
        }
        let deadline = p.park.deadline;
        st.next_deadline = Some(st.next_deadline.map_or(deadline, |d| d.min(deadline)));
        st.by_device.entry(p.park.device_id).or_default().push(p);
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

    /// Hands every parked poll to the dispatcher and refuses new ones (shutdown).
    pub fn close(&self) {
        self.lock().closing = true;
        self.cv.notify_all();
    }

    /// Waits for parked requests that are due (woken or past their deadline). Returns them and
    /// whether the registry is closing.
    #[allow(clippy::vec_box)] // see `State::by_device`
    pub fn due(&self) -> (Vec<Box<Parked>>, bool) {
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
                st.take_where(|p| users.contains(&p.park.user_id), &mut ready);
            }
            if st.next_deadline.is_some_and(|d| d <= now) {
                st.take_where(|p| p.park.deadline <= now, &mut ready);
                st.next_deadline = st
                    .by_device
                    .values()
                    .flatten()
                    .map(|p| p.park.deadline)
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
