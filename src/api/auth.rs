//! Accounts and logins, shared by every API family (SPEC §6.1 auth rows, §6.2 `POST /auth`,
//! §6.3, §7.4, §8.1, §8.2).
//!
//! Functions that hash (`register`, `login`, `change_password`) run on the `ccjk-hash-*`
//! threads: the router hands their routes to that pool (`routes::needs_hashing`). Login is
//! throttled per IP and per account before any hash is computed; an unknown account is
//! verified against a dummy hash so that it costs the same; the answer is always
//! "Invalid credentials".

use crate::app::Ctx;
use crate::auth::UserCaller;
use crate::crypto::{self, DEVICE_PREFIX, REFRESH_PREFIX, SESSION_PREFIX, sha256};
use crate::db::devices::KeyMaterial;
use crate::db::sessions::{Secrets, Session};
use crate::db::users::{NewUser, User};
use crate::db::{devices, sessions, users};
use crate::error::{ApiError, ApiResult};
use crate::throttle::Key;
use crate::{password, time};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::IpAddr;

/// Name of the primary device made at registration (SPEC §6.2).
pub const PRIMARY_DEVICE_NAME: &str = "default";
/// Associated data of sealed session tokens.
pub const SESSION_AD: &str = "sessions.token_sealed";
/// Associated data of sealed device keys.
pub const DEVICE_KEY_AD: &str = "devices.key_sealed";

/// `POST /v1/auth/register`, `POST /api/auth/register`, Lite `POST /auth` bodies.
#[derive(Deserialize, Default)]
pub struct RegisterInput {
    pub email: String,
    pub password: String,
    pub username: Option<String>,
    pub display_name: Option<String>,
}

/// Login bodies: `email` or `username` (either may hold either), and the password.
#[derive(Deserialize, Default)]
pub struct LoginInput {
    pub email: Option<String>,
    pub username: Option<String>,
    pub password: String,
    /// Optional name for the session a login creates.
    pub session_name: Option<String>,
}

impl LoginInput {
    /// The login name, trimmed.
    pub fn login(&self) -> ApiResult<String> {
        let l = self
            .email
            .as_deref()
            .or(self.username.as_deref())
            .unwrap_or("")
            .trim();
        if l.is_empty() {
            return Err(ApiError::invalid("email", "email or username is required"));
        }
        Ok(l.to_string())
    }
}

/// A session just created or rotated, with its credentials (shown once).
pub struct NewSession {
    pub session: Session,
    pub token: String,
    pub refresh_token: String,
}

/// Checks an email address's shape. Errors: 422 on `email`.
pub fn validate_email(email: &str) -> ApiResult<()> {
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((l, d)) if !l.is_empty() && d.contains('.')
            && !d.starts_with('.') && !d.ends_with('.') && !d.contains('@'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid("email", "is not an email address"))
    }
}

/// Checks a username: 3–50 of `A-Z a-z 0-9 _ . -` (no `@`, so a login is unambiguous).
pub fn validate_username(name: &str) -> ApiResult<()> {
    let ok = (3..=50).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "username",
            "must be 3-50 letters, digits, _ . or -",
        ))
    }
}

/// Checks an optional free-text field's length.
pub fn validate_text(field: &str, v: Option<&str>, max: usize) -> ApiResult<()> {
    match v {
        Some(s) if s.chars().count() > max => Err(ApiError::invalid(
            field,
            format!("at most {max} characters"),
        )),
        _ => Ok(()),
    }
}

/// New session credentials under the configured TTLs.
fn mint(cx: &Ctx) -> (Secrets, String, String) {
    let token = crypto::new_token(SESSION_PREFIX);
    let refresh = crypto::new_token(REFRESH_PREFIX);
    let ttl = cx.cfg().access_token_ttl;
    let secrets = Secrets {
        token_hash: sha256(&token),
        token_sealed: cx.app.sealer.seal(SESSION_AD, token.as_bytes()),
        refresh_hash: sha256(&refresh),
        expires_at: ttl.map(time::after),
        refresh_expires_at: ttl.map(|_| time::after(cx.cfg().refresh_token_ttl)),
    };
    (secrets, token, refresh)
}

fn user_agent(cx: &Ctx) -> Option<String> {
    cx.req
        .header("user-agent")
        .map(|s| s.chars().take(512).collect())
}

/// Creates an account (and its primary device); with `session_name: Some(..)` also opens a
/// session. Hashes: call on a hashing thread. Errors: 403 when signups are closed, 422 for bad
/// fields, 409 `EMAIL_TAKEN` / `USERNAME_TAKEN`.
pub fn register(
    cx: &Ctx,
    input: &RegisterInput,
    session: Option<Option<String>>,
) -> ApiResult<(User, Option<NewSession>)> {
    if !cx.cfg().signups_open {
        return Err(ApiError::forbidden(
            "Sign-ups are closed; ask an admin for an account",
        ));
    }
    let email = input.email.trim().to_string();
    validate_email(&email)?;
    let username = input
        .username
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if let Some(u) = &username {
        validate_username(u)?;
    }
    validate_text("display_name", input.display_name.as_deref(), 100)?;
    password::validate("password", &input.password)?;
    let hash = password::hash(&input.password)?;
    let display_name = input.display_name.clone();
    let plan = cx.cfg().default_plan.clone();
    let key = device_key_material(&cx.app.sealer).1;
    let minted = session.map(|name| (name, mint(cx)));
    let (ua, ip) = (user_agent(cx), cx.req.ip.clone());
    let (user, sess) = cx.write(move |c| {
        let user = users::insert(
            c,
            &NewUser {
                email: &email,
                username: username.as_deref(),
                display_name: display_name.as_deref(),
                password_hash: &hash,
                default_plan: &plan,
            },
        )?;
        devices::insert(c, user.id, PRIMARY_DEVICE_NAME, None, true, &key)?;
        let sess = match minted {
            Some((name, (secrets, token, refresh_token))) => {
                let session = sessions::insert(
                    c,
                    user.id,
                    &secrets,
                    name.as_deref(),
                    ua.as_deref(),
                    Some(&ip),
                )?;
                users::record_login(c, user.id)?;
                Some(NewSession {
                    session,
                    token,
                    refresh_token,
                })
            }
            None => None,
        };
        Ok((user, sess))
    })?;
    log::info!("registered user {} ({})", user.id, user.email);
    Ok((user, sess))
}

/// A fresh device key and what is stored of it.
pub fn device_key_material(sealer: &crate::crypto::Sealer) -> (String, KeyMaterial) {
    let key = crypto::new_token(DEVICE_PREFIX);
    let m = KeyMaterial {
        prefix: crypto::display_prefix(&key),
        hash: sha256(&key),
        sealed: sealer.seal(DEVICE_KEY_AD, key.as_bytes()),
    };
    (key, m)
}

/// Checks a login name and password. Hashes: call on a hashing thread. Errors: 429 (throttled,
/// decided before hashing), 401 `INVALID_CREDENTIALS`, 403 for a disabled account.
pub fn login(cx: &Ctx, login: &str, password: &str) -> ApiResult<User> {
    let throttle = &cx.app.throttle;
    let ip_key = cx.req.ip.parse::<IpAddr>().ok().map(Key::Ip);
    // An indexed read, no hash: the account is throttled as one, whichever name is typed.
    let found = if password.len() > password::MAX_LEN {
        None
    } else {
        users::find_for_login(cx.db, login)?
    };
    let acct_key = match &found {
        Some((u, _)) => Key::Account(format!("#{}", u.id)),
        None => Key::Account(login.to_lowercase()),
    };
    for k in ip_key.iter().chain([&acct_key]) {
        if let Some(wait) = throttle.check(k) {
            return Err(ApiError::rate_limited(wait));
        }
    }
    let ok = match &found {
        Some((_, phc)) => password::verify(phc, password),
        None => {
            // Same cost as a real account: never reveal which accounts exist.
            password::verify(&cx.app.dummy_hash, password);
            false
        }
    };
    if !ok {
        let mut block = None;
        for k in ip_key.into_iter().chain([acct_key]) {
            block = block.or(throttle.fail(k));
        }
        if let Some((u, _)) = found {
            let until = block.map(time::after);
            let id = u.id;
            cx.write(move |c| Ok(users::record_failure(c, id, until.as_deref())?))?;
        }
        return Err(ApiError::invalid_credentials());
    }
    if let Some(k) = &ip_key {
        throttle.succeed(k);
    }
    throttle.succeed(&acct_key);
    let (user, _) = found.ok_or_else(ApiError::invalid_credentials)?;
    if !user.is_active {
        return Err(ApiError::forbidden("Account disabled"));
    }
    Ok(user)
}

/// Opens a new session for `user_id` (login, `POST /v1/sessions`, `/api/sessions/new`).
pub fn open_session(
    cx: &Ctx,
    user_id: i64,
    name: Option<String>,
    is_login: bool,
) -> ApiResult<NewSession> {
    validate_text("name", name.as_deref(), 255)?;
    let (secrets, token, refresh_token) = mint(cx);
    let (ua, ip) = (user_agent(cx), cx.req.ip.clone());
    let session = cx.write(move |c| {
        let s = sessions::insert(
            c,
            user_id,
            &secrets,
            name.as_deref(),
            ua.as_deref(),
            Some(&ip),
        )?;
        if is_login {
            users::record_login(c, user_id)?;
        }
        Ok(s)
    })?;
    Ok(NewSession {
        session,
        token,
        refresh_token,
    })
}

/// Sessions' login: the most recently used live session (its token unsealed), or a new one.
pub fn existing_or_new_session(cx: &Ctx, user_id: i64) -> ApiResult<(Session, String)> {
    if let Some((s, sealed)) = sessions::most_recent_live(cx.db, user_id)?
        && let Some(token) = cx.app.sealer.open_string(SESSION_AD, &sealed)
    {
        cx.write(move |c| Ok(users::record_login(c, user_id)?))?;
        return Ok((s, token));
    }
    let n = open_session(cx, user_id, None, true)?;
    Ok((n.session, n.token))
}

/// The key of the user's primary device (Lite's `POST /auth`), created if it is missing.
pub fn primary_device_key(cx: &Ctx, user_id: i64) -> ApiResult<String> {
    if let Some(sealed) = devices::primary_key_sealed(cx.db, user_id)? {
        return cx
            .app
            .sealer
            .open_string(DEVICE_KEY_AD, &sealed)
            .ok_or_else(|| {
                ApiError::internal("primary device key does not open under the server key")
            });
    }
    let (key, m) = device_key_material(&cx.app.sealer);
    cx.write(move |c| {
        Ok(devices::insert(
            c,
            user_id,
            PRIMARY_DEVICE_NAME,
            None,
            true,
            &m,
        )?)
    })?;
    Ok(key)
}

/// `POST /v1/auth/refresh`: a new token pair; the old pair stops working at once.
/// Errors: 401 for an unknown, used, expired or revoked refresh token, or for a session idle
/// past `CCJK_SESSION_IDLE_TTL`.
pub fn refresh(cx: &Ctx, refresh_token: &str) -> ApiResult<NewSession> {
    let bad = || ApiError::unauthorized("Invalid refresh token");
    if !refresh_token.starts_with(REFRESH_PREFIX) {
        return Err(bad());
    }
    let old = sha256(refresh_token);
    let s = sessions::find_by_refresh(cx.db, &old)?.ok_or_else(bad)?;
    if s.revoked_at.is_some()
        || crate::auth::idle_expired(cx, &s)
        || s.refresh_expires_at
            .as_deref()
            .is_some_and(|e| e <= time::now().as_str())
    {
        return Err(bad());
    }
    crate::auth::active_user(cx, s.user_id)?;
    let (secrets, token, refresh) = mint(cx);
    let id = s.id;
    let rotated = cx.write(move |c| sessions::rotate(c, id, &old, &secrets).map_err(Into::into))?;
    if !rotated {
        return Err(bad());
    }
    let session = sessions::get(cx.db, s.user_id, s.id)?.ok_or_else(bad)?;
    Ok(NewSession {
        session,
        token,
        refresh_token: refresh,
    })
}

/// Revokes the caller's own session (logout). Errors: 401 if the caller is not a session.
pub fn logout(cx: &Ctx, caller: &UserCaller) -> ApiResult<()> {
    let (uid, sid) = (
        caller.user_id(),
        caller
            .session_id
            .ok_or_else(|| ApiError::unauthorized("Not a session"))?,
    );
    cx.write(move |c| Ok(sessions::revoke(c, uid, sid)?))?;
    Ok(())
}

/// `PATCH /v1/auth/me` body.
#[derive(Deserialize, Default)]
pub struct ProfileInput {
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub notify_email: Option<bool>,
}

/// Updates the caller's profile and returns it. Errors: 422, 409 `USERNAME_TAKEN`.
pub fn update_profile(cx: &Ctx, caller: &UserCaller, p: ProfileInput) -> ApiResult<User> {
    if let Some(u) = &p.username {
        validate_username(u)?;
    }
    validate_text("display_name", p.display_name.as_deref(), 100)?;
    validate_text("avatar_url", p.avatar_url.as_deref(), 2048)?;
    let uid = caller.user_id();
    cx.write(move |c| {
        users::update_profile(
            c,
            uid,
            p.username.as_deref(),
            p.display_name.as_deref(),
            p.avatar_url.as_deref(),
            p.notify_email,
        )
    })?;
    users::find(cx.db, uid)?.ok_or_else(|| ApiError::not_found("User"))
}

/// `POST /v1/auth/password`: checks the current password, sets the new one and revokes every
/// other session of the user. Hashes twice: call on a hashing thread. Errors: 401, 422, 429.
pub fn change_password(cx: &Ctx, caller: &UserCaller, current: &str, new: &str) -> ApiResult<()> {
    password::validate("new_password", new)?;
    login(cx, &caller.user.email, current)?;
    let hash = password::hash(new)?;
    let (uid, keep) = (caller.user_id(), caller.session_id);
    cx.write(move |c| {
        users::set_password(c, uid, &hash)?;
        sessions::revoke_others(c, uid, keep)?;
        Ok(())
    })
}

/// The canonical JSON of a user (`/v1`).
pub fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "email": u.email,
        "username": u.username,
        "display_name": u.display_name,
        "avatar_url": u.avatar_url,
        "plan": u.plan,
        "is_verified": u.is_verified,
        "is_admin": u.is_admin,
        "notify_email": u.notify_email,
        "created_at": u.created_at,
        "last_login_at": u.last_login_at,
    })
}

/// The canonical JSON of a session (`/v1`), without credentials.
pub fn session_json(s: &Session) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "user_agent": s.user_agent,
        "ip_address": s.ip_address,
        "created_at": s.created_at,
        "last_used_at": s.last_used_at,
        "expires_at": s.expires_at,
    })
}
