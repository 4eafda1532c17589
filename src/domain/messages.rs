//! A user's notifications (README "Mail"): list (all or unread), mark one or all read,
//! delete. Messages are written by the events themselves (`domain::lifecycle`,
//! `domain::daemon`, `domain::inbound`); ids are looked up inside the caller's own data, and an
//! id that is not a number answers like a missing one (404).

use crate::db::messages::{self, Message};
use crate::domain::{Cx, Page, Paged};
use crate::error::{ApiError, ApiResult};

/// A message id from a path; anything else is a missing message.
fn parse_id(id: &str) -> ApiResult<i64> {
    id.parse().map_err(|_| ApiError::not_found("Message"))
}

/// A page of the user's messages, newest first (unread ones only with `unread_only`), and how
/// many are unread in all.
pub fn list(
    cx: &Cx,
    user_id: i64,
    unread_only: bool,
    page: Page,
) -> ApiResult<(Paged<Message>, i64)> {
    let rows = messages::list(cx.reader, user_id, unread_only, page.limit + 1, page.offset)?;
    Ok((
        Paged::from_rows(rows, page),
        messages::unread_count(cx.reader, user_id)?,
    ))
}

/// Marks the user's message read and returns it. Errors: 404.
pub fn read(cx: &Cx, user_id: i64, id: &str) -> ApiResult<Message> {
    let id = parse_id(id)?;
    cx.write(move |tx| {
        if !messages::mark_read(tx, user_id, id)? {
            return Err(ApiError::not_found("Message"));
        }
        messages::get(tx, user_id, id)?.ok_or_else(|| ApiError::not_found("Message"))
    })
}

/// Marks every unread message of the user read; returns how many were.
pub fn read_all(cx: &Cx, user_id: i64) -> ApiResult<usize> {
    cx.write(move |tx| Ok(messages::mark_all_read(tx, user_id)?))
}

/// Deletes the user's message. Errors: 404.
pub fn delete(cx: &Cx, user_id: i64, id: &str) -> ApiResult<()> {
    let id = parse_id(id)?;
    if cx.write(move |tx| Ok(messages::delete(tx, user_id, id)?))? {
        Ok(())
    } else {
        Err(ApiError::not_found("Message"))
    }
}
