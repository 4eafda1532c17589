//! `/v1` handlers for messages (README "Mail"): the caller's notifications, read state and
//! deletion, over `domain::messages`.

use crate::db::messages::Message;
use crate::domain::messages;
use crate::error::ApiResult;
use crate::http::route::{self, Call, PageQuery, Query};
use crate::http::views::{PageInfo, json_col};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A notification.
#[derive(Serialize, JsonSchema)]
pub struct MessageView {
    pub id: i64,
    /// `task_completed`, `task_failed`, `task_cancelled`, `device_online`, `device_offline`,
    /// `email_rejected`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub content: Option<String>,
    /// What the message is about (`task_id`, `status`, `exit_code`, `device_id`, …).
    pub data: Value,
    pub task_id: Option<String>,
    /// The device's public id.
    pub device_id: Option<String>,
    pub read: bool,
    pub read_at: Option<String>,
    /// The message went out by e-mail (the relay accepted it).
    pub sent_via_email: bool,
    pub sent_via_push: bool,
    pub created_at: String,
}

impl From<&Message> for MessageView {
    fn from(m: &Message) -> MessageView {
        MessageView {
            id: m.id,
            kind: m.kind.clone(),
            title: m.title.clone(),
            content: m.content.clone(),
            data: json_col(m.data.as_deref()),
            task_id: m.task_id.clone(),
            device_id: m.device_uuid.clone(),
            read: m.read_at.is_some(),
            read_at: m.read_at.clone(),
            sent_via_email: m.sent_via_email,
            sent_via_push: m.sent_via_push,
            created_at: m.created_at.clone(),
        }
    }
}

/// Filter of the message list.
#[derive(Deserialize, JsonSchema, Default)]
pub struct UnreadFilter {
    /// `true`: unread messages only.
    pub unread: Option<bool>,
}

/// A page of messages and the unread count.
#[derive(Serialize, JsonSchema)]
pub struct MessageList {
    pub messages: Vec<MessageView>,
    /// Unread messages in all (not only on this page).
    pub unread_count: i64,
    #[serde(flatten)]
    pub page: PageInfo,
}

/// `GET /v1/messages?unread=&limit=&offset=`: newest first.
pub fn list(
    call: &Call,
    (Query(p), Query(f)): (Query<PageQuery>, Query<UnreadFilter>),
) -> ApiResult<MessageList> {
    let uid = call.user()?.user_id();
    let (page, unread) = messages::list(&call.cx, uid, f.unread.unwrap_or(false), p.page()?)?;
    Ok(MessageList {
        page: PageInfo::of(&page),
        unread_count: unread,
        messages: page.items.iter().map(MessageView::from).collect(),
    })
}

/// One message.
#[derive(Serialize, JsonSchema)]
pub struct MessageOne {
    pub message: MessageView,
}

/// `POST /v1/messages/{id}/read`.
pub fn read(call: &Call, _: ()) -> ApiResult<MessageOne> {
    let m = messages::read(&call.cx, call.user()?.user_id(), call.param("id"))?;
    Ok(MessageOne {
        message: (&m).into(),
    })
}

/// How many messages changed.
#[derive(Serialize, JsonSchema)]
pub struct Updated {
    pub updated: usize,
}

/// `POST /v1/messages/read-all`.
pub fn read_all(call: &Call, _: ()) -> ApiResult<Updated> {
    let n = messages::read_all(&call.cx, call.user()?.user_id())?;
    Ok(Updated { updated: n })
}

/// `DELETE /v1/messages/{id}`.
pub fn delete(call: &Call, _: ()) -> ApiResult<route::Message> {
    messages::delete(&call.cx, call.user()?.user_id(), call.param("id"))?;
    Ok(route::Message::new("Message deleted"))
}
