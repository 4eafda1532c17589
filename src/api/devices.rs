//! Devices as their owner manages them (SPEC §6.1 devices row, §7.2, §7.3): list, create with
//! a pre-shared key, rename, config, rotate key, delete; and daemon self-registration.
//! Ids in paths are public uuids resolved inside the caller's own devices (404 otherwise).

use crate::api::auth::{DEVICE_KEY_AD, device_key_material};
use crate::api::lifecycle::{after_final, announce};
use crate::app::Ctx;
use crate::auth::UserCaller;
use crate::db::devices::{self, Device, Facts};
use crate::db::{tasks, users};
use crate::error::{ApiError, ApiResult};
use rusqlite::Connection;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Checks a device name: 1–100 characters, no control characters.
pub fn validate_name(name: &str) -> ApiResult<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
        return Err(ApiError::invalid("name", "must be 1-100 characters"));
    }
    Ok(n.to_string())
}

/// Refuses one more device beyond the plan's `max_devices` (inside the writer job).
fn check_device_quota(c: &Connection, user_id: i64) -> ApiResult<()> {
    if let Some(limit) = users::limits(c, user_id)?.max_devices {
        let used = devices::count(c, user_id)?;
        if used >= limit {
            return Err(ApiError::quota("devices", limit, used));
        }
    }
    Ok(())
}

/// The caller's devices with their running-task counts.
pub fn list(cx: &Ctx, u: &UserCaller) -> ApiResult<Vec<Device>> {
    Ok(devices::list(cx.db, u.user_id())?)
}

/// One of the caller's devices by uuid. Errors: 404.
pub fn get(cx: &Ctx, user_id: i64, uuid: &str) -> ApiResult<Device> {
    devices::get(cx.db, user_id, uuid)?.ok_or_else(|| ApiError::not_found("Device"))
}

/// `POST /v1/devices`: a device with a key for a daemon configured with a pre-shared key (the
/// real CLI is). Returns the device and its key (shown here and on re-registration only).
/// Errors: 422, 403 `QUOTA_EXCEEDED`.
pub fn create(cx: &Ctx, user_id: i64, name: &str) -> ApiResult<(Device, String)> {
    let name = validate_name(name)?;
    let (key, material) = device_key_material(&cx.app.sealer);
    let id = cx.write(move |c| {
        check_device_quota(c, user_id)?;
        Ok(devices::insert(c, user_id, &name, None, false, &material)?)
    })?;
    let d = devices::get_by_id(cx.db, id)?
        .ok_or_else(|| ApiError::internal("created device vanished"))?;
    Ok((d, key))
}

/// Renames one of the caller's devices. Errors: 404, 422.
pub fn rename(cx: &Ctx, user_id: i64, uuid: &str, name: &str) -> ApiResult<Device> {
    let d = get(cx, user_id, uuid)?;
    let name = validate_name(name)?;
    cx.write(move |c| Ok(devices::rename(c, d.id, &name)?))?;
    cx.app.device_changed(d.id);
    get(cx, user_id, uuid)
}

/// `PATCH /v1/devices/{id}/config`: merges known settings into the device's config; the next
/// heartbeat reply carries it. Errors: 404, 422 for an unknown key or a value out of range.
pub fn set_config(
    cx: &Ctx,
    user_id: i64,
    uuid: &str,
    patch: Map<String, Value>,
) -> ApiResult<Device> {
    let d = get(cx, user_id, uuid)?;
    let mut cfg: Map<String, Value> = serde_json::from_str(&d.config).unwrap_or_default();
    for (k, v) in patch {
        let range = match k.as_str() {
            "heartbeat_interval" => Some(5..=3600),
            "task_check_interval" => Some(1..=3600),
            "max_concurrent_tasks" => Some(1..=100),
            "log_upload_enabled" => None,
            _ => return Err(ApiError::invalid(&k, "is not a device setting")),
        };
        match range {
            Some(r) if v.as_i64().is_some_and(|n| r.contains(&n)) => {}
            Some(r) => {
                return Err(ApiError::invalid(
                    &k,
                    format!("must be an integer from {} to {}", r.start(), r.end()),
                ));
            }
            None if v.is_boolean() => {}
            None => return Err(ApiError::invalid(&k, "must be true or false")),
        }
        cfg.insert(k, v);
    }
    let text = Value::Object(cfg).to_string();
    cx.write(move |c| Ok(devices::set_config(c, d.id, &text)?))?;
    cx.app.device_changed(d.id);
    get(cx, user_id, uuid)
}

/// Replaces the device's key; the old key is refused from the very next request.
pub fn rotate_key(cx: &Ctx, user_id: i64, uuid: &str) -> ApiResult<(Device, String)> {
    let d = get(cx, user_id, uuid)?;
    let (key, material) = device_key_material(&cx.app.sealer);
    let id = d.id;
    cx.write(move |c| Ok(devices::set_key(c, id, &material)?))?;
    cx.app.device_changed(id);
    Ok((get(cx, user_id, uuid)?, key))
}

/// Deletes one of the caller's devices: its unfinished tasks are cancelled first (SPEC §4), the
/// rest keep their history with `device_id` NULL. Errors: 404.
pub fn delete(cx: &Ctx, user_id: i64, uuid: &str) -> ApiResult<()> {
    let d = get(cx, user_id, uuid)?;
    let (id, hints) = (d.id, cx.app.hints.clone());
    let released = cx.write(move |c| {
        let mut released = Vec::new();
        for (id, status) in tasks::unfinished(c, user_id, Some(d.id), None)? {
            let why = "Cancelled: the device was deleted";
            if status == "running" {
                tasks::cancel_running(c, &id, why)?;
            } else {
                tasks::cancel_unheld(c, &id, why)?;
            }
            if let Some(t) = tasks::get(c, user_id, &id)? {
                released.extend(after_final(c, &t, &hints)?);
            }
        }
        devices::delete(c, d.id)?;
        Ok(released)
    })?;
    announce(cx.app, &released);
    cx.app.device_changed(id);
    Ok(())
}

/// `POST /v1/daemon/register` body (Full).
#[derive(Deserialize, Default)]
pub struct RegisterRequest {
    pub device_name: Option<String>,
    pub os_type: Option<String>,
    pub os_version: Option<String>,
    pub arch: Option<String>,
    pub hostname: Option<String>,
    pub ccjk_version: Option<String>,
}

/// Trims a daemon-reported fact to a sane length.
pub fn fact(v: Option<&str>) -> Option<String> {
    v.map(|s| s.trim().chars().take(200).collect::<String>())
        .filter(|s| !s.is_empty())
}

/// Registers the daemon whose machine id is `machine_id` for the caller: the same machine id
/// gets the same device and key back. Returns `(device, key, created)`.
/// Errors: 422 (missing `X-Device-ID`), 403 `QUOTA_EXCEEDED` for a new device.
pub fn register(
    cx: &Ctx,
    u: &UserCaller,
    machine_id: &str,
    r: &RegisterRequest,
) -> ApiResult<(Device, String, bool)> {
    let machine_id = machine_id.trim();
    if machine_id.is_empty() || machine_id.len() > 200 {
        return Err(ApiError::invalid(
            "X-Device-ID",
            "header is required (1-200 bytes)",
        ));
    }
    let name = match r.device_name.as_deref() {
        Some(n) => validate_name(n)?,
        None => fact(r.hostname.as_deref()).unwrap_or_else(|| "daemon".into()),
    };
    let facts = Facts {
        name: Some(name),
        machine_id: Some(machine_id.to_string()),
        os_type: fact(r.os_type.as_deref()),
        os_version: fact(r.os_version.as_deref()),
        arch: fact(r.arch.as_deref()),
        hostname: fact(r.hostname.as_deref()),
        ccjk_version: fact(r.ccjk_version.as_deref()),
        ip_address: Some(cx.req.ip.clone()),
        ..Facts::default()
    };
    let (key, material) = device_key_material(&cx.app.sealer);
    let (uid, mid) = (u.user_id(), machine_id.to_string());
    let (id, sealed) = cx.write(move |c| {
        if let Some((d, sealed)) = devices::by_machine_id(c, uid, &mid)? {
            devices::set_facts(c, d.id, &facts)?;
            return Ok((d.id, Some(sealed)));
        }
        check_device_quota(c, uid)?;
        let id = devices::insert(
            c,
            uid,
            facts.name.as_deref().unwrap_or("daemon"),
            Some(&mid),
            false,
            &material,
        )?;
        devices::set_facts(c, id, &facts)?;
        Ok((id, None))
    })?;
    cx.app.device_changed(id);
    let d = devices::get_by_id(cx.db, id)?
        .ok_or_else(|| ApiError::internal("registered device vanished"))?;
    match sealed {
        Some(s) => {
            let old = cx
                .app
                .sealer
                .open_string(DEVICE_KEY_AD, &s)
                .ok_or_else(|| {
                    ApiError::internal("device key does not open under the server key")
                })?;
            Ok((d, old, false))
        }
        None => Ok((d, key, true)),
    }
}

/// The config object of a device.
pub fn config_json(d: &Device) -> Value {
    serde_json::from_str(&d.config).unwrap_or_else(|_| json!({}))
}

/// The canonical JSON of a device (`/v1`).
pub fn device_json(d: &Device) -> Value {
    json!({
        "id": d.uuid,
        "name": d.name,
        "is_primary": d.is_primary,
        "machine_id": d.machine_id,
        "key_prefix": d.key_prefix,
        "os_type": d.os_type,
        "os_version": d.os_version,
        "arch": d.arch,
        "hostname": d.hostname,
        "ccjk_version": d.ccjk_version,
        "status": d.status,
        "config": config_json(d),
        "system_info": d.system_info.as_deref().and_then(|s| serde_json::from_str::<Value>(s).ok()),
        "ip_address": d.ip_address,
        "last_heartbeat_at": d.last_heartbeat_at,
        "last_sync_at": d.last_sync_at,
        "current_tasks": d.current_tasks,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
    })
}
