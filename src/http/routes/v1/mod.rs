//! `/v1` — the canonical API (docs/families.md): its route table. One entry per route:
//! method, path, the credential it accepts (and the scope), anything special about its body
//! or threads, the summary the OpenAPI document shows, and the handler.

pub(crate) mod config;
mod devices;
pub mod email;
mod events;
mod identity;
mod kv;
mod logs;
mod messages;
mod panel;
pub(crate) mod stats;
mod tasks;
mod vault;

use crate::http::route::{Auth, Cap, Rate, Route, delete, get, patch, post, put};
use config as cfg;
use devices as dev;
use email as mail;
use identity as id;
use messages as msg;
use tasks as task;

/// The `/v1` routes.
#[rustfmt::skip]
pub fn routes() -> Vec<Route> {
    vec![
        // auth
        post("/v1/auth/register").hashing().created()
            .to("Create an account and open a session", id::register),
        post("/v1/auth/login").hashing()
            .to("Log in by email or username; opens a session", id::login),
        post("/v1/auth/refresh")
            .to("Trade a refresh token for a new token pair", id::refresh),
        post("/v1/auth/logout").session()
            .to("Revoke the current session", id::logout),
        get("/v1/auth/me").user("user:read")
            .to("The caller's account and session", id::me),
        patch("/v1/auth/me").user("user:write")
            .to("Change the caller's profile", id::update_me),
        post("/v1/auth/password").session().hashing()
            .to("Change the password; signs out other sessions", id::password),
        get("/v1/auth/verify").auth(Auth::Any)
            .to("Which credential is this", id::verify),
        // sessions
        get("/v1/sessions").session()
            .to("The caller's live sessions", id::list_sessions),
        post("/v1/sessions").session().created()
            .to("Open another session", id::new_session),
        get("/v1/sessions/{id}").session()
            .to("A session and its tasks", id::get_session),
        patch("/v1/sessions/{id}").session()
            .to("Rename a session", id::rename_session),
        delete("/v1/sessions/{id}").session()
            .to("Revoke a session and delete its tasks", id::delete_session),
        // API keys
        get("/v1/api-keys").session()
            .to("The caller's API keys", id::list_keys),
        post("/v1/api-keys").session().created()
            .to("Create a scoped API key (shown once)", id::create_key),
        delete("/v1/api-keys/{id}").session()
            .to("Revoke an API key", id::revoke_key),
        // devices
        get("/v1/devices").user("device:read")
            .to("The caller's devices", dev::list),
        post("/v1/devices").user("device:write").created()
            .to("A device with a pre-shared key", dev::create),
        get("/v1/devices/{id}").user("device:read")
            .to("A device", dev::get),
        patch("/v1/devices/{id}").user("device:write").hashing()
            .to("Rename a device and/or set its KV password (null removes it)", dev::rename),
        patch("/v1/devices/{id}/config").user("device:write")
            .to("Change a device's settings", dev::config),
        post("/v1/devices/{id}/rotate-key").user("device:write")
            .to("Replace a device's key", dev::rotate_key),
        delete("/v1/devices/{id}").user("device:write")
            .to("Delete a device; cancels its unfinished tasks", dev::delete),
        get("/v1/devices/{id}/kv").user("device:read")
            .to("The device's KV keys with metadata (prefix, cursor, limit)", kv::list),
        delete("/v1/devices/{id}/kv/{key}").user("device:write")
            .to("Delete a key from the device's KV store", kv::delete),
        // daemon
        post("/v1/daemon/register").user("device:write").statuses(&[200, 201])
            .to_out("Register the daemon of X-Device-ID (same id, same key)", dev::register),
        post("/v1/daemon/heartbeat").device()
            .to("Report status; learn config, pending work and cancels", dev::heartbeat),
        get("/v1/daemon/tasks/pending").device()
            .to_out("Claim tasks; wait=N long-polls up to 60 s", dev::pending),
        post("/v1/daemon/tasks/{id}/progress").device().cap(Cap::Output)
            .to("Report progress and partial output", dev::progress),
        post("/v1/daemon/tasks/{id}/result").device().cap(Cap::Output)
            .to("Report a task's result", dev::result),
        get("/v1/daemon/config/sync").device()
            .to("The device's config", dev::config_sync),
        post("/v1/daemon/offline").device()
            .to("Go offline; running tasks are requeued", dev::offline),
        // tasks
        post("/v1/tasks").user("task:create").created().statuses(&[200])
            .to_out("Queue a task (Idempotency-Key replays answer 200)", task::create),
        post("/v1/tasks/batch").user("task:create").created()
            .to("Queue several tasks, in parallel or in sequence", task::batch),
        get("/v1/tasks").user("task:read")
            .to("The caller's tasks, newest first", task::list),
        get("/v1/tasks/{id}").user("task:read")
            .to("A task", task::get),
        post("/v1/tasks/{id}/cancel").user("task:cancel")
            .to("Cancel a task", task::cancel),
        post("/v1/tasks/{id}/retry").user("task:create").created()
            .to("Queue a finished task again", task::retry),
        // e-mail
        post("/v1/email/config").user("user:write")
            .to("Set the e-mail config of the account or of a device (an API key also needs task:create)", mail::set_config),
        get("/v1/email/config").user("user:read")
            .to("The caller's e-mail configs (passwords never shown)", mail::list_configs),
        get("/v1/email/config/{device_id}").user("user:read")
            .to("The e-mail config of a device (`account`: the account's own)", mail::get_config),
        delete("/v1/email/config/{device_id}").user("user:write")
            .to("Delete an e-mail config", mail::delete_config),
        post("/v1/email/test").user("user:write").statuses(&[202])
            .to_out("Queue a test mail to a configured address", mail::test),
        post("/v1/email/send").user("user:write").statuses(&[202])
            .to_out("Queue a mail to the caller's own or configured address", mail::send),
        get("/v1/email/outbox").user("user:read")
            .to("The caller's mails and their delivery state", mail::outbox),
        get("/v1/email/outbox/{id}").user("user:read")
            .to("One mail of the outbox", mail::outbox_one),
        post("/v1/email/incoming").rate(Rate::Webhook)
            .to_out("Inbound mail webhook (HMAC-signed): a [CCJK] mail becomes a task", mail::incoming),
        // messages
        get("/v1/messages").user("user:read")
            .to("The caller's notifications, newest first", msg::list),
        post("/v1/messages/{id}/read").user("user:write")
            .to("Mark a notification read", msg::read),
        post("/v1/messages/read-all").user("user:write")
            .to("Mark every notification read", msg::read_all),
        delete("/v1/messages/{id}").user("user:write")
            .to("Delete a notification", msg::delete),
        // config backups (a device key reaches its own device's)
        post("/v1/config/backup").auth(Auth::UserOrDevice("config:write")).created()
            .to("Back up a JSON document, stored exactly as sent", cfg::backup),
        get("/v1/config/backups").auth(Auth::UserOrDevice("config:read"))
            .to("Backups, newest first (?device_id= for one device)", cfg::list),
        get("/v1/config/backups/{id}").auth(Auth::UserOrDevice("config:read"))
            .to("A backup and its document", cfg::get),
        post("/v1/config/restore/{id}").auth(Auth::UserOrDevice("config:read"))
            .to("The stored document, byte for byte", cfg::restore),
        delete("/v1/config/backups/{id}").auth(Auth::UserOrDevice("config:write"))
            .to("Delete a backup", cfg::delete),
        // daemon logs
        post("/v1/daemon/logs").device().cap(Cap::Upload).created()
            .to("Upload a log file (multipart: log_file + metadata)", logs::upload),
        get("/v1/devices/{id}/logs").user("log:read")
            .to("A device's uploaded logs, newest first", logs::list),
        get("/v1/logs/{id}").user("log:read").raw("application/octet-stream")
            .to_out("Download a log exactly as uploaded", logs::download),
        // statistics
        get("/v1/stats/summary").user("stats:read")
            .to("Tasks, run time, uptime and storage over a period", stats::summary),
        get("/v1/stats/device/{id}").user("stats:read")
            .to("One device's statistics over a period", stats::device),
        // vault: sites, fields, accounts, the active account, lookups, reveals
        get("/v1/sites").user("config:read")
            .to("The caller's vault sites", vault::list_sites),
        post("/v1/sites").user("config:write").created()
            .to("Create a site (with its fields)", vault::create_site),
        get("/v1/sites/{key}").user("config:read")
            .to("A site and its fields", vault::get_site),
        patch("/v1/sites/{key}").user("config:write")
            .to("Change a site's name, login URL or device-reveal switch", vault::update_site),
        delete("/v1/sites/{key}").user("config:write")
            .to("Delete a site with its fields, accounts and active account", vault::delete_site),
        get("/v1/sites/{key}/fields").user("config:read")
            .to("A site's field schema", vault::get_fields),
        put("/v1/sites/{key}/fields").user("config:write")
            .to("Replace a site's fields (409 if accounts would no longer validate, unless force=true)", vault::put_fields),
        get("/v1/sites/{key}/accounts").user("config:read")
            .to("A site's accounts, masked unless reveal=true", vault::site_accounts),
        post("/v1/sites/{key}/accounts").user("config:write").created()
            .to("Add an account to a site", vault::create_account),
        get("/v1/sites/{key}/active").user("config:read")
            .to("A site's active account", vault::get_active),
        put("/v1/sites/{key}/active").user("config:write")
            .to("Make one of the site's accounts the active one", vault::set_active),
        delete("/v1/sites/{key}/active").user("config:write")
            .to("Clear a site's active account", vault::clear_active),
        get("/v1/accounts").user("config:read")
            .to("Find accounts by site, expiring_within and prop.<name>=<value>", vault::search),
        get("/v1/accounts/{id}").user("config:read")
            .to("An account, masked unless reveal=true", vault::get_account),
        patch("/v1/accounts/{id}").user("config:write")
            .to("Change an account (props are merged and checked)", vault::update_account),
        delete("/v1/accounts/{id}").user("config:write")
            .to("Delete an account (clears it as its site's active one)", vault::delete_account),
        get("/v1/vault/reveals").user("config:read")
            .to("Who was shown which account's secrets, newest first", vault::list_reveals),
        get("/v1/daemon/vault/active").device()
            .to("The owner's active accounts (secrets only where the site allows device reveal)", vault::daemon_active),
        // events
        get("/v1/events").user("task:read").query_token().raw("text/event-stream")
            .statuses(&[200])
            .to_out("Server-Sent Events: the caller's task, device and message changes", events::stream),
        // the web panel's login (the session token lives in an HttpOnly cookie)
        post("/v1/panel/register").hashing().created()
            .to_out("Create an account; the session goes into the panel's cookie", panel::register),
        post("/v1/panel/login").hashing()
            .to_out("Log in; the session goes into the panel's cookie", panel::login),
        post("/v1/panel/logout").session()
            .to_out("Revoke the panel's session and clear its cookie", panel::logout),
        get("/v1/panel/me")
            .to("The panel's login (user, session, CSRF token) and this server's features", panel::me),
    ]
}
