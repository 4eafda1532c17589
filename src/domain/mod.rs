//! The domain: every rule of the product, over explicit inputs (a caller, a client address,
//! an idempotency key, a page) and the shared `Services`, never an HTTP request. The API
//! families in `http::routes`, the CLI and the background workers all call these functions;
//! they differ only in paths, field names and envelopes, never in rules.
//!
//! `callers` turns a credential into a typed caller; `accounts`, `sessions` and `api_keys`
//! are identity; `devices`, `daemon`, `tasks` and `lifecycle` are the task queue (docs/tasks.md);
//! `policy` names every limit and rule; `health` is the database check and the metrics;
//! `events` is what each state change tells the user's event streams (docs/events.md).
//! `mail`, `email_config`, `inbound` and `messages` are e-mail and notifications.
//! `backups`, `logs` and `stats` are what an owner keeps and reads (config backups, daemon log
//! uploads, statistics); `vault` is the sites and accounts users rotate between (docs/vault.md);
//! `apps` and `kv` are the apps authorised per device and their key-value store (README "Apps and the KV store").

pub mod accounts;
pub mod api_keys;
pub mod apps;
pub mod backups;
pub mod callers;
pub mod daemon;
pub mod devices;
pub mod email_config;
pub mod events;
pub mod health;
pub mod inbound;
pub mod kv;
pub mod lifecycle;
pub mod logs;
pub mod mail;
pub mod messages;
pub mod output;
pub mod policy;
pub mod services;
pub mod sessions;
pub mod stats;
pub mod tasks;
#[cfg(test)]
pub mod testing;
pub mod text;
pub mod vault;

pub use services::{Clock, Cx, Origin, Page, Paged, Services};
