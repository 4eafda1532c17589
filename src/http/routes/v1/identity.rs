//! `/v1` handlers for identity: auth, sessions and API keys. Each maps Full's field names onto
//! the shared domain functions and returns the `data` of the envelope.

use crate::db::users::User;
use crate::domain::accounts::{self, LoginInput, NewSession, ProfileInput, RegisterInput};
use crate::domain::api_keys::{self, CreateApiKeyRequest};
use crate::domain::sessions;
use crate::error::{ApiError, ApiResult};
use crate::http::route::{Call, Json, JsonOr, Message, PageQuery, PersonOrDevice, Query};
use crate::http::views::{ApiKeyView, PageInfo, SessionView, TaskView, UserView};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Full's auth reply.
#[derive(Serialize, JsonSchema)]
pub struct AuthReply {
    pub user: UserView,
    /// The session token (`ccs_…`).
    pub token: String,
    /// Trades for a new pair at `POST /v1/auth/refresh` (`ccr_…`).
    pub refresh_token: String,
    pub session: SessionView,
}

fn auth_reply(user: &User, s: &NewSession) -> AuthReply {
    AuthReply {
        user: user.into(),
        token: s.token.clone(),
        refresh_token: s.refresh_token.clone(),
        session: (&s.session).into(),
    }
}

/// A sign-up, with an optional name for its first session.
#[derive(Deserialize, JsonSchema)]
pub struct RegisterBody {
    #[serde(flatten)]
    pub account: RegisterInput,
    pub session_name: Option<String>,
}

/// `POST /v1/auth/register`.
pub fn register(call: &Call, Json(b): Json<RegisterBody>) -> ApiResult<AuthReply> {
    let (user, s) = accounts::register(&call.cx, &b.account, Some(b.session_name), &call.origin())?;
    let s = s.ok_or_else(|| ApiError::internal("register opened no session"))?;
    Ok(auth_reply(&user, &s))
}

/// `POST /v1/auth/login`.
pub fn login(call: &Call, Json(b): Json<LoginInput>) -> ApiResult<AuthReply> {
    let user = accounts::login(&call.cx, &b.login()?, &b.password, call.ip())?;
    let s = accounts::open_session(&call.cx, user.id, b.session_name, true, &call.origin())?;
    Ok(auth_reply(&user, &s))
}

/// A refresh token to trade.
#[derive(Deserialize, JsonSchema)]
pub struct RefreshBody {
    pub refresh_token: String,
}

/// A new token pair.
#[derive(Serialize, JsonSchema)]
pub struct Refreshed {
    pub token: String,
    pub refresh_token: String,
    pub session: SessionView,
}

/// `POST /v1/auth/refresh`.
pub fn refresh(call: &Call, Json(b): Json<RefreshBody>) -> ApiResult<Refreshed> {
    let s = accounts::refresh(&call.cx, &b.refresh_token)?;
    Ok(Refreshed {
        token: s.token,
        refresh_token: s.refresh_token,
        session: (&s.session).into(),
    })
}

/// `POST /v1/auth/logout`.
pub fn logout(call: &Call, _: ()) -> ApiResult<Message> {
    accounts::logout(&call.cx, call.user()?)?;
    Ok(Message::new("Logged out"))
}

/// The caller's account and current session.
#[derive(Serialize, JsonSchema)]
pub struct Me {
    pub user: UserView,
    /// `null` for an API key.
    pub current_session: Option<SessionView>,
}

/// `GET /v1/auth/me`.
pub fn me(call: &Call, _: ()) -> ApiResult<Me> {
    let u = call.user()?;
    let current = match u.session_id {
        Some(id) => sessions::get(&call.cx, u, id).ok().map(|s| (&s).into()),
        None => None,
    };
    Ok(Me {
        user: (&*u.user).into(),
        current_session: current,
    })
}

/// The account.
#[derive(Serialize, JsonSchema)]
pub struct UserOne {
    pub user: UserView,
}

/// `PATCH /v1/auth/me`.
pub fn update_me(call: &Call, Json(p): Json<ProfileInput>) -> ApiResult<UserOne> {
    let user = accounts::update_profile(&call.cx, call.user()?, p)?;
    Ok(UserOne {
        user: (&user).into(),
    })
}

/// A password change.
#[derive(Deserialize, JsonSchema)]
pub struct PasswordBody {
    pub current_password: String,
    /// 8 to 1024 bytes.
    pub new_password: String,
}

/// `POST /v1/auth/password`.
pub fn password(call: &Call, Json(b): Json<PasswordBody>) -> ApiResult<Message> {
    accounts::change_password(
        &call.cx,
        call.user()?,
        &b.current_password,
        &b.new_password,
        call.ip(),
    )?;
    Ok(Message::new(
        "Password changed; other sessions were signed out",
    ))
}

/// What a credential is.
#[derive(Serialize, JsonSchema)]
pub struct Verified {
    pub valid: bool,
    /// `session`, `api_key` or `device`.
    pub kind: &'static str,
    pub user_id: i64,
    pub session_id: Option<i64>,
    pub api_key_id: Option<i64>,
    /// For a device key: the device's public id.
    pub device_id: Option<String>,
}

/// `GET /v1/auth/verify`: which credential is this? Any kind is accepted.
pub fn verify(call: &Call, _: ()) -> ApiResult<Verified> {
    Ok(match call.person_or_device()? {
        PersonOrDevice::User(u) => Verified {
            valid: true,
            kind: if u.session_id.is_some() {
                "session"
            } else {
                "api_key"
            },
            user_id: u.user_id(),
            session_id: u.session_id,
            api_key_id: u.api_key_id,
            device_id: None,
        },
        PersonOrDevice::Device(d) => Verified {
            valid: true,
            kind: "device",
            user_id: d.user_id,
            session_id: None,
            api_key_id: None,
            device_id: Some(d.uuid.clone()),
        },
    })
}

/// A session with how many tasks were created in it.
#[derive(Serialize, JsonSchema)]
pub struct SessionItem {
    #[serde(flatten)]
    pub session: SessionView,
    /// The session of the credential used for this request.
    pub current: bool,
    pub task_count: i64,
}

/// A page of sessions.
#[derive(Serialize, JsonSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionItem>,
    #[serde(flatten)]
    pub page: PageInfo,
}

/// `GET /v1/sessions`.
pub fn list_sessions(call: &Call, Query(q): Query<PageQuery>) -> ApiResult<SessionList> {
    let u = call.user()?;
    let page = sessions::list(&call.cx, u, q.page()?)?;
    let info = PageInfo::of(&page);
    let list = page
        .items
        .iter()
        .map(|s| {
            Ok(SessionItem {
                session: s.into(),
                current: Some(s.id) == u.session_id,
                task_count: sessions::task_count(&call.cx, s.id)?,
            })
        })
        .collect::<ApiResult<_>>()?;
    Ok(SessionList {
        sessions: list,
        page: info,
    })
}

/// An optional name.
#[derive(Deserialize, JsonSchema, Default)]
pub struct NameBody {
    pub name: Option<String>,
}

/// A new session and its credentials (shown once).
#[derive(Serialize, JsonSchema)]
pub struct NewSessionReply {
    pub session: SessionView,
    pub token: String,
    pub refresh_token: String,
}

/// `POST /v1/sessions`.
pub fn new_session(call: &Call, JsonOr(b): JsonOr<NameBody>) -> ApiResult<NewSessionReply> {
    let s = accounts::open_session(
        &call.cx,
        call.user()?.user_id(),
        b.name,
        false,
        &call.origin(),
    )?;
    Ok(NewSessionReply {
        session: (&s.session).into(),
        token: s.token,
        refresh_token: s.refresh_token,
    })
}

/// A session and its tasks.
#[derive(Serialize, JsonSchema)]
pub struct SessionDetail {
    pub session: SessionView,
    pub tasks: Vec<TaskView>,
}

/// `GET /v1/sessions/{id}`.
pub fn get_session(call: &Call, _: ()) -> ApiResult<SessionDetail> {
    let u = call.user()?;
    let s = sessions::get(&call.cx, u, sessions::parse_id(call.param("id"))?)?;
    let tasks = sessions::tasks_of(&call.cx, u, s.id)?
        .iter()
        .map(TaskView::from)
        .collect();
    Ok(SessionDetail {
        session: (&s).into(),
        tasks,
    })
}

/// A session.
#[derive(Serialize, JsonSchema)]
pub struct SessionOne {
    pub session: SessionView,
}

/// `PATCH /v1/sessions/{id}`.
pub fn rename_session(call: &Call, Json(b): Json<NameBody>) -> ApiResult<SessionOne> {
    let u = call.user()?;
    let s = sessions::rename(&call.cx, u, sessions::parse_id(call.param("id"))?, b.name)?;
    Ok(SessionOne {
        session: (&s).into(),
    })
}

/// `DELETE /v1/sessions/{id}`.
pub fn delete_session(call: &Call, _: ()) -> ApiResult<Message> {
    sessions::delete(
        &call.cx,
        call.user()?,
        sessions::parse_id(call.param("id"))?,
    )?;
    Ok(Message::new("Session deleted"))
}

/// A page of API keys.
#[derive(Serialize, JsonSchema)]
pub struct KeyList {
    pub api_keys: Vec<ApiKeyView>,
    #[serde(flatten)]
    pub page: PageInfo,
}

/// `GET /v1/api-keys`.
pub fn list_keys(call: &Call, Query(q): Query<PageQuery>) -> ApiResult<KeyList> {
    let page = api_keys::list(&call.cx, call.user()?, q.page()?)?;
    Ok(KeyList {
        page: PageInfo::of(&page),
        api_keys: page.items.iter().map(ApiKeyView::from).collect(),
    })
}

/// A new key: its row, and the key itself (shown once).
#[derive(Serialize, JsonSchema)]
pub struct NewKey {
    pub api_key: ApiKeyView,
    /// `cck_…`; never shown again.
    pub key: String,
}

/// `POST /v1/api-keys`.
pub fn create_key(call: &Call, Json(b): Json<CreateApiKeyRequest>) -> ApiResult<NewKey> {
    let (row, key) = api_keys::create(&call.cx, call.user()?, b)?;
    Ok(NewKey {
        api_key: (&row).into(),
        key,
    })
}

/// `DELETE /v1/api-keys/{id}`.
pub fn revoke_key(call: &Call, _: ()) -> ApiResult<Message> {
    api_keys::revoke(&call.cx, call.user()?, call.param("id"))?;
    Ok(Message::new("API key revoked"))
}
