//! `GET /v1/events`: the caller's Server-Sent Events stream (docs/events.md). The handler only
//! checks the cap and says what the stream needs; the events thread (`workers::events`) writes
//! it, so the stream holds no worker thread.

use crate::db::effects::EventKind;
use crate::error::{ApiError, ApiResult};
use crate::http::events::StreamSpec;
use crate::http::route::{Call, Out, Query, presented};
use schemars::JsonSchema;
use serde::Deserialize;

/// Query parameters of an event stream.
#[derive(Deserialize, JsonSchema, Default)]
pub struct EventsQuery {
    /// The credential, for clients that cannot send headers (a browser's `EventSource`); kept
    /// out of the access log. A header or the panel's cookie works too.
    #[allow(dead_code)] // read by the auth layer (`route::presented`); listed for the document
    pub token: Option<String>,
    /// Resume after this event id, like the `Last-Event-ID` header (which wins when both are
    /// sent).
    pub last_event_id: Option<String>,
}

/// Every event kind, in the order of docs/events.md.
const KINDS: [EventKind; 6] = [
    EventKind::DeviceOnline,
    EventKind::DeviceOffline,
    EventKind::TaskCreated,
    EventKind::TaskUpdated,
    EventKind::TaskCompleted,
    EventKind::MessageNew,
];

/// `GET /v1/events`. Errors: 401, 403 `INSUFFICIENT_SCOPE`, 429 when the user has
/// `CCJK_EVENT_STREAMS_PER_USER` streams open.
pub fn stream(call: &Call, Query(q): Query<EventsQuery>) -> ApiResult<Out<()>> {
    let u = call.user()?;
    let sources = call
        .app
        .table
        .get(call.req.route.unwrap_or(usize::MAX))
        .map(|r| r.sources)
        .unwrap_or_default();
    let (token, _) = presented(call.req, call.cx.cfg(), sources)
        .ok_or_else(|| ApiError::unauthorized("Missing credentials"))?;
    let last_event_id = call
        .req
        .header("last-event-id")
        .map(str::to_string)
        .or(q.last_event_id);
    call.app
        .events
        .reserve(u.user_id(), call.cx.cfg().event_streams_per_user)?;
    Ok(Out::Stream(StreamSpec {
        user_id: u.user_id(),
        token: token.to_string(),
        hears: KINDS.into_iter().filter(|k| u.has(k.scope())).collect(),
        last_event_id,
    }))
}
