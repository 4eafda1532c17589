//! `ccjk-cloud email test TO` and `outbox [list|retry ID]` (README "Operations"): a test mail
//! straight through the configured relay, and the outbox as an admin sees it.

use crate::config::Config;
use crate::db::Db;

/// `email test TO`: sends a test mail through the configured relay at once (not through the
/// outbox) and prints the relay's answer. Errors: no relay configured, or the relay refused.
pub fn email(cfg: &Config, args: &[String]) -> Result<(), String> {
    let [sub, to] = args else {
        return Err("usage: ccjk-cloud email test TO".into());
    };
    if sub != "test" {
        return Err("usage: ccjk-cloud email test TO".into());
    }
    let to = crate::domain::text::email(to).map_err(|_| format!("{to:?} is not an address"))?;
    let relay = crate::relay::Relay::new(&cfg.mail)
        .ok_or("no relay is configured: set CCJK_EMAIL_PROVIDER and its settings")?;
    let mail = crate::relay::Email {
        to: to.clone(),
        subject: "ccjk-cloud test mail".into(),
        text: format!(
            "This is a test mail from ccjk-cloud to {to}, sent with `ccjk-cloud email test`.\n"
        ),
        html: None,
        in_reply_to: None,
        idempotency_key: format!("ccjk-test-{}", uuid::Uuid::new_v4()),
    };
    let call = relay.request(&mail);
    println!("POST {} ({})", call.url, relay.name());
    match relay.send(&mail) {
        crate::relay::Delivery::Sent { provider_id } => {
            println!(
                "sent; provider message id: {}",
                provider_id.as_deref().unwrap_or("(none given)")
            );
            Ok(())
        }
        crate::relay::Delivery::Retry { error, retry_after } => Err(format!(
            "not sent (the mailer would retry{}): {error}",
            retry_after.map_or(String::new(), |r| format!(" after {}s", r.as_secs()))
        )),
        crate::relay::Delivery::Failed { error } => Err(format!("refused: {error}")),
    }
}

/// `outbox [list]` and `outbox retry ID`: the newest mails, or queue one again (a running
/// server's mailer picks it up within 15 s).
pub fn outbox(cfg: &Config, args: &[String]) -> Result<(), String> {
    let db = Db::open(&cfg.db_path, cfg.synchronous).map_err(|e| e.to_string())?;
    match args {
        [] => outbox_list(&db),
        [l] if l == "list" => outbox_list(&db),
        [r, id] if r == "retry" => {
            let id: i64 = id.parse().map_err(|_| format!("{id:?} is not a mail id"))?;
            let done = db
                .write(move |tx| Ok(crate::db::outbox::requeue(tx, id)?))
                .map_err(|e| e.message)?;
            if done {
                println!("mail #{id} queued again");
                Ok(())
            } else {
                Err(format!("no mail #{id}, or it was already sent"))
            }
        }
        _ => Err("usage: ccjk-cloud outbox [list | retry ID]".into()),
    }
}

fn outbox_list(db: &Db) -> Result<(), String> {
    let reader = db.reader().map_err(|e| e.to_string())?;
    let rows = crate::db::outbox::list_recent(&reader, 50).map_err(|e| e.to_string())?;
    println!(
        "{:>6}  {:<7} {:>3}  {:<24} {:<28} {:<32} last error / provider id",
        "id", "status", "try", "created_at", "to", "subject"
    );
    for m in rows {
        let subject: String = m.subject.chars().take(32).collect();
        let note = match m.status.as_str() {
            "sent" => m.provider_message_id.clone().unwrap_or_default(),
            _ => m
                .last_error
                .clone()
                .unwrap_or_default()
                .chars()
                .take(80)
                .collect(),
        };
        println!(
            "{:>6}  {:<7} {:>3}  {:<24} {:<28} {:<32} {}",
            m.id, m.status, m.attempts, m.created_at, m.to, subject, note
        );
    }
    Ok(())
}
