//! How rows look on the wire in `/v1` (docs/families.md "Views"): users, sessions, API keys,
//! devices and tasks, typed so that they serialize without an intermediate JSON tree and
//! document themselves in the OpenAPI document. The other families pick fields from the same
//! rows in their own handlers.

use crate::db::api_keys::ApiKey;
use crate::db::devices::{Device, DeviceStatus};
use crate::db::sessions::Session;
use crate::db::tasks::{Task, TaskStatus};
use crate::db::users::User;
use crate::domain::Paged;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

/// Parses a stored JSON column (`args`, `env`, `config`…) back into a value; `null` if absent.
pub fn json_col(s: Option<&str>) -> Value {
    s.and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or(Value::Null)
}

/// The request id and time every `/v1` answer carries.
#[derive(Serialize, JsonSchema)]
pub struct Meta {
    pub request_id: String,
    /// RFC 3339 UTC.
    pub timestamp: String,
}

/// A page's position: how many rows came, the page asked for, and the cursor of the next page.
#[derive(Serialize, JsonSchema)]
pub struct PageInfo {
    pub count: usize,
    pub limit: i64,
    pub offset: i64,
    /// Pass as `cursor` (or `offset`) for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl PageInfo {
    /// The position of `p`.
    pub fn of<T>(p: &Paged<T>) -> PageInfo {
        PageInfo {
            count: p.items.len(),
            limit: p.page.limit,
            offset: p.page.offset,
            next_cursor: p.next_cursor(),
        }
    }
}

/// An account (no credentials).
#[derive(Serialize, JsonSchema)]
pub struct UserView {
    pub id: i64,
    pub email: String,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub plan: String,
    pub is_verified: bool,
    pub is_admin: bool,
    /// Task results are mailed to the account's address.
    pub notify_email: bool,
    pub created_at: String,
    pub last_login_at: Option<String>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> UserView {
        UserView {
            id: u.id,
            email: u.email.clone(),
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            avatar_url: u.avatar_url.clone(),
            plan: u.plan.clone(),
            is_verified: u.is_verified,
            is_admin: u.is_admin,
            notify_email: u.notify_email,
            created_at: u.created_at.clone(),
            last_login_at: u.last_login_at.clone(),
        }
    }
}

/// A session (no credentials).
#[derive(Serialize, JsonSchema)]
pub struct SessionView {
    pub id: i64,
    pub name: Option<String>,
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
    pub created_at: String,
    pub last_used_at: String,
    /// Set when `CCJK_ACCESS_TOKEN_TTL` is.
    pub expires_at: Option<String>,
}

impl From<&Session> for SessionView {
    fn from(s: &Session) -> SessionView {
        SessionView {
            id: s.id,
            name: s.name.clone(),
            user_agent: s.user_agent.clone(),
            ip_address: s.ip_address.clone(),
            created_at: s.created_at.clone(),
            last_used_at: s.last_used_at.clone(),
            expires_at: s.expires_at.clone(),
        }
    }
}

/// An API key (its first characters only).
#[derive(Serialize, JsonSchema)]
pub struct ApiKeyView {
    pub id: i64,
    pub name: String,
    pub key_prefix: String,
    pub scopes: Vec<String>,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> ApiKeyView {
        ApiKeyView {
            id: k.id,
            name: k.name.clone(),
            key_prefix: k.key_prefix.clone(),
            scopes: k.scopes.clone(),
            last_used_at: k.last_used_at.clone(),
            expires_at: k.expires_at.clone(),
            created_at: k.created_at.clone(),
            revoked_at: k.revoked_at.clone(),
        }
    }
}

/// A device. Carries Full's field names (`device_name`, `daemon_status`, `last_heartbeat`,
/// `current_tasks`) beside the canonical ones.
#[derive(Serialize, JsonSchema)]
pub struct DeviceView {
    /// The public id.
    pub id: String,
    pub name: String,
    /// Same as `name` (Full's field name).
    pub device_name: String,
    /// The device whose key Lite's `POST /auth` hands out.
    pub is_primary: bool,
    /// The daemon's `X-Device-ID`.
    pub machine_id: Option<String>,
    /// First characters of its key.
    pub key_prefix: String,
    pub os_type: Option<String>,
    pub os_version: Option<String>,
    pub arch: Option<String>,
    pub hostname: Option<String>,
    pub ccjk_version: Option<String>,
    pub status: DeviceStatus,
    /// Same as `status` (Full's field name).
    pub daemon_status: DeviceStatus,
    /// `{heartbeat_interval, task_check_interval, log_upload_enabled, max_concurrent_tasks}`.
    pub config: Value,
    pub system_info: Value,
    pub ip_address: Option<String>,
    pub last_heartbeat_at: Option<String>,
    /// Same as `last_heartbeat_at` (Full's field name).
    pub last_heartbeat: Option<String>,
    pub last_sync_at: Option<String>,
    /// Running tasks it holds now.
    pub current_tasks: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Device> for DeviceView {
    fn from(d: &Device) -> DeviceView {
        DeviceView {
            id: d.uuid.clone(),
            name: d.name.clone(),
            device_name: d.name.clone(),
            is_primary: d.is_primary,
            machine_id: d.machine_id.clone(),
            key_prefix: d.key_prefix.clone(),
            os_type: d.os_type.clone(),
            os_version: d.os_version.clone(),
            arch: d.arch.clone(),
            hostname: d.hostname.clone(),
            ccjk_version: d.ccjk_version.clone(),
            status: d.status,
            daemon_status: d.status,
            config: config_of(d),
            system_info: json_col(d.system_info.as_deref()),
            ip_address: d.ip_address.clone(),
            last_heartbeat_at: d.last_heartbeat_at.clone(),
            last_heartbeat: d.last_heartbeat_at.clone(),
            last_sync_at: d.last_sync_at.clone(),
            current_tasks: d.current_tasks,
            created_at: d.created_at.clone(),
            updated_at: d.updated_at.clone(),
        }
    }
}

/// A device's config object (`{}` if unreadable).
pub fn config_of(d: &Device) -> Value {
    match json_col(Some(&d.config)) {
        v @ Value::Object(_) => v,
        _ => Value::Object(Map::new()),
    }
}

/// A task as its owner sees it (`/v1`).
#[derive(Serialize, JsonSchema)]
pub struct TaskView {
    pub id: String,
    /// The public id of its device; `null` for any device (or after the device was deleted).
    pub device_id: Option<String>,
    pub session_id: Option<i64>,
    pub batch_id: Option<String>,
    /// The task it is queued behind in a sequential batch.
    pub depends_on: Option<String>,
    /// The task this one retries.
    pub parent_task_id: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub command: String,
    /// As sent.
    pub args: Value,
    pub cwd: Option<String>,
    pub env: Value,
    pub status: TaskStatus,
    pub priority: i64,
    /// Milliseconds.
    pub timeout: i64,
    pub max_retries: i64,
    pub retry_count: i64,
    /// Claims so far (the current attempt's number).
    pub attempt: i64,
    pub progress: i64,
    pub exit_code: Option<i64>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub error_message: Option<String>,
    /// `api`, `cli`, `web` or `email`.
    pub source: String,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub lease_expires_at: Option<String>,
    pub cancel_requested_at: Option<String>,
}

impl From<&Task> for TaskView {
    fn from(t: &Task) -> TaskView {
        TaskView {
            id: t.id.clone(),
            device_id: t.device_uuid.clone(),
            session_id: t.session_id,
            batch_id: t.batch_id.clone(),
            depends_on: t.depends_on.clone(),
            parent_task_id: t.parent_task_id.clone(),
            kind: t.kind.clone(),
            command: t.command.clone(),
            args: json_col(t.args.as_deref()),
            cwd: t.cwd.clone(),
            env: json_col(t.env.as_deref()),
            status: t.status,
            priority: t.priority,
            timeout: t.timeout_ms,
            max_retries: t.max_retries,
            retry_count: t.retry_count,
            attempt: t.attempt,
            progress: t.progress,
            exit_code: t.exit_code,
            stdout: t.stdout.clone(),
            stderr: t.stderr.clone(),
            error_message: t.error_message.clone(),
            source: t.source.clone(),
            created_at: t.created_at.clone(),
            updated_at: t.updated_at.clone(),
            started_at: t.started_at.clone(),
            completed_at: t.completed_at.clone(),
            lease_expires_at: t.lease_expires_at.clone(),
            cancel_requested_at: t.cancel_requested_at.clone(),
        }
    }
}

/// A claimed task as a `/v1` daemon receives it.
#[derive(Serialize, JsonSchema)]
pub struct ClaimedTask {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub command: String,
    /// The task's `args` with `cwd`, `env` and `timeout` filled in.
    pub args: Value,
    pub cwd: Option<String>,
    pub env: Value,
    /// Milliseconds.
    pub timeout: i64,
    pub priority: i64,
    pub max_retries: i64,
    /// Send it back with the result.
    pub attempt: i64,
    pub created_at: String,
    /// A result after this is stale: the task may be given to another daemon.
    pub lease_expires_at: Option<String>,
}

impl From<&Task> for ClaimedTask {
    fn from(t: &Task) -> ClaimedTask {
        let env = json_col(t.env.as_deref());
        let mut args = match json_col(t.args.as_deref()) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        args.insert("cwd".into(), t.cwd.clone().into());
        args.insert("env".into(), env.clone());
        args.insert("timeout".into(), t.timeout_ms.into());
        ClaimedTask {
            id: t.id.clone(),
            kind: t.kind.clone(),
            command: t.command.clone(),
            args: Value::Object(args),
            cwd: t.cwd.clone(),
            env,
            timeout: t.timeout_ms,
            priority: t.priority,
            max_retries: t.max_retries,
            attempt: t.attempt,
            created_at: t.created_at.clone(),
            lease_expires_at: t.lease_expires_at.clone(),
        }
    }
}
