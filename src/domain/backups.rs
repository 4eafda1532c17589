//! Config backups (README "Backups, logs and statistics"): a person or a daemon keeps JSON
//! documents (CCJK configurations) on the server and gets them back exactly as sent.
//!
//! The document travels as raw JSON text: what the client sent as `config_data` (Full) or
//! `config` (Lite) is stored as is and a restore answers those same bytes. Every id is resolved
//! inside the caller's data; a device key sees only its own device's backups. Automatic backups
//! keep the newest `AUTO_BACKUPS_KEPT` per device. A backup counts against the plan's storage
//! quota, checked inside the write that stores it.

use crate::db::backups::{self, Backup, NewBackup};
use crate::domain::policy::{self, AUTO_BACKUPS_KEPT, MAX_BACKUP_NAME};
use crate::domain::{Cx, Page, Paged};
use crate::error::{ApiError, ApiResult};

/// Whose backups a call reaches: the caller's account, and for a device key its own device
/// (which then reaches only that device's backups).
#[derive(Clone, Copy, Debug)]
pub struct Owner {
    pub user_id: i64,
    pub own_device: Option<i64>,
}

/// A backup to make.
pub struct NewDocument {
    /// The public id of one of the caller's devices (a device key's own device when absent).
    pub device: Option<String>,
    pub name: String,
    /// The document as raw JSON text (any JSON value but `null`).
    pub json: String,
    /// An automatic backup (pruned to the newest `AUTO_BACKUPS_KEPT` per device).
    pub is_auto: bool,
    /// How the caller's family spells the name and document fields, for validation errors:
    /// [`FULL_FIELDS`] or [`LITE_FIELDS`].
    pub fields: (&'static str, &'static str),
}

/// `/v1`'s names for a backup's name and document.
pub const FULL_FIELDS: (&str, &str) = ("config_name", "config_data");
/// Lite's names for a backup's name and document.
pub const LITE_FIELDS: (&str, &str) = ("name", "config");

/// The internal id of the device a backup call names: the caller's own device for a device key
/// (naming another one is 404), else the user's device with that public id. Errors: 404.
fn device_of(cx: &Cx, who: Owner, uuid: Option<&str>) -> ApiResult<Option<i64>> {
    let uuid = uuid.map(str::trim).filter(|s| !s.is_empty());
    let found = match uuid {
        None => return Ok(who.own_device),
        Some(u) => crate::domain::devices::get(cx, who.user_id, u)?.id,
    };
    match who.own_device {
        Some(own) if found != own => Err(ApiError::not_found("Device")),
        _ => Ok(Some(found)),
    }
}

/// A backup id from a path; anything that is not one of ours is 404.
fn backup_id(id: &str) -> ApiResult<i64> {
    id.parse::<i64>().map_err(|_| ApiError::not_found("Backup"))
}

/// Stores a document. Returns the backup (without its document). Errors: 422 (name, document),
/// 404 (device), 403 `QUOTA_EXCEEDED` (storage).
pub fn create(cx: &Cx, who: Owner, doc: NewDocument) -> ApiResult<Backup> {
    let (name_field, doc_field) = doc.fields;
    let name = crate::domain::text::name(name_field, &doc.name, MAX_BACKUP_NAME)?;
    if doc.json.trim() == "null" {
        return Err(ApiError::invalid(doc_field, "a JSON document is required"));
    }
    let device_id = device_of(cx, who, doc.device.as_deref())?;
    let (user_id, is_auto, json) = (who.user_id, doc.is_auto, doc.json);
    let id = cx.write(move |tx| {
        if is_auto {
            // Room for the new one; undone with the rest of the job if the quota refuses it.
            backups::prune_auto(tx, user_id, device_id, AUTO_BACKUPS_KEPT - 1)?;
        }
        policy::check_storage(tx, user_id, json.len() as i64)?;
        Ok(backups::insert(
            tx,
            &NewBackup {
                user_id,
                device_id,
                name: &name,
                config_json: &json,
                is_auto,
            },
        )?)
    })?;
    backups::get(cx.reader, user_id, id)?
        .ok_or_else(|| ApiError::internal("created backup vanished"))
}

/// A page of the caller's backups, newest first; of one device when `device` names one (a
/// device key always gets its own device's). Errors: 404 (device).
pub fn list(cx: &Cx, who: Owner, device: Option<&str>, page: Page) -> ApiResult<Paged<Backup>> {
    let device_id = device_of(cx, who, device)?;
    let rows = backups::list(
        cx.reader,
        who.user_id,
        device_id,
        page.limit + 1,
        page.offset,
    )?;
    Ok(Paged::from_rows(rows, page))
}

/// One of the caller's backups with its document, exactly as stored. Errors: 404.
pub fn get(cx: &Cx, who: Owner, id: &str) -> ApiResult<(Backup, String)> {
    backups::get_with_document(cx.reader, who.user_id, backup_id(id)?)?
        .filter(|(b, _)| who.own_device.is_none_or(|own| b.device_id == Some(own)))
        .ok_or_else(|| ApiError::not_found("Backup"))
}

/// Deletes one of the caller's backups. Errors: 404.
pub fn delete(cx: &Cx, who: Owner, id: &str) -> ApiResult<()> {
    let b = backups::get(cx.reader, who.user_id, backup_id(id)?)?
        .filter(|b| who.own_device.is_none_or(|own| b.device_id == Some(own)))
        .ok_or_else(|| ApiError::not_found("Backup"))?;
    let (user_id, id) = (who.user_id, b.id);
    if cx.write(move |tx| Ok(backups::delete(tx, user_id, id)?))? {
        Ok(())
    } else {
        Err(ApiError::not_found("Backup"))
    }
}
