//! Apps and their authorisation on devices (README "Apps and the KV store"): the catalog an
//! admin keeps with `ccjk-cloud app`, authorising an app on a device (which mints an app token,
//! `cca_…`), listing and revoking tokens, and the device's KV password.
//!
//! An app may be authorised on a device by the device's owner (a session token), or by anyone
//! who presents the device's KV password when the owner has set one; never with a bare device
//! uuid. The password path is throttled like a login (per client address and per device,
//! decided before any hash) and costs one argon2id verification whether or not the device
//! exists or has a password, so the answer tells nothing about which uuids exist. Tokens are
//! stored as SHA-256 only; an install is deleted when its token is revoked.

use crate::crypto::{self, APP_PREFIX, sha256};
use crate::db::apps::{self, App, Install, NewApp, NewInstall};
use crate::db::{Db, devices};
use crate::domain::policy::{MAX_INSTALL_NOTE, MAX_INSTALLS_PER_DEVICE};
use crate::domain::{Cx, Page, Paged, text};
use crate::error::{ApiError, ApiResult};
use crate::password;
use crate::state::throttle::Key;
use std::net::IpAddr;

/// Prefix of an app's site key (not a credential: an app's pages show it).
pub const SITE_KEY_PREFIX: &str = "site_";

/// What an admin registers (`ccjk-cloud app create`).
#[derive(Clone, Debug, Default)]
pub struct AppInput {
    pub name: String,
    pub developer_name: String,
    pub homepage_link: Option<String>,
    pub developer_link: Option<String>,
    pub description: Option<String>,
}

/// Checks a link: an `http://` or `https://` URL of up to 2048 bytes without spaces or
/// control characters. Errors: 422 on `field`.
fn link(field: &str, v: Option<&str>) -> ApiResult<Option<String>> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let scheme = v.starts_with("https://") || v.starts_with("http://");
    if !scheme || v.len() > 2048 || v.chars().any(|c| c.is_whitespace() || text::is_hidden(c)) {
        return Err(ApiError::invalid(field, "must be an http(s) URL"));
    }
    Ok(Some(v.to_string()))
}

/// Registers an app with a fresh site key. Errors: 422.
pub fn create(db: &Db, input: &AppInput) -> ApiResult<App> {
    let name = text::name("name", &input.name, 100)?;
    let developer = text::name("developer", &input.developer_name, 100)?;
    let description = text::optional_name(
        "description",
        input
            .description
            .as_deref()
            .filter(|d| !d.trim().is_empty()),
        500,
    )?;
    let homepage = link("homepage", input.homepage_link.as_deref())?;
    let developer_link = link("developer_link", input.developer_link.as_deref())?;
    let site_key = format!(
        "{SITE_KEY_PREFIX}{}",
        crypto::hex(&crypto::random_bytes::<16>())
    );
    db.write(move |tx| {
        let id = apps::insert(
            tx,
            &NewApp {
                name: &name,
                description: description.as_deref(),
                developer_name: &developer,
                developer_link: developer_link.as_deref(),
                homepage_link: homepage.as_deref(),
                site_key: &site_key,
            },
        )?;
        apps::get(tx, id)?.ok_or_else(|| ApiError::internal("created app vanished"))
    })
}

/// Deletes an app: its installs go with it (their tokens are 401 from the next request); the
/// keys it wrote stay with their devices. Returns whether it existed.
pub fn delete(db: &Db, id: i64) -> ApiResult<bool> {
    db.write(move |tx| Ok(apps::delete(tx, id)?))
}

/// A page of the catalog, oldest first.
pub fn list(cx: &Cx, page: Page) -> ApiResult<Paged<App>> {
    let rows = apps::list(cx.reader, page.limit + 1, page.offset)?;
    Ok(Paged::from_rows(rows, page))
}

/// An app by its id as sent. Errors: 404 (also for an id that is not a number).
pub fn get(cx: &Cx, id: &str) -> ApiResult<App> {
    id.parse::<i64>()
        .ok()
        .map(|id| apps::get(cx.reader, id))
        .transpose()?
        .flatten()
        .ok_or_else(|| ApiError::not_found("App"))
}

/// An authorisation request (`POST /apps/{appId}/authorize`).
#[derive(Clone, Debug, Default)]
pub struct Authorize {
    pub device_uuid: String,
    /// The device's KV password, for a caller who is not its owner.
    pub password: Option<String>,
    pub read_only: bool,
    pub note: Option<String>,
}

/// A new app token and what it reaches.
#[derive(Clone, Debug)]
pub struct Authorized {
    /// `cca_…`: shown here only.
    pub token: String,
    pub app: App,
    pub device_uuid: String,
    pub device_name: String,
    pub read_only: bool,
    pub note: Option<String>,
    pub authorized_at: String,
}

/// Checks a KV password from `ip` against the device `uuid` names (`target`: `None` for no
/// such device), throttled like a login, per address and per uuid as sent. Hashes: call on a
/// hashing thread. Errors: 429 before any hash, 401 `INVALID_CREDENTIALS` (also for an unknown
/// device or one without a KV password).
fn check_kv_password(
    cx: &Cx,
    uuid: &str,
    target: Option<&apps::AuthorizeTarget>,
    password: &str,
    ip: &str,
) -> ApiResult<()> {
    let throttle = &cx.svc.throttle;
    let device_key = Key::Device(uuid.to_string());
    let keys: Vec<Key> = ip
        .parse::<IpAddr>()
        .ok()
        .map(Key::Ip)
        .into_iter()
        .chain([device_key.clone()])
        .collect();
    for k in &keys {
        if let Some(wait) = throttle.check(k) {
            return Err(ApiError::rate_limited(wait));
        }
    }
    let stored = target.and_then(|t| t.kv_password_hash.as_deref());
    let ok = match stored {
        Some(phc) if password.len() <= password::MAX_LEN => password::verify(phc, password),
        _ => {
            // Same cost as a real check: the answer never says which devices exist.
            password::verify(&cx.svc.dummy_hash, password);
            false
        }
    };
    if !ok {
        for k in keys {
            throttle.fail(k);
        }
        return Err(ApiError::invalid_credentials());
    }
    throttle.succeed(&device_key);
    Ok(())
}

/// Authorises app `app_id` on a device and mints its token. `session_user` is the caller's
/// account when a session token came with the request; `site_key` the `x-site-key` sent, if
/// any. May hash (the KV password): call on a hashing thread. Errors: 404 (app; a device that
/// is not the session user's when no password is given), 403 (site key, installs quota), 401
/// (no session and no password; `INVALID_CREDENTIALS` for a wrong password or unknown
/// device), 429, 422.
pub fn authorize(
    cx: &Cx,
    app_id: &str,
    a: Authorize,
    session_user: Option<i64>,
    site_key: Option<&str>,
    ip: &str,
) -> ApiResult<Authorized> {
    let app = get(cx, app_id)?;
    if site_key.is_some_and(|k| k.trim() != app.site_key) {
        return Err(ApiError::forbidden(
            "x-site-key does not belong to this app",
        ));
    }
    let note = text::optional_name(
        "note",
        a.note.as_deref().filter(|n| !n.trim().is_empty()),
        MAX_INSTALL_NOTE,
    )?;
    let uuid = a.device_uuid.trim();
    if uuid.is_empty() || uuid.len() > 64 {
        return Err(ApiError::invalid("deviceUuid", "must be a device id"));
    }
    let target = apps::authorize_target(cx.reader, uuid)?;
    let owner = target
        .as_ref()
        .is_some_and(|t| session_user == Some(t.user_id));
    if !owner {
        match (&a.password, session_user) {
            (Some(pw), _) => check_kv_password(cx, uuid, target.as_ref(), pw, ip)?,
            (None, Some(_)) => return Err(ApiError::not_found("Device")),
            (None, None) => {
                return Err(ApiError::unauthorized(
                    "Sign in as the device's owner, or give its KV password",
                ));
            }
        }
    }
    let t = target.ok_or_else(ApiError::invalid_credentials)?;
    let token = crypto::new_token(APP_PREFIX);
    let (hash, prefix) = (sha256(&token), crypto::display_prefix(&token));
    let id = uuid::Uuid::new_v4().to_string();
    let now = cx.svc.clock.stamp();
    let (device_id, app_id, read_only) = (t.id, app.id, a.read_only);
    let (n, at) = (note.clone(), now.clone());
    cx.write(move |tx| {
        let used = apps::count_installs(tx, device_id)?;
        if used >= MAX_INSTALLS_PER_DEVICE {
            return Err(ApiError::quota(
                "app_installs",
                MAX_INSTALLS_PER_DEVICE,
                used,
            ));
        }
        apps::insert_install(
            tx,
            &NewInstall {
                id: &id,
                device_id,
                app_id,
                token_prefix: &prefix,
                token_hash: &hash,
                read_only,
                note: n.as_deref(),
                now: &at,
            },
        )?;
        Ok(())
    })?;
    Ok(Authorized {
        token,
        app,
        device_uuid: t.uuid,
        device_name: t.name,
        read_only,
        note,
        authorized_at: now,
    })
}

/// A page of the installs (tokens, by prefix) on one of the user's devices. Errors: 404.
pub fn device_tokens(cx: &Cx, user_id: i64, uuid: &str, page: Page) -> ApiResult<Paged<Install>> {
    let d = devices::get(cx.reader, user_id, uuid)?.ok_or_else(|| ApiError::not_found("Device"))?;
    let rows = apps::installs_of_device(cx.reader, d.id, page.limit + 1, page.offset)?;
    Ok(Paged::from_rows(rows, page))
}

/// A page of an app's installs on the user's own devices. Errors: 404 for no such app.
pub fn installations(cx: &Cx, user_id: i64, app_id: &str, page: Page) -> ApiResult<Paged<Install>> {
    let app = get(cx, app_id)?;
    let rows =
        apps::installs_of_app_for_user(cx.reader, app.id, user_id, page.limit + 1, page.offset)?;
    Ok(Paged::from_rows(rows, page))
}

/// Revokes a token: `which` is the token itself (no other credential needed: holding it is
/// the right to drop it), or an install id, which only the device's owner (`user`) may revoke.
/// The token is 401 from its next request. Errors: 404, 401 for an install id without a user.
pub fn revoke(cx: &Cx, which: &str, user: Option<i64>) -> ApiResult<()> {
    let which = which.trim().to_string();
    let found = if which.starts_with(APP_PREFIX) {
        let hash = sha256(&which);
        // Looked up on a reader first: this route needs no other credential, so a stream of
        // made-up tokens must not each take a turn of the single writer.
        if apps::find_token(cx.reader, &hash)?.is_none() {
            return Err(ApiError::not_found("Token"));
        }
        cx.write(move |tx| Ok(apps::delete_install_by_hash(tx, &hash)?))?
    } else {
        let user = user.ok_or_else(|| {
            ApiError::unauthorized("Revoking by install id needs the device owner's credential")
        })?;
        cx.write(move |tx| Ok(apps::delete_install_for_user(tx, &which, user)?))?
    };
    if found {
        Ok(())
    } else {
        Err(ApiError::not_found("Token"))
    }
}

/// Sets (or, with `None`, removes) the KV password of one of the user's devices: whoever
/// presents it may authorise apps on the device. Existing tokens stay valid. Hashes: call on a
/// hashing thread. Errors: 404, 422 (8–1024 bytes).
pub fn set_kv_password(cx: &Cx, user_id: i64, uuid: &str, pw: Option<&str>) -> ApiResult<()> {
    let d = devices::get(cx.reader, user_id, uuid)?.ok_or_else(|| ApiError::not_found("Device"))?;
    let hash = match pw {
        Some(p) => {
            password::validate("kv_password", p)?;
            Some(password::hash(p)?)
        }
        None => None,
    };
    cx.write(move |tx| {
        apps::set_kv_password(tx, d.id, hash.as_deref())?;
        Ok(())
    })
}
