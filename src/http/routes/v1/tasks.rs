//! `/v1` handlers for tasks: create (with `Idempotency-Key`), batch, list, read, cancel,
//! retry, over `domain::tasks`.

use crate::db::tasks::{Task, TaskStatus};
use crate::domain::tasks::{self, CreateTaskRequest, Creator, ListFilter, Source};
use crate::error::{ApiError, ApiResult};
use crate::http::route::{Call, Json, Out, PageQuery, Query};
use crate::http::routes::status_filter;
use crate::http::views::{PageInfo, TaskView};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A created (or replayed) task.
#[derive(Serialize, JsonSchema)]
pub struct Created {
    pub task_id: String,
    pub status: TaskStatus,
    /// When it became claimable (its creation).
    pub estimated_start: String,
    pub task: TaskView,
}

fn created(t: &Task) -> Created {
    Created {
        task_id: t.id.clone(),
        status: t.status,
        estimated_start: t.created_at.clone(),
        task: t.into(),
    }
}

/// `POST /v1/tasks`: 201 with the new task, 200 with the first one for a repeated
/// `Idempotency-Key`.
pub fn create(call: &Call, Json(b): Json<CreateTaskRequest>) -> ApiResult<Out<Created>> {
    let who = Creator::from(call.user()?);
    let key = call.req.header("idempotency-key");
    let (t, replayed) = tasks::create(&call.cx, &who, &b, Source::Api, key)?;
    Ok(Out::Status(if replayed { 200 } else { 201 }, created(&t)))
}

/// Several tasks at once.
#[derive(Deserialize, JsonSchema)]
pub struct BatchBody {
    /// 1 to 100 tasks.
    pub tasks: Vec<CreateTaskRequest>,
    /// `parallel` (default) or `sequential`: each task waits for the previous one to succeed.
    pub mode: Option<String>,
}

/// A created batch.
#[derive(Serialize, JsonSchema)]
pub struct Batch {
    pub batch_id: String,
    pub tasks: Vec<TaskView>,
}

/// `POST /v1/tasks/batch`.
pub fn batch(call: &Call, Json(b): Json<BatchBody>) -> ApiResult<Batch> {
    let sequential = match b.mode.as_deref().unwrap_or("parallel") {
        "parallel" => false,
        "sequential" => true,
        _ => return Err(ApiError::invalid("mode", "must be parallel or sequential")),
    };
    let who = Creator::from(call.user()?);
    let (batch_id, list) = tasks::batch(&call.cx, &who, &b.tasks, sequential)?;
    Ok(Batch {
        batch_id,
        tasks: list.iter().map(TaskView::from).collect(),
    })
}

/// Filters of a task list.
#[derive(Deserialize, JsonSchema, Default)]
pub struct TaskFilters {
    /// One of the task states.
    pub status: Option<String>,
    /// A device's public id.
    pub device_id: Option<String>,
    pub session_id: Option<i64>,
    pub batch_id: Option<String>,
}

/// A page of tasks.
#[derive(Serialize, JsonSchema)]
pub struct TaskList {
    pub tasks: Vec<TaskView>,
    #[serde(flatten)]
    pub page: PageInfo,
}

/// `GET /v1/tasks`.
pub fn list(
    call: &Call,
    (Query(p), Query(f)): (Query<PageQuery>, Query<TaskFilters>),
) -> ApiResult<TaskList> {
    let filter = ListFilter {
        status: status_filter(f.status.as_deref())?,
        device: f.device_id.filter(|d| !d.is_empty()),
        own_device: None,
        session_id: f.session_id,
        batch_id: f.batch_id,
    };
    let page = tasks::list(&call.cx, call.user()?.user_id(), filter, p.page()?)?;
    Ok(TaskList {
        page: PageInfo::of(&page),
        tasks: page.items.iter().map(TaskView::from).collect(),
    })
}

/// A task.
#[derive(Serialize, JsonSchema)]
pub struct TaskOne {
    pub task: TaskView,
}

/// `GET /v1/tasks/{id}`.
pub fn get(call: &Call, _: ()) -> ApiResult<TaskOne> {
    let t = tasks::get(&call.cx, call.user()?.user_id(), call.param("id"))?;
    Ok(TaskOne { task: (&t).into() })
}

/// `POST /v1/tasks/{id}/cancel`.
pub fn cancel(call: &Call, _: ()) -> ApiResult<TaskOne> {
    let t = tasks::cancel(&call.cx, call.user()?.user_id(), call.param("id"), None)?;
    Ok(TaskOne { task: (&t).into() })
}

/// `POST /v1/tasks/{id}/retry`.
pub fn retry(call: &Call, _: ()) -> ApiResult<Created> {
    let t = tasks::retry(&call.cx, &Creator::from(call.user()?), call.param("id"))?;
    Ok(created(&t))
}
