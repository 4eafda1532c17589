//! The domain: every rule of the product, over explicit inputs (a caller, a client address,
//! an idempotency key, a page) and the shared `Services`, never an HTTP request. The API
//! families in `http::routes`, the CLI and the background workers all call these functions;
//! they differ only in paths, field names and envelopes, never in rules.
//!
//! `callers` turns a credential into a typed caller; `accounts`, `sessions` and `api_keys`
//! are identity; `devices`, `daemon`, `tasks` and `lifecycle` are the task queue (docs/tasks.md);
//! `apps` and `kv` are the apps authorised per device and their key-value store;
//! `policy` names every limit and rule; `health` is the database check and the metrics.

pub mod accounts;
pub mod api_keys;
pub mod apps;
pub mod callers;
pub mod daemon;
pub mod devices;
pub mod health;
pub mod kv;
pub mod lifecycle;
pub mod output;
pub mod policy;
pub mod services;
pub mod sessions;
pub mod tasks;
pub mod text;

pub use services::{Clock, Cx, Origin, Page, Paged, Services};
