//! Lite — the unprefixed routes of the minimal design (docs/families.md): its route table and
//! handlers. Envelope `{ok, data, error}`; failures carry the message in `error` and the code
//! in `code`. Lite's clients authenticate with `X-Device-Key`; a session token or API key is
//! accepted where the seed shows one.

use crate::db::devices::Facts;
use crate::db::tasks::{Task, TaskStatus};
use crate::domain::callers::DeviceCaller;
use crate::domain::daemon::{self, Beat, ResultRequest};
use crate::domain::devices::fact;
use crate::domain::email_config::{self, ConfigRequest};
use crate::domain::mail::{self, SendRequest};
use crate::domain::policy::HEARTBEAT_CLAIM_LIMIT;
use crate::domain::tasks::{self, CreateTaskRequest, Creator, ListFilter, Source};
use crate::domain::{accounts, callers, devices};
use crate::error::{ApiError, ApiResult, Code};
use crate::http::family::Family;
use crate::http::route::{
    Auth, Call, Json, JsonOr, Out, PageQuery, PersonOrDevice, Query, Rate, Route, credential, get,
    post,
};
use crate::http::routes::poll::{PollQuery, poll};
use crate::http::routes::status_filter;
use crate::http::routes::v1::{
    self,
    email::{EmailConfigView, MailView},
};
use crate::http::views::{TaskView, json_col};
use crate::http::{Reply, Req};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The Lite routes.
#[rustfmt::skip]
pub fn routes() -> Vec<Route> {
    let owner = |scope| Auth::UserOrDevice(scope);
    vec![
        post("/auth").hashing()
            .to("Sign up or log in; the key of the account's primary device", register_or_login),
        get("/auth/verify")
            .to("Is this device key (or credential) valid", verify),
        post("/daemon/heartbeat").device()
            .to("Heartbeat; claims and returns pending tasks", heartbeat),
        get("/daemon/tasks").device()
            .to_out("Claim tasks; wait=N long-polls", daemon_tasks),
        post("/daemon/tasks/{id}/result").device().cap(crate::http::route::Cap::Output)
            .to("Report a task's result", result),
        post("/tasks").auth(owner("task:create"))
            .to("Queue a task (for the calling device with a device key)", create_task),
        get("/tasks").auth(owner("task:read"))
            .to("Tasks (a device key sees its own device's)", list_tasks),
        get("/tasks/{id}").auth(owner("task:read"))
            .to("A task", get_task),
        post("/tasks/{id}/cancel").auth(owner("task:cancel"))
            .to("Cancel a task", cancel_task),
        post("/email/config").auth(owner("user:write"))
            .to("Set the account's e-mail config (a device key: its device's); an API key also needs task:create", email_config),
        post("/email/send").auth(owner("user:write")).statuses(&[202])
            .to_out("Queue a mail to the account's own or configured address", email_send),
        post("/email/incoming").rate(Rate::Webhook)
            .to_out("Inbound mail webhook (HMAC-signed): a [CCJK] mail becomes a task", v1::email::incoming),
    ]
}

/// The account a Lite caller acts for (a device key acts for its owner).
fn account(call: &Call) -> ApiResult<crate::db::users::User> {
    match call.person_or_device()? {
        PersonOrDevice::User(u) => Ok((*u.user).clone()),
        PersonOrDevice::Device(d) => callers::active_user(&call.cx, d.user_id),
    }
}

/// `POST /email/config` {email, imap_host, smtp_host, password, …}: with a session token or an
/// API key, the account's own config (Lite keeps one per user); with a device key, that
/// device's config. Its address may mail commands (README "Walk-through: a command by
/// e-mail"), so an API key needs `task:create` too, and a device key reaches its own device
/// only, as with `POST /tasks`. Errors: 403 `INSUFFICIENT_SCOPE`, 422 per field.
fn email_config(call: &Call, Json(mut b): Json<ConfigRequest>) -> ApiResult<EmailConfigView> {
    let user_id = match call.person_or_device()? {
        PersonOrDevice::User(u) => {
            u.require(email_config::COMMAND_SCOPE)?;
            b.device_id = None;
            u.user_id()
        }
        PersonOrDevice::Device(d) => {
            b.device_id = Some(d.uuid.clone());
            callers::active_user(&call.cx, d.user_id)?.id
        }
    };
    let c = email_config::set(&call.cx, user_id, b)?;
    Ok((&c).into())
}

/// `POST /email/send` {to, subject, body}: 202 with the queued mail.
fn email_send(call: &Call, Json(b): Json<SendRequest>) -> ApiResult<Out<MailView>> {
    let m = mail::send(&call.cx, &account(call)?, b)?;
    Ok(Out::Status(202, (&m).into()))
}

/// A claimed task in Lite's shape.
#[derive(Serialize, JsonSchema)]
pub struct LiteTask {
    pub id: String,
    pub command: String,
    /// Milliseconds.
    pub timeout: i64,
    pub cwd: Option<String>,
    pub env: Value,
    pub priority: i64,
    pub attempt: i64,
}

impl From<&Task> for LiteTask {
    fn from(t: &Task) -> LiteTask {
        LiteTask {
            id: t.id.clone(),
            command: t.command.clone(),
            timeout: t.timeout_ms,
            cwd: t.cwd.clone(),
            env: json_col(t.env.as_deref()),
            priority: t.priority,
            attempt: t.attempt,
        }
    }
}

/// Lite's heartbeat.
#[derive(Deserialize, JsonSchema, Default)]
#[schemars(rename = "LiteHeartbeat")]
pub struct HeartbeatBody {
    /// `online` (default), `busy`, `error`, `maintenance` or `offline`.
    pub status: Option<String>,
    pub os: Option<String>,
    pub version: Option<String>,
}

/// Tasks the heartbeat claimed (now running), and cancels to deliver.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "LiteHeartbeatReply")]
pub struct HeartbeatReply {
    pub pending_tasks: Vec<LiteTask>,
    pub cancel_tasks: Vec<String>,
}

/// `POST /daemon/heartbeat` {status, os, version}: records the beat and CLAIMS the device's
/// pending tasks, as the seed's author's own server did: `pending_tasks` are now running.
fn heartbeat(call: &Call, JsonOr(b): JsonOr<HeartbeatBody>) -> ApiResult<HeartbeatReply> {
    let facts = Facts {
        os_type: fact(b.os.as_deref()),
        ccjk_version: fact(b.version.as_deref()),
        ..Facts::default()
    };
    let beat = Beat {
        status: b.status,
        facts,
        ..Beat::default()
    };
    let (r, claimed) = daemon::beat_and_claim(
        &call.cx,
        call.device()?,
        beat,
        call.ip(),
        HEARTBEAT_CLAIM_LIMIT,
    )?;
    Ok(HeartbeatReply {
        pending_tasks: claimed.iter().map(LiteTask::from).collect(),
        cancel_tasks: r.cancel_tasks,
    })
}

/// Claimed tasks and cancels.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "LiteClaimed")]
pub struct Claimed {
    pub tasks: Vec<LiteTask>,
    pub cancel_tasks: Vec<String>,
}

fn render_tasks(req: &Req, fam: Family, _: &DeviceCaller, t: &[Task], c: &[String]) -> Reply {
    fam.ok(
        req,
        200,
        &Claimed {
            tasks: t.iter().map(LiteTask::from).collect(),
            cancel_tasks: c.to_vec(),
        },
    )
}

/// `GET /daemon/tasks` (claims; `?wait=` long-polls as in `/v1`).
fn daemon_tasks(call: &Call, Query(q): Query<PollQuery>) -> ApiResult<Out<Claimed>> {
    poll(call, &q, render_tasks)
}

/// A task's id and state.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "LiteTaskRef")]
pub struct TaskRef {
    pub task_id: String,
    pub status: TaskStatus,
}

fn task_ref(t: &Task) -> TaskRef {
    TaskRef {
        task_id: t.id.clone(),
        status: t.status,
    }
}

/// `POST /daemon/tasks/{id}/result`.
fn result(call: &Call, Json(b): Json<ResultRequest>) -> ApiResult<TaskRef> {
    let t = match daemon::report(&call.cx, call.device()?, call.param("id"), b)? {
        daemon::Reported::Accepted(t)
        | daemon::Reported::Duplicate(t)
        | daemon::Reported::CancelledKept(t) => t,
    };
    Ok(task_ref(&t))
}

/// The owner and (for a device key) the device whose tasks a Lite caller sees.
fn creator(call: &Call) -> ApiResult<Creator> {
    Ok(match call.person_or_device()? {
        PersonOrDevice::Device(d) => Creator {
            user_id: d.user_id,
            session_id: None,
            own_device: Some(d.id),
        },
        PersonOrDevice::User(u) => Creator::from(u),
    })
}

/// `POST /tasks` {command, timeout, cwd, env?, priority?}: with a device key the task is for
/// the calling device.
fn create_task(call: &Call, Json(b): Json<CreateTaskRequest>) -> ApiResult<TaskRef> {
    let who = creator(call)?;
    let key = call.req.header("idempotency-key");
    let (t, _) = tasks::create(&call.cx, &who, &b, Source::Api, key)?;
    Ok(task_ref(&t))
}

/// `GET /tasks/{id}`.
fn get_task(call: &Call, _: ()) -> ApiResult<TaskView> {
    let who = creator(call)?;
    let t = match who.own_device {
        Some(d) => tasks::get_for_device(&call.cx, who.user_id, d, call.param("id"))?,
        None => tasks::get(&call.cx, who.user_id, call.param("id"))?,
    };
    Ok((&t).into())
}

/// `status` filter of Lite's task list.
#[derive(Deserialize, JsonSchema, Default)]
#[schemars(rename = "LiteStatusFilter")]
pub struct StatusFilter {
    pub status: Option<String>,
}

/// Lite's task list.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "LiteTaskList")]
pub struct TaskList {
    pub tasks: Vec<TaskView>,
    pub next_cursor: Option<String>,
}

/// `GET /tasks?limit=&offset=&status=`.
fn list_tasks(
    call: &Call,
    (Query(p), Query(f)): (Query<PageQuery>, Query<StatusFilter>),
) -> ApiResult<TaskList> {
    let who = creator(call)?;
    let filter = ListFilter {
        status: status_filter(f.status.as_deref())?,
        own_device: who.own_device,
        ..ListFilter::default()
    };
    let page = tasks::list(&call.cx, who.user_id, filter, p.page()?)?;
    Ok(TaskList {
        next_cursor: page.next_cursor(),
        tasks: page.items.iter().map(TaskView::from).collect(),
    })
}

/// `POST /tasks/{id}/cancel`.
fn cancel_task(call: &Call, _: ()) -> ApiResult<TaskRef> {
    let who = creator(call)?;
    let t = tasks::cancel(&call.cx, who.user_id, call.param("id"), who.own_device)?;
    Ok(task_ref(&t))
}

/// Lite's sign-up or login.
#[derive(Deserialize, JsonSchema, Default)]
#[schemars(rename = "LiteAuth")]
pub struct AuthBody {
    pub email: String,
    pub password: String,
}

/// The key a Lite daemon uses, and its account.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "LiteDeviceKey")]
pub struct DeviceKey {
    /// `ccjk_…`: the primary device's key, the same on every login.
    pub device_key: String,
    pub user_id: i64,
}

/// `POST /auth` {email, password}: registers the email if it is new (403 when sign-ups are
/// closed), else logs in; either way returns the key of the user's primary device.
fn register_or_login(call: &Call, Json(b): Json<AuthBody>) -> ApiResult<DeviceKey> {
    let cx = &call.cx;
    let email = b.email.trim();
    let login = |cx| accounts::login(cx, email, &b.password, call.ip()).map(|u| u.id);
    let user_id = if accounts::exists(cx, email)? {
        login(cx)?
    } else {
        let input = accounts::RegisterInput {
            email: email.to_string(),
            password: b.password.clone(),
            ..Default::default()
        };
        match accounts::register(cx, &input, None, &call.origin()) {
            Ok((u, _)) => u.id,
            // Registered by a concurrent request a moment ago: log in instead.
            Err(e) if e.code == Code::EmailTaken => login(cx)?,
            Err(e) => return Err(e),
        }
    };
    Ok(DeviceKey {
        device_key: devices::primary_key(cx, user_id)?,
        user_id,
    })
}

/// `device_key` to check, when not in `X-Device-Key`.
#[derive(Deserialize, JsonSchema, Default)]
#[schemars(rename = "LiteVerifyQuery")]
pub struct VerifyQuery {
    pub device_key: Option<String>,
}

/// A valid credential's account.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "LiteValid")]
pub struct Valid {
    pub valid: bool,
    pub user_id: i64,
}

/// `GET /auth/verify?device_key=` (or `X-Device-Key`): `{valid, user_id}`.
fn verify(call: &Call, Query(q): Query<VerifyQuery>) -> ApiResult<Valid> {
    let token = q
        .device_key
        .as_deref()
        .or_else(|| credential(call.req))
        .ok_or_else(|| ApiError::unauthorized("Missing device_key"))?;
    let user_id = callers::resolve(&call.cx, token)?.user_id();
    Ok(Valid {
        valid: true,
        user_id,
    })
}
