//! `/v1` handlers for an owner's view of their devices' key-value stores (README "Apps and the
//! KV store"): list keys with metadata, delete a key — so a person can clean up after an app.
//! The device is looked up inside the caller's own devices (404 otherwise).

use crate::db::kv::Meta;
use crate::domain::kv::{self, Listing, Precondition, Store};
use crate::error::ApiResult;
use crate::http::route::{Call, Message, Query};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A key's metadata (`/v1` names).
#[derive(Serialize, JsonSchema)]
pub struct KvEntryView {
    pub key: String,
    pub content_type: String,
    /// Bytes of key + value.
    pub size_bytes: i64,
    pub version: i64,
    pub expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Meta> for KvEntryView {
    fn from(m: Meta) -> KvEntryView {
        KvEntryView {
            key: m.key,
            content_type: m.content_type,
            size_bytes: m.size_bytes,
            version: m.version,
            expires_at: m.expires_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// Which keys to list.
#[derive(Deserialize, JsonSchema, Default)]
pub struct KvQuery {
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Entries per page: default 100, at most 1000.
    pub limit: Option<u64>,
}

/// A page of a device's keys.
#[derive(Serialize, JsonSchema)]
pub struct KvList {
    pub entries: Vec<KvEntryView>,
    pub count: usize,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/devices/{id}/kv?prefix=&cursor=&limit=`.
pub fn list(call: &Call, Query(q): Query<KvQuery>) -> ApiResult<KvList> {
    let store = Store::owned(&call.cx, call.user()?.user_id(), call.param("id"))?;
    let listing = Listing {
        prefix: q.prefix,
        cursor: q.cursor,
        limit: q.limit,
    };
    let p = kv::list(&call.cx, store, &listing)?;
    Ok(KvList {
        count: p.items.len(),
        next_cursor: p.next_cursor,
        entries: p.items.into_iter().map(KvEntryView::from).collect(),
    })
}

/// `DELETE /v1/devices/{id}/kv/{key}`.
pub fn delete(call: &Call, _: ()) -> ApiResult<Message> {
    let store = Store::owned(&call.cx, call.user()?.user_id(), call.param("id"))?;
    kv::delete(&call.cx, store, call.param("key"), Precondition::None)?;
    Ok(Message::new("Key deleted"))
}
