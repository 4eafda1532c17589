//! `/v1/config/*` handlers: config backups (README "Backups, logs and statistics"). The
//! document travels as raw JSON (`config_data` is read as `RawValue` and written back the same
//! way), so a restore answers the bytes that were sent. A person (scopes `config:write`,
//! `config:read`) reaches all of their backups; a device key reaches its own device's.

use crate::db::backups::Backup;
use crate::domain::backups::{self, NewDocument, Owner};
use crate::error::ApiResult;
use crate::http::route::{Call, Json, Message, PageQuery, PersonOrDevice, Query};
use crate::http::views::PageInfo;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Whose backups the caller reaches.
pub fn owner(call: &Call) -> ApiResult<Owner> {
    Ok(match call.person_or_device()? {
        PersonOrDevice::Device(d) => Owner {
            user_id: d.user_id,
            own_device: Some(d.id),
        },
        PersonOrDevice::User(u) => Owner {
            user_id: u.user_id(),
            own_device: None,
        },
    })
}

/// A backup without its document.
#[derive(Serialize, JsonSchema)]
pub struct BackupView {
    pub id: i64,
    /// The public id of the device it belongs to (`null`: none, or the device was deleted).
    pub device_id: Option<String>,
    pub config_name: String,
    /// Same as `config_name` (Lite's field name).
    pub name: String,
    /// Bytes of the document (counted against the storage quota).
    pub size_bytes: i64,
    pub is_auto: bool,
    pub created_at: String,
}

impl From<&Backup> for BackupView {
    fn from(b: &Backup) -> BackupView {
        BackupView {
            id: b.id,
            device_id: b.device_uuid.clone(),
            config_name: b.name.clone(),
            name: b.name.clone(),
            size_bytes: b.size_bytes,
            is_auto: b.is_auto,
            created_at: b.created_at.clone(),
        }
    }
}

/// The raw text of a stored document, as `RawValue` (written back byte for byte).
pub fn raw(doc: String) -> ApiResult<Box<RawValue>> {
    RawValue::from_string(doc)
        .map_err(|e| crate::error::ApiError::internal(format!("stored backup is not JSON: {e}")))
}

/// Full's backup request.
#[derive(Deserialize, JsonSchema)]
pub struct BackupBody {
    /// One of the caller's devices (a device key: its own, the default).
    pub device_id: Option<String>,
    /// 1–100 characters.
    pub config_name: String,
    /// Any JSON document; stored and restored exactly as sent.
    pub config_data: Box<RawValue>,
    /// An automatic backup: only the newest 10 per device are kept.
    #[serde(default)]
    pub is_auto: bool,
}

/// A new backup.
#[derive(Serialize, JsonSchema)]
pub struct BackupCreated {
    pub backup: BackupView,
}

/// `POST /v1/config/backup`.
pub fn backup(call: &Call, Json(b): Json<BackupBody>) -> ApiResult<BackupCreated> {
    let doc = NewDocument {
        device: b.device_id,
        name: b.config_name,
        json: b.config_data.get().to_string(),
        is_auto: b.is_auto,
        fields: backups::FULL_FIELDS,
    };
    let created = backups::create(&call.cx, owner(call)?, doc)?;
    Ok(BackupCreated {
        backup: (&created).into(),
    })
}

/// `?device_id=` and the page.
#[derive(Deserialize, JsonSchema, Default)]
pub struct DeviceFilter {
    /// Only this device's backups.
    pub device_id: Option<String>,
}

/// A page of backups.
#[derive(Serialize, JsonSchema)]
pub struct BackupList {
    pub backups: Vec<BackupView>,
    #[serde(flatten)]
    pub page: PageInfo,
}

/// `GET /v1/config/backups?device_id=`.
pub fn list(
    call: &Call,
    (Query(p), Query(f)): (Query<PageQuery>, Query<DeviceFilter>),
) -> ApiResult<BackupList> {
    let page = backups::list(&call.cx, owner(call)?, f.device_id.as_deref(), p.page()?)?;
    Ok(BackupList {
        page: PageInfo::of(&page),
        backups: page.items.iter().map(BackupView::from).collect(),
    })
}

/// A backup and its document.
#[derive(Serialize, JsonSchema)]
pub struct Restored {
    pub backup: BackupView,
    pub config_name: String,
    /// The document exactly as it was sent.
    pub config_data: Box<RawValue>,
}

fn restored(call: &Call) -> ApiResult<Restored> {
    let (b, doc) = backups::get(&call.cx, owner(call)?, call.param("id"))?;
    Ok(Restored {
        config_name: b.name.clone(),
        backup: (&b).into(),
        config_data: raw(doc)?,
    })
}

/// `GET /v1/config/backups/{id}`.
pub fn get(call: &Call, _: ()) -> ApiResult<Restored> {
    restored(call)
}

/// `POST /v1/config/restore/{id}`: the stored document, byte for byte.
pub fn restore(call: &Call, _: ()) -> ApiResult<Restored> {
    restored(call)
}

/// `DELETE /v1/config/backups/{id}`.
pub fn delete(call: &Call, _: ()) -> ApiResult<Message> {
    backups::delete(&call.cx, owner(call)?, call.param("id"))?;
    Ok(Message::new("Backup deleted"))
}
