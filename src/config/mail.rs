//! The outbound-mail settings (`CCJK_EMAIL_*`, README "Configuration" and "Mail"): which relay,
//! its credentials and URL, and the mailer's timing. `Config::from_vars` reads the variables;
//! this file holds the types and their checks.

use std::time::Duration;

/// The e-mail relay the mailer sends through (`CCJK_EMAIL_PROVIDER`; README "Mail").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// Resend: `POST {base}/emails`, JSON, Bearer key, `Idempotency-Key` honoured.
    Resend,
    /// Postmark: `POST {base}/email`, JSON, `X-Postmark-Server-Token`.
    Postmark,
    /// Mailgun: `POST {base}/v3/{domain}/messages`, form, basic auth `api:KEY`.
    Mailgun,
    /// SendGrid: `POST {base}/v3/mail/send`, JSON, Bearer key.
    Sendgrid,
    /// Any endpoint taking `{from, to, subject, text, html}` JSON with a Bearer key.
    Webhook,
}

impl Provider {
    /// Parses `CCJK_EMAIL_PROVIDER`; `Ok(None)` for `none` or empty.
    pub fn parse(v: &str) -> Result<Option<Provider>, String> {
        Ok(Some(match v.trim().to_ascii_lowercase().as_str() {
            "" | "none" => return Ok(None),
            "resend" => Provider::Resend,
            "postmark" => Provider::Postmark,
            "mailgun" => Provider::Mailgun,
            "sendgrid" => Provider::Sendgrid,
            "webhook" => Provider::Webhook,
            _ => {
                return Err(format!(
                    "CCJK_EMAIL_PROVIDER: {v:?} is not resend, postmark, mailgun, sendgrid, \
                     webhook or none"
                ));
            }
        }))
    }

    /// The name used in settings, logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Resend => "resend",
            Provider::Postmark => "postmark",
            Provider::Mailgun => "mailgun",
            Provider::Sendgrid => "sendgrid",
            Provider::Webhook => "webhook",
        }
    }

    /// The provider's documented API base URL (`None` for `webhook`, which has no default).
    pub fn default_base(self) -> Option<&'static str> {
        match self {
            Provider::Resend => Some("https://api.resend.com"),
            Provider::Postmark => Some("https://api.postmarkapp.com"),
            Provider::Mailgun => Some("https://api.mailgun.net"),
            Provider::Sendgrid => Some("https://api.sendgrid.com"),
            Provider::Webhook => None,
        }
    }
}

/// Outbound mail settings (`CCJK_EMAIL_*`). `provider: None` keeps mail in the outbox as
/// `unsent`.
#[derive(Clone, Debug, Default)]
pub struct MailConfig {
    /// `CCJK_EMAIL_PROVIDER`, default `none`.
    pub provider: Option<Provider>,
    /// `CCJK_EMAIL_API_KEY`: required with a provider.
    pub api_key: Option<String>,
    /// `CCJK_EMAIL_FROM`, e.g. `CCJK <ccjk@example.com>`: required with a provider.
    pub from: Option<String>,
    /// `CCJK_EMAIL_API_URL`: overrides the provider's base URL (self-hosted relays, EU regions,
    /// tests); required for `webhook`, where it is the full endpoint.
    pub api_url: Option<String>,
    /// `CCJK_EMAIL_DOMAIN`: Mailgun's sending domain (default: the domain of the From address).
    pub domain: Option<String>,
    /// Connect timeout of a relay call (5 s).
    pub connect_timeout: Duration,
    /// Whole-call timeout of a relay call (20 s). Tests shorten it.
    pub timeout: Duration,
    /// Delay before the second attempt; each later one doubles it (with ±20 % jitter), so ten
    /// attempts span about a day at the default of 3 minutes. `CCJK_EMAIL_RETRY_BASE`, meant
    /// for tests (so that retries do not take a day), not for production.
    pub backoff_base: Duration,
}

impl MailConfig {
    /// Problems with the relay settings: with a provider, the key and the From address are
    /// required, `webhook` needs `CCJK_EMAIL_API_URL`, and URLs must be http(s).
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        let Some(p) = self.provider else {
            return errs;
        };
        let name = p.name();
        if self.api_key.is_none() {
            errs.push(format!(
                "CCJK_EMAIL_API_KEY is required with CCJK_EMAIL_PROVIDER={name}"
            ));
        }
        match self.from.as_deref() {
            None => errs.push(format!(
                "CCJK_EMAIL_FROM is required with CCJK_EMAIL_PROVIDER={name}"
            )),
            Some(f) if !f.contains('@') || f.contains(['\r', '\n']) => {
                errs.push(format!("CCJK_EMAIL_FROM: {f:?} is not an e-mail address"))
            }
            Some(_) => {}
        }
        match self.api_url.as_deref() {
            None if p == Provider::Webhook => {
                errs.push("CCJK_EMAIL_API_URL is required with CCJK_EMAIL_PROVIDER=webhook".into())
            }
            Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                errs.push(format!("CCJK_EMAIL_API_URL: {u:?} is not an http(s) URL"))
            }
            _ => {}
        }
        if !cfg!(feature = "tls")
            && let Some(u) = self.base_url()
            && !u.starts_with("http://")
        {
            errs.push(format!(
                "CCJK_EMAIL_API_URL: this binary was built without TLS (the `tls` feature), so \
                 the relay must be an http:// URL, not {u:?}"
            ));
        }
        if p == Provider::Mailgun && self.mailgun_domain().is_none() {
            errs.push("CCJK_EMAIL_DOMAIN is required with CCJK_EMAIL_PROVIDER=mailgun".into());
        }
        errs
    }

    /// The base URL calls go to: `CCJK_EMAIL_API_URL`, else the provider's own.
    pub fn base_url(&self) -> Option<String> {
        self.api_url
            .clone()
            .or_else(|| self.provider?.default_base().map(str::to_string))
    }

    /// Mailgun's sending domain: `CCJK_EMAIL_DOMAIN`, else the From address's domain.
    pub fn mailgun_domain(&self) -> Option<String> {
        self.domain.clone().or_else(|| {
            let from = self.from.as_deref()?;
            let addr = from.rsplit_once('<').map_or(from, |(_, a)| a);
            let d = addr.rsplit_once('@')?.1.trim_end_matches('>').trim();
            (!d.is_empty()).then(|| d.to_string())
        })
    }
}
