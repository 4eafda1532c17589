//! `/v1/panel/*`: sign-up, login and logout for the web panel (README "Web panel"). They do what `/v1/auth/{register,login,logout}` do, but the session token goes
//! into the `HttpOnly` login cookie instead of the body: the panel's scripts get the user and
//! the session's CSRF token, never a credential.

use super::identity::RegisterBody;
use crate::db::users::User;
use crate::domain::accounts::{self, LoginInput, NewSession};
use crate::domain::callers::Caller;
use crate::domain::sessions;
use crate::error::{ApiError, ApiResult};
use crate::http::cookie;
use crate::http::route::{Auth, Call, Json, Out, Sources, authenticate_with, presented};
use crate::http::views::{SessionView, UserView};
use schemars::JsonSchema;
use serde::Serialize;

/// What the panel knows about its login.
#[derive(Serialize, JsonSchema)]
pub struct PanelSession {
    pub user: UserView,
    pub session: SessionView,
    /// Send it as `X-CSRF-Token` with every request that is not a `GET`.
    pub csrf_token: String,
}

/// The envelope with `data` and the `Set-Cookie` that stores (or clears) the session token.
fn with_cookie<T: Serialize>(call: &Call, status: u16, data: &T, token: Option<&str>) -> Out<T> {
    let mut r = call.family.ok(call.req, status, data);
    r.headers
        .push(("Set-Cookie", cookie::set(call.cx.cfg(), token)));
    Out::Reply(r)
}

fn logged_in(call: &Call, status: u16, user: &User, s: &NewSession) -> Out<PanelSession> {
    let data = PanelSession {
        user: user.into(),
        session: (&s.session).into(),
        csrf_token: cookie::csrf(&s.token),
    };
    with_cookie(call, status, &data, Some(&s.token))
}

/// `POST /v1/panel/register`: a new account, logged in with the cookie.
pub fn register(call: &Call, Json(b): Json<RegisterBody>) -> ApiResult<Out<PanelSession>> {
    let name = b.session_name.or_else(|| Some("web panel".into()));
    let (user, s) = accounts::register(&call.cx, &b.account, Some(name), &call.origin())?;
    let s = s.ok_or_else(|| ApiError::internal("register opened no session"))?;
    Ok(logged_in(call, 201, &user, &s))
}

/// `POST /v1/panel/login`: a new session, in the cookie.
pub fn login(call: &Call, Json(b): Json<LoginInput>) -> ApiResult<Out<PanelSession>> {
    let user = accounts::login(&call.cx, &b.login()?, &b.password, call.ip())?;
    let name = b.session_name.or_else(|| Some("web panel".into()));
    let s = accounts::open_session(&call.cx, user.id, name, true, &call.origin())?;
    Ok(logged_in(call, 200, &user, &s))
}

/// Nothing but a confirmation.
#[derive(Serialize, JsonSchema)]
pub struct LoggedOut {
    pub message: String,
}

/// `POST /v1/panel/logout`: revokes the session and clears the cookie.
pub fn logout(call: &Call, _: ()) -> ApiResult<Out<LoggedOut>> {
    accounts::logout(&call.cx, call.user()?)?;
    let data = LoggedOut {
        message: "Logged out".into(),
    };
    Ok(with_cookie(call, 200, &data, None))
}

/// Whether the panel is logged in, and what this server offers.
#[derive(Serialize, JsonSchema)]
pub struct PanelMe {
    /// `null` when the request carries no live session (the panel shows its login page).
    pub login: Option<PanelSession>,
    /// Optional areas whose routes this server has (`messages`, `stats`), so the panel shows
    /// only pages that work.
    pub features: Vec<&'static str>,
}

/// `GET /v1/panel/me`: the logged-in user, the session and its CSRF token, or `login: null`
/// (a 200 either way: a panel opened while logged out is not an error).
pub fn me(call: &Call, _: ()) -> ApiResult<PanelMe> {
    let sources = Sources {
        query: false,
        cookie: true,
    };
    let login = match authenticate_with(Auth::Session, sources, &call.cx, call.req) {
        Ok(Some(Caller::User(u))) => {
            let (token, _) = presented(call.req, call.cx.cfg(), sources)
                .ok_or_else(|| ApiError::unauthorized("Missing credentials"))?;
            let s = sessions::get(&call.cx, &u, u.session()?)?;
            Some(PanelSession {
                user: (&*u.user).into(),
                session: (&s).into(),
                csrf_token: cookie::csrf(token),
            })
        }
        _ => None,
    };
    let has = |prefix: &str| {
        call.app
            .table
            .routes()
            .iter()
            .any(|r| r.path.starts_with(prefix))
    };
    let features = [("messages", "/v1/messages"), ("stats", "/v1/stats/")]
        .into_iter()
        .filter(|(_, p)| has(p))
        .map(|(f, _)| f)
        .collect();
    Ok(PanelMe { login, features })
}
