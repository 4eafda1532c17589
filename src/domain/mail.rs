//! Outbound mail (README "Mail"): what is mailed, to whom, and the outbox as people see it.
//!
//! Every mail is a row of `email_outbox` written inside the write job of the event that caused
//! it (`enqueue`, which also registers `Effect::MailQueued` to wake the mailer), so a mail
//! exists exactly when its event committed. Notifications: a task's final state is mailed to
//! its owner when `notify_email` is on, and always to the sender of a task that came in by
//! e-mail (threaded under their mail); a device going offline is mailed to an owner with
//! `notify_email` on. Each such mail carries a `messages` row, whose `sent_via_email` the mailer
//! sets once the relay accepted it. People may send only to their own address or their
//! configured ones (an admin anywhere), at most `MAX_SENDS_PER_DAY` a day: never an open relay.

use crate::db::devices::{self, BeatRow};
use crate::db::effects::Effect;
use crate::db::messages::NewMessage;
use crate::db::outbox::{self, Mail, NewMail};
use crate::db::tasks::{Task, TaskStatus};
use crate::db::{Tx, email_configs, inbound, users};
use crate::domain::events;
use crate::domain::policy::{MAIL_OUTPUT_TAIL, MAX_MAIL_BODY, MAX_MAIL_SUBJECT, MAX_SENDS_PER_DAY};
use crate::domain::{Cx, Page, Paged, text};
use crate::error::{ApiError, ApiResult};
use crate::time;
use serde_json::json;

/// Queues `m` and wakes the mailer once the job commits. Returns the outbox id.
pub fn enqueue(tx: &Tx, m: &NewMail) -> ApiResult<i64> {
    let id = outbox::insert(tx, m)?;
    tx.after_commit(Effect::MailQueued);
    Ok(id)
}

/// The last `max` bytes of `s` (`events::tail`), marked with how much was cut.
fn tail(s: &str, max: usize) -> String {
    match events::tail(s, max) {
        (t, false) => t.to_string(),
        (t, true) => format!("…[{} bytes cut]…{t}", s.len() - t.len()),
    }
}

/// Minimal HTML escaping for the `<pre>` version of a text mail.
fn html_pre(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!("<pre style=\"font-family: monospace\">{escaped}</pre>")
}

fn verb(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Completed => "completed",
        TaskStatus::Failed => "failed",
        TaskStatus::Timeout => "timed out",
        TaskStatus::Cancelled => "was cancelled",
        _ => "changed",
    }
}

/// The text of a task's result mail: status, exit code, duration and the tail of its output.
pub fn task_report(t: &Task, device: Option<&str>) -> String {
    let duration = match (&t.started_at, &t.completed_at) {
        (Some(a), Some(b)) => time::millis_between(a, b)
            .map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
            .unwrap_or_else(|| "-".into()),
        _ => "-".into(),
    };
    let mut out = format!(
        "Task {} {}.\n\nCommand:   {}\nDevice:    {}\nStatus:    {}\nExit code: {}\nDuration:  {}\n",
        t.id,
        verb(t.status),
        t.command,
        device.unwrap_or("any"),
        t.status,
        t.exit_code.map_or_else(|| "-".into(), |c| c.to_string()),
        duration,
    );
    if let Some(e) = &t.error_message {
        out.push_str(&format!("Error:     {}\n", tail(e, MAIL_OUTPUT_TAIL)));
    }
    for (name, s) in [("stdout", &t.stdout), ("stderr", &t.stderr)] {
        let s = s.as_deref().unwrap_or("");
        out.push_str(&format!(
            "\n--- {name} (last {MAIL_OUTPUT_TAIL} bytes) ---\n"
        ));
        out.push_str(if s.is_empty() { "(empty)\n" } else { "" });
        if !s.is_empty() {
            out.push_str(&tail(s, MAIL_OUTPUT_TAIL));
            if !s.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    out
}

/// Mails what a task's final state means (inside the job that made it final): to its owner
/// when `notify_email` is on and `message_id` is the notification written for it, and to the
/// sender of a task that came in by e-mail (a reply under their mail, with a `messages` row
/// written here if there is none yet, as for a cancel). One mail per address.
pub fn task_final(tx: &Tx, t: &Task, message_id: Option<i64>) -> ApiResult<()> {
    // The owner's address if they want the mail: one narrow read per result.
    let owner_to = match message_id {
        Some(_) => users::notify_address(tx, t.user_id)?,
        None => None,
    };
    if owner_to.is_none() && t.source != "email" {
        // The common case, on every daemon result: nothing to mail, nothing more to read.
        return Ok(());
    }
    let device = match t.claimed_by.or(t.device_id) {
        Some(d) => devices::get_by_id(tx, d)?.map(|d| d.name),
        None => None,
    };
    let report = task_report(t, device.as_deref());
    let short: String = t.command.chars().take(60).collect();
    let mut mailed: Vec<String> = Vec::new();
    if let (Some(to), Some(mid)) = (owner_to, message_id) {
        mailed.push(to.to_lowercase());
        enqueue(
            tx,
            &NewMail {
                user_id: Some(t.user_id),
                task_id: Some(t.id.clone()),
                message_id: Some(mid),
                kind: "task_result",
                to,
                subject: format!("Task {}: {short}", verb(t.status)),
                html: Some(html_pre(&report)),
                text: report.clone(),
                in_reply_to: None,
            },
        )?;
    }
    if t.source == "email"
        && let Some(inb) = inbound::for_task(tx, &t.id)?
        && let Some(sender) = inb.from_address
        && !mailed.contains(&sender.to_lowercase())
    {
        let mid = match message_id {
            Some(m) => m,
            None => events::insert_message(
                tx,
                &NewMessage {
                    user_id: t.user_id,
                    task_id: Some(&t.id),
                    device_id: t.claimed_by.or(t.device_id),
                    kind: "task_cancelled",
                    title: format!("Task {}: {short}", verb(t.status)),
                    content: t.error_message.clone(),
                    data: json!({"task_id": t.id, "status": t.status}),
                },
            )?,
        };
        let subject = inb.subject.unwrap_or_else(|| "[CCJK]".into());
        enqueue(
            tx,
            &NewMail {
                user_id: Some(t.user_id),
                task_id: Some(t.id.clone()),
                message_id: Some(mid),
                kind: "email_reply",
                to: sender,
                subject: format!("Re: {subject}"),
                html: Some(html_pre(&report)),
                text: report,
                in_reply_to: inb.message_id,
            },
        )?;
    }
    Ok(())
}

/// Mails a device's going offline to its owner when `notify_email` is on (inside the job that
/// recorded the transition; `message_id` is the notification it wrote).
pub fn device_offline(tx: &Tx, d: &BeatRow, message_id: i64) -> ApiResult<()> {
    let Some(to) = users::notify_address(tx, d.user_id)? else {
        return Ok(());
    };
    let text = format!(
        "Device {} ({}) stopped sending heartbeats and is now offline.\n\nTasks for it wait until \
         it comes back; tasks it was running are requeued or time out.\n",
        d.name, d.uuid
    );
    enqueue(
        tx,
        &NewMail {
            user_id: Some(d.user_id),
            message_id: Some(message_id),
            kind: "device_offline",
            to,
            subject: format!("Device {} is offline", d.name),
            html: Some(html_pre(&text)),
            text,
            ..NewMail::default()
        },
    )?;
    Ok(())
}

/// A mail someone asks the server to send (`POST /v1/email/send`, Lite's `/email/send`).
#[derive(serde::Deserialize, schemars::JsonSchema, Default, Clone, Debug)]
pub struct SendRequest {
    /// The caller's own address or one of their configured ones (an admin: any address).
    pub to: String,
    /// At most 998 characters, one line.
    pub subject: String,
    /// Plain text (Lite's name for `text`).
    pub body: Option<String>,
    /// Plain text.
    pub text: Option<String>,
    /// An HTML version.
    pub html: Option<String>,
}

/// May `user` have mail sent to `to`? Their own address, an active configured one, or any for
/// an admin.
fn may_send_to(cx: &Cx, user: &users::User, to: &str) -> ApiResult<bool> {
    Ok(user.is_admin
        || user.email.eq_ignore_ascii_case(to)
        || email_configs::is_users_address(cx.reader, user.id, to)?)
}

/// Queues a mail for `user`. Errors: 422 (address, subject, body), 403 `FORBIDDEN` for a
/// recipient that is neither theirs nor configured (non-admins), 403 `QUOTA_EXCEEDED` past
/// `MAX_SENDS_PER_DAY`.
pub fn send(cx: &Cx, user: &users::User, r: SendRequest) -> ApiResult<Mail> {
    let to = text::email(&r.to).map_err(|_| ApiError::invalid("to", "is not an email address"))?;
    let subject = r.subject.trim().to_string();
    if subject.is_empty()
        || subject.chars().count() > MAX_MAIL_SUBJECT
        || subject.contains(['\r', '\n'])
    {
        return Err(ApiError::invalid(
            "subject",
            format!("is required: one line of at most {MAX_MAIL_SUBJECT} characters"),
        ));
    }
    let body = r.text.or(r.body).unwrap_or_default();
    if body.trim().is_empty() && r.html.is_none() {
        return Err(ApiError::invalid(
            "text",
            "a body (text, body or html) is required",
        ));
    }
    if body.len() + r.html.as_ref().map_or(0, String::len) > MAX_MAIL_BODY {
        return Err(ApiError::invalid(
            "text",
            format!("text and html together are at most {MAX_MAIL_BODY} bytes"),
        ));
    }
    if !may_send_to(cx, user, &to)? {
        return Err(ApiError::forbidden(
            "Mail goes only to your own address or your configured addresses",
        ));
    }
    let (uid, admin) = (user.id, user.is_admin);
    let id = cx.write(move |tx| {
        check_daily(tx, uid, admin)?;
        enqueue(
            tx,
            &NewMail {
                user_id: Some(uid),
                kind: "send",
                to,
                subject,
                text: body,
                html: r.html,
                ..NewMail::default()
            },
        )
    })?;
    outbox_get(cx, uid, id)
}

/// Queues a test mail to the address of the user's config for `device` (a device's public
/// id), or of their own config, or their account's address. Errors: 404 for a device that is
/// not theirs.
pub fn test(cx: &Cx, user: &users::User, device: Option<&str>) -> ApiResult<Mail> {
    let device_id = crate::domain::email_config::device_of(cx, user.id, device)?;
    let to = match email_configs::get(cx.reader, user.id, device_id)? {
        Some(c) => c.email_address,
        None if device_id.is_some() => return Err(ApiError::not_found("E-mail config")),
        None => user.email.clone(),
    };
    let text = format!(
        "This is a test mail from ccjk-cloud to {to}.\n\nIf you can read it, mail from the server \
         reaches you.\n"
    );
    let (uid, admin) = (user.id, user.is_admin);
    let id = cx.write(move |tx| {
        check_daily(tx, uid, admin)?;
        enqueue(
            tx,
            &NewMail {
                user_id: Some(uid),
                kind: "test",
                to,
                subject: "ccjk-cloud test mail".into(),
                html: Some(html_pre(&text)),
                text,
                ..NewMail::default()
            },
        )
    })?;
    outbox_get(cx, uid, id)
}

/// The daily cap on mails a person asks for (`send` and `test`): configured addresses are not
/// verified, so a non-admin may have at most `MAX_SENDS_PER_DAY` queued per UTC day.
/// Errors: 403 `QUOTA_EXCEEDED`.
fn check_daily(tx: &Tx, user_id: i64, admin: bool) -> ApiResult<()> {
    let since = format!("{}T00:00:00.000Z", time::day(&time::now()));
    let used = outbox::requested_since(tx, user_id, &since)?;
    if !admin && used >= MAX_SENDS_PER_DAY {
        return Err(ApiError::quota("emails_per_day", MAX_SENDS_PER_DAY, used));
    }
    Ok(())
}

/// The user's outbox row. Errors: 404 (also for another user's id).
pub fn outbox_get(cx: &Cx, user_id: i64, id: i64) -> ApiResult<Mail> {
    outbox::get_for_user(cx.reader, user_id, id)?.ok_or_else(|| ApiError::not_found("Mail"))
}

/// A page of the user's outbox, newest first, optionally of one status. Errors: 422 for an
/// unknown status.
pub fn outbox_list(
    cx: &Cx,
    user_id: i64,
    status: Option<&str>,
    page: Page,
) -> ApiResult<Paged<Mail>> {
    let status = status.filter(|s| !s.is_empty());
    if let Some(s) = status
        && !outbox::STATUSES.contains(&s)
    {
        return Err(ApiError::invalid(
            "status",
            "must be queued, sent, failed or unsent",
        ));
    }
    let rows = outbox::list_for_user(cx.reader, user_id, status, page.limit + 1, page.offset)?;
    Ok(Paged::from_rows(rows, page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_cut_on_character_boundaries() {
        assert_eq!(tail("abc", 5), "abc");
        let t = tail("ééééé", 3);
        assert!(t.ends_with('é') && t.starts_with("…["), "{t}");
        assert_eq!(
            html_pre("<a&b>"),
            "<pre style=\"font-family: monospace\">&lt;a&amp;b&gt;</pre>"
        );
    }
}
