//! Devices as their owner manages them (docs/tasks.md "Devices"): list, create with a
//! pre-shared key, rename, config, rotate key, delete; daemon self-registration; and the
//! primary device whose key Lite's `POST /auth` hands out. Ids from callers are public uuids
//! resolved inside the caller's own devices (404 otherwise).
//!
//! The primary device is created on Lite's first use, not at sign-up, so that a new account on
//! a one-device plan can register a daemon in whichever family it uses; an idle primary device
//! left by an older version (never heartbeated, never registered, no task) is adopted by a
//! `/v1` registration instead of counting against the plan.

use crate::crypto::{self, DEVICE_PREFIX, sha256};
use crate::db::Tx;
use crate::db::devices::{self, Device, Facts, KeyMaterial};
use crate::db::effects::Effect;
use crate::db::tasks;
use crate::domain::lifecycle::{self, CancelReason};
use crate::domain::policy::{self, DEVICE_SETTINGS, PRIMARY_DEVICE_NAME};
use crate::domain::text;
use crate::domain::{Cx, Page, Paged};
use crate::error::{ApiError, ApiResult};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Associated data of sealed device keys.
pub const DEVICE_KEY_AD: &str = "devices.key_sealed";

/// A fresh device key and what is stored of it.
pub fn key_material(sealer: &crate::crypto::Sealer) -> (String, KeyMaterial) {
    let key = crypto::new_token(DEVICE_PREFIX);
    let m = KeyMaterial {
        prefix: crypto::display_prefix(&key),
        hash: sha256(&key),
        sealed: sealer.seal(DEVICE_KEY_AD, key.as_bytes()),
    };
    (key, m)
}

/// Opens a sealed device key. Errors: 500 if it does not open under the server's key.
fn open_key(cx: &Cx, sealed: &[u8]) -> ApiResult<String> {
    cx.svc
        .sealer
        .open_string(DEVICE_KEY_AD, sealed)
        .ok_or_else(|| ApiError::internal("device key does not open under the server key"))
}

/// Checks a device name: 1–100 characters, no control, invisible or bidi characters.
pub fn validate_name(name: &str) -> ApiResult<String> {
    text::name("name", name, 100)
}

/// A fact a daemon reports about itself (OS, version, hostname…): trimmed to 200 characters,
/// control characters dropped; `None` when nothing is left.
pub fn fact(v: Option<&str>) -> Option<String> {
    v.map(|s| {
        s.chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect::<String>()
            .trim()
            .to_string()
    })
    .filter(|s| !s.is_empty())
}

/// A page of the caller's devices with their running-task counts, oldest first.
pub fn list(cx: &Cx, user_id: i64, page: Page) -> ApiResult<Paged<Device>> {
    let rows = devices::list(cx.reader, user_id, page.limit + 1, page.offset)?;
    Ok(Paged::from_rows(rows, page))
}

/// One of the caller's devices by uuid. Errors: 404.
pub fn get(cx: &Cx, user_id: i64, uuid: &str) -> ApiResult<Device> {
    devices::get(cx.reader, user_id, uuid)?.ok_or_else(|| ApiError::not_found("Device"))
}

/// Inserts a device within the plan's quota, adopting an idle legacy primary device when the
/// quota is full. Returns the device id and, when one was adopted, its sealed key.
fn insert_within_quota(
    tx: &Tx,
    user_id: i64,
    name: &str,
    machine_id: Option<&str>,
    key: &KeyMaterial,
) -> ApiResult<(i64, Option<Vec<u8>>)> {
    match policy::check_device_quota(tx, user_id) {
        Ok(()) => Ok((
            devices::insert(tx, user_id, name, machine_id, false, key)?,
            None,
        )),
        Err(quota) => match devices::idle_primary(tx, user_id)? {
            Some((id, sealed)) => {
                devices::rename(tx, id, name)?;
                tx.after_commit(Effect::DeviceChanged(id));
                Ok((id, Some(sealed)))
            }
            None => Err(quota),
        },
    }
}

/// A device with a key for a daemon configured with a pre-shared key (the real CLI is).
/// Returns the device and its key (shown here and on re-registration only).
/// Errors: 422, 403 `QUOTA_EXCEEDED`.
pub fn create(cx: &Cx, user_id: i64, name: &str) -> ApiResult<(Device, String)> {
    let name = validate_name(name)?;
    let (key, material) = key_material(&cx.svc.sealer);
    let (id, adopted) =
        cx.write(move |tx| insert_within_quota(tx, user_id, &name, None, &material))?;
    let key = match adopted {
        Some(sealed) => open_key(cx, &sealed)?,
        None => key,
    };
    let d = devices::get_by_id(cx.reader, id)?
        .ok_or_else(|| ApiError::internal("created device vanished"))?;
    Ok((d, key))
}

/// Renames one of the caller's devices. Errors: 404, 422.
pub fn rename(cx: &Cx, user_id: i64, uuid: &str, name: &str) -> ApiResult<Device> {
    let d = get(cx, user_id, uuid)?;
    let name = validate_name(name)?;
    cx.write(move |tx| {
        devices::rename(tx, d.id, &name)?;
        tx.after_commit(Effect::DeviceChanged(d.id));
        Ok(())
    })?;
    get(cx, user_id, uuid)
}

/// Merges known settings into one of the caller's devices' config; the next heartbeat reply
/// carries it. Errors: 404, 422 for an unknown key or a value out of range.
pub fn set_config(
    cx: &Cx,
    user_id: i64,
    uuid: &str,
    patch: Map<String, Value>,
) -> ApiResult<Device> {
    let d = get(cx, user_id, uuid)?;
    let mut cfg: Map<String, Value> = serde_json::from_str(&d.config).unwrap_or_default();
    for (k, v) in patch {
        let Some((_, range)) = DEVICE_SETTINGS.iter().find(|(name, _)| *name == k) else {
            return Err(ApiError::invalid(&k, "is not a device setting"));
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
    cx.write(move |tx| {
        devices::set_config(tx, d.id, &text)?;
        tx.after_commit(Effect::DeviceChanged(d.id));
        Ok(())
    })?;
    get(cx, user_id, uuid)
}

/// Replaces one of the caller's devices' key; the old key is refused from the very next
/// request (its parked polls included). Errors: 404.
pub fn rotate_key(cx: &Cx, user_id: i64, uuid: &str) -> ApiResult<(Device, String)> {
    let d = get(cx, user_id, uuid)?;
    let (key, material) = key_material(&cx.svc.sealer);
    cx.write(move |tx| {
        devices::set_key(tx, d.id, &material)?;
        tx.after_commit(Effect::DeviceChanged(d.id));
        Ok(())
    })?;
    Ok((get(cx, user_id, uuid)?, key))
}

/// Deletes one of the caller's devices: its unfinished tasks are cancelled first, the rest
/// keep their history with `device_id` NULL. Errors: 404.
pub fn delete(cx: &Cx, user_id: i64, uuid: &str) -> ApiResult<()> {
    let d = get(cx, user_id, uuid)?;
    let index = cx.svc.claimable.clone();
    cx.write(move |tx| {
        for id in tasks::unfinished(tx, user_id, Some(d.id), None)? {
            if let Some(t) = tasks::get(tx, user_id, &id)?
                && !t.is_final()
            {
                lifecycle::cancel(tx, &index, &t, CancelReason::DeviceDeleted)?;
            }
        }
        devices::delete(tx, d.id)?;
        tx.after_commit(Effect::DeviceChanged(d.id));
        Ok(())
    })
}

/// What a daemon says about itself when it registers (`POST /v1/daemon/register`).
#[derive(Deserialize, JsonSchema, Default)]
pub struct RegisterRequest {
    /// Default: the hostname, else `daemon`.
    pub device_name: Option<String>,
    pub os_type: Option<String>,
    pub os_version: Option<String>,
    pub arch: Option<String>,
    pub hostname: Option<String>,
    pub ccjk_version: Option<String>,
}

/// Registers the daemon whose machine id is `machine_id` (its `X-Device-ID`) for the user,
/// seen from `ip`: the same machine id gets the same device and key back. Returns
/// `(device, key, created)`; `created` is true for a machine seen for the first time (also when
/// it adopted an idle primary device). Errors: 422 (missing `X-Device-ID`, bad name), 403
/// `QUOTA_EXCEEDED` for a new device.
pub fn register(
    cx: &Cx,
    user_id: i64,
    machine_id: &str,
    r: &RegisterRequest,
    ip: &str,
) -> ApiResult<(Device, String, bool)> {
    let machine_id = machine_id.trim();
    if machine_id.is_empty() || machine_id.len() > 200 || machine_id.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "X-Device-ID",
            "header is required (1-200 bytes of text)",
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
        ip_address: Some(ip.to_string()),
        ..Facts::default()
    };
    let (key, material) = key_material(&cx.svc.sealer);
    let mid = machine_id.to_string();
    let (id, sealed, created) = cx.write(move |tx| {
        if let Some((d, sealed)) = devices::by_machine_id(tx, user_id, &mid)? {
            devices::set_facts(tx, d.id, &facts)?;
            tx.after_commit(Effect::DeviceChanged(d.id));
            return Ok((d.id, Some(sealed), false));
        }
        let name = facts.name.as_deref().unwrap_or("daemon");
        let (id, adopted) = insert_within_quota(tx, user_id, name, Some(&mid), &material)?;
        devices::set_facts(tx, id, &facts)?;
        tx.after_commit(Effect::DeviceChanged(id));
        Ok((id, adopted, true))
    })?;
    let d = devices::get_by_id(cx.reader, id)?
        .ok_or_else(|| ApiError::internal("registered device vanished"))?;
    let key = match sealed {
        Some(s) => open_key(cx, &s)?,
        None => key,
    };
    Ok((d, key, created))
}

/// The key of the user's primary device (Lite's `POST /auth`, the same key every time). When
/// the user has none yet, their oldest device becomes primary, or a device named
/// `default` is created (within the plan's device quota). Errors: 403 `QUOTA_EXCEEDED`.
pub fn primary_key(cx: &Cx, user_id: i64) -> ApiResult<String> {
    if let Some((_, sealed)) = devices::primary(cx.reader, user_id)? {
        return open_key(cx, &sealed);
    }
    let (key, material) = key_material(&cx.svc.sealer);
    let adopted = cx.write(move |tx| {
        if let Some((_, sealed)) = devices::primary(tx, user_id)? {
            return Ok(Some(sealed));
        }
        if let Some((id, sealed)) = devices::oldest(tx, user_id)? {
            devices::make_primary(tx, id)?;
            return Ok(Some(sealed));
        }
        policy::check_device_quota(tx, user_id)?;
        devices::insert(tx, user_id, PRIMARY_DEVICE_NAME, None, true, &material)?;
        Ok(None)
    })?;
    match adopted {
        Some(sealed) => open_key(cx, &sealed),
        None => Ok(key),
    }
}
