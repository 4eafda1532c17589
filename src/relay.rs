//! The e-mail relays' HTTP APIs (README "Mail"): one mail in, one HTTP call out, and what the
//! answer means for the outbox.
//!
//! Each provider gets its documented wire format: Resend `POST /emails` (JSON, Bearer,
//! `Idempotency-Key`), Postmark `POST /email` (JSON, `X-Postmark-Server-Token`), Mailgun
//! `POST /v3/{domain}/messages` (form, basic auth `api:KEY`), SendGrid `POST /v3/mail/send`
//! (JSON, Bearer), and the generic `webhook` (JSON `{from, to, subject, text, html}`, Bearer,
//! `Idempotency-Key`). `request` builds the call without sending it (so it can be tested byte
//! for byte); `send` makes it with `ureq` (connect timeout 5 s, whole call 20 s, no redirects)
//! and `classify` turns the answer into `Sent` (with the provider's message id), `Retry` (5xx,
//! 429, 408, timeouts, transport errors; with `Retry-After` when given) or `Failed` (any
//! other 4xx, keeping the provider's answer). This module never touches the database: the
//! mailer (`workers::mailer`) and `ccjk-cloud email test` call it.

use crate::config::{MailConfig, Provider};
use serde_json::{Value, json};
use std::time::Duration;

/// How much of a relay's answer is kept in `last_error` and printed by the CLI.
const ANSWER_KEPT: usize = 1000;
/// Most bytes of a relay's answer read.
const ANSWER_READ: u64 = 64 * 1024;

/// One mail as the relay gets it.
#[derive(Clone, Debug, Default)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// Message-ID of the mail this one answers (`In-Reply-To` and `References`).
    pub in_reply_to: Option<String>,
    /// Stable per outbox row: a relay that honours it sends a retried call once.
    pub idempotency_key: String,
}

/// An HTTP call to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What an attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Accepted; the provider's id of the message if it gave one.
    Sent { provider_id: Option<String> },
    /// Try again later, not before `retry_after` when the relay said so.
    Retry {
        error: String,
        retry_after: Option<Duration>,
    },
    /// Refused for good.
    Failed { error: String },
}

/// A configured relay.
pub struct Relay {
    provider: Provider,
    cfg: MailConfig,
    agent: ureq::Agent,
}

impl Relay {
    /// The relay of `cfg`, or `None` when no provider is configured (`CCJK_EMAIL_PROVIDER`
    /// unset or `none`). The settings were validated at start-up.
    pub fn new(cfg: &MailConfig) -> Option<Relay> {
        let provider = cfg.provider?;
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(cfg.connect_timeout))
            .timeout_global(Some(cfg.timeout))
            .max_redirects(0)
            .user_agent(format!("ccjk-cloud/{}", env!("CARGO_PKG_VERSION")))
            .build();
        Some(Relay {
            provider,
            cfg: cfg.clone(),
            agent: ureq::Agent::new_with_config(config),
        })
    }

    /// The provider's name (`resend`, …), for records and metrics.
    pub fn name(&self) -> &'static str {
        self.provider.name()
    }

    /// The call that sends `e` (not made).
    pub fn request(&self, e: &Email) -> Call {
        request(self.provider, &self.cfg, e)
    }

    /// Sends `e` and classifies the answer.
    pub fn send(&self, e: &Email) -> Delivery {
        let call = self.request(e);
        let mut b = self.agent.post(&call.url);
        for (k, v) in &call.headers {
            b = b.header(k, v);
        }
        match b.send(&call.body[..]) {
            Ok(mut r) => {
                let status = r.status().as_u16();
                let header = |name: &str| {
                    r.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                let (retry_after, message_id) = (header("retry-after"), header("x-message-id"));
                let body = r
                    .body_mut()
                    .with_config()
                    .limit(ANSWER_READ)
                    .read_to_vec()
                    .unwrap_or_default();
                let text = String::from_utf8_lossy(&body);
                classify(
                    self.provider,
                    status,
                    retry_after.as_deref(),
                    message_id.as_deref(),
                    &text,
                )
            }
            Err(ureq::Error::Timeout(t)) => Delivery::Retry {
                error: format!("relay did not answer in time ({t})"),
                retry_after: None,
            },
            Err(e) => Delivery::Retry {
                error: format!("relay unreachable: {e}"),
                retry_after: None,
            },
        }
    }
}

/// Wraps a Message-ID in angle brackets as mail headers carry it.
fn bracketed(id: &str) -> String {
    let id = id.trim();
    if id.starts_with('<') {
        id.to_string()
    } else {
        format!("<{}>", id.trim_end_matches('>'))
    }
}

/// The call `provider` documents for sending `e`.
pub fn request(provider: Provider, cfg: &MailConfig, e: &Email) -> Call {
    let base = cfg.base_url().unwrap_or_default();
    let key = cfg.api_key.clone().unwrap_or_default();
    let from = cfg.from.clone().unwrap_or_default();
    let reply = e.in_reply_to.as_deref().map(bracketed);
    let json_headers = |extra: Vec<(String, String)>| {
        let mut h = vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Accept".to_string(), "application/json".to_string()),
        ];
        h.extend(extra);
        h
    };
    let bearer = ("Authorization".to_string(), format!("Bearer {key}"));
    let idem = ("Idempotency-Key".to_string(), e.idempotency_key.clone());
    match provider {
        Provider::Resend => {
            let mut body =
                json!({"from": from, "to": [e.to], "subject": e.subject, "text": e.text});
            if let Some(h) = &e.html {
                body["html"] = json!(h);
            }
            if let Some(r) = &reply {
                body["headers"] = json!({"In-Reply-To": r, "References": r});
            }
            Call {
                url: format!("{base}/emails"),
                headers: json_headers(vec![bearer, idem]),
                body: body.to_string().into_bytes(),
            }
        }
        Provider::Postmark => {
            let mut body = json!({
                "From": from, "To": e.to, "Subject": e.subject, "TextBody": e.text,
                "MessageStream": "outbound",
            });
            if let Some(h) = &e.html {
                body["HtmlBody"] = json!(h);
            }
            if let Some(r) = &reply {
                body["Headers"] = json!([
                    {"Name": "In-Reply-To", "Value": r},
                    {"Name": "References", "Value": r},
                ]);
            }
            Call {
                url: format!("{base}/email"),
                headers: json_headers(vec![("X-Postmark-Server-Token".to_string(), key)]),
                body: body.to_string().into_bytes(),
            }
        }
        Provider::Mailgun => {
            let domain = cfg.mailgun_domain().unwrap_or_default();
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("from", &from)
                .append_pair("to", &e.to)
                .append_pair("subject", &e.subject)
                .append_pair("text", &e.text);
            if let Some(h) = &e.html {
                form.append_pair("html", h);
            }
            if let Some(r) = &reply {
                form.append_pair("h:In-Reply-To", r)
                    .append_pair("h:References", r);
            }
            Call {
                url: format!("{base}/v3/{domain}/messages"),
                headers: vec![
                    (
                        "Content-Type".to_string(),
                        "application/x-www-form-urlencoded".to_string(),
                    ),
                    (
                        "Authorization".to_string(),
                        format!("Basic {}", base64(format!("api:{key}").as_bytes())),
                    ),
                ],
                body: form.finish().into_bytes(),
            }
        }
        Provider::Sendgrid => {
            let mut content = vec![json!({"type": "text/plain", "value": e.text})];
            if let Some(h) = &e.html {
                content.push(json!({"type": "text/html", "value": h}));
            }
            let mut body = json!({
                "personalizations": [{"to": [{"email": e.to}]}],
                "from": sendgrid_address(&from),
                "subject": e.subject,
                "content": content,
            });
            if let Some(r) = &reply {
                body["headers"] = json!({"In-Reply-To": r, "References": r});
            }
            Call {
                url: format!("{base}/v3/mail/send"),
                headers: json_headers(vec![bearer]),
                body: body.to_string().into_bytes(),
            }
        }
        Provider::Webhook => {
            let mut body = json!({
                "from": from, "to": e.to, "subject": e.subject, "text": e.text, "html": e.html,
            });
            if let Some(r) = &reply {
                body["in_reply_to"] = json!(r);
            }
            Call {
                url: base,
                headers: json_headers(vec![bearer, idem]),
                body: body.to_string().into_bytes(),
            }
        }
    }
}

/// SendGrid's `{email, name?}` for a From of the form `Name <addr>` or `addr`.
fn sendgrid_address(from: &str) -> Value {
    match from.rsplit_once('<') {
        Some((name, addr)) => {
            let addr = addr.trim_end_matches('>').trim();
            let name = name.trim().trim_matches('"');
            if name.is_empty() {
                json!({"email": addr})
            } else {
                json!({"email": addr, "name": name})
            }
        }
        None => json!({"email": from.trim()}),
    }
}

/// What an HTTP answer from `provider` means for the mail.
pub fn classify(
    provider: Provider,
    status: u16,
    retry_after: Option<&str>,
    message_id_header: Option<&str>,
    body: &str,
) -> Delivery {
    let answer = || {
        let kept: String = body.trim().chars().take(ANSWER_KEPT).collect();
        format!("{} answered HTTP {status}: {kept}", provider.name())
    };
    match status {
        200..=299 => {
            let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
            let provider_id = match provider {
                Provider::Resend | Provider::Mailgun => field("id"),
                Provider::Postmark => field("MessageID"),
                Provider::Sendgrid => message_id_header.map(str::to_string),
                Provider::Webhook => field("id").or_else(|| field("message_id")),
            };
            Delivery::Sent { provider_id }
        }
        408 | 429 | 500..=599 => Delivery::Retry {
            error: answer(),
            retry_after: retry_after
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        },
        _ => Delivery::Failed { error: answer() },
    }
}

/// Standard base64 with padding (basic auth).
fn base64(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn answers_are_classified() {
        let sent = classify(Provider::Resend, 200, None, None, r#"{"id":"abc"}"#);
        assert_eq!(
            sent,
            Delivery::Sent {
                provider_id: Some("abc".into())
            }
        );
        let sg = classify(Provider::Sendgrid, 202, None, Some("sg-1"), "");
        assert_eq!(
            sg,
            Delivery::Sent {
                provider_id: Some("sg-1".into())
            }
        );
        match classify(Provider::Postmark, 429, Some("7"), None, "slow down") {
            Delivery::Retry { retry_after, error } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)));
                assert!(
                    error.contains("429") && error.contains("slow down"),
                    "{error}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(Provider::Mailgun, 503, None, None, ""),
            Delivery::Retry { .. }
        ));
        match classify(Provider::Webhook, 400, None, None, r#"{"error":"bad to"}"#) {
            Delivery::Failed { error } => assert!(error.contains("bad to"), "{error}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sendgrid_from_takes_the_display_name_apart() {
        assert_eq!(
            sendgrid_address("CCJK <ccjk@example.com>"),
            json!({"email": "ccjk@example.com", "name": "CCJK"})
        );
        assert_eq!(
            sendgrid_address("ccjk@example.com"),
            json!({"email": "ccjk@example.com"})
        );
        assert_eq!(bracketed("abc@x"), "<abc@x>");
        assert_eq!(bracketed("<abc@x>"), "<abc@x>");
    }
}
