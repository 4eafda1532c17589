//! Lite's config backups and statistics (README "Backups, logs and statistics"): `POST
//! /config/backup` {name, config}, `GET /config/backups`, `POST /config/restore/{id}` and `GET
//! /stats?period=`, in Lite's envelope, over the same domain functions as `/v1`. A device key
//! reaches its own device's backups and statistics; a session token or API key the user's.

use crate::domain::backups::{self, NewDocument};
use crate::domain::stats::{self, Period};
use crate::error::ApiResult;
use crate::http::route::{Auth, Call, Json, PageQuery, PersonOrDevice, Query, Route, get, post};
use crate::http::routes::v1::config::{BackupView, owner, raw};
use crate::http::routes::v1::stats::PeriodQuery;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Lite's backup and statistics routes.
#[rustfmt::skip]
pub fn routes() -> Vec<Route> {
    let owner = |scope| Auth::UserOrDevice(scope);
    vec![
        post("/config/backup").auth(owner("config:write"))
            .to("Back up a config, stored exactly as sent", backup),
        get("/config/backups").auth(owner("config:read"))
            .to("Backups, newest first", list),
        post("/config/restore/{id}").auth(owner("config:read"))
            .to("The stored config, byte for byte", restore),
        get("/stats").auth(owner("stats:read"))
            .to("Tasks completed and failed, uptime hours (?period=7d)", stats),
    ]
}

/// Lite's backup request.
#[derive(Deserialize, JsonSchema)]
pub struct LiteBackupBody {
    /// 1–100 characters.
    pub name: String,
    /// Any JSON document; stored and restored exactly as sent.
    pub config: Box<RawValue>,
    /// An automatic backup: only the newest 10 per device are kept.
    #[serde(default)]
    pub is_auto: bool,
}

/// The new backup's id.
#[derive(Serialize, JsonSchema)]
pub struct BackupId {
    pub backup_id: i64,
}

/// `POST /config/backup` {name, config}.
fn backup(call: &Call, Json(b): Json<LiteBackupBody>) -> ApiResult<BackupId> {
    let doc = NewDocument {
        device: None,
        name: b.name,
        json: b.config.get().to_string(),
        is_auto: b.is_auto,
        fields: backups::LITE_FIELDS,
    };
    let created = backups::create(&call.cx, owner(call)?, doc)?;
    Ok(BackupId {
        backup_id: created.id,
    })
}

/// Lite's backup list.
#[derive(Serialize, JsonSchema)]
pub struct LiteBackupList {
    pub backups: Vec<BackupView>,
    pub next_cursor: Option<String>,
}

/// `GET /config/backups?limit=&offset=`.
fn list(call: &Call, Query(p): Query<PageQuery>) -> ApiResult<LiteBackupList> {
    let page = backups::list(&call.cx, owner(call)?, None, p.page()?)?;
    Ok(LiteBackupList {
        next_cursor: page.next_cursor(),
        backups: page.items.iter().map(BackupView::from).collect(),
    })
}

/// A restored config.
#[derive(Serialize, JsonSchema)]
pub struct LiteRestored {
    pub backup_id: i64,
    pub name: String,
    /// The config exactly as it was sent.
    pub config: Box<RawValue>,
    pub created_at: String,
}

/// `POST /config/restore/{id}`.
fn restore(call: &Call, _: ()) -> ApiResult<LiteRestored> {
    let (b, doc) = backups::get(&call.cx, owner(call)?, call.param("id"))?;
    Ok(LiteRestored {
        backup_id: b.id,
        name: b.name,
        config: raw(doc)?,
        created_at: b.created_at,
    })
}

/// Lite's statistics.
#[derive(Serialize, JsonSchema)]
pub struct LiteStats {
    /// `24h`, `7d`, `30d` or `90d`.
    pub period: &'static str,
    pub tasks_completed: i64,
    /// Failed or timed out.
    pub tasks_failed: i64,
    /// Online time of the UTC days the period touches.
    pub uptime_hours: f64,
}

/// `GET /stats?period=7d`: the calling device's with a device key, else the user's.
fn stats(call: &Call, Query(q): Query<PeriodQuery>) -> ApiResult<LiteStats> {
    let p = Period::parse(q.period.as_deref())?;
    let s = match call.person_or_device()? {
        PersonOrDevice::Device(d) => stats::device(&call.cx, d.user_id, &d.uuid, p)?.summary,
        PersonOrDevice::User(u) => stats::summary(&call.cx, u.user_id(), p)?,
    };
    Ok(LiteStats {
        period: s.period,
        tasks_completed: s.tasks_completed,
        tasks_failed: s.tasks_failed,
        uptime_hours: s.uptime_hours,
    })
}
