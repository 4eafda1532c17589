//! KV — `/apps/*` and `/kv/*` (docs/families.md, README "Apps and the KV store"): its route
//! table. Bodies are the seed's flat JSON objects in camelCase (no envelope); failures are
//! `{"error", "code"}`. `apps` holds the catalog, authorisation and token handlers; `store`
//! the key-value handlers, which take an app token by `Authorization: Bearer`, `?token=` or
//! `{"token": …}` in a JSON body.

mod apps;
mod store;

use crate::http::route::{Auth, Cap, Route, delete, get, post};

/// The KV family's routes.
#[rustfmt::skip]
pub fn routes() -> Vec<Route> {
    const READ: Auth = Auth::App { writes: false };
    const WRITE: Auth = Auth::App { writes: true };
    vec![
        // apps and their tokens
        get("/apps")
            .to("The app catalog", apps::list),
        get("/apps/{id}")
            .to("An app", apps::get),
        get("/apps/{id}/installations").user("device:read")
            .to("The app's installs on the caller's own devices", apps::installations),
        post("/apps/{id}/authorize").auth(Auth::Optional(&Auth::Session)).hashing().created()
            .to("Authorise an app on a device (owner's session, or the device's KV password); the token is shown once", apps::authorize),
        get("/apps/devices/{deviceUuid}/tokens").user("device:read")
            .to("The app tokens of one of the caller's devices (prefixes only)", apps::device_tokens),
        delete("/apps/tokens/{token}").auth(Auth::Optional(&Auth::User("device:write")))
            .to("Revoke an app token: the token itself, or the owner with the install id", apps::revoke),
        // the device's key-value store
        get("/kv").auth(READ)
            .to("Keys with metadata (prefix, cursor, limit)", store::list),
        get("/kv/_keys").auth(READ)
            .to("Key names only (prefix, cursor, limit)", store::keys),
        get("/kv/{key}").auth(READ).raw("*/*")
            .to_out("The value exactly as stored, with its Content-Type and ETag", store::get),
        get("/kv/{key}/metadata").auth(READ)
            .to_out("A key's metadata and ETag", store::metadata),
        post("/kv/_batchimport").auth(WRITE)
            .to("Write {key: value, …} all or nothing", store::import),
        post("/kv/{key}").auth(WRITE).cap(Cap::KvValue).statuses(&[200, 201])
            .to_out("Write a value (the body; If-Match / If-None-Match for compare-and-swap; ttl or expires_at)", store::put),
        delete("/kv/{key}").auth(WRITE)
            .to("Delete a key (If-Match for compare-and-swap)", store::delete),
    ]
}
