//! The in-memory index of claimable work (SPEC §10: "an empty poll touches no SQLite page").
//!
//! A device is marked when a task for it becomes `pending`, a user when a device-less task of
//! theirs does; a claim that finds nothing claimable left clears both. Marks and clears happen
//! inside writer jobs, so they are ordered with the changes they describe; a poll whose device
//! and owner are both unmarked answers without a database write. A false "maybe" only costs a
//! claim that finds nothing; a missing mark would lose work, so every path that makes a task
//! pending calls `mark` (create, release, requeue, retry) and start-up seeds from the table.

use std::collections::HashSet;
use std::sync::Mutex;

/// Devices and users that may have claimable work.
#[derive(Default)]
pub struct Hints {
    inner: Mutex<(HashSet<i64>, HashSet<i64>)>,
}

impl Hints {
    fn lock(&self) -> std::sync::MutexGuard<'_, (HashSet<i64>, HashSet<i64>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A task became pending for `device_id` (or, with `None`, for any of the user's devices).
    pub fn mark(&self, device_id: Option<i64>, user_id: i64) {
        let mut g = self.lock();
        match device_id {
            Some(d) => g.0.insert(d),
            None => g.1.insert(user_id),
        };
    }

    /// May this device have claimable work?
    pub fn maybe(&self, device_id: i64, user_id: i64) -> bool {
        let g = self.lock();
        g.0.contains(&device_id) || g.1.contains(&user_id)
    }

    /// A claim found nothing claimable left for this device and its owner's device-less queue.
    pub fn clear(&self, device_id: i64, user_id: i64) {
        let mut g = self.lock();
        g.0.remove(&device_id);
        g.1.remove(&user_id);
    }
}
