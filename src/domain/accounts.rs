//! Accounts and logins, shared by every API family and the CLI (docs/security.md).
//!
//! Functions that hash (`register`, `login`, `change_password`) must run on a hashing thread
//! (the route table marks their routes; the CLI is a process of its own). Login is throttled
//! per client address and per account before any hash is computed; an unknown account is
//! verified against a dummy hash and recorded the same way as a known one, so both cost the
//! same; the answer is always "Invalid credentials".

use crate::crypto::{self, REFRESH_PREFIX, SESSION_PREFIX, sha256};
use crate::db::effects::Effect;
use crate::db::sessions::{Secrets, Session};
use crate::db::users::{NewUser, User};
use crate::db::{Db, sessions, users};
use crate::domain::callers::{UserCaller, active_user, idle_expired};
use crate::domain::policy;
use crate::domain::text;
use crate::domain::{Cx, Origin};
use crate::error::{ApiError, ApiResult};
use crate::state::throttle::Key;
use crate::{password, time};
use schemars::JsonSchema;
use serde::Deserialize;
use std::net::IpAddr;

/// Associated data of sealed session tokens.
pub const SESSION_AD: &str = "sessions.token_sealed";

/// A new account (`POST /v1/auth/register`, `POST /api/auth/register`, Lite `POST /auth`).
#[derive(Deserialize, JsonSchema, Default)]
pub struct RegisterInput {
    pub email: String,
    /// 8 to 1024 bytes.
    pub password: String,
    /// 3–50 of `A-Z a-z 0-9 _ . -`; another way to log in.
    pub username: Option<String>,
    pub display_name: Option<String>,
}

/// A login: `email` or `username` (either may hold either), and the password.
#[derive(Deserialize, JsonSchema, Default)]
pub struct LoginInput {
    pub email: Option<String>,
    pub username: Option<String>,
    pub password: String,
    /// Optional name for the session a login creates.
    pub session_name: Option<String>,
}

impl LoginInput {
    /// The login name, trimmed. Errors: 422 when neither field is given.
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

/// New session credentials under the configured TTLs.
fn mint(cx: &Cx) -> (Secrets, String, String) {
    let token = crypto::new_token(SESSION_PREFIX);
    let refresh = crypto::new_token(REFRESH_PREFIX);
    let ttl = cx.cfg().access_token_ttl;
    let secrets = Secrets {
        token_hash: sha256(&token),
        token_sealed: cx.svc.sealer.seal(SESSION_AD, token.as_bytes()),
        refresh_hash: sha256(&refresh),
        expires_at: ttl.map(time::after),
        refresh_expires_at: ttl.map(|_| time::after(cx.cfg().refresh_token_ttl)),
    };
    (secrets, token, refresh)
}

/// A validated new account, ready to insert.
struct Checked {
    email: String,
    email_key: String,
    username: Option<String>,
    display_name: Option<String>,
    hash: String,
}

/// Validates a new account and hashes its password. Errors: 422.
fn check_new(input: &RegisterInput) -> ApiResult<Checked> {
    let email = text::email(&input.email)?;
    let username = input
        .username
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if let Some(u) = &username {
        validate_username(u)?;
    }
    let display_name = text::optional_name("display_name", input.display_name.as_deref(), 100)?;
    password::validate("password", &input.password)?;
    Ok(Checked {
        email_key: text::email_key(&email),
        email,
        username,
        display_name,
        hash: password::hash(&input.password)?,
    })
}

/// Inserts a checked account under the first-account rule.
fn insert_account(c: &rusqlite::Connection, a: &Checked, default_plan: &str) -> ApiResult<User> {
    let first = users::none_yet(c)?;
    let (plan, is_admin) = policy::new_account_plan(first, default_plan);
    users::insert(
        c,
        &NewUser {
            email: &a.email,
            email_key: &a.email_key,
            username: a.username.as_deref(),
            display_name: a.display_name.as_deref(),
            password_hash: &a.hash,
            plan,
            is_admin,
        },
    )
}

/// Creates an account from `origin`; with `session_name: Some(..)` also opens a session.
/// Hashes: call on a hashing thread. Errors: 403 when sign-ups are closed, 422 for bad fields,
/// 409 `EMAIL_TAKEN` (also for a look-alike of an existing address) / `USERNAME_TAKEN`.
pub fn register(
    cx: &Cx,
    input: &RegisterInput,
    session: Option<Option<String>>,
    origin: &Origin,
) -> ApiResult<(User, Option<NewSession>)> {
    policy::check_signups(cx.cfg().signups_open)?;
    let account = check_new(input)?;
    let minted = match session {
        Some(name) => Some((
            text::optional_name("session_name", name.as_deref(), 255)?,
            mint(cx),
        )),
        None => None,
    };
    let plan = cx.cfg().default_plan.clone();
    let origin = origin.clone();
    let (user, sess) = cx.write(move |tx| {
        let user = insert_account(tx, &account, &plan)?;
        let sess = match minted {
            Some((name, (secrets, token, refresh_token))) => {
                let session = sessions::insert(
                    tx,
                    user.id,
                    &secrets,
                    name.as_deref(),
                    origin.user_agent.as_deref(),
                    Some(&origin.ip),
                )?;
                users::record_login(tx, user.id)?;
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

/// Creates an account for an admin (`ccjk-cloud user create`): no sign-up rule, an optional
/// plan and admin flag. Hashes. Errors: 422, 409.
pub fn create_by_admin(
    db: &Db,
    input: &RegisterInput,
    plan: Option<String>,
    admin: bool,
    default_plan: &str,
) -> ApiResult<User> {
    let account = check_new(input)?;
    let default_plan = default_plan.to_string();
    db.write(move |tx| {
        let u = insert_account(tx, &account, &default_plan)?;
        if let Some(p) = plan {
            users::set_flag(tx, &u.email, users::Flag::Plan, &p)?;
        }
        if admin {
            users::set_flag(tx, &u.email, users::Flag::Admin, "1")?;
        }
        users::find(tx, u.id)?.ok_or_else(|| ApiError::internal("created user vanished"))
    })
}

/// Fills in the e-mail comparison key of accounts created before it existed. A look-alike of
/// an account that already has the key keeps none (and logs in by its exact address only);
/// the log names it so an admin can resolve it.
pub fn backfill_email_keys(db: &Db) -> ApiResult<()> {
    db.write(|tx| {
        for (id, email) in users::missing_email_keys(tx)? {
            if let Err(e) = users::set_email_key(tx, id, &text::email_key(&email)) {
                if crate::error::is_unique_violation(&e) {
                    log::warn!("user {id} <{email}> looks like another account's address; it keeps no comparison key");
                } else {
                    return Err(e.into());
                }
            }
        }
        Ok(())
    })
}

/// Checks a login name and password from `ip`. Hashes: call on a hashing thread.
/// Errors: 429 (throttled, decided before hashing), 401 `INVALID_CREDENTIALS`, 403 for a
/// disabled account.
pub fn login(cx: &Cx, login: &str, password: &str, ip: &str) -> ApiResult<User> {
    let throttle = &cx.svc.throttle;
    let ip_key = ip.parse::<IpAddr>().ok().map(Key::Ip);
    // An indexed read, no hash: the account is throttled as one, whichever name is typed.
    let found = if password.len() > password::MAX_LEN {
        None
    } else {
        users::find_for_login(cx.reader, login, &text::email_key(login))?
    };
    let acct_key = match &found {
        Some((u, _)) => Key::Account(format!("#{}", u.id)),
        None => Key::Account(text::email_key(login)),
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
            password::verify(&cx.svc.dummy_hash, password);
            false
        }
    };
    if !ok {
        let mut block = None;
        for k in ip_key.into_iter().chain([acct_key]) {
            block = block.or(throttle.fail(k));
        }
        // The failure is recorded for admins without waiting for the write, and for an
        // unknown account too, so both answers take the same time.
        let (id, until) = (found.map(|(u, _)| u.id), block.map(time::after));
        cx.svc.db.write_later(move |tx| match id {
            Some(id) => Ok(users::record_failure(tx, id, until.as_deref())?),
            None => Ok(()),
        });
        return Err(ApiError::invalid_credentials());
    }
    // Only the account's own counter starts over: a success from an address must not clear
    // the failures that address piled up against other accounts.
    throttle.succeed(&acct_key);
    let (user, _) = found.ok_or_else(ApiError::invalid_credentials)?;
    if !user.is_active {
        return Err(ApiError::forbidden("Account disabled"));
    }
    Ok(user)
}

/// Does an account with this e-mail (or a look-alike of it) exist?
pub fn exists(cx: &Cx, email: &str) -> ApiResult<bool> {
    Ok(users::find_for_login(cx.reader, email, &text::email_key(email))?.is_some())
}

/// Opens a new session for `user_id` (login, `POST /v1/sessions`, `/api/sessions/new`).
/// Errors: 422 for a bad name.
pub fn open_session(
    cx: &Cx,
    user_id: i64,
    name: Option<String>,
    is_login: bool,
    origin: &Origin,
) -> ApiResult<NewSession> {
    let name = text::optional_name("name", name.as_deref(), 255)?;
    let (secrets, token, refresh_token) = mint(cx);
    let origin = origin.clone();
    let session = cx.write(move |tx| {
        let s = sessions::insert(
            tx,
            user_id,
            &secrets,
            name.as_deref(),
            origin.user_agent.as_deref(),
            Some(&origin.ip),
        )?;
        if is_login {
            users::record_login(tx, user_id)?;
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
pub fn existing_or_new_session(
    cx: &Cx,
    user_id: i64,
    origin: &Origin,
) -> ApiResult<(Session, String)> {
    if let Some((s, sealed)) = sessions::most_recent_live(cx.reader, user_id)?
        && !idle_expired(cx, &s)
        && let Some(token) = cx.svc.sealer.open_string(SESSION_AD, &sealed)
    {
        cx.write(move |tx| Ok(users::record_login(tx, user_id)?))?;
        return Ok((s, token));
    }
    let n = open_session(cx, user_id, None, true, origin)?;
    Ok((n.session, n.token))
}

/// A new token pair for a refresh token; the old pair stops working at once.
/// Errors: 401 for an unknown, used, expired or revoked refresh token, or for a session idle
/// past `CCJK_SESSION_IDLE_TTL`.
pub fn refresh(cx: &Cx, refresh_token: &str) -> ApiResult<NewSession> {
    let bad = || ApiError::unauthorized("Invalid refresh token");
    if !refresh_token.starts_with(REFRESH_PREFIX) {
        return Err(bad());
    }
    let old = sha256(refresh_token);
    let s = sessions::find_by_refresh(cx.reader, &old)?.ok_or_else(bad)?;
    if s.revoked_at.is_some()
        || idle_expired(cx, &s)
        || s.refresh_expires_at
            .as_deref()
            .is_some_and(|e| e <= cx.svc.clock.stamp().as_str())
    {
        return Err(bad());
    }
    active_user(cx, s.user_id)?;
    let (secrets, token, refresh) = mint(cx);
    let (id, uid) = (s.id, s.user_id);
    let rotated = cx.write(move |tx| {
        let rotated = sessions::rotate(tx, id, &old, &secrets)?;
        // Streams opened with the old token end: it no longer authenticates.
        tx.after_commit(Effect::CredentialsRevoked(uid));
        Ok(rotated)
    })?;
    if !rotated {
        return Err(bad());
    }
    let session = sessions::get(cx.reader, s.user_id, s.id)?.ok_or_else(bad)?;
    Ok(NewSession {
        session,
        token,
        refresh_token: refresh,
    })
}

/// Revokes the caller's own session (logout). Errors: 401 if the caller is not a session.
pub fn logout(cx: &Cx, caller: &UserCaller) -> ApiResult<()> {
    let (uid, sid) = (caller.user_id(), caller.session()?);
    cx.write(move |tx| {
        sessions::revoke(tx, uid, sid)?;
        tx.after_commit(Effect::CredentialsRevoked(uid));
        Ok(())
    })?;
    Ok(())
}

/// A profile change (`PATCH /v1/auth/me`); absent fields stay as they are.
#[derive(Deserialize, JsonSchema, Default)]
pub struct ProfileInput {
    pub username: Option<String>,
    pub display_name: Option<String>,
    /// An `https://` (or `http://`) URL of an image.
    pub avatar_url: Option<String>,
    /// Mail task results to the account's address.
    pub notify_email: Option<bool>,
}

/// Updates the caller's profile and returns it. Errors: 422, 409 `USERNAME_TAKEN`.
pub fn update_profile(cx: &Cx, caller: &UserCaller, p: ProfileInput) -> ApiResult<User> {
    if let Some(u) = &p.username {
        validate_username(u)?;
    }
    let display_name = text::optional_name("display_name", p.display_name.as_deref(), 100)?;
    if let Some(url) = p.avatar_url.as_deref() {
        let lower = url.to_ascii_lowercase();
        let ok = url.len() <= 2048
            && (lower.starts_with("https://") || lower.starts_with("http://"))
            && !url.chars().any(|c| c.is_whitespace() || text::is_hidden(c));
        if !ok {
            return Err(ApiError::invalid(
                "avatar_url",
                "must be an http(s) URL of at most 2048 bytes",
            ));
        }
    }
    let uid = caller.user_id();
    cx.write(move |tx| {
        users::update_profile(
            tx,
            uid,
            p.username.as_deref(),
            display_name.as_deref(),
            p.avatar_url.as_deref(),
            p.notify_email,
        )
    })?;
    users::find(cx.reader, uid)?.ok_or_else(|| ApiError::not_found("User"))
}

/// Checks the caller's current password, sets the new one and revokes every other session of
/// the user. Hashes twice: call on a hashing thread. Errors: 401, 422, 429.
pub fn change_password(
    cx: &Cx,
    caller: &UserCaller,
    current: &str,
    new: &str,
    ip: &str,
) -> ApiResult<()> {
    password::validate("new_password", new)?;
    login(cx, &caller.user.email, current, ip)?;
    let hash = password::hash(new)?;
    let (uid, keep) = (caller.user_id(), caller.session_id);
    cx.write(move |tx| {
        users::set_password(tx, uid, &hash)?;
        sessions::revoke_others(tx, uid, keep)?;
        tx.after_commit(Effect::CredentialsRevoked(uid));
        Ok(())
    })
}

/// Sets a new password for an admin (`ccjk-cloud user reset-password`) and signs out every
/// session. Hashes. Returns how many sessions were revoked. Errors: 404, 422.
pub fn reset_password(
    db: &Db,
    reader: &rusqlite::Connection,
    email: &str,
    new: &str,
) -> ApiResult<usize> {
    password::validate("password", new)?;
    let (user, _) = users::find_for_login(reader, email, &text::email_key(email))?
        .ok_or_else(|| ApiError::not_found("User"))?;
    let hash = password::hash(new)?;
    db.write(move |tx| {
        users::set_password(tx, user.id, &hash)?;
        Ok(sessions::revoke_others(tx, user.id, None)?)
    })
}
