//! KV family handlers for apps and their tokens: the catalog, authorising an app on a device,
//! listing a device's tokens and an app's installs, and revoking a token. Field names are the
//! seed's camelCase.

use crate::db::apps::{App, Install};
use crate::domain::Paged;
use crate::domain::apps::{self, Authorize};
use crate::error::ApiResult;
use crate::http::route::{Call, Json, Message, PageQuery, Query};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An app as the catalog shows it (its site key only its admin sees, with `ccjk-cloud app
/// list`).
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppView {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub developer_name: String,
    pub developer_link: Option<String>,
    pub homepage_link: Option<String>,
    pub icon_hash: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&App> for AppView {
    fn from(a: &App) -> AppView {
        AppView {
            id: a.id,
            name: a.name.clone(),
            description: a.description.clone(),
            developer_name: a.developer_name.clone(),
            developer_link: a.developer_link.clone(),
            homepage_link: a.homepage_link.clone(),
            icon_hash: a.icon_hash.clone(),
            created_at: a.created_at.clone(),
            updated_at: a.updated_at.clone(),
        }
    }
}

/// A page of the catalog.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppList {
    pub apps: Vec<AppView>,
    pub count: usize,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /apps`.
pub fn list(call: &Call, Query(q): Query<PageQuery>) -> ApiResult<AppList> {
    let page = apps::list(&call.cx, q.page()?)?;
    Ok(AppList {
        count: page.items.len(),
        next_cursor: page.next_cursor(),
        apps: page.items.iter().map(AppView::from).collect(),
    })
}

/// `GET /apps/{id}`.
pub fn get(call: &Call, _: ()) -> ApiResult<AppView> {
    Ok((&apps::get(&call.cx, call.param("id"))?).into())
}

/// An authorisation request, as the seed shows it.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeBody {
    /// The device's public id.
    pub device_uuid: String,
    /// The device's KV password: needed unless a session token of the device's owner comes
    /// with the request.
    pub password: Option<String>,
    /// Only reads (default false).
    #[serde(default)]
    pub read_only: bool,
    /// Up to 200 characters, shown in token listings.
    pub note: Option<String>,
}

/// A new app token and what it reaches, exactly as the seed shows it.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeReply {
    /// `cca_…`: shown here only. Send it as `Authorization: Bearer`, `?token=` or `{"token": …}`.
    pub token: String,
    pub app_id: i64,
    pub app_name: String,
    pub device_uuid: String,
    pub device_name: String,
    pub read_only: bool,
    pub note: Option<String>,
    pub authorized_at: String,
}

/// `POST /apps/{id}/authorize` (on the hashing pool: a KV password is checked with argon2id).
pub fn authorize(call: &Call, Json(b): Json<AuthorizeBody>) -> ApiResult<AuthorizeReply> {
    let session_user = call
        .maybe_user()
        .filter(|u| u.session_id.is_some())
        .map(|u| u.user_id());
    let a = apps::authorize(
        &call.cx,
        call.param("id"),
        Authorize {
            device_uuid: b.device_uuid,
            password: b.password,
            read_only: b.read_only,
            note: b.note,
        },
        session_user,
        call.req.header("x-site-key"),
        call.ip(),
    )?;
    Ok(AuthorizeReply {
        token: a.token,
        app_id: a.app.id,
        app_name: a.app.name,
        device_uuid: a.device_uuid,
        device_name: a.device_name,
        read_only: a.read_only,
        note: a.note,
        authorized_at: a.authorized_at,
    })
}

/// An install: one app token on one device (its first characters only).
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstallView {
    /// The install id: the owner revokes with `DELETE /apps/tokens/{id}`.
    pub id: String,
    pub app_id: i64,
    pub app_name: String,
    pub device_uuid: String,
    pub device_name: String,
    pub token_prefix: String,
    pub read_only: bool,
    pub note: Option<String>,
    pub installed_at: String,
    pub last_used_at: Option<String>,
}

impl From<&Install> for InstallView {
    fn from(i: &Install) -> InstallView {
        InstallView {
            id: i.id.clone(),
            app_id: i.app_id,
            app_name: i.app_name.clone(),
            device_uuid: i.device_uuid.clone(),
            device_name: i.device_name.clone(),
            token_prefix: i.token_prefix.clone(),
            read_only: i.read_only,
            note: i.note.clone(),
            installed_at: i.installed_at.clone(),
            last_used_at: i.last_used_at.clone(),
        }
    }
}

fn views(p: &Paged<Install>) -> Vec<InstallView> {
    p.items.iter().map(InstallView::from).collect()
}

/// A page of an app's installs on the caller's devices.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Installations {
    pub installations: Vec<InstallView>,
    pub count: usize,
    pub next_cursor: Option<String>,
}

/// `GET /apps/{id}/installations`.
pub fn installations(call: &Call, Query(q): Query<PageQuery>) -> ApiResult<Installations> {
    let user = call.user()?.user_id();
    let p = apps::installations(&call.cx, user, call.param("id"), q.page()?)?;
    Ok(Installations {
        installations: views(&p),
        count: p.items.len(),
        next_cursor: p.next_cursor(),
    })
}

/// A page of a device's app tokens.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    pub tokens: Vec<InstallView>,
    pub count: usize,
    pub next_cursor: Option<String>,
}

/// `GET /apps/devices/{deviceUuid}/tokens`.
pub fn device_tokens(call: &Call, Query(q): Query<PageQuery>) -> ApiResult<Tokens> {
    let user = call.user()?.user_id();
    let p = apps::device_tokens(&call.cx, user, call.param("deviceUuid"), q.page()?)?;
    Ok(Tokens {
        tokens: views(&p),
        count: p.items.len(),
        next_cursor: p.next_cursor(),
    })
}

/// `DELETE /apps/tokens/{token}`: `{token}` is the token itself, or an install id with the
/// owner's credential.
pub fn revoke(call: &Call, _: ()) -> ApiResult<Message> {
    let user = call.maybe_user().map(|u| u.user_id());
    apps::revoke(&call.cx, call.param("token"), user)?;
    Ok(Message::new("Token revoked"))
}
