//! `/v1` — the canonical API (docs/families.md): its route table. One entry per route:
//! method, path, the credential it accepts (and the scope), anything special about its body
//! or threads, the summary the OpenAPI document shows, and the handler.

mod devices;
mod identity;
mod kv;
mod tasks;

use crate::http::route::{Auth, Cap, Route, delete, get, patch, post};
use devices as dev;
use identity as id;
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
    ]
}
