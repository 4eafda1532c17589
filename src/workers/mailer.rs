//! The mailer (README "Mail"): one `ccjk-mailer` thread that drains the outbox through the
//! configured relay.
//!
//! A round takes the queued mails that are due. For each it first claims the attempt in its
//! own write (attempts + 1, the next attempt already scheduled by the backoff), then calls the
//! relay, then records the outcome: `sent` with the provider's message id (and the carried
//! message's `sent_via_email`), a retry at `max(backoff, Retry-After)`, or `failed` for a 4xx
//! or once `MAIL_MAX_ATTEMPTS` are used. So a relay outage loses nothing, a restart resumes
//! the queue, and a crash between the relay's answer and its record sends the mail again at
//! its next attempt with the same idempotency key (honoured by Resend and the webhook relay).
//! Without a relay, queued mails are marked `unsent`. Between rounds it sleeps until the next
//! mail is due, at most `MAILER_IDLE_CHECK`, and wakes at once when a write queues mail
//! (`Effect::MailQueued`) or the server stops. Once an hour it deletes finished rows past
//! `MAIL_RETENTION`.

use crate::db::outbox::{self, Mail};
use crate::db::{inbound, messages};
use crate::domain::Services;
use crate::domain::policy::{
    MAIL_BACKOFF_JITTER, MAIL_MAX_ATTEMPTS, MAIL_MAX_RETRY_AFTER, MAIL_RETENTION, MAILER_BATCH,
    MAILER_IDLE_CHECK, mail_backoff,
};
use crate::error::ApiResult;
use crate::relay::{Delivery, Email, Relay};
use crate::state::mail::Outcome;
use crate::time;
use crate::workers::Stop;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

/// How often finished rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Starts the `ccjk-mailer` thread; it ends when `stop` is set (and `MailState::kick` wakes
/// it), after the mail it is sending.
pub fn spawn(svc: Arc<Services>, stop: &Stop) -> std::io::Result<JoinHandle<()>> {
    let stop = stop.clone();
    thread::Builder::new()
        .name("ccjk-mailer".into())
        .spawn(move || {
            let relay = Relay::new(&svc.cfg.mail);
            match &relay {
                Some(r) => log::info!("mailer: sending through {}", r.name()),
                None => {
                    log::info!("mailer: no relay configured; mail stays in the outbox as unsent")
                }
            }
            let conn = match svc.db.reader() {
                Ok(c) => c,
                Err(e) => return log::error!("mailer cannot open the database: {e}"),
            };
            let mut pruned: Option<Instant> = None;
            while !stop.is_set() {
                if pruned.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                    if let Err(e) = prune(&svc) {
                        log::warn!("mailer: pruning the outbox failed: {e}");
                    }
                    pruned = Some(Instant::now());
                }
                if let Err(e) = round(&svc, &conn, relay.as_ref(), &stop) {
                    log::error!("mailer round failed: {e}");
                    svc.mail.wait(Duration::from_secs(1));
                    continue;
                }
                let wait = match outbox::next_due(&conn) {
                    Ok(Some(due)) => time::parse(&due)
                        .and_then(|d| d.duration_since(SystemTime::now()).ok())
                        .unwrap_or(Duration::ZERO)
                        .min(MAILER_IDLE_CHECK),
                    _ => MAILER_IDLE_CHECK,
                };
                if relay.is_some() && wait.is_zero() {
                    continue;
                }
                if !stop.is_set() {
                    svc.mail.wait(wait.max(Duration::from_millis(10)));
                }
            }
        })
}

/// Deletes finished outbox rows and inbound deliveries past `MAIL_RETENTION`.
fn prune(svc: &Services) -> ApiResult<()> {
    let cutoff = time::before(MAIL_RETENTION);
    let (mails, deliveries) = svc.db.write(move |tx| {
        Ok((
            outbox::delete_finished_before(tx, &cutoff)?,
            inbound::delete_before(tx, &cutoff)?,
        ))
    })?;
    if mails + deliveries > 0 {
        log::info!(
            "mailer: deleted {mails} old mail(s) and {deliveries} inbound delivery record(s)"
        );
    }
    Ok(())
}

/// One round: every due mail (a batch at a time), or parking them as unsent without a relay.
pub fn round(
    svc: &Services,
    reader: &rusqlite::Connection,
    relay: Option<&Relay>,
    stop: &Stop,
) -> ApiResult<()> {
    let Some(relay) = relay else {
        if outbox::next_due(reader)?.is_none() {
            return Ok(());
        }
        let n = svc.db.write(|tx| {
            Ok(outbox::park_unsent(
                tx,
                "no relay is configured (CCJK_EMAIL_PROVIDER=none)",
            )?)
        })?;
        if n > 0 {
            log::warn!("mailer: {n} mail(s) left unsent: no relay is configured");
        }
        return Ok(());
    };
    let due = outbox::due(reader, &time::now(), MAILER_BATCH)?;
    for m in due {
        if stop.is_set() {
            break;
        }
        attempt(svc, relay, m)?;
    }
    Ok(())
}

/// A random factor within 1 ± `MAIL_BACKOFF_JITTER`.
fn jitter() -> f64 {
    let r = u32::from_le_bytes(crate::crypto::random_bytes::<4>()) as f64 / u32::MAX as f64;
    1.0 - MAIL_BACKOFF_JITTER + 2.0 * MAIL_BACKOFF_JITTER * r
}

/// One attempt at one mail: claim, send, record.
fn attempt(svc: &Services, relay: &Relay, m: Mail) -> ApiResult<()> {
    let attempt = m.attempts + 1;
    let backoff = mail_backoff(svc.cfg.mail.backoff_base, attempt, jitter());
    let next = time::fmt(SystemTime::now() + backoff);
    let (id, seen) = (m.id, m.attempts);
    if !svc
        .db
        .write(move |tx| Ok(outbox::claim(tx, id, seen, &next)?))?
    {
        return Ok(());
    }
    let email = Email {
        to: m.to.clone(),
        subject: m.subject.clone(),
        text: m.text.clone(),
        html: m.html.clone(),
        in_reply_to: m.in_reply_to.clone(),
        idempotency_key: m.idempotency_key.clone(),
    };
    let name = relay.name();
    let delivery = relay.send(&email);
    let outcome = match &delivery {
        Delivery::Sent { .. } => Outcome::Sent,
        Delivery::Retry { .. } if attempt < MAIL_MAX_ATTEMPTS => Outcome::Retry,
        _ => Outcome::Failed,
    };
    svc.mail.count(name, outcome);
    let message_id = m.message_id;
    match delivery {
        Delivery::Sent { provider_id } => {
            log::info!("mailer: mail #{id} to {} sent through {name}", m.to);
            svc.db.write(move |tx| {
                outbox::mark_sent(tx, id, name, provider_id.as_deref())?;
                if let Some(mid) = message_id {
                    messages::set_sent_via_email(tx, mid)?;
                }
                Ok(())
            })
        }
        Delivery::Retry { error, retry_after } if attempt < MAIL_MAX_ATTEMPTS => {
            let wait = retry_after.map_or(backoff, |r| r.min(MAIL_MAX_RETRY_AFTER).max(backoff));
            log::warn!(
                "mailer: mail #{id} attempt {attempt} failed, retrying in {wait:?}: {error}"
            );
            let next = time::fmt(SystemTime::now() + wait);
            svc.db
                .write(move |tx| Ok(outbox::mark_retry(tx, id, name, &error, &next)?))
        }
        Delivery::Retry { error, .. } => {
            let error = format!("gave up after {attempt} attempts; last: {error}");
            log::warn!("mailer: mail #{id} failed: {error}");
            svc.db
                .write(move |tx| Ok(outbox::mark_failed(tx, id, Some(name), &error)?))
        }
        Delivery::Failed { error } => {
            log::warn!("mailer: mail #{id} refused: {error}");
            svc.db
                .write(move |tx| Ok(outbox::mark_failed(tx, id, Some(name), &error)?))
        }
    }
}
