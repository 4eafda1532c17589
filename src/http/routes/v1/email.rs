//! `/v1` handlers for e-mail (README "Mail"): configs, test and free-form mails, the outbox,
//! the inbound webhook; and the wire views of those rows, which Lite's `/email/*` routes share.

use crate::db::email_configs::EmailConfig;
use crate::db::outbox::Mail;
use crate::domain::email_config::{self, ConfigRequest};
use crate::domain::inbound::{self, Outcome, Signed};
use crate::domain::mail::{self, SendRequest};
use crate::domain::policy::{WEBHOOK_PER_SENDER_PER_MINUTE, WEBHOOK_REFUSALS_RECORDED_PER_MINUTE};
use crate::error::ApiResult;
use crate::http::ratelimit;
use crate::http::route::{Call, Input, InputDoc, Json, JsonOr, Message, Out, PageQuery, Query};
use crate::http::views::PageInfo;
use crate::state::ratelimit::Key;
use schemars::{JsonSchema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// An e-mail config (the password is never shown, only whether one is set).
#[derive(Serialize, JsonSchema)]
pub struct EmailConfigView {
    pub id: i64,
    /// The device's public id; `null` for the account's own config.
    pub device_id: Option<String>,
    pub email_address: String,
    pub imap_host: Option<String>,
    pub imap_port: Option<i64>,
    pub imap_secure: bool,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<i64>,
    pub smtp_secure: bool,
    pub username: Option<String>,
    pub has_password: bool,
    /// Seconds.
    pub check_interval: i64,
    pub is_active: bool,
    pub last_check_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&EmailConfig> for EmailConfigView {
    fn from(c: &EmailConfig) -> EmailConfigView {
        EmailConfigView {
            id: c.id,
            device_id: c.device_uuid.clone(),
            email_address: c.email_address.clone(),
            imap_host: c.imap_host.clone(),
            imap_port: c.imap_port,
            imap_secure: c.imap_secure,
            smtp_host: c.smtp_host.clone(),
            smtp_port: c.smtp_port,
            smtp_secure: c.smtp_secure,
            username: c.username.clone(),
            has_password: c.has_password,
            check_interval: c.check_interval,
            is_active: c.is_active,
            last_check_at: c.last_check_at.clone(),
            created_at: c.created_at.clone(),
            updated_at: c.updated_at.clone(),
        }
    }
}

/// A mail of the outbox and its delivery state (not its body).
#[derive(Serialize, JsonSchema)]
pub struct MailView {
    pub id: i64,
    /// `task_result`, `email_reply`, `device_offline`, `test` or `send`.
    pub kind: String,
    pub to: String,
    pub subject: String,
    /// `queued`, `sent`, `failed` or `unsent` (no relay configured).
    pub status: String,
    /// Attempts made to hand it to the relay.
    pub attempts: i64,
    /// When the next attempt is due (queued mails only).
    pub next_attempt_at: Option<String>,
    /// The relay's answer to the last failed attempt.
    pub last_error: Option<String>,
    pub provider: Option<String>,
    /// The relay's id of the sent message.
    pub provider_message_id: Option<String>,
    pub task_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub sent_at: Option<String>,
}

impl From<&Mail> for MailView {
    fn from(m: &Mail) -> MailView {
        MailView {
            id: m.id,
            kind: m.kind.clone(),
            to: m.to.clone(),
            subject: m.subject.clone(),
            status: m.status.clone(),
            attempts: m.attempts,
            next_attempt_at: (m.status == "queued").then(|| m.next_attempt_at.clone()),
            last_error: m.last_error.clone(),
            provider: m.provider.clone(),
            provider_message_id: m.provider_message_id.clone(),
            task_id: m.task_id.clone(),
            created_at: m.created_at.clone(),
            updated_at: m.updated_at.clone(),
            sent_at: m.sent_at.clone(),
        }
    }
}

/// One config.
#[derive(Serialize, JsonSchema)]
pub struct ConfigOne {
    pub config: EmailConfigView,
}

/// Every config of the caller.
#[derive(Serialize, JsonSchema)]
pub struct ConfigList {
    pub configs: Vec<EmailConfigView>,
}

/// `POST /v1/email/config`: creates or replaces the config of the account or of a device. Its
/// address may mail commands, so an API key needs `task:create` as well as the route's
/// `user:write`. Errors: 403 `INSUFFICIENT_SCOPE`, 404 (device), 422 per field.
pub fn set_config(call: &Call, Json(b): Json<ConfigRequest>) -> ApiResult<ConfigOne> {
    let user = call.user()?.require(email_config::COMMAND_SCOPE)?;
    let c = email_config::set(&call.cx, user.user_id(), b)?;
    Ok(ConfigOne {
        config: (&c).into(),
    })
}

/// `GET /v1/email/config`.
pub fn list_configs(call: &Call, _: ()) -> ApiResult<ConfigList> {
    let list = email_config::list(&call.cx, call.user()?.user_id())?;
    Ok(ConfigList {
        configs: list.iter().map(EmailConfigView::from).collect(),
    })
}

/// `GET /v1/email/config/{device_id}` (`account` for the account's own).
pub fn get_config(call: &Call, _: ()) -> ApiResult<ConfigOne> {
    let c = email_config::get(&call.cx, call.user()?.user_id(), call.param("device_id"))?;
    Ok(ConfigOne {
        config: (&c).into(),
    })
}

/// `DELETE /v1/email/config/{device_id}`.
pub fn delete_config(call: &Call, _: ()) -> ApiResult<Message> {
    email_config::delete(&call.cx, call.user()?.user_id(), call.param("device_id"))?;
    Ok(Message::new("E-mail config deleted"))
}

/// Which config a test mail goes to.
#[derive(Deserialize, JsonSchema, Default)]
pub struct TestBody {
    /// A device's public id; absent: the account's config, else the account's address.
    pub device_id: Option<String>,
}

/// A queued mail.
#[derive(Serialize, JsonSchema)]
pub struct MailOne {
    pub mail: MailView,
}

/// `POST /v1/email/test`: 202 with the queued mail (follow it in the outbox).
pub fn test(call: &Call, JsonOr(b): JsonOr<TestBody>) -> ApiResult<Out<MailOne>> {
    let m = mail::test(&call.cx, &call.user()?.user, b.device_id.as_deref())?;
    Ok(Out::Status(202, MailOne { mail: (&m).into() }))
}

/// `POST /v1/email/send`: 202 with the queued mail.
pub fn send(call: &Call, Json(b): Json<SendRequest>) -> ApiResult<Out<MailOne>> {
    let m = mail::send(&call.cx, &call.user()?.user, b)?;
    Ok(Out::Status(202, MailOne { mail: (&m).into() }))
}

/// Filter of the outbox.
#[derive(Deserialize, JsonSchema, Default)]
pub struct OutboxFilter {
    /// `queued`, `sent`, `failed` or `unsent`.
    pub status: Option<String>,
}

/// A page of the caller's outbox.
#[derive(Serialize, JsonSchema)]
pub struct Outbox {
    pub mails: Vec<MailView>,
    #[serde(flatten)]
    pub page: PageInfo,
}

/// `GET /v1/email/outbox?status=&limit=&offset=`: newest first.
pub fn outbox(
    call: &Call,
    (Query(p), Query(f)): (Query<PageQuery>, Query<OutboxFilter>),
) -> ApiResult<Outbox> {
    let uid = call.user()?.user_id();
    let page = mail::outbox_list(&call.cx, uid, f.status.as_deref(), p.page()?)?;
    Ok(Outbox {
        page: PageInfo::of(&page),
        mails: page.items.iter().map(MailView::from).collect(),
    })
}

/// `GET /v1/email/outbox/{id}`.
pub fn outbox_one(call: &Call, _: ()) -> ApiResult<MailOne> {
    let id = call
        .param("id")
        .parse()
        .map_err(|_| crate::error::ApiError::not_found("Mail"))?;
    let m = mail::outbox_get(&call.cx, call.user()?.user_id(), id)?;
    Ok(MailOne { mail: (&m).into() })
}

/// What a mail relay posts to the inbound webhook (documented; the raw body is what is signed).
#[derive(Deserialize, JsonSchema)]
pub struct InboundBody {
    /// The sender: `addr` or `Name <addr>`; a user's address or a configured one.
    pub from: String,
    /// `[CCJK] …` or `[CCJK:<device name or id>] …`.
    pub subject: String,
    /// The command: the body up to a signature delimiter (`-- `) or quoted reply.
    pub body: String,
    /// The mail's Message-ID; a redelivery answers the first outcome.
    pub message_id: String,
}

/// The raw body of a signed webhook: kept as bytes (the signature covers them), parsed by the
/// domain only once the signature verified.
pub struct SignedBody;

impl Input for SignedBody {
    const BODY: bool = true;
    fn parse(_: &Call) -> ApiResult<Self> {
        Ok(SignedBody)
    }
    fn doc(sg: &mut SchemaGenerator, d: &mut InputDoc) {
        d.body = Some((sg.subschema_for::<InboundBody>().to_value(), true));
    }
}

/// What became of a delivery.
#[derive(Serialize, JsonSchema)]
pub struct IncomingReply {
    /// A task was created (by this delivery or, for a redelivery, by the first).
    pub accepted: bool,
    /// `accepted` or `rejected`.
    pub status: String,
    /// Why it was rejected (`unknown_sender`, `no_prefix`, `unknown_device`, …).
    pub reason: Option<String>,
    pub task_id: Option<String>,
    /// The `message_id` was delivered before: nothing was created.
    pub duplicate: bool,
    /// The record of this delivery.
    pub inbound_id: i64,
}

impl From<Outcome> for IncomingReply {
    fn from(o: Outcome) -> IncomingReply {
        IncomingReply {
            accepted: o.status == "accepted",
            status: o.status,
            reason: o.reason,
            task_id: o.task_id,
            duplicate: o.duplicate,
            inbound_id: o.id,
        }
    }
}

/// `POST /v1/email/incoming` and Lite's `POST /email/incoming`: the HMAC-signed webhook. A
/// verified delivery counts against its sender's limit (`WEBHOOK_PER_SENDER_PER_MINUTE`); one
/// over it is 429 with `Retry-After`, recorded, and creates nothing. A delivery whose signature
/// fails is 401 and recorded, at most `WEBHOOK_REFUSALS_RECORDED_PER_MINUTE` a minute per
/// client address (anyone can send those).
pub fn incoming(call: &Call, _: SignedBody) -> ApiResult<Out<IncomingReply>> {
    let signed = Signed {
        signature: call.req.header("x-email-signature"),
        timestamp: call.req.header("x-email-timestamp"),
    };
    // Refusals before a signature verified are recorded at most so often per address.
    let may_record = || {
        let key = Key::Other("webhook-refused", call.ip().to_string());
        ratelimit::admit_key(
            call.app,
            key,
            WEBHOOK_REFUSALS_RECORDED_PER_MINUTE,
            "webhook",
        )
        .verdict
        .allowed
    };
    let d = inbound::verify_delivery(&call.cx, &call.req.body, signed, call.ip(), may_record)?;
    let key = Key::Other("webhook", d.sender_key());
    let limited = ratelimit::admit_key(call.app, key, WEBHOOK_PER_SENDER_PER_MINUTE, "webhook");
    if !limited.verdict.allowed {
        inbound::record_rate_limited(&call.cx, &d, call.ip())?;
        return Ok(Out::Reply(ratelimit::refuse(call.app, call.req, &limited)));
    }
    let reply = IncomingReply::from(inbound::accept_delivery(&call.cx, d, call.ip())?);
    let ok = call.family.ok(call.req, 200, &reply);
    Ok(Out::Reply(ratelimit::with_headers(ok, &limited)))
}
