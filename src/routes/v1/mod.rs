//! `/v1` — the canonical API (Full, SPEC §6.1): the route table.
//!
//! One line per route: method, path, the caller it needs (and its scope), the handler. Handlers
//! live in `identity` (auth, sessions, API keys) and `queue` (devices, daemon, tasks) and map
//! Full's field names onto the shared domain functions; the envelope is `Family::V1`.

mod identity;
mod queue;

use super::{Family, Outcome, not_found_route};
use crate::app::Ctx;
use crate::auth::{require_device, require_session, require_user};
use identity as id;
use queue as q;

const F: Family = Family::V1;

/// The `/v1` route table.
pub fn dispatch(cx: &Ctx) -> Outcome {
    let req = cx.req;
    let segs = req.segs();
    let (ok, created) = (200, 201);
    let (user, session, device) = (require_user, require_session, require_device);
    let r = match (req.method.as_str(), &segs[1..]) {
        // auth
        ("POST", ["auth", "register"]) => return F.render(req, created, id::register(cx)),
        ("POST", ["auth", "login"]) => id::login(cx),
        ("POST", ["auth", "refresh"]) => id::refresh(cx),
        ("POST", ["auth", "logout"]) => session(cx).and_then(|u| id::logout(cx, &u)),
        ("GET", ["auth", "me"]) => user(cx, "user:read").and_then(|u| id::me(cx, &u)),
        ("PATCH", ["auth", "me"]) => user(cx, "user:write").and_then(|u| id::update_me(cx, &u)),
        ("POST", ["auth", "password"]) => session(cx).and_then(|u| id::password(cx, &u)),
        ("GET", ["auth", "verify"]) => id::verify(cx),
        // sessions
        ("GET", ["sessions"]) => session(cx).and_then(|u| id::list_sessions(cx, &u)),
        ("POST", ["sessions"]) => {
            return F.render(
                req,
                created,
                session(cx).and_then(|u| id::new_session(cx, &u)),
            );
        }
        ("GET", ["sessions", s]) => session(cx).and_then(|u| id::get_session(cx, &u, s)),
        ("PATCH", ["sessions", s]) => session(cx).and_then(|u| id::rename_session(cx, &u, s)),
        ("DELETE", ["sessions", s]) => session(cx).and_then(|u| id::delete_session(cx, &u, s)),
        // API keys
        ("GET", ["api-keys"]) => session(cx).and_then(|u| id::list_keys(cx, &u)),
        ("POST", ["api-keys"]) => {
            return F.render(
                req,
                created,
                session(cx).and_then(|u| id::create_key(cx, &u)),
            );
        }
        ("DELETE", ["api-keys", k]) => session(cx).and_then(|u| id::revoke_key(cx, &u, k)),
        // devices
        ("GET", ["devices"]) => user(cx, "device:read").and_then(|u| q::list_devices(cx, &u)),
        ("POST", ["devices"]) => {
            return F.render(
                req,
                created,
                user(cx, "device:write").and_then(|u| q::create_device(cx, &u)),
            );
        }
        ("GET", ["devices", d]) => user(cx, "device:read").and_then(|u| q::get_device(cx, &u, d)),
        ("PATCH", ["devices", d]) => {
            user(cx, "device:write").and_then(|u| q::rename_device(cx, &u, d))
        }
        ("PATCH", ["devices", d, "config"]) => {
            user(cx, "device:write").and_then(|u| q::device_config(cx, &u, d))
        }
        ("POST", ["devices", d, "rotate-key"]) => {
            user(cx, "device:write").and_then(|u| q::rotate_key(cx, &u, d))
        }
        ("DELETE", ["devices", d]) => {
            user(cx, "device:write").and_then(|u| q::delete_device(cx, &u, d))
        }
        // daemon (device key)
        ("POST", ["daemon", "register"]) => return q::register(cx),
        ("POST", ["daemon", "heartbeat"]) => device(cx).and_then(|d| q::heartbeat(cx, &d)),
        ("GET", ["daemon", "tasks", "pending"]) => return q::pending(cx),
        ("POST", ["daemon", "tasks", t, "progress"]) => {
            device(cx).and_then(|d| q::progress(cx, &d, t))
        }
        ("POST", ["daemon", "tasks", t, "result"]) => device(cx).and_then(|d| q::result(cx, &d, t)),
        ("GET", ["daemon", "config", "sync"]) => device(cx).and_then(|d| q::config_sync(cx, &d)),
        ("POST", ["daemon", "offline"]) => device(cx).and_then(|d| q::offline(cx, &d)),
        // tasks
        ("POST", ["tasks"]) => return q::create_task(cx),
        ("POST", ["tasks", "batch"]) => {
            return F.render(
                req,
                created,
                user(cx, "task:create").and_then(|u| q::batch(cx, &u)),
            );
        }
        ("GET", ["tasks"]) => user(cx, "task:read").and_then(|u| q::list_tasks(cx, &u)),
        ("GET", ["tasks", t]) => user(cx, "task:read").and_then(|u| q::get_task(cx, &u, t)),
        ("POST", ["tasks", t, "cancel"]) => {
            user(cx, "task:cancel").and_then(|u| q::cancel_task(cx, &u, t))
        }
        ("POST", ["tasks", t, "retry"]) => {
            return F.render(
                req,
                created,
                user(cx, "task:create").and_then(|u| q::retry_task(cx, &u, t)),
            );
        }
        _ => Err(not_found_route()),
    };
    F.render(req, ok, r)
}
