//! Inbound mail → tasks (README "Mail"): the webhook a mail relay calls with
//! `{from, subject, body, message_id}`.
//!
//! Order of checks, each refusal recorded in `inbound_emails` with its reason:
//! 1. the body cap (the route's, before this code runs);
//! 2. the signature: `X-Email-Signature` = hex HMAC-SHA256 over the raw body, or over
//!    `timestamp + "." + body` when `X-Email-Timestamp` (Unix seconds, within
//!    `INBOUND_MAX_SKEW`) is sent; compared in constant time against every secret of
//!    `CCJK_INBOUND_SECRET`, before any JSON is parsed (401 `INVALID_SIGNATURE`);
//! 3. the JSON, then in one write job: a redelivered `message_id` answers the first outcome and
//!    creates nothing; the sender must be a user's address or an active configured address;
//!    the subject must start with `[CCJK]` (`[CCJK:<device name or id>]` picks a device); the
//!    command is the body up to a signature delimiter (`-- `) or a quoted reply; the plan's
//!    daily task quota applies. An accepted mail creates one task with source `email`, whose
//!    result is mailed back to the sender (`domain::mail::task_final`).
//!
//! Rejections after the signature verified answer 200 with `accepted: false` and the reason
//! (the relay delivered; retrying would not help); a known sender also gets an
//! `email_rejected` message.

use crate::db::inbound::{self, NewInbound};
use crate::db::messages::NewMessage;
use crate::db::tasks::{NewTask, TaskStatus};
use crate::db::{Tx, email_configs};
use crate::domain::events;
use crate::domain::policy::*;
use crate::domain::tasks::{CommandProblem, check_command, queue};
use crate::domain::{Cx, text};
use crate::error::{ApiError, ApiResult, Code};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

/// The signature headers of a delivery.
#[derive(Clone, Copy, Debug, Default)]
pub struct Signed<'a> {
    /// `X-Email-Signature`: hex HMAC-SHA256 (an optional `sha256=` prefix is allowed).
    pub signature: Option<&'a str>,
    /// `X-Email-Timestamp`: Unix seconds, signed together with the body.
    pub timestamp: Option<&'a str>,
}

/// The webhook's body.
#[derive(Deserialize, Debug, Default)]
struct InboundMail {
    from: String,
    subject: Option<String>,
    body: Option<String>,
    text: Option<String>,
    message_id: Option<String>,
}

/// What became of a delivery.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The `inbound_emails` row of this delivery.
    pub id: i64,
    /// `accepted` or `rejected` (for a redelivery: the first delivery's).
    pub status: String,
    pub reason: Option<String>,
    pub task_id: Option<String>,
    /// A redelivered `message_id`: nothing was created.
    pub duplicate: bool,
}

fn invalid_signature(why: &str) -> ApiError {
    ApiError::new(Code::InvalidSignature, format!("Invalid signature: {why}"))
}

/// Records a refused delivery (no parsed field is kept unless the signature verified).
fn record_refused(cx: &Cx, reason: String, ip: &str) -> ApiResult<()> {
    let ip = ip.to_string();
    cx.write(move |tx| {
        inbound::insert(
            tx,
            &NewInbound {
                status: "rejected",
                reason: Some(reason),
                ip_address: Some(ip),
                ..NewInbound::default()
            },
        )?;
        Ok(())
    })
}

/// Checks the signature of `body` against every configured secret. `Err` gives the recorded
/// reason and the message of the 401 `INVALID_SIGNATURE`.
fn verify(cx: &Cx, body: &[u8], s: Signed) -> Result<(), (&'static str, &'static str)> {
    let secrets = &cx.cfg().inbound_secrets;
    let Some(sig) = s.signature.map(str::trim).filter(|v| !v.is_empty()) else {
        return Err(("missing_signature", "X-Email-Signature is missing"));
    };
    let prefix = match s.timestamp.map(str::trim) {
        None => None,
        Some(ts) => {
            let now = cx.svc.clock.now();
            let secs = now
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            match ts.parse::<i64>() {
                Ok(t) if t.abs_diff(secs) <= INBOUND_MAX_SKEW.as_secs() => Some(format!("{ts}.")),
                _ => {
                    return Err((
                        "stale_timestamp",
                        "X-Email-Timestamp is not within 300 s of the server's clock",
                    ));
                }
            }
        }
    };
    let hex = sig.strip_prefix("sha256=").unwrap_or(sig);
    let Some(tag) = crate::crypto::unhex(hex).filter(|t| t.len() == 32) else {
        return Err(("bad_signature", "not a hex HMAC-SHA256"));
    };
    // Every secret is tried, whichever matches, so the time taken does not say which did.
    let mut ok = false;
    for secret in secrets {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            continue;
        };
        if let Some(p) = &prefix {
            mac.update(p.as_bytes());
        }
        mac.update(body);
        cx.svc.mail.signature_computed();
        ok |= mac.verify_slice(&tag).is_ok();
    }
    if !ok {
        return Err(("bad_signature", "it does not match"));
    }
    Ok(())
}

/// The address inside `Name <addr>`, or the whole string.
fn address_of(from: &str) -> &str {
    match from.rsplit_once('<') {
        Some((_, a)) => a.trim_end().trim_end_matches('>').trim(),
        None => from.trim(),
    }
}

/// The device part of a `[CCJK]` subject: `Some(None)` for `[CCJK]`, `Some(Some(name))` for
/// `[CCJK:name]`, `None` without the prefix.
pub fn subject_target(subject: &str) -> Option<Option<String>> {
    let s = subject.trim_start();
    if s.starts_with("[CCJK]") {
        return Some(None);
    }
    let rest = s.strip_prefix("[CCJK:")?;
    let (name, _) = rest.split_once(']')?;
    let name = name.trim();
    (!name.is_empty()).then(|| Some(name.to_string()))
}

/// The command of a mail body: its lines up to a signature delimiter (`-- `), a quoted line
/// (`>`), a reply header (`On … wrote:`) or a forwarded original, trimmed.
pub fn command_of(body: &str) -> String {
    let mut lines = Vec::new();
    for line in body.lines() {
        let t = line.trim_end();
        let quote_header = t.starts_with("On ") && t.ends_with("wrote:");
        if t == "--" || t.starts_with('>') || quote_header || t.starts_with("-----Original Message")
        {
            break;
        }
        lines.push(line.trim_end_matches('\r'));
    }
    lines.join("\n").trim().to_string()
}

/// Checks one delivery of the webhook from `ip` up to its JSON; `accept_delivery` does the
/// rest once the sender is within its rate limit. A delivery whose signature fails is recorded
/// when `may_record()` says so: anyone can send those, so the caller bounds how many reach the
/// database (the route: per address). Errors: 404 when no secret is configured, 401
/// `INVALID_SIGNATURE`, 422 for a signed body that is not the expected JSON (recorded).
pub fn verify_delivery(
    cx: &Cx,
    body: &[u8],
    signed: Signed,
    ip: &str,
    may_record: impl FnOnce() -> bool,
) -> ApiResult<Delivery> {
    if cx.cfg().inbound_secrets.is_empty() {
        return Err(ApiError::not_found("Route"));
    }
    if let Err((reason, why)) = verify(cx, body, signed) {
        if may_record() {
            record_refused(cx, reason.to_string(), ip)?;
        }
        return Err(invalid_signature(why));
    }
    let parsed = serde_json::from_slice::<InboundMail>(body)
        .map_err(|e| e.to_string())
        .and_then(|m| {
            let id = m
                .message_id
                .as_deref()
                .map(str::trim)
                .filter(|id| !id.is_empty() && id.len() <= 998)
                .map(str::to_string)
                .ok_or("message_id is required (at most 998 characters)")?;
            Ok((m, id))
        });
    let (mail, message_id) = match parsed {
        Ok(p) => p,
        Err(e) => {
            record_refused(cx, format!("bad_json: {e}"), ip)?;
            return Err(ApiError::new(
                Code::ValidationFailed,
                format!("Invalid inbound mail: {e}"),
            ));
        }
    };
    Ok(Delivery { mail, message_id })
}

/// A delivery whose signature verified and whose JSON parsed.
#[derive(Debug)]
pub struct Delivery {
    mail: InboundMail,
    message_id: String,
}

impl Delivery {
    /// The sender the webhook's rate limit is kept for (README "Rate limits"): the address of
    /// `from`, folded as account e-mails are (`text::email_key`).
    pub fn sender_key(&self) -> String {
        text::email_key(address_of(&self.mail.from))
    }
}

/// The rest of the checks of a verified delivery, and its outcome (one write job).
pub fn accept_delivery(cx: &Cx, d: Delivery, ip: &str) -> ApiResult<Outcome> {
    let index = cx.svc.claimable.clone();
    let ip = ip.to_string();
    cx.write(move |tx| accept(tx, &index, d.mail, d.message_id, ip))
}

/// Records a verified delivery refused because its sender is over the webhook's rate limit.
/// Its `message_id` is not kept, so the relay's later retry is a new delivery, not a duplicate.
pub fn record_rate_limited(cx: &Cx, d: &Delivery, ip: &str) -> ApiResult<()> {
    let row = NewInbound {
        from_address: Some(d.mail.from.chars().take(320).collect()),
        subject: d
            .mail
            .subject
            .as_ref()
            .map(|s| s.chars().take(998).collect()),
        status: "rejected",
        reason: Some("rate_limited".into()),
        ip_address: Some(ip.to_string()),
        ..NewInbound::default()
    };
    cx.write(move |tx| {
        inbound::insert(tx, &row)?;
        Ok(())
    })
}

/// The rest of the checks and their outcome, in one write job.
fn accept(
    tx: &Tx,
    index: &crate::state::claimable::ClaimableIndex,
    mail: InboundMail,
    message_id: String,
    ip: String,
) -> ApiResult<Outcome> {
    let from: String = address_of(&mail.from).chars().take(320).collect();
    let subject: Option<String> = mail.subject.map(|s| s.chars().take(998).collect());
    let mut rec = NewInbound {
        message_id: Some(message_id.clone()),
        from_address: Some(from.clone()),
        subject: subject.clone(),
        ip_address: Some(ip),
        ..NewInbound::default()
    };
    if let Some(first) = inbound::first_delivery(tx, &message_id)? {
        rec.status = "duplicate";
        rec.reason = Some(format!("redelivery of inbound #{}", first.id));
        rec.user_id = first.user_id;
        let id = inbound::insert(tx, &rec)?;
        return Ok(Outcome {
            id,
            status: first.status,
            reason: first.reason,
            task_id: first.task_id,
            duplicate: true,
        });
    }
    let body = mail.body.or(mail.text);
    let outcome = decide(tx, index, &mut rec, &from, subject.as_deref(), &body)?;
    let (status, reason) = match &outcome {
        Ok(task_id) => {
            rec.task_id = Some(task_id.clone());
            ("accepted", None)
        }
        Err(reason) => ("rejected", Some(reason.clone())),
    };
    rec.status = status;
    rec.reason = reason.clone();
    if let (Some(user_id), Some(r)) = (rec.user_id, &reason) {
        events::insert_message(
            tx,
            &NewMessage {
                user_id,
                task_id: None,
                device_id: rec.device_id,
                kind: "email_rejected",
                title: format!("A mail from {from} was not run: {r}"),
                content: subject.clone(),
                data: json!({"from": from, "message_id": message_id, "reason": r}),
            },
        )?;
    }
    let id = inbound::insert(tx, &rec)?;
    Ok(Outcome {
        id,
        status: status.to_string(),
        reason,
        task_id: rec.task_id,
        duplicate: false,
    })
}

/// The devices a sender may command (README "Walk-through: a command by e-mail").
enum Reach {
    /// The account's login address, or an address configured for the account itself.
    All,
    /// An address configured only for these devices.
    Devices(Vec<i64>),
}

impl Reach {
    fn allows(&self, device_id: i64) -> bool {
        match self {
            Reach::All => true,
            Reach::Devices(ds) => ds.contains(&device_id),
        }
    }
}

/// Resolves sender, device and command and creates the task; `Err(reason)` for a rejection.
/// Fills in the record's user and device as far as they were found.
fn decide(
    tx: &Tx,
    index: &crate::state::claimable::ClaimableIndex,
    rec: &mut NewInbound,
    from: &str,
    subject: Option<&str>,
    body: &Option<String>,
) -> ApiResult<Result<String, String>> {
    let (user_id, reach) = match text::email(from) {
        Err(_) => return Ok(Err("unknown_sender".into())),
        Ok(addr) => match inbound::active_user_by_email(tx, &addr)? {
            Some(u) => (u, Reach::All),
            None => {
                let owners = email_configs::owners_of(tx, &addr)?;
                let mut users: Vec<i64> = owners.iter().map(|(u, _)| *u).collect();
                users.dedup();
                match users.as_slice() {
                    [] => return Ok(Err("unknown_sender".into())),
                    [u] if inbound::is_active_user(tx, *u)? => {
                        // The account's own config reaches every device; a device's config
                        // reaches that device only.
                        let devices: Option<Vec<i64>> = owners.iter().map(|(_, d)| *d).collect();
                        (*u, devices.map_or(Reach::All, Reach::Devices))
                    }
                    [_] => return Ok(Err("unknown_sender".into())),
                    _ => return Ok(Err("ambiguous_sender".into())),
                }
            }
        },
    };
    rec.user_id = Some(user_id);
    let Some(target) = subject.and_then(subject_target) else {
        return Ok(Err("no_prefix".into()));
    };
    let device_id = match (target, &reach) {
        (None, Reach::All) => None,
        (None, Reach::Devices(ds)) => match ds.as_slice() {
            [d] => Some(*d),
            _ => return Ok(Err("ambiguous_device".into())),
        },
        (Some(name), _) => match inbound::devices_named(tx, user_id, &name)?.as_slice() {
            // A device the sender may not command answers as one that does not exist.
            [d] if reach.allows(*d) => Some(*d),
            [_] | [] => return Ok(Err("unknown_device".into())),
            _ => return Ok(Err("ambiguous_device".into())),
        },
    };
    rec.device_id = device_id;
    let command = command_of(body.as_deref().unwrap_or(""));
    match check_command(&command) {
        Ok(()) => {}
        Err(CommandProblem::Empty) => return Ok(Err("empty_command".into())),
        Err(CommandProblem::Invalid) => return Ok(Err("invalid_command".into())),
    }
    let new = NewTask {
        user_id,
        device_id,
        session_id: None,
        batch_id: None,
        depends_on: None,
        parent_task_id: None,
        kind: "bash".into(),
        command,
        args: None,
        cwd: None,
        env: None,
        status: TaskStatus::Pending,
        priority: DEFAULT_PRIORITY,
        timeout_ms: DEFAULT_TIMEOUT_MS,
        max_retries: DEFAULT_MAX_RETRIES,
        source: "email",
        idempotency_key: None,
    };
    match queue(tx, index, &new) {
        Ok(t) => Ok(Ok(t.id)),
        Err(e) if e.code == Code::QuotaExceeded => Ok(Err("quota_exceeded".into())),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_the_device() {
        assert_eq!(subject_target("[CCJK] Run tests"), Some(None));
        assert_eq!(
            subject_target("  [CCJK:laptop] npm test"),
            Some(Some("laptop".into()))
        );
        assert_eq!(subject_target("Re: [CCJK] Run tests"), None);
        assert_eq!(subject_target("[CCJK:] x"), None);
        assert_eq!(subject_target("[ccjk] x"), None);
    }

    #[test]
    fn the_command_stops_at_signatures_and_quotes() {
        assert_eq!(command_of("npm test\r\n-- \r\nAlice"), "npm test");
        assert_eq!(
            command_of("\n  make\nmake install\n--\nsig"),
            "make\nmake install"
        );
        assert_eq!(command_of("ls\n\nOn Mon, Jan 1, Bob wrote:\n> old"), "ls");
        assert_eq!(command_of("> quoted only"), "");
        assert_eq!(address_of("Alice <alice@example.com>"), "alice@example.com");
        assert_eq!(crate::crypto::unhex("0aFF"), Some(vec![10, 255]));
        assert_eq!(crate::crypto::unhex("0g"), None);
    }
}
