//! The integration tests: one binary (so the crate links once) with a module per area. Every
//! test starts its own server on an ephemeral port over its own temporary SQLite file, so the
//! tests run in parallel; `common` is the harness.

mod accounts;
mod api_keys;
mod auth;
mod capacity;
mod common;
mod control_daemon;
mod crash;
mod envelope;
mod events;
mod families;
mod holes;
mod hostile;
mod layers;
mod lifecycle;
mod limits;
mod listing;
mod mail_crash;
mod mail_inbound;
mod mail_messages;
mod mail_relays;
mod mail_util;
mod nginx;
mod onboarding;
mod openapi_doc;
mod panel_browser;
mod panel_cookie;
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
mod sse;
mod storage;
mod throttle;
