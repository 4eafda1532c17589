//! Who is calling: turns the credential on a request into a typed caller, and checks scopes
//! (SPEC §5).
//!
//! The credential's prefix says which table to look in (`ccs_` sessions, `cck_` API keys,
//! `ccjk_` devices); a credential of the wrong kind for a route is 401, never a silent
//! downgrade. Session tokens hold every scope of their user; API keys hold the scopes they were
//! created with. `last_used_at` is written at most once a minute per credential. This module
//! issues no HTTP responses; it returns `ApiError`s.

use crate::app::Ctx;
use crate::crypto::{API_KEY_PREFIX, DEVICE_PREFIX, SESSION_PREFIX, sha256};
use crate::db::devices::DeviceAuth;
use crate::db::{api_keys, devices, sessions, users};
use crate::error::{ApiError, ApiResult};
use crate::time;
use std::time::Duration;

/// Every scope an API key can hold (Full's table).
pub const SCOPES: [&str; 12] = [
    "user:read",
    "user:write",
    "device:read",
    "device:write",
    "task:create",
    "task:read",
    "task:cancel",
    "task:admin",
    "config:read",
    "config:write",
    "log:read",
    "stats:read",
];

/// How stale `last_used_at` may get before a request writes it again.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// A person (or their script), authenticated by a session token or an API key.
#[derive(Clone, Debug)]
pub struct UserCaller {
    /// Set when the credential is a session token.
    pub session_id: Option<i64>,
    /// Set when the credential is an API key.
    pub api_key_id: Option<i64>,
    /// `None` = every scope (session tokens).
    scopes: Option<Vec<String>>,
    /// The account as read when the credential was checked (active by then).
    pub user: Box<users::User>,
}

impl UserCaller {
    /// The account's internal id.
    pub fn user_id(&self) -> i64 {
        self.user.id
    }

    /// Does this caller hold `scope`?
    pub fn has(&self, scope: &str) -> bool {
        self.scopes
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == scope))
    }
}

/// A daemon, authenticated by its device key.
pub type DeviceCaller = DeviceAuth;

/// Any authenticated caller.
#[derive(Clone, Debug)]
pub enum Caller {
    User(UserCaller),
    Device(DeviceCaller),
}

/// The credential a request carries: `Authorization: Bearer`, `X-Session-Token` (Sessions),
/// `X-Device-Key` (Lite) or `X-Device-Token` (Control), first present wins.
pub fn credential(cx: &Ctx) -> Option<String> {
    let r = cx.req;
    r.bearer()
        .or_else(|| r.header("x-session-token"))
        .or_else(|| r.header("x-device-key"))
        .or_else(|| r.header("x-device-token"))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Resolves `token` to a caller. Errors: 401 for a missing, unknown, revoked, expired or
/// unrecognised credential, or a disabled account.
pub fn resolve_token(cx: &Ctx, token: &str) -> ApiResult<Caller> {
    if token.starts_with(SESSION_PREFIX) {
        session_caller(cx, token).map(Caller::User)
    } else if token.starts_with(API_KEY_PREFIX) {
        api_key_caller(cx, token).map(Caller::User)
    } else if token.starts_with(DEVICE_PREFIX) {
        device_caller(cx, token).map(Caller::Device)
    } else {
        Err(ApiError::unauthorized("Unrecognised credential"))
    }
}

/// The caller of this request, of any kind. Errors: 401.
pub fn resolve(cx: &Ctx) -> ApiResult<Caller> {
    let token = credential(cx).ok_or_else(|| ApiError::unauthorized("Missing credentials"))?;
    resolve_token(cx, &token)
}

/// A user caller holding `scope`. Errors: 401 (no user credential), 403 `INSUFFICIENT_SCOPE`.
pub fn require_user(cx: &Ctx, scope: &str) -> ApiResult<UserCaller> {
    match resolve(cx)? {
        Caller::User(u) if u.has(scope) => Ok(u),
        Caller::User(_) => Err(ApiError::insufficient_scope(scope)),
        Caller::Device(_) => Err(ApiError::unauthorized("A device key cannot be used here")),
    }
}

/// A user caller authenticated by a session token (session and API-key management must not be
/// reachable with an API key, or a narrow key could mint a wider one). Errors: 401.
pub fn require_session(cx: &Ctx) -> ApiResult<UserCaller> {
    match resolve(cx)? {
        Caller::User(u) if u.session_id.is_some() => Ok(u),
        _ => Err(ApiError::unauthorized("This route needs a session token")),
    }
}

/// A device caller. Errors: 401.
pub fn require_device(cx: &Ctx) -> ApiResult<DeviceCaller> {
    match resolve(cx)? {
        Caller::Device(d) => Ok(d),
        Caller::User(_) => Err(ApiError::unauthorized("This route needs a device key")),
    }
}

/// Loads the owner and refuses disabled accounts. Errors: 401.
pub(crate) fn active_user(cx: &Ctx, user_id: i64) -> ApiResult<users::User> {
    match users::find(cx.db, user_id)? {
        Some(u) if u.is_active => Ok(u),
        Some(_) => Err(ApiError::unauthorized("Account disabled")),
        None => Err(ApiError::unauthorized("Invalid credentials")),
    }
}

fn stale(last_used: Option<&str>) -> bool {
    last_used.is_none_or(|t| t < time::before(TOUCH_EVERY).as_str())
}

/// Has the session gone unused for longer than `CCJK_SESSION_IDLE_TTL`? Such a session
/// neither authenticates nor can be refreshed back to life (the janitor revokes it later).
pub fn idle_expired(cx: &Ctx, s: &sessions::Session) -> bool {
    cx.cfg()
        .session_idle_ttl
        .is_some_and(|idle| s.last_used_at < time::before(idle))
}

fn session_caller(cx: &Ctx, token: &str) -> ApiResult<UserCaller> {
    let s = sessions::find_by_token(cx.db, &sha256(token))?
        .ok_or_else(|| ApiError::unauthorized("Invalid session"))?;
    if s.revoked_at.is_some() {
        return Err(ApiError::unauthorized("Session revoked"));
    }
    let now = time::now();
    if s.expires_at.as_deref().is_some_and(|e| e <= now.as_str()) {
        return Err(ApiError::unauthorized("Session expired; refresh it"));
    }
    if idle_expired(cx, &s) {
        return Err(ApiError::unauthorized("Session expired after inactivity"));
    }
    let user = active_user(cx, s.user_id)?;
    if stale(Some(&s.last_used_at)) {
        let id = s.id;
        cx.write(move |c| Ok(sessions::touch(c, id)?))?;
    }
    Ok(UserCaller {
        session_id: Some(s.id),
        api_key_id: None,
        scopes: None,
        user: Box::new(user),
    })
}

fn api_key_caller(cx: &Ctx, token: &str) -> ApiResult<UserCaller> {
    let k = api_keys::find_by_hash(cx.db, &sha256(token))?
        .ok_or_else(|| ApiError::unauthorized("Invalid API key"))?;
    if k.revoked_at.is_some() {
        return Err(ApiError::unauthorized("API key revoked"));
    }
    if k.expires_at
        .as_deref()
        .is_some_and(|e| e <= time::now().as_str())
    {
        return Err(ApiError::unauthorized("API key expired"));
    }
    let user = active_user(cx, k.user_id)?;
    if stale(k.last_used_at.as_deref()) {
        let id = k.id;
        cx.write(move |c| Ok(api_keys::touch(c, id)?))?;
    }
    Ok(UserCaller {
        session_id: None,
        api_key_id: Some(k.id),
        scopes: Some(k.scopes),
        user: Box::new(user),
    })
}

fn device_caller(cx: &Ctx, token: &str) -> ApiResult<DeviceCaller> {
    let hash = sha256(token);
    let (hit, generation) = cx.app.device_keys.get(&hash);
    let d = match hit {
        Some(d) => d,
        None => {
            let d = devices::find_by_key(cx.db, &hash)?
                .ok_or_else(|| ApiError::unauthorized("Invalid device key"))?;
            cx.app.device_keys.put(hash, d.clone(), generation);
            d
        }
    };
    // Always read: an admin may disable the account from another process at any time.
    match users::is_active(cx.db, d.user_id)? {
        Some(true) => Ok(d),
        Some(false) => Err(ApiError::unauthorized("Account disabled")),
        None => Err(ApiError::unauthorized("Invalid device key")),
    }
}
