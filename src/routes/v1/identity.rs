//! `/v1` handlers for identity: auth, sessions and API keys (SPEC §6.1). Each maps Full's
//! field names onto the shared domain functions and returns the `data` of the envelope.

use crate::api::{api_keys, auth as accounts, sessions};
use crate::app::Ctx;
use crate::auth::{Caller, UserCaller, resolve};
use crate::error::{ApiError, ApiResult};
use serde::Deserialize;
use serde_json::{Value, json};

/// Full's auth reply: `{user, token, refresh_token, session}`.
fn auth_reply(user: &crate::db::users::User, s: &accounts::NewSession) -> Value {
    json!({
        "user": accounts::user_json(user),
        "token": s.token,
        "refresh_token": s.refresh_token,
        "session": accounts::session_json(&s.session),
    })
}

pub fn register(cx: &Ctx) -> ApiResult<Value> {
    #[derive(Deserialize)]
    struct Body {
        #[serde(flatten)]
        account: accounts::RegisterInput,
        session_name: Option<String>,
    }
    let b: Body = cx.req.json()?;
    let (user, s) = accounts::register(cx, &b.account, Some(b.session_name))?;
    let s = s.ok_or_else(|| ApiError::internal("register opened no session"))?;
    Ok(auth_reply(&user, &s))
}

pub fn login(cx: &Ctx) -> ApiResult<Value> {
    let b: accounts::LoginInput = cx.req.json()?;
    let user = accounts::login(cx, &b.login()?, &b.password)?;
    let s = accounts::open_session(cx, user.id, b.session_name, true)?;
    Ok(auth_reply(&user, &s))
}

pub fn refresh(cx: &Ctx) -> ApiResult<Value> {
    #[derive(Deserialize)]
    struct Body {
        refresh_token: String,
    }
    let b: Body = cx.req.json()?;
    let s = accounts::refresh(cx, &b.refresh_token)?;
    Ok(json!({
        "token": s.token,
        "refresh_token": s.refresh_token,
        "session": accounts::session_json(&s.session),
    }))
}

pub fn logout(cx: &Ctx, u: &UserCaller) -> ApiResult<Value> {
    accounts::logout(cx, u)?;
    Ok(json!({"message": "Logged out"}))
}

pub fn me(cx: &Ctx, u: &UserCaller) -> ApiResult<Value> {
    let current = match u.session_id {
        Some(id) => sessions::get(cx, u, id)
            .ok()
            .map(|s| accounts::session_json(&s)),
        None => None,
    };
    Ok(json!({"user": accounts::user_json(&u.user), "current_session": current}))
}

pub fn update_me(cx: &Ctx, u: &UserCaller) -> ApiResult<Value> {
    let user = accounts::update_profile(cx, u, cx.req.json()?)?;
    Ok(json!({"user": accounts::user_json(&user)}))
}

pub fn password(cx: &Ctx, u: &UserCaller) -> ApiResult<Value> {
    #[derive(Deserialize)]
    struct Body {
        current_password: String,
        new_password: String,
    }
    let b: Body = cx.req.json()?;
    accounts::change_password(cx, u, &b.current_password, &b.new_password)?;
    Ok(json!({"message": "Password changed; other sessions were signed out"}))
}

/// `GET /v1/auth/verify`: which credential is this? Any kind is accepted.
pub fn verify(cx: &Ctx) -> ApiResult<Value> {
    Ok(match resolve(cx)? {
        Caller::User(u) => json!({
            "valid": true,
            "kind": if u.session_id.is_some() { "session" } else { "api_key" },
            "user_id": u.user_id(),
            "session_id": u.session_id,
            "api_key_id": u.api_key_id,
        }),
        Caller::Device(d) => {
            json!({"valid": true, "kind": "device", "user_id": d.user_id, "device_id": d.uuid})
        }
    })
}

pub fn list_sessions(cx: &Ctx, u: &UserCaller) -> ApiResult<Value> {
    let list: Vec<Value> = sessions::list(cx, u)?
        .iter()
        .map(|s| {
            let mut v = accounts::session_json(s);
            v["current"] = json!(Some(s.id) == u.session_id);
            v["task_count"] = json!(sessions::task_count(cx, s.id)?);
            Ok(v)
        })
        .collect::<ApiResult<_>>()?;
    Ok(json!({"sessions": list}))
}

#[derive(Deserialize, Default)]
struct NameBody {
    name: Option<String>,
}

pub fn new_session(cx: &Ctx, u: &UserCaller) -> ApiResult<Value> {
    let b: NameBody = cx.req.json_or_default()?;
    let s = accounts::open_session(cx, u.user_id(), b.name, false)?;
    Ok(json!({
        "session": accounts::session_json(&s.session),
        "token": s.token,
        "refresh_token": s.refresh_token,
    }))
}

pub fn get_session(cx: &Ctx, u: &UserCaller, id: &str) -> ApiResult<Value> {
    let s = sessions::get(cx, u, sessions::parse_id(id)?)?;
    let tasks: Vec<Value> = sessions::tasks_of(cx, u, s.id)?
        .iter()
        .map(crate::api::task_json::task_json)
        .collect();
    Ok(json!({"session": accounts::session_json(&s), "tasks": tasks}))
}

pub fn rename_session(cx: &Ctx, u: &UserCaller, id: &str) -> ApiResult<Value> {
    let id = sessions::parse_id(id)?;
    let b: NameBody = cx.req.json()?;
    let s = sessions::rename(cx, u, id, b.name)?;
    Ok(json!({"session": accounts::session_json(&s)}))
}

pub fn delete_session(cx: &Ctx, u: &UserCaller, id: &str) -> ApiResult<Value> {
    sessions::delete(cx, u, sessions::parse_id(id)?)?;
    Ok(json!({"message": "Session deleted"}))
}

pub fn list_keys(cx: &Ctx, u: &UserCaller) -> ApiResult<Value> {
    let keys: Vec<Value> = api_keys::list(cx, u)?
        .iter()
        .map(api_keys::key_json)
        .collect();
    Ok(json!({"api_keys": keys}))
}

pub fn create_key(cx: &Ctx, u: &UserCaller) -> ApiResult<Value> {
    let (row, key) = api_keys::create(cx, u, cx.req.json()?)?;
    Ok(json!({"api_key": api_keys::key_json(&row), "key": key}))
}

pub fn revoke_key(cx: &Ctx, u: &UserCaller, id: &str) -> ApiResult<Value> {
    api_keys::revoke(cx, u, id)?;
    Ok(json!({"message": "API key revoked"}))
}
