//! In-memory state shared by every thread, between storage and the domain: the
//! claimable-work index, the device-key cache, coalesced heartbeats, login throttling, the
//! mailer's signal and counters, the rate-limit windows and the buffer of recent events.
//! Nothing here touches SQLite or the network; it may name `db` row types, and it never
//! imports `domain`, `http` or `workers`.

pub mod claimable;
pub mod events;
pub mod keycache;
pub mod mail;
pub mod presence;
pub mod ratelimit;
pub mod throttle;
