//! Sessions — `/api/auth/*` and `/api/sessions/*` of `003_*` (SPEC §6.3).
//!
//! Bodies exactly as the seed shows them: top-level `success`, `message`, `user`, `session`,
//! `sessions`; failures `{success: false, error}`, and verify failures add `valid: false`.
//! Tokens travel as `Authorization: Bearer` or `X-Session-Token`.

use super::{Family, Outcome, not_found_route};
use crate::api::{auth as accounts, sessions};
use crate::app::Ctx;
use crate::auth::{UserCaller, require_session};
use crate::db::sessions::Session;
use crate::db::tasks::Task;
use crate::db::users::User;
use crate::error::{ApiError, ApiResult};
use crate::http::Reply;
use serde::Deserialize;
use serde_json::{Value, json};

const F: Family = Family::Sessions;

/// The Sessions route table.
pub fn dispatch(cx: &Ctx) -> Outcome {
    let req = cx.req;
    let s = require_session;
    let r = match (req.method.as_str(), &req.segs()[1..]) {
        ("POST", ["auth", "register"]) => return F.render(req, 201, register(cx)),
        ("POST", ["auth", "login"]) => login(cx),
        ("GET", ["auth", "verify"]) => return verify(cx),
        ("POST", ["auth", "logout"]) => s(cx).and_then(|u| logout(cx, &u)),
        ("GET", ["auth", "me"]) => s(cx).and_then(|u| me(cx, &u)),
        ("POST", ["sessions", "new"]) => {
            return F.render(req, 201, s(cx).and_then(|u| new_session(cx, &u)));
        }
        ("GET", ["sessions"]) => s(cx).and_then(|u| list(cx, &u)),
        ("GET", ["sessions", "current", "jobs"]) => s(cx).and_then(|u| current_jobs(cx, &u)),
        ("GET", ["sessions", id]) => s(cx).and_then(|u| show(cx, &u, id)),
        ("PATCH", ["sessions", id]) => s(cx).and_then(|u| rename(cx, &u, id)),
        ("DELETE", ["sessions", id]) => s(cx).and_then(|u| delete(cx, &u, id)),
        _ => Err(not_found_route()),
    };
    F.render(req, 200, r)
}

fn user_short(u: &User) -> Value {
    json!({"id": u.id, "username": u.username, "email": u.email, "created_at": u.created_at})
}

fn session_short(s: &Session) -> Value {
    json!({"id": s.id, "name": s.name, "created_at": s.created_at, "last_used_at": s.last_used_at})
}

fn register(cx: &Ctx) -> ApiResult<Value> {
    let b: accounts::RegisterInput = cx.req.json()?;
    let (user, _) = accounts::register(cx, &b, None)?;
    Ok(json!({"message": "User registered successfully", "user": user_short(&user)}))
}

/// Returns the user's most recently used live session, creating the first if none exists.
fn login(cx: &Ctx) -> ApiResult<Value> {
    let b: accounts::LoginInput = cx.req.json()?;
    let user = accounts::login(cx, &b.login()?, &b.password)?;
    let (s, token) = accounts::existing_or_new_session(cx, user.id)?;
    Ok(json!({
        "message": "Login successful",
        "session": {"id": s.id, "token": token, "name": s.name, "created_at": s.created_at},
        "user": {"id": user.id, "username": user.username, "email": user.email},
    }))
}

/// `GET /api/auth/verify`: failures add `valid: false` to the error body.
fn verify(cx: &Ctx) -> Outcome {
    let r = require_session(cx).and_then(|u| {
        let s = sessions::get(cx, &u, u.session_id.unwrap_or_default())?;
        let user = &u.user;
        Ok(json!({
            "valid": true,
            "user": {"id": user.id, "username": user.username, "email": user.email},
            "session": session_short(&s),
        }))
    });
    match r {
        Ok(v) => F.render(cx.req, 200, Ok(v)),
        Err(e) if e.status == 401 => Outcome::Reply(
            Reply::json(
                401,
                &json!({"success": false, "valid": false, "error": "Invalid session"}),
            )
            .for_error(&e),
        ),
        Err(e) => F.render(cx.req, 200, Err(e)),
    }
}

fn logout(cx: &Ctx, u: &UserCaller) -> ApiResult<Value> {
    accounts::logout(cx, u)?;
    Ok(json!({"message": "Logged out successfully"}))
}

fn me(cx: &Ctx, u: &UserCaller) -> ApiResult<Value> {
    let s = sessions::get(cx, u, u.session_id.unwrap_or_default())?;
    Ok(json!({
        "user": user_short(&u.user),
        "current_session": {"id": s.id, "name": s.name, "created_at": s.created_at},
    }))
}

#[derive(Deserialize, Default)]
struct NameBody {
    name: Option<String>,
}

fn new_session(cx: &Ctx, u: &UserCaller) -> ApiResult<Value> {
    let b: NameBody = cx.req.json_or_default()?;
    let n = accounts::open_session(cx, u.user_id(), b.name, false)?;
    Ok(json!({
        "message": "New session created",
        "session": {"id": n.session.id, "token": n.token, "name": n.session.name, "created_at": n.session.created_at},
    }))
}

fn list(cx: &Ctx, u: &UserCaller) -> ApiResult<Value> {
    let list: Vec<Value> = sessions::list(cx, u)?
        .iter()
        .map(|s| {
            let mut v = session_short(s);
            v["job_count"] = json!(sessions::task_count(cx, s.id)?);
            Ok(v)
        })
        .collect::<ApiResult<_>>()?;
    Ok(json!({"sessions": list}))
}

/// A task as Sessions calls it: a job.
fn job(t: &Task) -> Value {
    json!({
        "job_id": t.id,
        "status": t.status,
        "progress": t.progress,
        "created_at": t.created_at,
        "command": t.command,
        "exit_code": t.exit_code,
        "completed_at": t.completed_at,
    })
}

fn show(cx: &Ctx, u: &UserCaller, id: &str) -> ApiResult<Value> {
    let s = sessions::get(cx, u, sessions::parse_id(id)?)?;
    let jobs: Vec<Value> = sessions::tasks_of(cx, u, s.id)?.iter().map(job).collect();
    Ok(json!({"session": session_short(&s), "jobs": jobs}))
}

fn current_jobs(cx: &Ctx, u: &UserCaller) -> ApiResult<Value> {
    let sid = u
        .session_id
        .ok_or_else(|| ApiError::unauthorized("Not a session"))?;
    let jobs: Vec<Value> = sessions::tasks_of(cx, u, sid)?.iter().map(job).collect();
    Ok(json!({"session_id": sid, "jobs": jobs}))
}

fn rename(cx: &Ctx, u: &UserCaller, id: &str) -> ApiResult<Value> {
    let id = sessions::parse_id(id)?;
    let b: NameBody = cx.req.json()?;
    let s = sessions::rename(cx, u, id, b.name)?;
    Ok(json!({
        "message": "Session updated",
        "session": {"id": s.id, "name": s.name, "created_at": s.created_at},
    }))
}

fn delete(cx: &Ctx, u: &UserCaller, id: &str) -> ApiResult<Value> {
    sessions::delete(cx, u, sessions::parse_id(id)?)?;
    Ok(json!({"message": "Session deleted"}))
}
