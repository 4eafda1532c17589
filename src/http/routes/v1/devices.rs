//! `/v1` handlers for devices and the daemon protocol. Each maps Full's field names onto the
//! shared domain functions (`domain::devices`, `domain::daemon`) and returns the `data` of the
//! envelope.

use crate::db::devices::{DeviceStatus, Facts};
use crate::db::tasks::Task;
use crate::domain::apps;
use crate::domain::callers::DeviceCaller;
use crate::domain::daemon::{self, Beat, Reported, ResultRequest};
use crate::domain::devices::{self, RegisterRequest, fact};
use crate::error::{ApiError, ApiResult, Code};
use crate::http::family::Family;
use crate::http::route::{Call, Json, JsonOr, Message, Out, PageQuery, Query};
use crate::http::routes::poll::{PollQuery, poll};
use crate::http::views::{ClaimedTask, DeviceView, PageInfo, config_of};
use crate::http::{Reply, Req};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A page of devices.
#[derive(Serialize, JsonSchema)]
pub struct DeviceList {
    pub devices: Vec<DeviceView>,
    #[serde(flatten)]
    pub page: PageInfo,
}

/// `GET /v1/devices`.
pub fn list(call: &Call, Query(q): Query<PageQuery>) -> ApiResult<DeviceList> {
    let page = devices::list(&call.cx, call.user()?.user_id(), q.page()?)?;
    Ok(DeviceList {
        page: PageInfo::of(&page),
        devices: page.items.iter().map(DeviceView::from).collect(),
    })
}

/// A device's name.
#[derive(Deserialize, JsonSchema, Default)]
#[schemars(rename = "DeviceName")]
pub struct NameBody {
    /// 1–100 characters.
    #[serde(default)]
    pub name: String,
}

/// A device and its key (shown here and on re-registration only).
#[derive(Serialize, JsonSchema)]
pub struct DeviceWithKey {
    pub device: DeviceView,
    /// `ccjk_…`: the daemon's `X-Device-Token` / `X-Device-Key` / bearer token.
    pub device_key: String,
}

/// `POST /v1/devices`.
pub fn create(call: &Call, Json(b): Json<NameBody>) -> ApiResult<DeviceWithKey> {
    let (d, key) = devices::create(&call.cx, call.user()?.user_id(), &b.name)?;
    Ok(DeviceWithKey {
        device: (&d).into(),
        device_key: key,
    })
}

/// A device.
#[derive(Serialize, JsonSchema)]
pub struct DeviceOne {
    pub device: DeviceView,
}

/// `GET /v1/devices/{id}`.
pub fn get(call: &Call, _: ()) -> ApiResult<DeviceOne> {
    let d = devices::get(&call.cx, call.user()?.user_id(), call.param("id"))?;
    Ok(DeviceOne {
        device: (&d).into(),
    })
}

/// What `PATCH /v1/devices/{id}` changes (at least one of them).
#[derive(Deserialize, JsonSchema, Default)]
pub struct PatchDeviceBody {
    /// A new name, 1–100 characters.
    pub name: Option<String>,
    /// The device's KV password, 8–1024 bytes: whoever presents it may authorise apps on the
    /// device (README "Apps and the KV store"). `null` removes it; tokens already issued stay.
    #[serde(default, deserialize_with = "present")]
    pub kv_password: Option<Option<String>>,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `PATCH /v1/devices/{id}` (on the hashing pool: a KV password is hashed with argon2id).
pub fn rename(call: &Call, Json(b): Json<PatchDeviceBody>) -> ApiResult<DeviceOne> {
    let (user, id) = (call.user()?.user_id(), call.param("id"));
    if b.name.is_none() && b.kv_password.is_none() {
        return Err(ApiError::invalid("name", "give name and/or kv_password"));
    }
    if let Some(n) = &b.name {
        devices::validate_name(n)?;
    }
    if let Some(pw) = &b.kv_password {
        // Whoever knows the KV password can mint app tokens, which only a session may do
        // (README "Apps and the KV store"): an API key, even with device:write, may not set it.
        if call.user()?.session_id.is_none() {
            return Err(ApiError::forbidden(
                "Only a session token may set a device's KV password",
            ));
        }
        apps::set_kv_password(&call.cx, user, id, pw.as_deref())?;
    }
    let d = match &b.name {
        Some(n) => devices::rename(&call.cx, user, id, n)?,
        None => devices::get(&call.cx, user, id)?,
    };
    Ok(DeviceOne {
        device: (&d).into(),
    })
}

/// A device and its config.
#[derive(Serialize, JsonSchema)]
pub struct DeviceConfig {
    pub device: DeviceView,
    pub config: Value,
}

/// `PATCH /v1/devices/{id}/config`.
pub fn config(call: &Call, Json(patch): Json<Map<String, Value>>) -> ApiResult<DeviceConfig> {
    let d = devices::set_config(&call.cx, call.user()?.user_id(), call.param("id"), patch)?;
    Ok(DeviceConfig {
        config: config_of(&d),
        device: (&d).into(),
    })
}

/// `POST /v1/devices/{id}/rotate-key`.
pub fn rotate_key(call: &Call, _: ()) -> ApiResult<DeviceWithKey> {
    let (d, key) = devices::rotate_key(&call.cx, call.user()?.user_id(), call.param("id"))?;
    Ok(DeviceWithKey {
        device: (&d).into(),
        device_key: key,
    })
}

/// `DELETE /v1/devices/{id}`.
pub fn delete(call: &Call, _: ()) -> ApiResult<Message> {
    devices::delete(&call.cx, call.user()?.user_id(), call.param("id"))?;
    Ok(Message::new("Device deleted"))
}

/// A registered daemon's device, key and config.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "DaemonRegistered")]
pub struct Registered {
    pub device_id: String,
    pub device_key: String,
    pub config: Value,
    pub device: DeviceView,
}

/// `POST /v1/daemon/register`: 201 for a new device, 200 when the `X-Device-ID` is known.
pub fn register(call: &Call, JsonOr(b): JsonOr<RegisterRequest>) -> ApiResult<Out<Registered>> {
    let machine = call.req.header("x-device-id").unwrap_or("");
    let (d, key, created) =
        devices::register(&call.cx, call.user()?.user_id(), machine, &b, call.ip())?;
    let r = Registered {
        device_id: d.uuid.clone(),
        device_key: key,
        config: config_of(&d),
        device: (&d).into(),
    };
    Ok(Out::Status(if created { 201 } else { 200 }, r))
}

/// Full's heartbeat.
#[derive(Deserialize, JsonSchema, Default)]
pub struct HeartbeatBody {
    /// `online` (default), `busy`, `error`, `maintenance` or `offline`.
    pub status: Option<String>,
    /// Ids of the tasks the daemon is running now.
    pub current_tasks: Option<Vec<String>>,
    /// Free-form facts (CPU, memory…), kept as the device's `system_info`.
    pub system_info: Option<Value>,
    pub os_type: Option<String>,
    pub os_version: Option<String>,
    pub ccjk_version: Option<String>,
}

/// What a daemon learns from a heartbeat.
#[derive(Serialize, JsonSchema)]
pub struct HeartbeatReply {
    pub device_status: DeviceStatus,
    /// The device's config, so interval changes reach the daemon.
    pub config: Value,
    /// Tasks it could claim now.
    pub pending_count: i64,
    /// Cancelled tasks it still holds: stop them.
    pub cancel_tasks: Vec<String>,
}

/// `POST /v1/daemon/heartbeat`.
pub fn heartbeat(call: &Call, JsonOr(b): JsonOr<HeartbeatBody>) -> ApiResult<HeartbeatReply> {
    let d = call.device()?;
    let beat = Beat {
        status: b.status,
        current_tasks: b.current_tasks,
        system_info: b.system_info,
        facts: Facts {
            os_type: fact(b.os_type.as_deref()),
            os_version: fact(b.os_version.as_deref()),
            ccjk_version: fact(b.ccjk_version.as_deref()),
            ..Facts::default()
        },
    };
    let r = daemon::heartbeat(&call.cx, d, beat, call.ip())?;
    Ok(HeartbeatReply {
        device_status: r.device.status,
        config: r.device.config.clone(),
        pending_count: daemon::pending_count(&call.cx, d, &r)?,
        cancel_tasks: r.cancel_tasks,
    })
}

/// Claimed tasks, and cancels to deliver.
#[derive(Serialize, JsonSchema)]
pub struct Pending {
    pub tasks: Vec<ClaimedTask>,
    pub count: usize,
    /// Cancelled tasks the daemon still holds: stop them.
    pub cancel_tasks: Vec<String>,
}

fn render_pending(
    req: &Req,
    fam: Family,
    _: &DeviceCaller,
    tasks: &[Task],
    cancels: &[String],
) -> Reply {
    let list: Vec<ClaimedTask> = tasks.iter().map(ClaimedTask::from).collect();
    fam.ok(
        req,
        200,
        &Pending {
            count: list.len(),
            tasks: list,
            cancel_tasks: cancels.to_vec(),
        },
    )
}

/// `GET /v1/daemon/tasks/pending?limit=10&wait=0..60`: claims; `wait` long-polls.
pub fn pending(call: &Call, Query(q): Query<PollQuery>) -> ApiResult<Out<Pending>> {
    poll(call, &q, render_pending)
}

/// Progress of a running task.
#[derive(Deserialize, JsonSchema)]
pub struct ProgressBody {
    /// 0–100.
    pub progress: i64,
    /// Output so far (replaces what was sent before; capped like a result's).
    pub stdout: Option<String>,
    pub stderr: Option<String>,
}

/// A task's state after a daemon's report.
#[derive(Serialize, JsonSchema)]
pub struct TaskState {
    pub task_id: String,
    pub status: crate::db::tasks::TaskStatus,
    pub progress: i64,
}

/// `POST /v1/daemon/tasks/{id}/progress`.
pub fn progress(call: &Call, Json(b): Json<ProgressBody>) -> ApiResult<TaskState> {
    let t = daemon::progress(
        &call.cx,
        call.device()?,
        call.param("id"),
        b.progress,
        b.stdout,
        b.stderr,
    )?;
    Ok(TaskState {
        task_id: t.id,
        status: t.status,
        progress: t.progress,
    })
}

/// `POST /v1/daemon/tasks/{id}/result`; a task cancelled meanwhile keeps the output and
/// answers 409 `TASK_NOT_RUNNING`.
pub fn result(call: &Call, Json(b): Json<ResultRequest>) -> ApiResult<TaskState> {
    match daemon::report(&call.cx, call.device()?, call.param("id"), b)? {
        Reported::Accepted(t) | Reported::Duplicate(t) => Ok(TaskState {
            task_id: t.id,
            status: t.status,
            progress: t.progress,
        }),
        Reported::CancelledKept(_) => Err(ApiError::conflict(
            Code::TaskNotRunning,
            "Task was cancelled; its output was kept",
        )),
    }
}

/// A device's config.
#[derive(Serialize, JsonSchema)]
pub struct ConfigSync {
    pub device_id: String,
    pub config: Value,
    pub last_sync_at: Option<String>,
}

/// `GET /v1/daemon/config/sync`.
pub fn config_sync(call: &Call, _: ()) -> ApiResult<ConfigSync> {
    let dev = daemon::config_sync(&call.cx, call.device()?)?;
    Ok(ConfigSync {
        device_id: dev.uuid.clone(),
        config: config_of(&dev),
        last_sync_at: dev.last_sync_at,
    })
}

/// The device's status after going offline.
#[derive(Serialize, JsonSchema)]
pub struct OfflineReply {
    pub device_status: DeviceStatus,
}

/// `POST /v1/daemon/offline`.
pub fn offline(call: &Call, _: ()) -> ApiResult<OfflineReply> {
    let r = daemon::offline(&call.cx, call.device()?, call.ip())?;
    Ok(OfflineReply {
        device_status: r.device.status,
    })
}
