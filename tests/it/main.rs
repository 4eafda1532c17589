//! The integration tests: one binary (so the crate links once) with a module per area. Every
//! test starts its own server on an ephemeral port over its own temporary SQLite file, so the
//! tests run in parallel; `common` is the harness.

mod accounts;
mod api_keys;
mod auth;
mod common;
mod envelope;
mod limits;
mod sessions;
mod smoke;
mod storage;
mod throttle;
