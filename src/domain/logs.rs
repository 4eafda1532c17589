//! Daemon log uploads (README "Backups, logs and statistics"): a daemon uploads a day's log
//! file, its owner lists a device's logs and downloads one, exactly as stored (gzip stays gzip).
//!
//! The HTTP side parses the multipart body; this module checks what it found (type, date, size,
//! that data said to be gzip is gzip) and stores it inside one write job that also checks the
//! plan's storage quota, so a refused upload stores nothing. The janitor deletes logs older than
//! the plan's `log_retention_days` (`workers::janitor`).

use crate::db::logs::{self, Log, NewLog};
use crate::domain::callers::DeviceCaller;
use crate::domain::policy::{self, MAX_LOG_TYPE};
use crate::domain::{Cx, Page, Paged};
use crate::error::{ApiError, ApiResult};

/// What a daemon uploads: the `metadata` part's fields and the `log_file` part's bytes.
#[derive(Debug)]
pub struct Upload {
    /// `daemon`, `task`, …: letters, digits, `.`, `_`, `-`.
    pub log_type: String,
    /// The UTC day the log covers, `YYYY-MM-DD`.
    pub date: String,
    /// The bytes are gzip (served back as `application/gzip`).
    pub compressed: bool,
    pub content: Vec<u8>,
}

/// The first bytes of every gzip member.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Is `d` a real `YYYY-MM-DD` day?
fn is_day(d: &str) -> bool {
    d.len() == 10 && crate::time::parse(&format!("{d}T00:00:00Z")).is_some()
}

/// The content type a log is served with: gzip, or UTF-8 text (never one the client chose: a
/// download is never rendered as anything but a file).
pub fn content_type(compressed: bool) -> &'static str {
    if compressed {
        "application/gzip"
    } else {
        "text/plain; charset=utf-8"
    }
}

/// Stores an upload from the calling device. Errors: 422 (type, date, gzip), 413 (over
/// `CCJK_MAX_LOG_UPLOAD`), 403 `QUOTA_EXCEEDED` (storage).
pub fn upload(cx: &Cx, dev: &DeviceCaller, up: Upload) -> ApiResult<Log> {
    let t = up.log_type.trim();
    if t.is_empty()
        || t.len() > MAX_LOG_TYPE
        || !t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(ApiError::invalid(
            "type",
            format!("1 to {MAX_LOG_TYPE} letters, digits, '.', '_' or '-'"),
        ));
    }
    if !is_day(&up.date) {
        return Err(ApiError::invalid("date", "a day as YYYY-MM-DD"));
    }
    if up.compressed && !up.content.starts_with(&GZIP_MAGIC) {
        return Err(ApiError::invalid(
            "compressed",
            "log_file is not gzip data; send compressed: false for plain text",
        ));
    }
    let cap = cx.cfg().max_log_upload;
    if up.content.len() > cap {
        return Err(ApiError::too_large(cap));
    }
    let (user_id, device_id) = (dev.user_id, dev.id);
    let log_type = t.to_string();
    let Upload {
        date,
        compressed,
        content,
        ..
    } = up;
    let id = cx.write(move |tx| {
        policy::check_storage(tx, user_id, content.len() as i64)?;
        Ok(logs::insert(
            tx,
            &NewLog {
                user_id,
                device_id,
                log_type: &log_type,
                log_date: &date,
                compressed,
                content_type: content_type(compressed),
                content: &content,
            },
        )?)
    })?;
    logs::get(cx.reader, user_id, id)?.ok_or_else(|| ApiError::internal("uploaded log vanished"))
}

/// A page of the logs of one of the caller's devices, newest first. Errors: 404 (device).
pub fn list(cx: &Cx, user_id: i64, device: &str, page: Page) -> ApiResult<Paged<Log>> {
    let d = crate::domain::devices::get(cx, user_id, device)?;
    let rows = logs::list(cx.reader, d.id, page.limit + 1, page.offset)?;
    Ok(Paged::from_rows(rows, page))
}

/// One of the caller's logs with its bytes. Errors: 404.
pub fn download(cx: &Cx, user_id: i64, id: &str) -> ApiResult<(Log, Vec<u8>)> {
    let id = id.parse::<i64>().map_err(|_| ApiError::not_found("Log"))?;
    logs::get_with_content(cx.reader, user_id, id)?.ok_or_else(|| ApiError::not_found("Log"))
}

/// The file name a download suggests: `<type>-<date>.log`, plus `.gz` for gzip (both parts
/// were checked to be plain ASCII at upload).
pub fn file_name(l: &Log) -> String {
    let ext = if l.compressed { "log.gz" } else { "log" };
    format!("{}-{}.{ext}", l.log_type, l.log_date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_checked() {
        assert!(is_day("2026-01-20"));
        assert!(!is_day("2026-02-30"));
        assert!(!is_day("2026-1-2"));
        assert!(!is_day("yesterday!"));
    }
}
