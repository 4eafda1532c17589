//! The route table (docs/architecture.md "Routes"): every route of every family, one entry
//! each, read as a table in the family's file. `table()` is the whole list; the server and the
//! OpenAPI document both read it, so a route cannot exist without its document entry.

pub mod control;
pub mod kv;
pub mod lite;
pub mod lite_store;
pub mod meta;
pub mod panel;
pub mod poll;
pub mod sessions;
pub mod v1;

use crate::db::tasks::TaskStatus;
use crate::error::{ApiError, ApiResult};
use crate::http::route::Table;

/// Every route of every family.
pub fn table() -> Table {
    let mut routes = meta::routes();
    routes.extend(v1::routes());
    routes.extend(lite::routes());
    routes.extend(lite_store::routes());
    routes.extend(sessions::routes());
    routes.extend(control::routes());
    routes.extend(panel::routes());
    routes.extend(kv::routes());
    Table::new(routes)
}

/// Parses a task-list `status` filter (empty = none). Errors: 422 for an unknown status.
pub fn status_filter(s: Option<&str>) -> ApiResult<Option<TaskStatus>> {
    s.filter(|s| !s.is_empty())
        .map(|s| TaskStatus::parse(s).ok_or_else(|| ApiError::invalid("status", "unknown status")))
        .transpose()
}
