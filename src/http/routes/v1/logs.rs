//! `/v1` handlers for daemon log uploads (README "Backups, logs and statistics"): the daemon's
//! multipart upload, a device's list of logs, and the download that serves a log as stored.

use crate::db::logs::Log;
use crate::domain::logs::{self, Upload};
use crate::error::{ApiError, ApiResult};
use crate::http::Reply;
use crate::http::multipart::{self, Part};
use crate::http::route::{Call, Input, InputDoc, Out, PageQuery, Query};
use crate::http::views::PageInfo;
use schemars::{JsonSchema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The `metadata` part of an upload.
#[derive(Deserialize, JsonSchema)]
pub struct LogMeta {
    /// `daemon`, `task`, …
    #[serde(rename = "type")]
    pub log_type: String,
    /// The UTC day the log covers, `YYYY-MM-DD`.
    pub date: String,
    /// `log_file` is gzip (it is stored and served as such).
    #[serde(default)]
    pub compressed: bool,
}

/// A log upload's two parts: `log_file` (the bytes, at most `CCJK_MAX_LOG_UPLOAD`) and
/// `metadata` (JSON). Errors: 415 (not multipart), 400 (malformed or truncated body, a part
/// missing, metadata not JSON), 413 (`log_file` over the cap), 422 (metadata fields).
pub struct LogForm {
    pub meta: LogMeta,
    pub file: Part,
}

impl Input for LogForm {
    const BODY: bool = true;

    fn parse(call: &Call) -> ApiResult<LogForm> {
        let boundary = multipart::boundary(call.req.header("content-type"))?;
        let cap = call.cx.cfg().max_log_upload;
        let parts = multipart::parts(
            &call.req.body,
            &boundary,
            &[("log_file", cap), ("metadata", 64 * 1024)],
        )?;
        let (mut file, mut meta) = (None, None);
        for p in parts {
            match p.name.as_str() {
                "log_file" => file = Some(p),
                _ => meta = Some(p),
            }
        }
        let meta = meta.ok_or_else(|| ApiError::bad_request("The metadata part is missing"))?;
        let file = file.ok_or_else(|| ApiError::bad_request("The log_file part is missing"))?;
        Ok(LogForm {
            meta: crate::http::parse_json(&meta.data)?,
            file,
        })
    }

    fn doc(sg: &mut SchemaGenerator, d: &mut InputDoc) {
        let meta = sg.subschema_for::<LogMeta>().to_value();
        d.body = Some((
            json!({
                "type": "object",
                "properties": {
                    "log_file": {"type": "string", "contentMediaType": "application/octet-stream",
                                 "description": "The log, at most CCJK_MAX_LOG_UPLOAD bytes (gzip when metadata.compressed)."},
                    "metadata": {"description": "JSON: {type, date, compressed}", "allOf": [meta]},
                },
                "required": ["log_file", "metadata"],
            }),
            true,
        ));
        d.media = Some("multipart/form-data");
    }
}

/// A log without its bytes.
#[derive(Serialize, JsonSchema)]
pub struct LogView {
    pub id: i64,
    /// The device's public id.
    pub device_id: String,
    #[serde(rename = "type")]
    pub log_type: String,
    pub date: String,
    pub compressed: bool,
    /// What a download is served as.
    pub content_type: String,
    pub size_bytes: i64,
    pub created_at: String,
    /// `GET` this to download it.
    pub download_url: String,
}

impl From<&Log> for LogView {
    fn from(l: &Log) -> LogView {
        LogView {
            id: l.id,
            device_id: l.device_uuid.clone(),
            log_type: l.log_type.clone(),
            date: l.log_date.clone(),
            compressed: l.compressed,
            content_type: l.content_type.clone(),
            size_bytes: l.size_bytes,
            created_at: l.created_at.clone(),
            download_url: format!("/v1/logs/{}", l.id),
        }
    }
}

/// A stored upload.
#[derive(Serialize, JsonSchema)]
pub struct Uploaded {
    pub log: LogView,
}

/// `POST /v1/daemon/logs` (multipart: `log_file` + `metadata`).
pub fn upload(call: &Call, f: LogForm) -> ApiResult<Uploaded> {
    let up = Upload {
        log_type: f.meta.log_type,
        date: f.meta.date,
        compressed: f.meta.compressed,
        content: f.file.data,
    };
    let l = logs::upload(&call.cx, call.device()?, up)?;
    Ok(Uploaded { log: (&l).into() })
}

/// A page of a device's logs.
#[derive(Serialize, JsonSchema)]
pub struct LogList {
    pub logs: Vec<LogView>,
    #[serde(flatten)]
    pub page: PageInfo,
}

/// `GET /v1/devices/{id}/logs`.
pub fn list(call: &Call, Query(q): Query<PageQuery>) -> ApiResult<LogList> {
    let page = logs::list(
        &call.cx,
        call.user()?.user_id(),
        call.param("id"),
        q.page()?,
    )?;
    Ok(LogList {
        page: PageInfo::of(&page),
        logs: page.items.iter().map(LogView::from).collect(),
    })
}

/// `GET /v1/logs/{id}`: the bytes as stored, with their type, length and a file name.
pub fn download(call: &Call, _: ()) -> ApiResult<Out<()>> {
    let (l, bytes) = logs::download(&call.cx, call.user()?.user_id(), call.param("id"))?;
    let mut r = Reply::text(200, bytes);
    r.content_type = logs::content_type(l.compressed);
    r.headers.push((
        "Content-Disposition",
        format!("attachment; filename=\"{}\"", logs::file_name(&l)),
    ));
    r.headers.push(("X-Content-Type-Options", "nosniff".into()));
    Ok(Out::Reply(r))
}
