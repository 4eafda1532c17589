//! Session management shared by `/v1/sessions/*` and Sessions' `/api/sessions/*` (SPEC §6.1,
//! §6.3, §7.4). Every id is resolved inside the caller's own sessions: another user's id is 404.

use crate::app::Ctx;
use crate::auth::UserCaller;
use crate::db::sessions::{self, Session};
use crate::error::{ApiError, ApiResult};

/// Parses a session id from a path segment; anything else is 404 like a missing id.
pub fn parse_id(s: &str) -> ApiResult<i64> {
    s.parse::<i64>().map_err(|_| ApiError::not_found("Session"))
}

/// The caller's live sessions, most recently used first.
pub fn list(cx: &Ctx, caller: &UserCaller) -> ApiResult<Vec<Session>> {
    Ok(sessions::list(cx.db, caller.user_id)?)
}

/// One of the caller's live sessions. Errors: 404.
pub fn get(cx: &Ctx, caller: &UserCaller, id: i64) -> ApiResult<Session> {
    sessions::get(cx.db, caller.user_id, id)?.ok_or_else(|| ApiError::not_found("Session"))
}

/// Renames one of the caller's sessions (`None` clears the name). Errors: 404, 422.
pub fn rename(cx: &Ctx, caller: &UserCaller, id: i64, name: Option<String>) -> ApiResult<Session> {
    super::auth::validate_text("name", name.as_deref(), 255)?;
    let uid = caller.user_id;
    if !cx.write(move |c| Ok(sessions::rename(c, uid, id, name.as_deref())?))? {
        return Err(ApiError::not_found("Session"));
    }
    get(cx, caller, id)
}

/// Revokes one of the caller's sessions; its token stops working at once. Errors: 404.
pub fn delete(cx: &Ctx, caller: &UserCaller, id: i64) -> ApiResult<()> {
    let uid = caller.user_id;
    if !cx.write(move |c| Ok(sessions::revoke(c, uid, id)?))? {
        return Err(ApiError::not_found("Session"));
    }
    Ok(())
}
