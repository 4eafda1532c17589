//! After-commit effects (docs/architecture.md "Writes"): what must happen once a write job's
//! transaction has committed, and never if it rolled back.
//!
//! A write job registers effects on its transaction (`Tx::after_commit`); the writer runs
//! the effects of every job of a batch after the batch's `COMMIT` succeeded, through the one
//! `EffectSink` installed at start-up, which knows where each effect goes (the long-poll
//! registry, the caches, the event streams). A job that fails, or a batch whose commit fails,
//! runs none: a rolled-back write publishes no event.

use serde_json::Value;

/// Something to do once a write has committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// A task became claimable for this device, or a cancel is pending for a task it holds:
    /// wake its parked long-polls.
    DeviceWork(i64),
    /// A task became claimable for any device of this user: wake the user's parked polls.
    UserWork(i64),
    /// A running slot of this user was freed (a result, a requeue, a cancel): polls that
    /// waited at a concurrency limit may claim now.
    CapacityFreed(i64),
    /// A device's row or key changed other than by its own heartbeat (rename, config,
    /// re-registration, key rotation, deletion, offline marking): forget its cached key and
    /// row, and wake its parked polls so they re-check their credential.
    DeviceChanged(i64),
    /// A device's status changed without its key or owner changing (the janitor marked it
    /// offline): forget its cached heartbeat row only.
    DeviceRowStale(i64),
    /// Publish an event to its user's event streams (`GET /v1/events`, docs/events.md).
    Publish(Box<Event>),
    /// Sessions or API keys of this user were revoked: its open event streams check their
    /// credential now instead of at their next ping.
    CredentialsRevoked(i64),
    /// A mail was queued in the outbox: wake the mailer so it does not wait for its next
    /// round.
    MailQueued,
}

/// What an event stream hears about: one state change of a user's task, device or messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Whose streams hear it.
    pub user_id: i64,
    pub kind: EventKind,
    /// The payload (`data` of the seed's WebSocket message).
    pub data: Value,
}

/// The event names (Full's WebSocket events), see docs/events.md for each payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    DeviceOnline,
    DeviceOffline,
    TaskCreated,
    TaskUpdated,
    TaskCompleted,
    MessageNew,
}

impl EventKind {
    /// The name on the wire (`event:` of the SSE frame, `type` of its data).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::DeviceOnline => "device.online",
            EventKind::DeviceOffline => "device.offline",
            EventKind::TaskCreated => "task.created",
            EventKind::TaskUpdated => "task.updated",
            EventKind::TaskCompleted => "task.completed",
            EventKind::MessageNew => "message.new",
        }
    }

    /// The scope an API key needs to hear this kind (session tokens hear every kind).
    pub fn scope(self) -> &'static str {
        match self {
            EventKind::DeviceOnline | EventKind::DeviceOffline => "device:read",
            EventKind::TaskCreated | EventKind::TaskUpdated | EventKind::TaskCompleted => {
                "task:read"
            }
            EventKind::MessageNew => "user:read",
        }
    }
}

/// Where effects go. Installed once (`db::Db::set_effect_sink`); called on the writer thread,
/// so an implementation must be quick and must not write to the database itself.
pub trait EffectSink: Send + Sync {
    /// Runs effects of committed jobs, in the order they were registered.
    fn apply(&self, effects: Vec<Effect>);
}
