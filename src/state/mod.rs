//! In-memory state shared by every thread, between storage and the domain: the
//! claimable-work index, the device-key cache, coalesced heartbeats, login throttling, the
//! mailer's signal and counters, the rate-limit windows, the buffer of recent events and the
//! app tokens' pending `last_used_at` writes.
//! Nothing here touches SQLite or the network; it may name `db` row types, and it never
//! imports `domain`, `http` or `workers`.

pub mod claimable;
pub mod events;
pub mod keycache;
pub mod mail;
pub mod presence;
pub mod ratelimit;
pub mod throttle;
pub mod touches;
