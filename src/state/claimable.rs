//! The claimable-work index: which devices and users may have a task to claim, so that an
//! empty poll touches no SQLite page (README "Performance").
//!
//! A device is marked when a task for it becomes `pending`, a user when a device-less task of
//! theirs does; a claim that finds nothing claimable left clears both. Marks and clears happen
//! inside writer jobs, so they are ordered with the changes they describe; a poll whose device
//! and owner are both unmarked answers without a database write. A false "maybe" only costs a
//! claim that finds nothing; a missing mark would lose work, so every path that makes a task
//! pending calls `mark` (create, unblocking a batch successor, requeue, retry) and start-up
//! seeds from the table.
//!
//! It also knows which devices cannot hold a task: a heartbeat that found its device holding
//! nothing records the device's claim count, and until the next claim for that device (the only
//! way a lease is taken) heartbeats skip reading what it holds.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

#[derive(Default)]
struct Marks {
    /// Marked devices and their owners.
    devices: HashMap<i64, i64>,
    /// Marked devices per owner.
    per_user: HashMap<i64, usize>,
    /// Users with device-less pending tasks.
    users: HashSet<i64>,
    /// Claims per device since start; a device holds nothing new unless this moved.
    claims: HashMap<i64, u64>,
    /// The claim count at which a read found the device holding nothing.
    seen_empty: HashMap<i64, u64>,
}

/// Devices and users that may have claimable work.
#[derive(Default)]
pub struct ClaimableIndex {
    inner: Mutex<Marks>,
}

impl ClaimableIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, Marks> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A task became pending for `device_id` (or, with `None`, for any of the user's devices).
    pub fn mark(&self, device_id: Option<i64>, user_id: i64) {
        let mut g = self.lock();
        match device_id {
            Some(d) => {
                if g.devices.insert(d, user_id).is_none() {
                    *g.per_user.entry(user_id).or_default() += 1;
                }
            }
            None => {
                g.users.insert(user_id);
            }
        }
    }

    /// May this device have claimable work?
    pub fn maybe(&self, device_id: i64, user_id: i64) -> bool {
        let g = self.lock();
        g.devices.contains_key(&device_id) || g.users.contains(&user_id)
    }

    /// May any device of this user have claimable work? (Freed capacity wakes their polls.)
    pub fn user_maybe(&self, user_id: i64) -> bool {
        let g = self.lock();
        g.users.contains(&user_id) || g.per_user.get(&user_id).is_some_and(|n| *n > 0)
    }

    /// A claim handed this device work (inside the claim's writer job).
    pub fn claimed(&self, device_id: i64) {
        *self.lock().claims.entry(device_id).or_default() += 1;
    }

    /// May the device hold a task? `None` only after a read found it holding nothing and no
    /// claim for it happened since (a lease is only ever taken by a claim); otherwise the
    /// device's claim count, to pass to `saw_nothing_held` after reading what it holds.
    pub fn may_hold(&self, device_id: i64) -> Option<u64> {
        let g = self.lock();
        let now = g.claims.get(&device_id).copied().unwrap_or(0);
        (g.seen_empty.get(&device_id) != Some(&now)).then_some(now)
    }

    /// A read that started at claim count `generation` found the device holding nothing.
    pub fn saw_nothing_held(&self, device_id: i64, generation: u64) {
        self.lock().seen_empty.insert(device_id, generation);
    }

    /// A claim found nothing claimable left for this device and its owner's device-less queue.
    pub fn clear(&self, device_id: i64, user_id: i64) {
        let mut g = self.lock();
        if let Some(owner) = g.devices.remove(&device_id)
            && let Some(n) = g.per_user.get_mut(&owner)
        {
            *n -= 1;
            if *n == 0 {
                g.per_user.remove(&owner);
            }
        }
        g.users.remove(&user_id);
    }
}
