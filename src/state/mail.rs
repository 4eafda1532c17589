//! What the mail side keeps in memory (README "Mail"): the mailer's wake-up signal (kicked by
//! the `MailQueued` after-commit effect and at shutdown) and the counters `/metrics` shows —
//! relay outcomes per provider and how many webhook signatures were computed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// What became of one attempt to hand a mail to the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// The relay accepted it.
    Sent,
    /// A 5xx, 429, timeout or transport error: it will be tried again.
    Retry,
    /// A 4xx, or the last attempt failed: given up.
    Failed,
}

impl Outcome {
    /// The label `/metrics` uses.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Sent => "sent",
            Outcome::Retry => "retry",
            Outcome::Failed => "failed",
        }
    }
}

/// The mailer's signal and the mail counters. One per server.
#[derive(Default)]
pub struct MailState {
    kicked: Mutex<bool>,
    wake: Condvar,
    outcomes: Mutex<BTreeMap<(&'static str, Outcome), u64>>,
    signatures: AtomicU64,
}

impl MailState {
    /// Wakes the mailer (a mail was queued, or the server is stopping).
    pub fn kick(&self) {
        *self.kicked.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_all();
    }

    /// Waits up to `d` for a kick; returns whether one came (and clears it).
    pub fn wait(&self, d: Duration) -> bool {
        let g = self.kicked.lock().unwrap_or_else(|p| p.into_inner());
        let (mut g, _) = self
            .wake
            .wait_timeout_while(g, d, |k| !*k)
            .unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *g, false)
    }

    /// Counts one attempt's outcome for `provider`.
    pub fn count(&self, provider: &'static str, o: Outcome) {
        *self
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((provider, o))
            .or_default() += 1;
    }

    /// Every (provider, outcome, count) counted so far.
    pub fn outcomes(&self) -> Vec<(&'static str, Outcome, u64)> {
        self.outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|((p, o), n)| (*p, *o, *n))
            .collect()
    }

    /// Counts one webhook signature computation (an HMAC over a body).
    pub fn signature_computed(&self) {
        self.signatures.fetch_add(1, Ordering::Relaxed);
    }

    /// Webhook signatures computed so far.
    pub fn signatures(&self) -> u64 {
        self.signatures.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kick_before_the_wait_is_not_lost() {
        let m = MailState::default();
        assert!(!m.wait(Duration::from_millis(1)));
        m.kick();
        assert!(m.wait(Duration::from_secs(5)), "the kick was remembered");
        assert!(!m.wait(Duration::from_millis(1)), "and consumed");
        m.count("resend", Outcome::Sent);
        m.count("resend", Outcome::Sent);
        assert_eq!(m.outcomes(), vec![("resend", Outcome::Sent, 2)]);
    }
}
