//! KV family handlers for the key-value store of the device an app token reaches: listings,
//! reading a value exactly as stored, metadata, writes (the body is the value), batch import
//! and deletes. Every answer about one key carries its version as a strong `ETag`; `If-Match`
//! and `If-None-Match: *` make writes and deletes compare-and-swap.

use crate::db::kv::Meta;
use crate::domain::kv::{
    self, DEFAULT_CONTENT_TYPE, JSON_CONTENT_TYPE, KvPage, Listing, Precondition, Put, Store,
};
use crate::error::ApiResult;
use crate::http::route::{Call, Json, Out, Query, RawBody, TokenIn, app_token};
use crate::http::{Reply, parse_json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A key's metadata.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntryMeta {
    pub key: String,
    /// The Content-Type the value was written with.
    pub content_type: String,
    /// Bytes of key + value (what the quotas count).
    pub size: i64,
    /// Changes with every write; the `ETag` (`"<version>"`) for `If-Match`.
    pub version: i64,
    /// RFC 3339 UTC; `null` = never.
    pub expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Meta> for EntryMeta {
    fn from(m: Meta) -> EntryMeta {
        EntryMeta {
            key: m.key,
            content_type: m.content_type,
            size: m.size_bytes,
            version: m.version,
            expires_at: m.expires_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// Which keys a listing shows.
#[derive(Deserialize, JsonSchema, Default)]
pub struct ListQuery {
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Entries per page: default 100, at most 1000 (larger values are clamped).
    pub limit: Option<u64>,
}

impl From<ListQuery> for Listing {
    fn from(q: ListQuery) -> Listing {
        Listing {
            prefix: q.prefix,
            cursor: q.cursor,
            limit: q.limit,
        }
    }
}

/// A page of keys with their metadata.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyList {
    pub keys: Vec<EntryMeta>,
    pub count: usize,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    pub list_complete: bool,
}

/// `GET /kv?prefix=&cursor=&limit=`.
pub fn list(call: &Call, Query(q): Query<ListQuery>) -> ApiResult<KeyList> {
    let p: KvPage<Meta> = kv::list(&call.cx, Store::of(call.app_caller()?), &q.into())?;
    Ok(KeyList {
        count: p.items.len(),
        list_complete: p.next_cursor.is_none(),
        next_cursor: p.next_cursor,
        keys: p.items.into_iter().map(EntryMeta::from).collect(),
    })
}

/// A page of key names.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyNames {
    pub keys: Vec<String>,
    pub count: usize,
    pub next_cursor: Option<String>,
    pub list_complete: bool,
}

/// `GET /kv/_keys?prefix=&cursor=&limit=`.
pub fn keys(call: &Call, Query(q): Query<ListQuery>) -> ApiResult<KeyNames> {
    let p = kv::list_keys(&call.cx, Store::of(call.app_caller()?), &q.into())?;
    Ok(KeyNames {
        count: p.items.len(),
        list_complete: p.next_cursor.is_none(),
        next_cursor: p.next_cursor,
        keys: p.items,
    })
}

fn etag(version: i64) -> (&'static str, String) {
    ("ETag", format!("\"{version}\""))
}

/// `GET /kv/{key}`: the value exactly as stored, with its stored `Content-Type`. A stored
/// type is never run as a page of this origin: `nosniff` and a sandboxing CSP come with it.
pub fn get(call: &Call, _: ()) -> ApiResult<Out<()>> {
    let v = kv::get(&call.cx, Store::of(call.app_caller()?), call.param("key"))?;
    Ok(Out::Reply(Reply {
        status: 200,
        content_type: DEFAULT_CONTENT_TYPE,
        headers: vec![
            ("Content-Type", v.content_type),
            etag(v.version),
            ("X-Content-Type-Options", "nosniff".into()),
            (
                "Content-Security-Policy",
                "default-src 'none'; sandbox".into(),
            ),
        ],
        body: v.value,
        error_code: None,
    }))
}

/// Metadata with its `ETag` header.
fn meta_reply(status: u16, m: Meta) -> Out<EntryMeta> {
    let tag = etag(m.version);
    let mut r = Reply::json(status, &EntryMeta::from(m));
    r.headers.push(tag);
    Out::Reply(r)
}

/// `GET /kv/{key}/metadata`.
pub fn metadata(call: &Call, _: ()) -> ApiResult<Out<EntryMeta>> {
    let m = kv::metadata(&call.cx, Store::of(call.app_caller()?), call.param("key"))?;
    Ok(meta_reply(200, m))
}

/// When a write expires (query parameters, or fields of the JSON envelope).
#[derive(Deserialize, JsonSchema, Default)]
pub struct ExpiryQuery {
    /// Seconds until the value expires (1 s to 10 years); it is invisible from then on.
    pub ttl: Option<u64>,
    /// RFC 3339 UTC time the value expires at (instead of `ttl`); `expiresAt`, the family's
    /// own spelling in its answers, is accepted too.
    #[serde(alias = "expiresAt")]
    pub expires_at: Option<String>,
}

/// The body of `POST /kv/{key}` when the token travels in it (otherwise the body is the value
/// itself, stored with the request's Content-Type).
#[derive(Deserialize, JsonSchema)]
pub struct PutEnvelope {
    /// The app token (read by authentication, before the handler; here for the document).
    #[allow(dead_code)]
    pub token: String,
    /// Any JSON value; stored as JSON (`application/json`).
    pub value: Value,
    pub ttl: Option<u64>,
    #[serde(alias = "expiresAt")]
    pub expires_at: Option<String>,
}

/// `POST /kv/{key}`: 201 for a new key, 200 for a replaced one; the `ETag` is the new version.
pub fn put(
    call: &Call,
    (_, Query(q)): (RawBody<PutEnvelope>, Query<ExpiryQuery>),
) -> ApiResult<Out<EntryMeta>> {
    let store = Store::of(call.app_caller()?);
    let req = call.req;
    let pre = Precondition::parse(req.header("if-match"), req.header("if-none-match"))?;
    let (value, content_type, ttl, at) = match app_token(req) {
        Some((_, TokenIn::Body)) => {
            let e: PutEnvelope = parse_json(&req.body)?;
            let bytes = serde_json::to_vec(&e.value).unwrap_or_default();
            let at = e.expires_at.or(q.expires_at);
            (bytes, JSON_CONTENT_TYPE.to_string(), e.ttl.or(q.ttl), at)
        }
        _ => {
            let ct = kv::check_content_type(req.header("content-type").unwrap_or(""))?;
            (req.body.clone(), ct, q.ttl, q.expires_at)
        }
    };
    let put = Put {
        key: call.param("key").to_string(),
        value,
        content_type,
        expires_at: kv::expiry(&call.cx, ttl, at.as_deref())?,
    };
    let w = kv::put(&call.cx, store, put, pre)?;
    Ok(meta_reply(if w.created { 201 } else { 200 }, w.meta))
}

/// What a delete did.
#[derive(Serialize, JsonSchema)]
pub struct Deleted {
    pub key: String,
    pub deleted: bool,
}

/// `DELETE /kv/{key}`.
pub fn delete(call: &Call, _: ()) -> ApiResult<Deleted> {
    let store = Store::of(call.app_caller()?);
    let req = call.req;
    let pre = Precondition::parse(req.header("if-match"), req.header("if-none-match"))?;
    let key = call.param("key");
    kv::delete(&call.cx, store, key, pre)?;
    Ok(Deleted {
        key: key.to_string(),
        deleted: true,
    })
}

/// What an import wrote.
#[derive(Serialize, JsonSchema)]
pub struct Imported {
    pub imported: usize,
}

/// `POST /kv/_batchimport` {key: value, …}: every value is stored as JSON, all or nothing; the
/// query's `ttl` / `expires_at` apply to every entry. When the token travels in the body, its
/// `token` member is the credential, not an entry.
pub fn import(
    call: &Call,
    (Json(mut entries), Query(q)): (Json<Map<String, Value>>, Query<ExpiryQuery>),
) -> ApiResult<Imported> {
    let store = Store::of(call.app_caller()?);
    if matches!(app_token(call.req), Some((_, TokenIn::Body))) {
        entries.remove("token");
    }
    let expires_at = kv::expiry(&call.cx, q.ttl, q.expires_at.as_deref())?;
    let puts = entries
        .into_iter()
        .map(|(key, v)| Put {
            key,
            value: serde_json::to_vec(&v).unwrap_or_default(),
            content_type: JSON_CONTENT_TYPE.into(),
            expires_at: expires_at.clone(),
        })
        .collect();
    Ok(Imported {
        imported: kv::import(&call.cx, store, puts)?,
    })
}
