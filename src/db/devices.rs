//! SQL for `devices` (schema.sql): daemons, their keys and their state. Every lookup by a
//! public id names the owner; lookups by internal id are for callers whose id came from their
//! own credential or from the database itself.

use super::OptionalRow;
pub use super::status::DeviceStatus;
use crate::time;
use rusqlite::{Connection, params};

/// A device as the authentication layer sees it.
#[derive(Clone, Debug)]
pub struct DeviceAuth {
    pub id: i64,
    pub uuid: String,
    pub user_id: i64,
}

/// Key material for a new or rotated device key.
pub struct KeyMaterial {
    pub prefix: String,
    pub hash: Vec<u8>,
    pub sealed: Vec<u8>,
}

/// Inserts a device and returns its internal id.
pub fn insert(
    c: &Connection,
    user_id: i64,
    name: &str,
    machine_id: Option<&str>,
    primary: bool,
    key: &KeyMaterial,
) -> rusqlite::Result<i64> {
    let now = time::now();
    c.prepare_cached(
        "INSERT INTO devices (uuid, user_id, name, machine_id, is_primary, key_prefix, key_hash, \
         key_sealed, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
    )?
    .execute(params![
        uuid::Uuid::new_v4().to_string(),
        user_id,
        name,
        machine_id,
        primary,
        key.prefix,
        key.hash,
        key.sealed,
        now
    ])?;
    Ok(c.last_insert_rowid())
}

/// The device a key hash belongs to.
pub fn find_by_key(c: &Connection, hash: &[u8]) -> rusqlite::Result<Option<DeviceAuth>> {
    c.prepare_cached("SELECT id, uuid, user_id FROM devices WHERE key_hash = ?1")?
        .query_row([hash], |r| {
            Ok(DeviceAuth {
                id: r.get(0)?,
                uuid: r.get(1)?,
                user_id: r.get(2)?,
            })
        })
        .optional()
}

/// A device row as the API shows it.
#[derive(Clone, Debug)]
pub struct Device {
    pub id: i64,
    pub uuid: String,
    pub user_id: i64,
    pub name: String,
    pub machine_id: Option<String>,
    pub is_primary: bool,
    pub key_prefix: String,
    pub os_type: Option<String>,
    pub os_version: Option<String>,
    pub arch: Option<String>,
    pub hostname: Option<String>,
    pub ccjk_version: Option<String>,
    pub status: DeviceStatus,
    /// JSON object (heartbeat_interval, task_check_interval, log_upload_enabled, max_concurrent_tasks).
    pub config: String,
    pub system_info: Option<String>,
    pub ip_address: Option<String>,
    pub last_heartbeat_at: Option<String>,
    pub last_sync_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Running tasks it holds now.
    pub current_tasks: i64,
}

const DEVICE_COLUMNS: &str = "d.id, d.uuid, d.user_id, d.name, d.machine_id, d.is_primary, d.key_prefix, \
    d.os_type, d.os_version, d.arch, d.hostname, d.ccjk_version, d.status, d.config, d.system_info, \
    d.ip_address, d.last_heartbeat_at, d.last_sync_at, d.created_at, d.updated_at, \
    (SELECT count(*) FROM tasks t WHERE t.claimed_by = d.id AND t.lease_expires_at IS NOT NULL AND t.status = 'running')";

fn device_row(r: &rusqlite::Row) -> rusqlite::Result<Device> {
    Ok(Device {
        id: r.get(0)?,
        uuid: r.get(1)?,
        user_id: r.get(2)?,
        name: r.get(3)?,
        machine_id: r.get(4)?,
        is_primary: r.get(5)?,
        key_prefix: r.get(6)?,
        os_type: r.get(7)?,
        os_version: r.get(8)?,
        arch: r.get(9)?,
        hostname: r.get(10)?,
        ccjk_version: r.get(11)?,
        status: r.get(12)?,
        config: r.get(13)?,
        system_info: r.get(14)?,
        ip_address: r.get(15)?,
        last_heartbeat_at: r.get(16)?,
        last_sync_at: r.get(17)?,
        created_at: r.get(18)?,
        updated_at: r.get(19)?,
        current_tasks: r.get(20)?,
    })
}

/// A page of the user's devices, oldest first.
pub fn list(
    c: &Connection,
    user_id: i64,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<Vec<Device>> {
    c.prepare_cached(&format!(
        "SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.user_id = ?1 ORDER BY d.id LIMIT ?2 OFFSET ?3"
    ))?
    .query_map(params![user_id, limit, offset], device_row)?
    .collect()
}

/// The user's primary device (the one Lite's `POST /auth` hands out) with its sealed key.
pub fn primary(c: &Connection, user_id: i64) -> rusqlite::Result<Option<(i64, Vec<u8>)>> {
    c.prepare_cached("SELECT id, key_sealed FROM devices WHERE user_id = ?1 AND is_primary = 1")?
        .query_row([user_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// The user's oldest device with its sealed key.
pub fn oldest(c: &Connection, user_id: i64) -> rusqlite::Result<Option<(i64, Vec<u8>)>> {
    c.prepare_cached("SELECT id, key_sealed FROM devices WHERE user_id = ?1 ORDER BY id LIMIT 1")?
        .query_row([user_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// Makes a device the user's primary one.
pub fn make_primary(c: &Connection, id: i64) -> rusqlite::Result<bool> {
    Ok(c.execute(
        "UPDATE devices SET is_primary = 1, updated_at = ?2 WHERE id = ?1",
        params![id, time::now()],
    )? == 1)
}

/// The user's primary device if it was never used: created for Lite by an older version at
/// registration, it never heartbeated, was never registered by a daemon and has no task.
/// Such a device may be adopted by a `/v1` registration instead of counting against the plan.
pub fn idle_primary(c: &Connection, user_id: i64) -> rusqlite::Result<Option<(i64, Vec<u8>)>> {
    c.prepare_cached(
        "SELECT d.id, d.key_sealed FROM devices d WHERE d.user_id = ?1 AND d.is_primary = 1 \
         AND d.last_heartbeat_at IS NULL AND d.machine_id IS NULL \
         AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.device_id = d.id OR t.claimed_by = d.id)",
    )?
    .query_row([user_id], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()
}

/// The user's device with this public uuid.
pub fn get(c: &Connection, user_id: i64, uuid: &str) -> rusqlite::Result<Option<Device>> {
    c.prepare_cached(&format!(
        "SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.uuid = ?1 AND d.user_id = ?2"
    ))?
    .query_row(params![uuid, user_id], device_row)
    .optional()
}

/// A device by internal id (for a device caller, whose id came from its own key).
pub fn get_by_id(c: &Connection, id: i64) -> rusqlite::Result<Option<Device>> {
    c.prepare_cached(&format!(
        "SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.id = ?1"
    ))?
    .query_row([id], device_row)
    .optional()
}

/// The user's device registered with this `X-Device-ID`, with its sealed key.
pub fn by_machine_id(
    c: &Connection,
    user_id: i64,
    machine_id: &str,
) -> rusqlite::Result<Option<(Device, Vec<u8>)>> {
    c.prepare_cached(&format!(
        "SELECT {DEVICE_COLUMNS}, d.key_sealed FROM devices d WHERE d.user_id = ?1 AND d.machine_id = ?2"
    ))?
    .query_row(params![user_id, machine_id], |r| Ok((device_row(r)?, r.get(21)?)))
    .optional()
}

/// Devices of all users whose status is not `offline` (`/metrics`).
pub fn count_online(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT count(*) FROM devices WHERE status != 'offline'",
        [],
        |r| r.get(0),
    )
}

/// How many devices the user has.
pub fn count(c: &Connection, user_id: i64) -> rusqlite::Result<i64> {
    c.prepare_cached("SELECT count(*) FROM devices WHERE user_id = ?1")?
        .query_row([user_id], |r| r.get(0))
}

/// Renames a device. Returns whether it matched.
pub fn rename(c: &Connection, id: i64, name: &str) -> rusqlite::Result<bool> {
    Ok(c.execute(
        "UPDATE devices SET name = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, name, time::now()],
    )? == 1)
}

/// Replaces the config JSON.
pub fn set_config(c: &Connection, id: i64, config: &str) -> rusqlite::Result<bool> {
    Ok(c.execute(
        "UPDATE devices SET config = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, config, time::now()],
    )? == 1)
}

/// Replaces the key; the old one stops working at once.
pub fn set_key(c: &Connection, id: i64, key: &KeyMaterial) -> rusqlite::Result<bool> {
    Ok(c.execute(
        "UPDATE devices SET key_prefix = ?2, key_hash = ?3, key_sealed = ?4, updated_at = ?5 WHERE id = ?1",
        params![id, key.prefix, key.hash, key.sealed, time::now()],
    )? == 1)
}

/// Deletes a device (its tasks' device_id becomes NULL; uptime rows go with it).
pub fn delete(c: &Connection, id: i64) -> rusqlite::Result<bool> {
    Ok(c.execute("DELETE FROM devices WHERE id = ?1", [id])? == 1)
}

/// What a daemon tells about itself (register, heartbeat). `None` keeps the stored value.
#[derive(Default, Debug, Clone)]
pub struct Facts {
    pub name: Option<String>,
    pub machine_id: Option<String>,
    pub os_type: Option<String>,
    pub os_version: Option<String>,
    pub arch: Option<String>,
    pub hostname: Option<String>,
    pub ccjk_version: Option<String>,
    pub system_info: Option<String>,
    pub ip_address: Option<String>,
}

/// Updates what the daemon reported about itself.
pub fn set_facts(c: &Connection, id: i64, f: &Facts) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE devices SET name = coalesce(?2, name), machine_id = coalesce(?3, machine_id), \
         os_type = coalesce(?4, os_type), os_version = coalesce(?5, os_version), arch = coalesce(?6, arch), \
         hostname = coalesce(?7, hostname), ccjk_version = coalesce(?8, ccjk_version), \
         system_info = coalesce(?9, system_info), ip_address = coalesce(?10, ip_address), updated_at = ?11 \
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        f.name,
        f.machine_id,
        f.os_type,
        f.os_version,
        f.arch,
        f.hostname,
        f.ccjk_version,
        f.system_info,
        f.ip_address,
        time::now()
    ])?;
    Ok(())
}

/// Records a heartbeat written at once: status and time.
pub fn beat(c: &Connection, id: i64, status: DeviceStatus, now: &str) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE devices SET status = ?2, last_heartbeat_at = ?3, last_sync_at = ?3, updated_at = ?3 WHERE id = ?1",
    )?
    .execute(params![id, status, now])?;
    Ok(())
}

/// Sets a device's status (offline marking). Returns whether it changed.
pub fn set_status(c: &Connection, id: i64, status: DeviceStatus) -> rusqlite::Result<bool> {
    Ok(c.prepare_cached(
        "UPDATE devices SET status = ?2, updated_at = ?3 WHERE id = ?1 AND status != ?2",
    )?
    .execute(params![id, status, time::now()])?
        == 1)
}

/// Adds online seconds to a device's UTC day.
pub fn add_uptime(c: &Connection, id: i64, day: &str, seconds: i64) -> rusqlite::Result<()> {
    if seconds <= 0 {
        return Ok(());
    }
    c.prepare_cached(
        "INSERT INTO device_uptime (device_id, day, online_seconds) VALUES (?1, ?2, ?3) \
         ON CONFLICT (device_id, day) DO UPDATE SET online_seconds = online_seconds + excluded.online_seconds",
    )?
    .execute(params![id, day, seconds])?;
    Ok(())
}

/// Ids of devices not `offline` whose last heartbeat is older than `intervals` × their
/// heartbeat interval (`default_interval` seconds when their config has none).
pub fn silent(
    c: &Connection,
    now: &str,
    intervals: i64,
    default_interval: i64,
) -> rusqlite::Result<Vec<i64>> {
    c.prepare_cached(
        "SELECT id FROM devices WHERE status != 'offline' AND (last_heartbeat_at IS NULL OR \
         last_heartbeat_at < strftime('%Y-%m-%dT%H:%M:%fZ', ?1, '-' || (?2 * coalesce(json_extract(config, '$.heartbeat_interval'), ?3)) || ' seconds'))",
    )?
    .query_map(params![now, intervals, default_interval], |r| r.get(0))?
    .collect()
}

/// What a heartbeat needs to know about its device (one light read).
#[derive(Clone, Debug)]
pub struct BeatRow {
    pub id: i64,
    pub uuid: String,
    pub user_id: i64,
    pub name: String,
    pub status: DeviceStatus,
    pub last_heartbeat_at: Option<String>,
    /// `devices.config`, parsed once when the row is read (`{}` if it is not an object), so a
    /// heartbeat answered from the cached row parses nothing.
    pub config: serde_json::Value,
    pub os_type: Option<String>,
    pub os_version: Option<String>,
    pub arch: Option<String>,
    pub hostname: Option<String>,
    pub ccjk_version: Option<String>,
}

impl BeatRow {
    /// An integer setting from `config`, or `default`.
    pub fn config_int(&self, key: &str, default: i64) -> i64 {
        self.config
            .get(key)
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(default)
    }

    /// `config.heartbeat_interval` in seconds (`default` when unset, at least 1).
    pub fn interval(&self, default: i64) -> i64 {
        self.config_int("heartbeat_interval", default).max(1)
    }

    /// Would these facts change the stored ones?
    pub fn differs(&self, f: &Facts) -> bool {
        let ne = |new: &Option<String>, old: &Option<String>| new.is_some() && new != old;
        f.name.as_deref().is_some_and(|n| n != self.name)
            || ne(&f.os_type, &self.os_type)
            || ne(&f.os_version, &self.os_version)
            || ne(&f.arch, &self.arch)
            || ne(&f.hostname, &self.hostname)
            || ne(&f.ccjk_version, &self.ccjk_version)
            || f.machine_id.is_some()
    }
}

/// The heartbeat view of a device.
pub fn beat_row(c: &Connection, id: i64) -> rusqlite::Result<Option<BeatRow>> {
    c.prepare_cached(
        "SELECT id, uuid, user_id, name, status, last_heartbeat_at, config, os_type, os_version, \
         arch, hostname, ccjk_version FROM devices WHERE id = ?1",
    )?
    .query_row([id], |r| {
        Ok(BeatRow {
            id: r.get(0)?,
            uuid: r.get(1)?,
            user_id: r.get(2)?,
            name: r.get(3)?,
            status: r.get(4)?,
            last_heartbeat_at: r.get(5)?,
            config: serde_json::from_str::<serde_json::Value>(&r.get::<_, String>(6)?)
                .ok()
                .filter(serde_json::Value::is_object)
                .unwrap_or_else(|| serde_json::json!({})),
            os_type: r.get(7)?,
            os_version: r.get(8)?,
            arch: r.get(9)?,
            hostname: r.get(10)?,
            ccjk_version: r.get(11)?,
        })
    })
    .optional()
}

/// A device's heartbeats since the last write.
#[derive(Clone, Debug, Default)]
pub struct PendingBeat {
    /// Time of the latest heartbeat (stored form).
    pub last: String,
    pub system_info: Option<String>,
    pub ip_address: Option<String>,
    /// Online seconds to add, per UTC day.
    pub uptime: Vec<(String, i64)>,
}

impl PendingBeat {
    /// Adds online seconds to a day.
    pub fn add_uptime(&mut self, day: &str, secs: i64) {
        if secs <= 0 {
            return;
        }
        match self.uptime.iter_mut().find(|(d, _)| d == day) {
            Some((_, s)) => *s += secs,
            None => self.uptime.push((day.to_string(), secs)),
        }
    }
}

/// Writes coalesced heartbeats: each device's latest time, system info and address (never the
/// status), and the online seconds they accumulated per UTC day.
pub fn write_beats(c: &Connection, entries: &[(i64, PendingBeat)]) -> rusqlite::Result<()> {
    for (id, p) in entries {
        touch_beat(
            c,
            *id,
            &p.last,
            p.system_info.as_deref(),
            p.ip_address.as_deref(),
        )?;
        for (day, secs) in &p.uptime {
            add_uptime(c, *id, day, *secs)?;
        }
    }
    Ok(())
}

/// Writes a coalesced heartbeat: its time, system info and address (never the status).
pub fn touch_beat(
    c: &Connection,
    id: i64,
    at: &str,
    system_info: Option<&str>,
    ip: Option<&str>,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE devices SET last_heartbeat_at = max(coalesce(last_heartbeat_at, ''), ?2), last_sync_at = ?2, \
         system_info = coalesce(?3, system_info), ip_address = coalesce(?4, ip_address) WHERE id = ?1",
    )?
    .execute(params![id, at, system_info, ip])?;
    Ok(())
}

/// Records that the daemon fetched its config now (`GET /v1/daemon/config/sync`).
pub fn touch_sync(c: &Connection, id: i64) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE devices SET last_sync_at = ?2 WHERE id = ?1",
        params![id, time::now()],
    )?;
    Ok(())
}
