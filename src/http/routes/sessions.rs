//! Sessions — `/api/auth/*` and `/api/sessions/*` (docs/families.md): its route table and
//! handlers. Bodies exactly as the seed shows them: top-level `success`, `message`, `user`,
//! `session`, `sessions`, `jobs`; failures `{success: false, error}`, and verify failures add
//! `valid: false`. Tokens travel as `Authorization: Bearer` or `X-Session-Token`.

use crate::db::sessions::Session;
use crate::db::tasks::{Task, TaskStatus};
use crate::db::users::User;
use crate::domain::accounts::{self, LoginInput, RegisterInput};
use crate::domain::sessions;
use crate::error::ApiResult;
use crate::http::Reply;
use crate::http::route::{
    Auth, Call, Json, JsonOr, Out, PageQuery, Query, Route, authenticate, get, patch, post,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The Sessions routes.
#[rustfmt::skip]
pub fn routes() -> Vec<Route> {
    use crate::http::route::delete;
    vec![
        post("/api/auth/register").hashing().created()
            .to("Create an account", register),
        post("/api/auth/login").hashing()
            .to("Log in; returns the most recently used live session", login),
        get("/api/auth/verify")
            .to_out("Is this session token valid", verify),
        post("/api/auth/logout").session()
            .to("Revoke the current session", logout),
        get("/api/auth/me").session()
            .to("The caller's account and session", me),
        post("/api/sessions/new").session().created()
            .to("Open another session", new_session),
        get("/api/sessions").session()
            .to("The caller's live sessions", list),
        get("/api/sessions/current/jobs").session()
            .to("The tasks created in the current session", current_jobs),
        get("/api/sessions/{id}").session()
            .to("A session and its jobs", show),
        patch("/api/sessions/{id}").session()
            .to("Rename a session", rename),
        delete("/api/sessions/{id}").session()
            .to("Revoke a session and delete its jobs", delete_session),
    ]
}

/// A user as the seed shows one.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "SessionsUser")]
pub struct UserShort {
    pub id: i64,
    pub username: Option<String>,
    pub email: String,
    pub created_at: String,
}

impl From<&User> for UserShort {
    fn from(u: &User) -> UserShort {
        UserShort {
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone(),
            created_at: u.created_at.clone(),
        }
    }
}

/// A session as the seed shows one.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "SessionsSession")]
pub struct SessionShort {
    pub id: i64,
    pub name: Option<String>,
    pub created_at: String,
    pub last_used_at: String,
}

impl From<&Session> for SessionShort {
    fn from(s: &Session) -> SessionShort {
        SessionShort {
            id: s.id,
            name: s.name.clone(),
            created_at: s.created_at.clone(),
            last_used_at: s.last_used_at.clone(),
        }
    }
}

/// A message and the user it is about.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "SessionsRegistered")]
pub struct Registered {
    pub message: String,
    pub user: UserShort,
}

fn register(call: &Call, Json(b): Json<RegisterInput>) -> ApiResult<Registered> {
    let (user, _) = accounts::register(&call.cx, &b, None, &call.origin())?;
    Ok(Registered {
        message: "User registered successfully".into(),
        user: (&user).into(),
    })
}

/// A session with its token.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "SessionsToken")]
pub struct SessionToken {
    pub id: i64,
    pub token: String,
    pub name: Option<String>,
    pub created_at: String,
}

/// The logged-in user.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "SessionsUserRef")]
pub struct UserRef {
    pub id: i64,
    pub username: Option<String>,
    pub email: String,
}

/// A login's answer.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "SessionsLoggedIn")]
pub struct LoggedIn {
    pub message: String,
    pub session: SessionToken,
    pub user: UserRef,
}

/// Returns the user's most recently used live session, creating the first if none exists.
fn login(call: &Call, Json(b): Json<LoginInput>) -> ApiResult<LoggedIn> {
    let user = accounts::login(&call.cx, &b.login()?, &b.password, call.ip())?;
    let (s, token) = accounts::existing_or_new_session(&call.cx, user.id, &call.origin())?;
    Ok(LoggedIn {
        message: "Login successful".into(),
        session: SessionToken {
            id: s.id,
            token,
            name: s.name,
            created_at: s.created_at,
        },
        user: UserRef {
            id: user.id,
            username: user.username,
            email: user.email,
        },
    })
}

/// A valid session.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "SessionsValid")]
pub struct Valid {
    pub valid: bool,
    pub user: UserRef,
    pub session: SessionShort,
}

/// `GET /api/auth/verify`: failures add `valid: false` to the error body.
fn verify(call: &Call, _: ()) -> ApiResult<Out<Valid>> {
    let r = authenticate(Auth::Session, &call.cx, call.req).and_then(|c| {
        let call = Call::new(call.app, call.cx, call.req, c);
        let u = call.user()?;
        let s = sessions::get(&call.cx, u, u.session()?)?;
        Ok(Valid {
            valid: true,
            user: UserRef {
                id: u.user.id,
                username: u.user.username.clone(),
                email: u.user.email.clone(),
            },
            session: (&s).into(),
        })
    });
    match r {
        Ok(v) => Ok(Out::Ok(v)),
        Err(e) if e.status() == 401 => Ok(Out::Reply(
            Reply::json(
                401,
                &serde_json::json!({"success": false, "valid": false, "error": "Invalid session"}),
            )
            .for_error(&e),
        )),
        Err(e) => Err(e),
    }
}

/// A confirmation.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "SessionsDone")]
pub struct Done {
    pub message: String,
}

fn logout(call: &Call, _: ()) -> ApiResult<Done> {
    accounts::logout(&call.cx, call.user()?)?;
    Ok(Done {
        message: "Logged out successfully".into(),
    })
}

/// The current session, short.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "SessionsCurrent")]
pub struct CurrentSession {
    pub id: i64,
    pub name: Option<String>,
    pub created_at: String,
}

/// The caller and their session.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "SessionsMe")]
pub struct Me {
    pub user: UserShort,
    pub current_session: CurrentSession,
}

fn me(call: &Call, _: ()) -> ApiResult<Me> {
    let u = call.user()?;
    let s = sessions::get(&call.cx, u, u.session()?)?;
    Ok(Me {
        user: (&*u.user).into(),
        current_session: CurrentSession {
            id: s.id,
            name: s.name,
            created_at: s.created_at,
        },
    })
}

/// An optional name.
#[derive(Deserialize, JsonSchema, Default)]
#[schemars(rename = "SessionsName")]
pub struct NameBody {
    pub name: Option<String>,
}

/// A new session with its token.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "SessionsNewSession")]
pub struct NewSession {
    pub message: String,
    pub session: SessionToken,
}

fn new_session(call: &Call, JsonOr(b): JsonOr<NameBody>) -> ApiResult<NewSession> {
    let n = accounts::open_session(
        &call.cx,
        call.user()?.user_id(),
        b.name,
        false,
        &call.origin(),
    )?;
    Ok(NewSession {
        message: "New session created".into(),
        session: SessionToken {
            id: n.session.id,
            token: n.token,
            name: n.session.name,
            created_at: n.session.created_at,
        },
    })
}

/// A session with its number of jobs.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "SessionsSessionItem")]
pub struct SessionItem {
    #[serde(flatten)]
    pub session: SessionShort,
    pub job_count: i64,
}

/// The caller's sessions.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "SessionsList")]
pub struct Sessions {
    pub sessions: Vec<SessionItem>,
    pub next_cursor: Option<String>,
}

fn list(call: &Call, Query(q): Query<PageQuery>) -> ApiResult<Sessions> {
    let page = sessions::list(&call.cx, call.user()?, q.page()?)?;
    let next_cursor = page.next_cursor();
    let list = page
        .items
        .iter()
        .map(|s| {
            Ok(SessionItem {
                session: s.into(),
                job_count: sessions::task_count(&call.cx, s.id)?,
            })
        })
        .collect::<ApiResult<_>>()?;
    Ok(Sessions {
        sessions: list,
        next_cursor,
    })
}

/// A task as Sessions calls it: a job.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "SessionsJob")]
pub struct Job {
    pub job_id: String,
    pub status: TaskStatus,
    pub progress: i64,
    pub created_at: String,
    pub command: String,
    pub exit_code: Option<i64>,
    pub completed_at: Option<String>,
}

impl From<&Task> for Job {
    fn from(t: &Task) -> Job {
        Job {
            job_id: t.id.clone(),
            status: t.status,
            progress: t.progress,
            created_at: t.created_at.clone(),
            command: t.command.clone(),
            exit_code: t.exit_code,
            completed_at: t.completed_at.clone(),
        }
    }
}

/// A session and its jobs.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "SessionsJobs")]
pub struct SessionJobs {
    pub session: SessionShort,
    pub jobs: Vec<Job>,
}

fn show(call: &Call, _: ()) -> ApiResult<SessionJobs> {
    let u = call.user()?;
    let s = sessions::get(&call.cx, u, sessions::parse_id(call.param("id"))?)?;
    let jobs = sessions::tasks_of(&call.cx, u, s.id)?
        .iter()
        .map(Job::from)
        .collect();
    Ok(SessionJobs {
        session: (&s).into(),
        jobs,
    })
}

/// The current session's jobs.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "SessionsCurrentJobs")]
pub struct CurrentJobs {
    pub session_id: i64,
    pub jobs: Vec<Job>,
}

fn current_jobs(call: &Call, _: ()) -> ApiResult<CurrentJobs> {
    let u = call.user()?;
    let sid = u.session()?;
    let jobs = sessions::tasks_of(&call.cx, u, sid)?
        .iter()
        .map(Job::from)
        .collect();
    Ok(CurrentJobs {
        session_id: sid,
        jobs,
    })
}

/// A renamed session.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "SessionsRenamed")]
pub struct Renamed {
    pub message: String,
    pub session: CurrentSession,
}

fn rename(call: &Call, Json(b): Json<NameBody>) -> ApiResult<Renamed> {
    let u = call.user()?;
    let s = sessions::rename(&call.cx, u, sessions::parse_id(call.param("id"))?, b.name)?;
    Ok(Renamed {
        message: "Session updated".into(),
        session: CurrentSession {
            id: s.id,
            name: s.name,
            created_at: s.created_at,
        },
    })
}

fn delete_session(call: &Call, _: ()) -> ApiResult<Done> {
    let u = call.user()?;
    sessions::delete(&call.cx, u, sessions::parse_id(call.param("id"))?)?;
    Ok(Done {
        message: "Session deleted".into(),
    })
}
