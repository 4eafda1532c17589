//! One home for background work (docs/architecture.md "Background work"): the long-poll
//! dispatcher, the events thread, the heartbeat flusher, the janitor, the watchdog and the
//! mailer (and the place for any later chore),
//! started together, with one periodic-task helper, one stop signal and one shutdown order.
//!
//! Calls go one way: workers use the HTTP side (the dispatcher answers parked requests) and
//! the domain; nothing below imports this module. `EffectRouter` is where the writer's
//! after-commit effects go: it is the one place that knows the long-poll registry, the event
//! streams and the caches.

pub mod dispatcher;
pub mod events;
pub mod flusher;
pub mod janitor;
pub mod mailer;
pub mod watchdog;

use crate::db::effects::{Effect, EffectSink};
use crate::http::app::App;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Why the server is stopping, if it is.
#[derive(Default)]
struct StopState {
    requested: bool,
    fatal: Option<String>,
}

/// The one stop signal: periodic workers sleep on it, the main thread waits on it, a signal
/// handler or a dying accept thread raises it.
#[derive(Clone, Default)]
pub struct Stop(Arc<(Mutex<StopState>, Condvar)>);

impl Stop {
    fn lock(&self) -> std::sync::MutexGuard<'_, StopState> {
        self.0.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks for a graceful stop.
    pub fn request(&self) {
        self.lock().requested = true;
        self.0.1.notify_all();
    }

    /// Stops because something fatal happened (the first reason is kept).
    pub fn fatal(&self, why: String) {
        self.lock().fatal.get_or_insert(why);
        self.0.1.notify_all();
    }

    /// Whether a stop was asked for or forced.
    pub fn is_set(&self) -> bool {
        let s = self.lock();
        s.requested || s.fatal.is_some()
    }

    /// Sleeps for `d`; returns `false` (at once) when a stop is set.
    pub fn sleep(&self, d: Duration) -> bool {
        let g = self.lock();
        let (g, _) = self
            .0
            .1
            .wait_timeout_while(g, d, |s| !s.requested && s.fatal.is_none())
            .unwrap_or_else(|p| p.into_inner());
        !(g.requested || g.fatal.is_some())
    }

    /// Blocks until a stop is set; returns the fatal reason, if any.
    pub fn wait(&self) -> Option<String> {
        let mut g = self.lock();
        while !g.requested && g.fatal.is_none() {
            g = self.0.1.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        g.fatal.clone()
    }
}

/// Starts a `ccjk-<name>` thread that runs `tick` every `every` until the stop signal, then
/// once more (`last = true`) so a final round can flush what it holds.
pub fn periodic(
    name: &str,
    every: Duration,
    stop: &Stop,
    mut tick: impl FnMut(bool) + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    let stop = stop.clone();
    thread::Builder::new()
        .name(format!("ccjk-{name}"))
        .spawn(move || {
            while stop.sleep(every) {
                tick(false);
            }
            tick(true);
        })
}

/// The running background threads.
pub struct Workers {
    dispatcher: Option<JoinHandle<()>>,
    events: Option<JoinHandle<()>>,
    periodic: Vec<JoinHandle<()>>,
    mailer: Option<JoinHandle<()>>,
}

impl Workers {
    /// Starts the dispatcher, the events thread, the heartbeat flusher, the janitor, the
    /// mailer, and the watchdog sending its sentinels to `target` (the listener).
    pub fn start(
        app: &Arc<App>,
        stop: &Stop,
        target: watchdog::Target,
    ) -> std::io::Result<Workers> {
        Ok(Workers {
            dispatcher: Some(dispatcher::spawn(app.clone())?),
            events: Some(events::spawn(app.clone())?),
            periodic: vec![
                flusher::spawn(app.svc.clone(), stop)?,
                janitor::spawn(app.svc.clone(), stop)?,
                watchdog::spawn(app.clone(), target, stop)?,
            ],
            mailer: Some(mailer::spawn(app.svc.clone(), stop)?),
        })
    }

    /// The shutdown order, once requests have stopped coming in: answer every parked poll
    /// (closing the registry ends the dispatcher) and end every event stream (which ends the
    /// events thread), then let the periodic workers finish their last round (the flusher
    /// writes the last heartbeats), then wake the mailer and wait for the mail it is sending
    /// (at most the relay timeout; queued mail stays queued for the next start). The stop
    /// signal must already be set.
    pub fn stop(&mut self, app: &App) {
        app.polls.close();
        app.events.close();
        if let Some(d) = self.dispatcher.take() {
            let _ = d.join();
        }
        if let Some(e) = self.events.take() {
            let _ = e.join();
        }
        for t in self.periodic.drain(..) {
            let _ = t.join();
        }
        app.svc.mail.kick();
        if let Some(m) = self.mailer.take() {
            let _ = m.join();
        }
    }
}

/// Sends the writer's after-commit effects where they belong: the long-poll registry, the
/// event streams, the device caches and the mailer.
pub struct EffectRouter {
    app: std::sync::Weak<App>,
}

impl EffectRouter {
    /// A router over `app` (held weakly: the writer outlives nothing it must keep alive).
    pub fn new(app: &Arc<App>) -> EffectRouter {
        EffectRouter {
            app: Arc::downgrade(app),
        }
    }
}

impl EffectSink for EffectRouter {
    fn apply(&self, effects: Vec<Effect>) {
        let Some(app) = self.app.upgrade() else {
            return;
        };
        for e in effects {
            match e {
                Effect::DeviceWork(d) => app.polls.wake_device(d),
                Effect::UserWork(u) => app.polls.wake_user(u),
                Effect::CapacityFreed(u) => {
                    if app.svc.claimable.user_maybe(u) {
                        app.polls.wake_user(u);
                    }
                }
                Effect::DeviceRowStale(d) => app.svc.presence.forget_row(d),
                Effect::DeviceChanged(d) => {
                    app.svc.device_keys.forget_device(d);
                    app.svc.presence.forget_row(d);
                    app.polls.wake_device(d);
                }
                Effect::Publish(e) => app.events.publish(e),
                Effect::CredentialsRevoked(u) => app.events.recheck(u),
                Effect::MailQueued => app.svc.mail.kick(),
            }
        }
    }
}
