//! A route-table entry as data, and the table that finds it (docs/architecture.md "Routes").
//!
//! Each entry carries everything about its route: method and path pattern, the family (from
//! the path's prefix), which credential kinds it accepts and the scope it needs, its body cap,
//! whether it runs on the hashing pool, its rate-limit class, a one-line summary, its request
//! and response types (for the OpenAPI document) and its handler. The server reads the cap and
//! the hashing flag before it runs anything; nothing about a route lives anywhere else.
//!
//! A handler is a plain function `fn(&Call, I) -> ApiResult<T>` (or `ApiResult<Out<T>>` when
//! the status or the kind of answer varies), where `I` is what it reads from the request
//! (`()`, `Json<B>`, `JsonOr<B>`, `Lenient<B>`, `Query<Q>`, or a pair) and `T` what it answers.
//! The entry parses `I` before calling the handler and renders `T` in the family's envelope,
//! so the document and the behaviour come from the same types.

use crate::config::Config;
use crate::crypto::{APP_PREFIX, SESSION_PREFIX};
use crate::domain::callers::{self, AppCaller, Caller, DeviceCaller, UserCaller};
use crate::domain::{Cx, Origin, Page};
use crate::error::{ApiError, ApiResult};
use crate::http::app::App;
use crate::http::cookie;
use crate::http::events::StreamSpec;
use crate::http::family::Family;
use crate::http::longpoll::Park;
use crate::http::{Reply, Req};
use schemars::{JsonSchema, SchemaGenerator};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::HashMap;

/// A person's or a device's credential, as `Call::person_or_device` resolves it.
#[derive(Clone, Copy, Debug)]
pub enum PersonOrDevice<'c> {
    User(&'c UserCaller),
    Device(&'c DeviceCaller),
}

/// HTTP methods the tables use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    /// Parses a request's method (uppercase).
    pub fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "GET" | "HEAD" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            _ => return None,
        })
    }

    /// The lowercase name the OpenAPI document uses.
    pub fn lower(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Put => "put",
            Method::Patch => "patch",
            Method::Delete => "delete",
        }
    }
}

/// Which credential a route accepts (docs/security.md "Credentials"). A credential of another
/// kind is 401, never a silent downgrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// No credential is read.
    Public,
    /// A session token, or an API key holding the scope.
    User(&'static str),
    /// A session token only (managing sessions and keys: a narrow key must not mint a wider one).
    Session,
    /// A device key.
    Device,
    /// A device key (acting for its own device), or a user credential holding the scope (Lite).
    UserOrDevice(&'static str),
    /// Any valid credential (`verify` routes).
    Any,
    /// A loopback client, or an admin's credential (`/metrics`).
    LoopbackOrAdmin,
    /// An app token (`cca_…`) by `Authorization: Bearer`, `?token=` or `{"token": …}` in a
    /// JSON body (KV). A request carrying `x-site-key` must name the token's app (403
    /// otherwise); `writes` routes refuse read-only tokens (403).
    App { writes: bool },
    /// The inner kind when a user or device credential is sent, else none: the handler decides
    /// (an authorisation with a KV password, revoking an app token by the token itself). An app
    /// token in the header is not such a credential and is left to the handler.
    Optional(&'static Auth),
}

/// The body cap class of a route (docs/limits.md "Sizes").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    /// `CCJK_MAX_BODY`.
    Json,
    /// Daemon results and progress: up to eight times `CCJK_MAX_OUTPUT` plus room for JSON,
    /// truncated rather than refused (a refused result would run the task again after its
    /// lease, and the Control daemon never retries a result).
    Output,
    /// File uploads (daemon logs): `CCJK_MAX_LOG_UPLOAD` plus room for multipart framing.
    Upload,
    /// `CCJK_MAX_KV_VALUE`: a KV value sent as the body.
    KvValue,
}

/// The rate-limit class of a route; the limits themselves are enforced per class
/// (docs/limits.md "Rate limits").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rate {
    /// Not limited beyond the login throttle (health, metrics, the document).
    None,
    /// A person's API use: per user (session) or per API key.
    User,
    /// A daemon's calls, per device.
    Daemon,
    /// Logins and sign-ups: the brute-force throttle (docs/security.md).
    Login,
    /// The inbound-mail webhook: public (its HMAC signature is the credential), limited per
    /// sender (README "Mail").
    Webhook,
}

/// What a handler may answer besides plain data.
pub enum Out<T> {
    /// The route's success status (200, or 201 for `.created()` routes) with `T`.
    Ok(T),
    /// Another success status with `T`.
    Status(u16, T),
    /// A reply built by the handler (plain text, a raw document).
    Reply(Reply),
    /// Park the request (a long-poll) until work arrives or its deadline.
    Park(Park),
    /// Hand the request to the events thread as a Server-Sent Events stream.
    Stream(StreamSpec),
}

/// What running a route produced, for the server to deliver.
pub enum Outcome {
    /// Answer now.
    Reply(Reply),
    /// Park the request in the long-poll registry.
    Park(Park),
    /// Stream events to the request from the events thread.
    Stream(StreamSpec),
}

/// One request being handled by a route: the domain context, the request, the caller the
/// route's `Auth` resolved, and the app (for the long-poll registry and the table).
pub struct Call<'a> {
    pub cx: Cx<'a>,
    pub req: &'a Req,
    pub app: &'a App,
    pub family: Family,
    caller: Option<Caller>,
}

impl<'a> Call<'a> {
    /// A call of `req` with `caller` already resolved.
    pub fn new(app: &'a App, cx: Cx<'a>, req: &'a Req, caller: Option<Caller>) -> Call<'a> {
        Call {
            cx,
            req,
            app,
            family: Family::of(&req.segments),
            caller,
        }
    }

    /// The caller, whatever its kind. Errors: 401 on a public route.
    pub fn caller(&self) -> ApiResult<&Caller> {
        self.caller
            .as_ref()
            .ok_or_else(|| ApiError::unauthorized("Missing credentials"))
    }

    /// The caller of a route that takes a person's or a device's credential
    /// (`Auth::UserOrDevice`, `Auth::Any`): never an app token, which only the KV routes
    /// resolve. Errors: 401 on a public route or for another kind.
    pub fn person_or_device(&self) -> ApiResult<PersonOrDevice<'_>> {
        match self.caller()? {
            Caller::User(u) => Ok(PersonOrDevice::User(u)),
            Caller::Device(d) => Ok(PersonOrDevice::Device(d)),
            Caller::App(_) => Err(ApiError::unauthorized("Unrecognised credential")),
        }
    }

    /// The caller as a person. Errors: 401 if the route resolved another kind.
    pub fn user(&self) -> ApiResult<&UserCaller> {
        match self.caller()? {
            Caller::User(u) => Ok(u),
            _ => Err(ApiError::unauthorized("This route needs a user credential")),
        }
    }

    /// The caller as a person, if the route resolved one (`Auth::Optional`).
    pub fn maybe_user(&self) -> Option<&UserCaller> {
        match &self.caller {
            Some(Caller::User(u)) => Some(u),
            _ => None,
        }
    }

    /// The caller as a daemon. Errors: 401 if the route resolved another kind.
    pub fn device(&self) -> ApiResult<&DeviceCaller> {
        match self.caller()? {
            Caller::Device(d) => Ok(d),
            _ => Err(ApiError::unauthorized("This route needs a device key")),
        }
    }

    /// The caller as an app. Errors: 401 if the route resolved another kind.
    pub fn app_caller(&self) -> ApiResult<&AppCaller> {
        match self.caller()? {
            Caller::App(a) => Ok(a),
            _ => Err(ApiError::unauthorized("This route needs an app token")),
        }
    }

    /// A path parameter of the route.
    pub fn param(&self, name: &str) -> &'a str {
        self.req.param(name)
    }

    /// The client address.
    pub fn ip(&self) -> &'a str {
        &self.req.ip
    }

    /// Where the call came from (client address and user agent).
    pub fn origin(&self) -> Origin {
        Origin {
            ip: self.req.ip.clone(),
            user_agent: self
                .req
                .header("user-agent")
                .map(|s| s.chars().filter(|c| !c.is_control()).take(512).collect()),
        }
    }
}

/// The credential a request carries: `Authorization: Bearer`, `X-Session-Token` (Sessions),
/// `X-Device-Key` (Lite) or `X-Device-Token` (Control), first present wins.
pub fn credential(req: &Req) -> Option<&str> {
    req.bearer()
        .or_else(|| req.header("x-session-token"))
        .or_else(|| req.header("x-device-key"))
        .or_else(|| req.header("x-device-token"))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Where a route looks for its credential besides the headers (which always come first).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sources {
    /// `?token=`: for routes a browser's `EventSource` calls, which cannot send headers. The
    /// access log never prints it (`http::redact_url`).
    pub query: bool,
    /// The panel's login cookie (`http::cookie`): a session token, accepted on a
    /// state-changing request (any method but `GET`) only with its `X-CSRF-Token`. Set for
    /// every `/v1` route that takes a session or user credential.
    pub cookie: bool,
}

/// How a request presented its credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Header,
    Query,
    Cookie,
}

/// The credential a request presents through the `sources` a route accepts: a header, else
/// `?token=`, else the login cookie.
pub fn presented<'r>(req: &'r Req, cfg: &Config, sources: Sources) -> Option<(&'r str, Via)> {
    if let Some(t) = credential(req) {
        return Some((t, Via::Header));
    }
    if sources.query
        && let Some(t) = req.query("token").map(str::trim).filter(|t| !t.is_empty())
    {
        return Some((t, Via::Query));
    }
    if sources.cookie
        && let Some(t) = cookie::token(req, cfg)
    {
        return Some((t, Via::Cookie));
    }
    None
}

/// Where an app token travelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenIn {
    Header,
    Query,
    /// `{"token": …}` in a JSON body (then the body is an envelope, not a value).
    Body,
}

/// The app token a request carries: `Authorization: Bearer`, else `?token=`, else a `token`
/// string in a JSON body (`Content-Type: application/json`), first present wins.
pub fn app_token(req: &Req) -> Option<(String, TokenIn)> {
    if let Some(t) = req.bearer() {
        return Some((t.to_string(), TokenIn::Header));
    }
    if let Some(t) = req.query("token").map(str::trim).filter(|t| !t.is_empty()) {
        return Some((t.to_string(), TokenIn::Query));
    }
    #[derive(serde::Deserialize)]
    struct BodyToken {
        token: Option<String>,
    }
    if req.body_is_empty() || !req.is_json() {
        return None;
    }
    crate::http::parse_json::<BodyToken>(&req.body)
        .ok()
        .and_then(|b| b.token)
        .map(|t| (t.trim().to_string(), TokenIn::Body))
        .filter(|(t, _)| !t.is_empty())
}

/// Resolves the caller a route's `Auth` asks for, from the headers only. Errors: 401,
/// 403 `INSUFFICIENT_SCOPE`, 403 `FORBIDDEN` (`LoopbackOrAdmin` from outside; an app token's
/// site key or read-only flag).
pub fn authenticate(auth: Auth, cx: &Cx, req: &Req) -> ApiResult<Option<Caller>> {
    authenticate_with(auth, Sources::default(), cx, req)
}

/// Resolves the caller a route's `Auth` asks for, from the headers and the route's other
/// `sources`. A cookie must hold a session token, and on a state-changing request it counts
/// only with the session's CSRF token in `X-CSRF-Token`. Errors: as `authenticate`, and
/// 403 `FORBIDDEN` for a cookie without its CSRF token.
pub fn authenticate_with(
    auth: Auth,
    sources: Sources,
    cx: &Cx,
    req: &Req,
) -> ApiResult<Option<Caller>> {
    let resolve = || {
        let (token, via) = presented(req, cx.cfg(), sources)
            .ok_or_else(|| ApiError::unauthorized("Missing credentials"))?;
        if via == Via::Cookie {
            if !token.starts_with(SESSION_PREFIX) {
                return Err(ApiError::unauthorized("Invalid session cookie"));
            }
            let safe = req.method == "GET" || req.method == "HEAD";
            if !safe && !cookie::csrf_ok(token, req.header("x-csrf-token")) {
                return Err(ApiError::forbidden(
                    "A request made with the panel's cookie needs its X-CSRF-Token",
                ));
            }
        }
        callers::resolve(cx, token)
    };
    Ok(match auth {
        Auth::Public => None,
        Auth::User(scope) => match resolve()? {
            Caller::User(u) => {
                u.require(scope)?;
                Some(Caller::User(u))
            }
            _ => {
                return Err(ApiError::unauthorized("A device key cannot be used here"));
            }
        },
        Auth::Session => match resolve()? {
            Caller::User(u) if u.session_id.is_some() => Some(Caller::User(u)),
            _ => return Err(ApiError::unauthorized("This route needs a session token")),
        },
        Auth::Device => match resolve()? {
            Caller::Device(d) => Some(Caller::Device(d)),
            _ => return Err(ApiError::unauthorized("This route needs a device key")),
        },
        Auth::UserOrDevice(scope) => match resolve()? {
            Caller::User(u) => {
                u.require(scope)?;
                Some(Caller::User(u))
            }
            d => Some(d),
        },
        Auth::Any => Some(resolve()?),
        Auth::LoopbackOrAdmin => {
            let loopback = req
                .ip
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
                || req.ip == "unix";
            if loopback {
                None
            } else {
                match resolve() {
                    Ok(Caller::User(u)) if u.user.is_admin => Some(Caller::User(u)),
                    _ => {
                        return Err(ApiError::forbidden(
                            "Metrics are for loopback clients and admins",
                        ));
                    }
                }
            }
        }
        Auth::App { writes } => {
            let (token, _) =
                app_token(req).ok_or_else(|| ApiError::unauthorized("Missing app token"))?;
            let a = callers::app_caller(cx, &token)?;
            a.check_site_key(req.header("x-site-key"))?;
            if writes {
                a.require_write()?;
            }
            Some(Caller::App(a))
        }
        Auth::Optional(inner) => match credential(req) {
            None => None,
            Some(t) if t.starts_with(APP_PREFIX) => None,
            Some(_) => authenticate(*inner, cx, req)?,
        },
    })
}

/// What the OpenAPI document says about one operation's input.
#[derive(Default)]
pub struct InputDoc {
    /// `(schema, required)` of a JSON request body.
    pub body: Option<(Value, bool)>,
    /// Query parameters: `(name, schema, required, description)`.
    pub query: Vec<(String, Value, bool, Option<String>)>,
    /// The body's media type when it is not `application/json` (`multipart/form-data`).
    pub media: Option<&'static str>,
    /// The body is taken as sent, of any media type (`body` then describes its JSON form).
    pub raw_body: bool,
}

/// What a handler reads from the request.
pub trait Input: Sized + 'static {
    /// Whether the route takes a request body.
    const BODY: bool = false;
    /// Reads it. Errors: 400, 415, 422.
    fn parse(call: &Call) -> ApiResult<Self>;
    /// Describes it.
    fn doc(_gen: &mut SchemaGenerator, _d: &mut InputDoc) {}
}

impl Input for () {
    fn parse(_: &Call) -> ApiResult<()> {
        Ok(())
    }
}

impl<A: Input, B: Input> Input for (A, B) {
    const BODY: bool = A::BODY || B::BODY;
    fn parse(call: &Call) -> ApiResult<Self> {
        Ok((A::parse(call)?, B::parse(call)?))
    }
    fn doc(sg: &mut SchemaGenerator, d: &mut InputDoc) {
        A::doc(sg, d);
        B::doc(sg, d);
    }
}

/// The request body as sent, any content type, possibly empty (a KV value): the handler reads
/// `call.req.body` itself (no copy). Documented as any media type, or `T` for a JSON body.
pub struct RawBody<T>(std::marker::PhantomData<T>);

impl<T: JsonSchema + 'static> Input for RawBody<T> {
    const BODY: bool = true;
    fn parse(_: &Call) -> ApiResult<Self> {
        Ok(RawBody(std::marker::PhantomData))
    }
    fn doc(sg: &mut SchemaGenerator, d: &mut InputDoc) {
        d.body = Some((sg.subschema_for::<T>().to_value(), false));
        d.raw_body = true;
    }
}

/// A JSON body, required, with `Content-Type: application/json` (415 otherwise).
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + JsonSchema + 'static> Input for Json<T> {
    const BODY: bool = true;
    fn parse(call: &Call) -> ApiResult<Self> {
        call.req.json().map(Json)
    }
    fn doc(sg: &mut SchemaGenerator, d: &mut InputDoc) {
        d.body = Some((sg.subschema_for::<T>().to_value(), true));
    }
}

/// A JSON body that may be empty (then `T::default()`).
pub struct JsonOr<T>(pub T);

impl<T: DeserializeOwned + JsonSchema + Default + 'static> Input for JsonOr<T> {
    const BODY: bool = true;
    fn parse(call: &Call) -> ApiResult<Self> {
        call.req.json_or_default().map(JsonOr)
    }
    fn doc(sg: &mut SchemaGenerator, d: &mut InputDoc) {
        d.body = Some((sg.subschema_for::<T>().to_value(), false));
    }
}

/// A JSON body read whatever its content type says; empty means `T::default()` (Control).
pub struct Lenient<T>(pub T);

impl<T: DeserializeOwned + JsonSchema + Default + 'static> Input for Lenient<T> {
    const BODY: bool = true;
    fn parse(call: &Call) -> ApiResult<Self> {
        call.req.json_lenient().map(Lenient)
    }
    fn doc(sg: &mut SchemaGenerator, d: &mut InputDoc) {
        d.body = Some((sg.subschema_for::<T>().to_value(), false));
    }
}

/// Query parameters parsed into `T` (unknown ones ignored). Errors: 400.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned + JsonSchema + 'static> Input for Query<T> {
    fn parse(call: &Call) -> ApiResult<Self> {
        call.req.typed_query().map(Query)
    }
    fn doc(sg: &mut SchemaGenerator, d: &mut InputDoc) {
        let schema = T::json_schema(sg).to_value();
        let required: Vec<String> = schema["required"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(props) = schema["properties"].as_object() {
            for (name, s) in props {
                let mut s = s.clone();
                let desc = s
                    .as_object_mut()
                    .and_then(|o| o.remove("description"))
                    .and_then(|v| v.as_str().map(str::to_string));
                d.query
                    .push((name.clone(), s, required.contains(name), desc));
            }
        }
    }
}

/// `limit` and `offset` (or `cursor`, the `next_cursor` of the previous page) of a list
/// (docs/limits.md "Pagination").
#[derive(serde::Deserialize, JsonSchema, Default)]
pub struct PageQuery {
    /// Rows per page: default 20, at most 200 (larger values are clamped).
    pub limit: Option<u64>,
    /// Rows to skip.
    pub offset: Option<u64>,
    /// The `next_cursor` of the previous page (instead of `offset`).
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The page asked for. Errors: 400 for a cursor that is not one of ours.
    pub fn page(&self) -> ApiResult<Page> {
        use crate::domain::policy::{DEFAULT_PAGE, MAX_PAGE};
        let limit = self
            .limit
            .map_or(DEFAULT_PAGE, |l| l.clamp(1, MAX_PAGE as u64) as i64);
        let offset = match (&self.cursor, self.offset) {
            (Some(c), _) => c
                .parse::<u32>()
                .map_err(|_| ApiError::bad_request("cursor is not a cursor from this server"))?
                as i64,
            (None, Some(o)) => {
                i64::try_from(o).map_err(|_| ApiError::bad_request("offset is too large"))?
            }
            (None, None) => 0,
        };
        Ok(Page { limit, offset })
    }
}

/// What a handler answers: plain data, or an `Out`.
pub trait Output: 'static {
    /// Renders the answer (`ok_status` unless the handler chose another).
    fn outcome(self, call: &Call, ok_status: u16, envelope: bool) -> Outcome;
    /// The JSON Schema of the data, or `None` for a route whose answer is not JSON data.
    fn doc(sg: &mut SchemaGenerator) -> Option<Value>;
}

fn render<T: Serialize>(call: &Call, status: u16, envelope: bool, t: &T) -> Reply {
    if envelope {
        call.family.ok(call.req, status, t)
    } else {
        Reply::json(status, t)
    }
}

/// A plain-data answer.
pub struct Data<T>(pub ApiResult<T>);
/// An answer that may be an `Out`.
pub struct Outs<T>(pub ApiResult<Out<T>>);

impl<T: Serialize + JsonSchema + 'static> Output for Data<T> {
    fn outcome(self, call: &Call, ok_status: u16, envelope: bool) -> Outcome {
        Outcome::Reply(match self.0 {
            Ok(t) => render(call, ok_status, envelope, &t),
            Err(e) => call.family.err(call.req, &e),
        })
    }
    fn doc(sg: &mut SchemaGenerator) -> Option<Value> {
        Some(sg.subschema_for::<T>().to_value())
    }
}

impl<T: Serialize + JsonSchema + 'static> Output for Outs<T> {
    fn outcome(self, call: &Call, ok_status: u16, envelope: bool) -> Outcome {
        match self.0 {
            Ok(Out::Ok(t)) => Outcome::Reply(render(call, ok_status, envelope, &t)),
            Ok(Out::Status(s, t)) => Outcome::Reply(render(call, s, envelope, &t)),
            Ok(Out::Reply(r)) => Outcome::Reply(r),
            Ok(Out::Park(p)) => Outcome::Park(p),
            Ok(Out::Stream(s)) => Outcome::Stream(s),
            Err(e) => Outcome::Reply(call.family.err(call.req, &e)),
        }
    }
    fn doc(sg: &mut SchemaGenerator) -> Option<Value> {
        Some(sg.subschema_for::<T>().to_value())
    }
}

/// A type-erased handler: parses the input, runs, renders.
type Handler = Box<dyn Fn(&Call) -> Outcome + Send + Sync>;
/// Documents a route's input and answer.
type DocFn = fn(&mut SchemaGenerator) -> (InputDoc, Option<Value>);

/// One segment of a path pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Lit(&'static str),
    Param(&'static str),
}

/// A route-table entry. Built with `get(path)`, `post(path)`, … and finished with `.to(...)`.
pub struct Route {
    pub method: Method,
    /// The pattern, e.g. `/v1/tasks/{id}`.
    pub path: &'static str,
    segs: Vec<Seg>,
    pub family: Family,
    pub auth: Auth,
    /// Where the credential may come from besides the headers.
    pub sources: Sources,
    pub cap: Cap,
    /// Runs on the hashing pool (it computes password hashes).
    pub hashing: bool,
    pub rate: Rate,
    /// Success status when the handler does not choose one.
    pub ok_status: u16,
    /// Every success status the route may answer (documented).
    pub statuses: Vec<u16>,
    /// Whether success data is wrapped in the family's envelope.
    pub envelope: bool,
    /// Content type of a non-JSON answer (documented; `None` = JSON).
    pub raw: Option<&'static str>,
    /// Whether the route reads a body.
    pub takes_body: bool,
    pub summary: &'static str,
    /// The OpenAPI tag when it is not the family's (the web panel's pages).
    pub tag: Option<&'static str>,
    doc: DocFn,
    handler: Handler,
}

impl Route {
    /// Parses the input, calls the handler and renders its answer.
    pub fn run(&self, call: &Call) -> Outcome {
        (self.handler)(call)
    }

    /// The path parameter names, in order.
    pub fn params(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.segs.iter().filter_map(|s| match s {
            Seg::Param(p) => Some(*p),
            Seg::Lit(_) => None,
        })
    }

    /// Documents the route's input and the JSON Schema of its data.
    pub fn document(&self, sg: &mut SchemaGenerator) -> (InputDoc, Option<Value>) {
        (self.doc)(sg)
    }

    /// Matches `segs`; returns the path parameters, or `None`.
    fn matches(&self, segs: &[String]) -> Option<Vec<(&'static str, String)>> {
        if segs.len() != self.segs.len() {
            return None;
        }
        let mut params = Vec::new();
        for (p, s) in self.segs.iter().zip(segs) {
            match p {
                Seg::Lit(l) if l == s => {}
                Seg::Lit(_) => return None,
                Seg::Param(name) => params.push((*name, s.clone())),
            }
        }
        Some(params)
    }

    fn literals(&self) -> usize {
        self.segs
            .iter()
            .filter(|s| matches!(s, Seg::Lit(_)))
            .count()
    }
}

/// A route under construction.
pub struct Builder {
    method: Method,
    path: &'static str,
    auth: Auth,
    query_token: bool,
    cap: Cap,
    hashing: bool,
    rate: Option<Rate>,
    ok_status: u16,
    statuses: Vec<u16>,
    envelope: bool,
    raw: Option<&'static str>,
    tag: Option<&'static str>,
}

fn builder(method: Method, path: &'static str) -> Builder {
    Builder {
        method,
        path,
        auth: Auth::Public,
        query_token: false,
        cap: Cap::Json,
        hashing: false,
        rate: None,
        ok_status: 200,
        statuses: Vec::new(),
        envelope: true,
        raw: None,
        tag: None,
    }
}

/// A `GET` route.
pub fn get(path: &'static str) -> Builder {
    builder(Method::Get, path)
}
/// A `POST` route.
pub fn post(path: &'static str) -> Builder {
    builder(Method::Post, path)
}
/// A `PUT` route.
pub fn put(path: &'static str) -> Builder {
    builder(Method::Put, path)
}
/// A `PATCH` route.
pub fn patch(path: &'static str) -> Builder {
    builder(Method::Patch, path)
}
/// A `DELETE` route.
pub fn delete(path: &'static str) -> Builder {
    builder(Method::Delete, path)
}

impl Builder {
    /// Accepts `auth` (default: public).
    pub fn auth(mut self, auth: Auth) -> Builder {
        self.auth = auth;
        self
    }
    /// A session token or an API key with `scope`.
    pub fn user(self, scope: &'static str) -> Builder {
        self.auth(Auth::User(scope))
    }
    /// A session token only.
    pub fn session(self) -> Builder {
        self.auth(Auth::Session)
    }
    /// A device key.
    pub fn device(self) -> Builder {
        self.auth(Auth::Device)
    }
    /// Also accepts the credential as `?token=` (a browser's `EventSource` cannot send
    /// headers).
    pub fn query_token(mut self) -> Builder {
        self.query_token = true;
        self
    }
    /// Body cap class (default `Cap::Json`).
    pub fn cap(mut self, cap: Cap) -> Builder {
        self.cap = cap;
        self
    }
    /// Runs on the hashing pool, throttled as a login.
    pub fn hashing(mut self) -> Builder {
        self.hashing = true;
        self.rate = Some(Rate::Login);
        self
    }
    /// Rate-limit class (default: from the credential kind).
    pub fn rate(mut self, rate: Rate) -> Builder {
        self.rate = Some(rate);
        self
    }
    /// Success is 201.
    pub fn created(mut self) -> Builder {
        self.ok_status = 201;
        self
    }
    /// The handler may answer any of `statuses` (documented).
    pub fn statuses(mut self, statuses: &[u16]) -> Builder {
        self.statuses = statuses.to_vec();
        self
    }
    /// Success data is sent as is, without the family's envelope.
    pub fn bare(mut self) -> Builder {
        self.envelope = false;
        self
    }
    /// The answer is not JSON data but `content_type` (built by the handler as `Out::Reply`).
    pub fn raw(mut self, content_type: &'static str) -> Builder {
        self.raw = Some(content_type);
        self.envelope = false;
        self
    }

    /// Documents the route under `tag` instead of its family's tag (errors keep the family's
    /// envelope).
    pub fn tag(mut self, tag: &'static str) -> Builder {
        self.tag = Some(tag);
        self
    }

    fn finish<I: Input>(self, summary: &'static str, doc: DocFn, handler: Handler) -> Route {
        let segs: Vec<Seg> = self
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(p) => Seg::Param(p),
                    None => Seg::Lit(s),
                },
            )
            .collect();
        let segs_owned: Vec<String> = self
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let rate = self.rate.unwrap_or(match self.auth {
            Auth::Public | Auth::LoopbackOrAdmin | Auth::Optional(_) => Rate::None,
            Auth::Device => Rate::Daemon,
            _ => Rate::User,
        });
        let mut statuses = self.statuses;
        if !statuses.contains(&self.ok_status) {
            statuses.insert(0, self.ok_status);
        }
        let family = Family::of(&segs_owned);
        let sources = Sources {
            query: self.query_token,
            cookie: family == Family::V1
                && matches!(self.auth, Auth::User(_) | Auth::Session | Auth::Any),
        };
        Route {
            method: self.method,
            path: self.path,
            segs,
            family,
            auth: self.auth,
            sources,
            cap: self.cap,
            hashing: self.hashing,
            rate,
            ok_status: self.ok_status,
            statuses,
            envelope: self.envelope,
            raw: self.raw,
            takes_body: I::BODY,
            summary,
            tag: self.tag,
            doc,
            handler,
        }
    }

    /// Finishes the entry with a handler answering plain data.
    pub fn to<I, T>(self, summary: &'static str, f: fn(&Call, I) -> ApiResult<T>) -> Route
    where
        I: Input,
        T: Serialize + JsonSchema + 'static,
    {
        let (ok, envelope) = (self.ok_status, self.envelope);
        let handler: Handler = Box::new(move |call: &Call| {
            Data(I::parse(call).and_then(|i| f(call, i))).outcome(call, ok, envelope)
        });
        let doc: DocFn = |sg| {
            let mut d = InputDoc::default();
            I::doc(sg, &mut d);
            (d, Data::<T>::doc(sg))
        };
        self.finish::<I>(summary, doc, handler)
    }

    /// Finishes the entry with a handler that may choose its status, build its own reply or
    /// park the request.
    pub fn to_out<I, T>(self, summary: &'static str, f: fn(&Call, I) -> ApiResult<Out<T>>) -> Route
    where
        I: Input,
        T: Serialize + JsonSchema + 'static,
    {
        let (ok, envelope, raw) = (self.ok_status, self.envelope, self.raw);
        let handler: Handler = Box::new(move |call: &Call| {
            Outs(I::parse(call).and_then(|i| f(call, i))).outcome(call, ok, envelope)
        });
        let doc: DocFn = if raw.is_some() {
            |sg| {
                let mut d = InputDoc::default();
                I::doc(sg, &mut d);
                (d, None)
            }
        } else {
            |sg| {
                let mut d = InputDoc::default();
                I::doc(sg, &mut d);
                (d, Outs::<T>::doc(sg))
            }
        };
        self.finish::<I>(summary, doc, handler)
    }
}

/// What a lookup found.
pub enum Found<'t> {
    /// This route (its index) with these path parameters.
    Route(usize, &'t Route, Vec<(&'static str, String)>),
    /// No route for this method and path.
    NotFound,
}

/// Every route of every family, and an index by method and path length.
pub struct Table {
    routes: Vec<Route>,
    index: HashMap<(Method, usize), Vec<usize>>,
}

impl Table {
    /// A table over `routes`. Panics on two entries with the same method and pattern (a bug
    /// caught at start-up and by the tests).
    pub fn new(routes: Vec<Route>) -> Table {
        let mut index: HashMap<(Method, usize), Vec<usize>> = HashMap::new();
        for (i, r) in routes.iter().enumerate() {
            let dup = routes[..i]
                .iter()
                .any(|o| o.method == r.method && o.segs == r.segs);
            assert!(!dup, "route {:?} {} is listed twice", r.method, r.path);
            index.entry((r.method, r.segs.len())).or_default().push(i);
        }
        // Within a bucket, routes with more literal segments win (`/kv/_keys` over `/kv/{key}`).
        for v in index.values_mut() {
            v.sort_by_key(|&i| std::cmp::Reverse(routes[i].literals()));
        }
        Table { routes, index }
    }

    /// The entry for `method` and `segs`.
    pub fn find(&self, method: &str, segs: &[String]) -> Found<'_> {
        let Some(m) = Method::parse(method) else {
            return Found::NotFound;
        };
        for &i in self.index.get(&(m, segs.len())).into_iter().flatten() {
            let r = &self.routes[i];
            if let Some(params) = r.matches(segs) {
                return Found::Route(i, r, params);
            }
        }
        Found::NotFound
    }

    /// The entry at `i` (an index `find` returned).
    pub fn get(&self, i: usize) -> Option<&Route> {
        self.routes.get(i)
    }

    /// Every entry, in table order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

/// `{"message": …}`: the answer of routes that only confirm.
#[derive(Serialize, JsonSchema)]
pub struct Message {
    pub message: String,
}

impl Message {
    /// A confirmation.
    pub fn new(m: &str) -> Message {
        Message {
            message: m.to_string(),
        }
    }
}

/// An empty JSON object, for routes whose schema must exist but whose data is open-ended.
pub fn any_object() -> Value {
    json!({"type": "object"})
}
