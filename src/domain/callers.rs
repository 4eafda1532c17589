//! Who is calling: turns a credential into a typed caller, and checks scopes
//! (docs/security.md "Credentials").
//!
//! The credential's prefix says which table to look in (`ccs_` sessions, `cck_` API keys,
//! `ccjk_` devices, `cca_` app tokens); what kind of caller a route accepts is declared in its
//! route-table entry,
//! and a credential of the wrong kind is 401, never a silent downgrade. Session tokens hold
//! every scope of their user; API keys hold the scopes they were created with. `last_used_at`
//! is written at most once a minute per credential (more often when an idle timeout is shorter,
//! so a session in use never looks idle). This module reads no HTTP request: the HTTP side
//! hands it the credential string.

use crate::crypto::{API_KEY_PREFIX, APP_PREFIX, DEVICE_PREFIX, SESSION_PREFIX, sha256};
use crate::db::devices::DeviceAuth;
use crate::db::{api_keys, apps, devices, sessions, users};
use crate::domain::Cx;
use crate::domain::policy::LAST_USED_EVERY;
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

    /// This caller, if it holds `scope`. Errors: 403 `INSUFFICIENT_SCOPE`.
    pub fn require(&self, scope: &str) -> ApiResult<&UserCaller> {
        if self.has(scope) {
            Ok(self)
        } else {
            Err(ApiError::insufficient_scope(scope))
        }
    }

    /// The session id, for routes only a session may call. Errors: 401.
    pub fn session(&self) -> ApiResult<i64> {
        self.session_id
            .ok_or_else(|| ApiError::unauthorized("This route needs a session token"))
    }
}

/// A daemon, authenticated by its device key.
pub type DeviceCaller = DeviceAuth;

/// An app, authenticated by an app token (`cca_…`): it acts on one device's key-value store,
/// read-only or read-write (README "Apps and the KV store").
#[derive(Clone, Debug)]
pub struct AppCaller {
    /// The install (one per token).
    pub install_id: String,
    pub app_id: i64,
    /// The app's site key, which an `x-site-key` header must match.
    pub site_key: String,
    /// The device whose keys the token reaches, and its owner.
    pub device_id: i64,
    pub user_id: i64,
    pub read_only: bool,
}

impl AppCaller {
    /// Checks the `x-site-key` a request carried, if any. Errors: 403 `FORBIDDEN` when it is
    /// not this token's app's.
    pub fn check_site_key(&self, sent: Option<&str>) -> ApiResult<()> {
        match sent.map(str::trim) {
            Some(k) if k != self.site_key => Err(ApiError::forbidden(
                "x-site-key does not belong to this token's app",
            )),
            _ => Ok(()),
        }
    }

    /// This caller, if its token may write. Errors: 403 `FORBIDDEN` for a read-only token.
    pub fn require_write(&self) -> ApiResult<&AppCaller> {
        if self.read_only {
            Err(ApiError::forbidden("This app token is read-only"))
        } else {
            Ok(self)
        }
    }
}

/// Any authenticated caller.
#[derive(Clone, Debug)]
pub enum Caller {
    User(UserCaller),
    Device(DeviceCaller),
    App(AppCaller),
}

impl Caller {
    /// The account behind the credential.
    pub fn user_id(&self) -> i64 {
        match self {
            Caller::User(u) => u.user_id(),
            Caller::Device(d) => d.user_id,
            Caller::App(a) => a.user_id,
        }
    }
}

/// Resolves a user or device credential to a caller (app tokens are resolved only by the KV
/// routes, with `app_caller`). Errors: 401 for an unknown, revoked, expired or unrecognised
/// credential, or a disabled account.
pub fn resolve(cx: &Cx, token: &str) -> ApiResult<Caller> {
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

/// Loads the owner and refuses disabled accounts. Errors: 401.
pub fn active_user(cx: &Cx, user_id: i64) -> ApiResult<users::User> {
    match users::find(cx.reader, user_id)? {
        Some(u) if u.is_active => Ok(u),
        Some(_) => Err(ApiError::unauthorized("Account disabled")),
        None => Err(ApiError::unauthorized("Invalid credentials")),
    }
}

/// How stale `last_used_at` may get before a request writes it: a minute, or half the idle
/// timeout when that is shorter, so that a session used steadily is never seen as idle.
pub fn touch_every(cfg: &crate::config::Config) -> Duration {
    match cfg.session_idle_ttl {
        Some(idle) => LAST_USED_EVERY.min(idle / 2),
        None => LAST_USED_EVERY,
    }
}

fn needs_touch(cx: &Cx, last_used: Option<&str>) -> bool {
    let cutoff = time::fmt(cx.svc.clock.now() - touch_every(cx.cfg()));
    last_used.is_none_or(|t| t < cutoff.as_str())
}

/// Has the session gone unused for longer than `CCJK_SESSION_IDLE_TTL`? Such a session
/// neither authenticates nor can be refreshed back to life (the janitor revokes it later).
pub fn idle_expired(cx: &Cx, s: &sessions::Session) -> bool {
    cx.cfg()
        .session_idle_ttl
        .is_some_and(|idle| s.last_used_at < time::fmt(cx.svc.clock.now() - idle))
}

fn session_caller(cx: &Cx, token: &str) -> ApiResult<UserCaller> {
    let s = sessions::find_by_token(cx.reader, &sha256(token))?
        .ok_or_else(|| ApiError::unauthorized("Invalid session"))?;
    if s.revoked_at.is_some() {
        return Err(ApiError::unauthorized("Session revoked"));
    }
    let now = cx.svc.clock.stamp();
    if s.expires_at.as_deref().is_some_and(|e| e <= now.as_str()) {
        return Err(ApiError::unauthorized("Session expired; refresh it"));
    }
    if idle_expired(cx, &s) {
        return Err(ApiError::unauthorized("Session expired after inactivity"));
    }
    let user = active_user(cx, s.user_id)?;
    // Queued, not awaited, as app tokens' touches are: a request (or the events thread's
    // periodic re-check of a stream's credential) never waits for a commit to refresh it; and
    // claimed, so that the requests made before it commits do not queue it again.
    if needs_touch(cx, Some(&s.last_used_at))
        && cx
            .svc
            .credential_touches
            .claim(&format!("s{}", s.id), cx.svc.clock.now())
    {
        let (id, at) = (s.id, cx.svc.clock.stamp());
        cx.svc
            .db
            .write_later(move |tx| Ok(sessions::touch(tx, id, &at)?));
    }
    Ok(UserCaller {
        session_id: Some(s.id),
        api_key_id: None,
        scopes: None,
        user: Box::new(user),
    })
}

fn api_key_caller(cx: &Cx, token: &str) -> ApiResult<UserCaller> {
    let k = api_keys::find_by_hash(cx.reader, &sha256(token))?
        .ok_or_else(|| ApiError::unauthorized("Invalid API key"))?;
    if k.revoked_at.is_some() {
        return Err(ApiError::unauthorized("API key revoked"));
    }
    if k.expires_at
        .as_deref()
        .is_some_and(|e| e <= cx.svc.clock.stamp().as_str())
    {
        return Err(ApiError::unauthorized("API key expired"));
    }
    let user = active_user(cx, k.user_id)?;
    if needs_touch(cx, k.last_used_at.as_deref())
        && cx
            .svc
            .credential_touches
            .claim(&format!("k{}", k.id), cx.svc.clock.now())
    {
        let (id, at) = (k.id, cx.svc.clock.stamp());
        cx.svc
            .db
            .write_later(move |tx| Ok(api_keys::touch(tx, id, &at)?));
    }
    Ok(UserCaller {
        session_id: None,
        api_key_id: Some(k.id),
        scopes: Some(k.scopes),
        user: Box::new(user),
    })
}

fn device_caller(cx: &Cx, token: &str) -> ApiResult<DeviceCaller> {
    let hash = sha256(token);
    let (hit, generation) = cx.svc.device_keys.get(&hash);
    let d = match hit {
        Some(d) => d,
        None => {
            let d = devices::find_by_key(cx.reader, &hash)?
                .ok_or_else(|| ApiError::unauthorized("Invalid device key"))?;
            cx.svc.device_keys.put(hash, d.clone(), generation);
            d
        }
    };
    // Always read: an admin may disable the account from another process at any time.
    match users::is_active(cx.reader, d.user_id)? {
        Some(true) => Ok(d),
        Some(false) => Err(ApiError::unauthorized("Account disabled")),
        None => Err(ApiError::unauthorized("Invalid device key")),
    }
}

/// Resolves an app token (`cca_…`). `last_used_at` is written at most once a minute, by one
/// write queued without waiting for it (a KV read never waits on the writer). Errors: 401 for anything that is
/// not a live app token (another kind of credential, an unknown or revoked token), or when the
/// device's owner is disabled.
pub fn app_caller(cx: &Cx, token: &str) -> ApiResult<AppCaller> {
    if !token.starts_with(APP_PREFIX) {
        return Err(ApiError::unauthorized(
            "This route needs an app token (cca_…)",
        ));
    }
    let row = apps::find_token(cx.reader, &sha256(token))?
        .ok_or_else(|| ApiError::unauthorized("Invalid app token"))?;
    if !row.owner_active {
        return Err(ApiError::unauthorized("Account disabled"));
    }
    if needs_touch(cx, row.last_used_at.as_deref())
        && cx
            .svc
            .app_touches
            .claim(&row.install_id, cx.svc.clock.now())
    {
        let id = row.install_id.clone();
        cx.svc
            .db
            .write_later(move |tx| Ok(apps::touch_install(tx, &id)?));
    }
    Ok(AppCaller {
        install_id: row.install_id,
        app_id: row.app_id,
        site_key: row.site_key,
        device_id: row.device_id,
        user_id: row.user_id,
        read_only: row.read_only,
    })
}
