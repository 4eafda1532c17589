//! Domain functions shared by every API family: validation, rules, and calls into `db`.
//! They take a `Ctx` and a typed caller and return data (rows or JSON values), never HTTP
//! responses; the family adapters in `routes/` choose paths, field names and envelopes.

pub mod api_keys;
pub mod auth;
pub mod daemon;
pub mod devices;
pub mod health;
pub mod lifecycle;
pub mod sessions;
pub mod task_json;
pub mod tasks;

/// Pagination from `limit` (default 20, clamped to 1..=200) and `offset` (SPEC §5).
pub fn page(req: &crate::http::Req) -> (i64, i64) {
    let limit = req
        .query("limit")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(20)
        .clamp(1, 200);
    let offset = req
        .query("offset")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0)
        .max(0);
    (limit, offset)
}
