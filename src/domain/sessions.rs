//! Session management shared by `/v1/sessions/*` and Sessions' `/api/sessions/*`
//! (docs/security.md "Sessions"). Every id is resolved inside the caller's own sessions:
//! another user's id is 404.

use crate::db::effects::Effect;
use crate::db::sessions::{self, Session};
use crate::db::tasks::{self, Filter, Task, TaskStatus};
use crate::domain::callers::UserCaller;
use crate::domain::lifecycle::{self, CancelReason};
use crate::domain::policy::MAX_PAGE;
use crate::domain::text;
use crate::domain::{Cx, Page, Paged};
use crate::error::{ApiError, ApiResult};

/// Parses a session id from a path segment; anything else is 404 like a missing id.
pub fn parse_id(s: &str) -> ApiResult<i64> {
    s.parse::<i64>().map_err(|_| ApiError::not_found("Session"))
}

/// A page of the caller's live sessions, most recently used first.
pub fn list(cx: &Cx, caller: &UserCaller, page: Page) -> ApiResult<Paged<Session>> {
    let rows = sessions::list(cx.reader, caller.user_id(), page.limit + 1, page.offset)?;
    Ok(Paged::from_rows(rows, page))
}

/// One of the caller's live sessions. Errors: 404.
pub fn get(cx: &Cx, caller: &UserCaller, id: i64) -> ApiResult<Session> {
    sessions::get(cx.reader, caller.user_id(), id)?.ok_or_else(|| ApiError::not_found("Session"))
}

/// Renames one of the caller's sessions (`None` clears the name). Errors: 404, 422.
pub fn rename(cx: &Cx, caller: &UserCaller, id: i64, name: Option<String>) -> ApiResult<Session> {
    let name = text::optional_name("name", name.as_deref(), 255)?;
    let uid = caller.user_id();
    if !cx.write(move |tx| Ok(sessions::rename(tx, uid, id, name.as_deref())?))? {
        return Err(ApiError::not_found("Session"));
    }
    get(cx, caller, id)
}

/// Deletes one of the caller's sessions: its token stops working at once and the tasks
/// created in it are deleted. Running ones are cancelled first; because a daemon still holds
/// those, they are detached from the session (not deleted) so the cancel reaches it. The
/// session row stays, revoked, for the admin's record. Errors: 404.
pub fn delete(cx: &Cx, caller: &UserCaller, id: i64) -> ApiResult<()> {
    let (uid, index) = (caller.user_id(), cx.svc.claimable.clone());
    cx.write(move |tx| {
        if !sessions::revoke(tx, uid, id)? {
            return Err(ApiError::not_found("Session"));
        }
        tx.after_commit(Effect::CredentialsRevoked(uid));
        for tid in tasks::unfinished(tx, uid, None, Some(id))? {
            if let Some(t) = tasks::get(tx, uid, &tid)?
                && t.status == TaskStatus::Running
            {
                lifecycle::cancel(tx, &index, &t, CancelReason::SessionDeleted)?;
            }
        }
        tasks::delete_unheld_in_session(tx, id)?;
        tasks::detach_session(tx, id)?;
        Ok(())
    })
}

/// Number of tasks created in the session.
pub fn task_count(cx: &Cx, session_id: i64) -> ApiResult<i64> {
    Ok(tasks::count_in_session(cx.reader, session_id)?)
}

/// The tasks created in one of the caller's sessions (its "jobs"), newest first, at most
/// `MAX_PAGE` of them.
pub fn tasks_of(cx: &Cx, caller: &UserCaller, session_id: i64) -> ApiResult<Vec<Task>> {
    let f = Filter {
        session_id: Some(session_id),
        limit: MAX_PAGE,
        ..Filter::default()
    };
    Ok(tasks::list(cx.reader, caller.user_id(), &f)?)
}
