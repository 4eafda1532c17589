//! Session management shared by `/v1/sessions/*` and Sessions' `/api/sessions/*` (SPEC §6.1,
//! §6.3, §7.4). Every id is resolved inside the caller's own sessions: another user's id is 404.

use crate::api::lifecycle::{after_final, announce};
use crate::app::Ctx;
use crate::auth::UserCaller;
use crate::db::sessions::{self, Session};
use crate::db::tasks::{self, Filter, Task};
use crate::error::{ApiError, ApiResult};

/// Parses a session id from a path segment; anything else is 404 like a missing id.
pub fn parse_id(s: &str) -> ApiResult<i64> {
    s.parse::<i64>().map_err(|_| ApiError::not_found("Session"))
}

/// The caller's live sessions, most recently used first.
pub fn list(cx: &Ctx, caller: &UserCaller) -> ApiResult<Vec<Session>> {
    Ok(sessions::list(cx.db, caller.user_id())?)
}

/// One of the caller's live sessions. Errors: 404.
pub fn get(cx: &Ctx, caller: &UserCaller, id: i64) -> ApiResult<Session> {
    sessions::get(cx.db, caller.user_id(), id)?.ok_or_else(|| ApiError::not_found("Session"))
}

/// Renames one of the caller's sessions (`None` clears the name). Errors: 404, 422.
pub fn rename(cx: &Ctx, caller: &UserCaller, id: i64, name: Option<String>) -> ApiResult<Session> {
    super::auth::validate_text("name", name.as_deref(), 255)?;
    let uid = caller.user_id();
    if !cx.write(move |c| Ok(sessions::rename(c, uid, id, name.as_deref())?))? {
        return Err(ApiError::not_found("Session"));
    }
    get(cx, caller, id)
}

/// Deletes one of the caller's sessions (SPEC §4): its token stops working at once and the
/// tasks created in it are deleted. Running ones are cancelled first; because a daemon still
/// holds those, they are detached from the session (not deleted) so the cancel reaches it.
/// The session row stays, revoked, for the admin's record. Errors: 404.
pub fn delete(cx: &Ctx, caller: &UserCaller, id: i64) -> ApiResult<()> {
    let (uid, hints) = (caller.user_id(), cx.app.hints.clone());
    let (holders, released) = cx.write(move |c| {
        if !sessions::revoke(c, uid, id)? {
            return Err(ApiError::not_found("Session"));
        }
        let (mut holders, mut released) = (Vec::new(), Vec::new());
        for (tid, status) in tasks::unfinished(c, uid, None, Some(id))? {
            if status == "running"
                && tasks::cancel_running(c, &tid, "Cancelled: its session was deleted")?
            {
                if let Some(t) = tasks::get(c, uid, &tid)? {
                    holders.extend(t.claimed_by);
                    released.extend(after_final(c, &t, &hints)?);
                }
            }
        }
        tasks::delete_unheld_in_session(c, id)?;
        tasks::detach_session(c, id)?;
        Ok((holders, released))
    })?;
    for d in holders {
        cx.app.park.wake_device(d);
    }
    announce(cx.app, &released);
    Ok(())
}

/// Number of tasks created in the session.
pub fn task_count(cx: &Ctx, session_id: i64) -> ApiResult<i64> {
    Ok(tasks::count_in_session(cx.db, session_id)?)
}

/// The tasks created in one of the caller's sessions (its "jobs"), newest first.
pub fn tasks_of(cx: &Ctx, caller: &UserCaller, session_id: i64) -> ApiResult<Vec<Task>> {
    let f = Filter {
        session_id: Some(session_id),
        limit: 200,
        ..Filter::default()
    };
    Ok(tasks::list(cx.db, caller.user_id(), &f)?)
}
