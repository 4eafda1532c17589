//! Scheduling policies of the server's threads (README "Performance" has the measurements
//! and the `perf sched` diagnosis behind them):
//!
//! * Password hashes run on `SCHED_IDLE` threads ([`idle_current_thread`]), so any other thread
//!   of the server preempts a hash as soon as it wakes.
//! * Every other thread runs `SCHED_BATCH` ([`batch_current_thread`], set once on the main
//!   thread before anything is spawned, so tiny_http's threads inherit it). Batch threads do
//!   not preempt one another on wakeup (they still preempt idle-policy threads), so tiny_http's
//!   hand-off of a request to a worker completes before the woken worker runs; under the default
//!   policy that hand-off left polls waiting a scheduler tick behind a hash during login bursts.
//!
//! Both keep the thread's nice value. Failures are logged and otherwise ignored: the server is
//! correct under any policy, only the login-burst latency depends on it.

use thread_priority::{
    NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
};

/// Puts the calling thread (and the threads it spawns afterwards) under `SCHED_BATCH`, keeping
/// its nice value. Logs a warning when the kernel refuses.
pub fn batch_current_thread() {
    set_current(NormalThreadSchedulePolicy::Batch, "SCHED_BATCH");
}

/// Puts the calling thread under `SCHED_IDLE` (the nice value does not apply to it). Logs a
/// warning when the kernel refuses.
pub fn idle_current_thread() {
    set_current(NormalThreadSchedulePolicy::Idle, "SCHED_IDLE");
}

fn set_current(policy: NormalThreadSchedulePolicy, name: &str) {
    let Some(nice) = current_nice() else {
        return log::warn!("cannot read this thread's nice value; {name} not set");
    };
    let Some(priority) = priority_for_nice(nice) else {
        return log::warn!("nice value {nice} has no thread-priority equivalent; {name} not set");
    };
    if let Err(e) = thread_priority::set_thread_priority_and_policy(
        thread_priority::thread_native_id(),
        priority,
        ThreadSchedulePolicy::Normal(policy),
    ) {
        log::warn!("cannot set {name}: {e:?}");
    }
}

/// The calling thread's nice value, from `/proc/thread-self/stat` (field 19).
pub fn current_nice() -> Option<i32> {
    stat_field(19)?.parse().ok()
}

/// The calling thread's scheduling policy number (`SCHED_OTHER` 0, `SCHED_BATCH` 3,
/// `SCHED_IDLE` 5), from `/proc/thread-self/stat` (field 41).
pub fn current_policy() -> Option<u32> {
    stat_field(41)?.parse().ok()
}

/// Field `n` (1-based, as in proc(5)) of `/proc/thread-self/stat`. The command name (field 2)
/// may contain spaces and parentheses, so fields are counted after its closing parenthesis.
fn stat_field(n: usize) -> Option<String> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace()
        .nth(n.checked_sub(3)?)
        .map(str::to_string)
}

/// The thread-priority value that thread_priority 3 maps onto nice value `nice` for normal
/// policies: it turns a value `p` in 0..=99 into `(39 * (1 - p / 99)) as i8 - 20`. Searching that
/// mapping (rather than restating its inverse) keeps the nice value exact; a unit test checks
/// that every nice value from -20 to 19 round-trips.
fn priority_for_nice(nice: i32) -> Option<ThreadPriority> {
    (0..=99u8).find_map(|p| {
        let value = ThreadPriorityValue::try_from(p).ok()?;
        let prio = ThreadPriority::Crossplatform(value);
        let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
        (prio.to_posix(policy).ok()? == nice).then_some(prio)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nice_value_has_a_priority() {
        for nice in -20..=19 {
            let p = priority_for_nice(nice).unwrap_or_else(|| panic!("nice {nice} unmapped"));
            let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
            assert_eq!(p.to_posix(policy).ok(), Some(nice));
        }
        assert!(priority_for_nice(20).is_none());
    }

    #[test]
    fn batch_and_idle_keep_the_nice_value() {
        let got = std::thread::spawn(|| {
            let before = current_nice();
            batch_current_thread();
            let batch = (current_policy(), current_nice());
            idle_current_thread();
            (before, batch, current_policy())
        })
        .join()
        .expect("thread");
        let (before, (batch_policy, batch_nice), idle_policy) = got;
        assert!(before.is_some());
        assert_eq!(batch_policy, Some(3), "SCHED_BATCH");
        assert_eq!(batch_nice, before, "nice kept");
        assert_eq!(idle_policy, Some(5), "SCHED_IDLE");
    }
}
