//! The integration tests: one binary (so the crate links once) with a module per area. Every
//! test starts its own server on an ephemeral port over its own temporary SQLite file, so the
//! tests run in parallel; `common` is the harness.

mod accounts;
mod api_keys;
mod auth;
mod common;
mod control_daemon;
mod crash;
mod envelope;
mod kv_auth;
mod kv_flow;
mod kv_ownership;
mod kv_store;
mod kv_util;
mod lifecycle;
mod limits;
mod presence;
mod queue_concurrency;
mod queue_flow;
mod queue_leases;
mod queue_longpoll;
mod queue_ownership;
mod queue_rules;
mod queue_util;
mod sessions;
mod smoke;
mod storage;
mod throttle;
