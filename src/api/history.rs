//! `GET /api/rooms/{name}/messages`: pages backwards through a room's history, live or not.
//!
//! Served by the history reader: recent pages of live rooms come from memory, older ones from
//! the store once committed. A request never makes the writer flush, so REST traffic cannot
//! disturb how history is written.
//!
//! A page holds at most `limit` messages and at most MAX_PAGE_BYTES of them: it keeps the newest
//! that fit (always at least one) and says `"more": true` when the budget cut it short, so a
//! client asks again with `before` = the first id it got. Every page has `more`.

use axum::extract::State;
use axum::http::{header, Uri};
use axum::response::{IntoResponse, Response};

use super::params::{PageQuery, RoomName};
use super::viewer::Viewer;
use super::ApiError;
use crate::app::AppState;
use crate::history::InMemory;
use crate::protocol::frames::messages_object;
use crate::protocol::ChatRecord;
use crate::rooms::RoomLookup;

pub(super) async fn room_messages(
    State(app): State<AppState>,
    viewer: Viewer,
    RoomName(name): RoomName,
    uri: Uri,
) -> Result<Response, ApiError> {
    viewer.check(&name)?;
    let history = &app.config.history;
    let params = PageQuery::parse(uri.query(), history.max_page_size)?;
    let limit = params.limit.unwrap_or(history.max_history);
    let (recent, watermark) = match app.registry.lookup(&name) {
        RoomLookup::Live(room) => {
            let before = params.before.unwrap_or(u64::MAX);
            (
                room.recent_page(before, limit),
                Some(room.watermark().clone()),
            )
        }
        RoomLookup::Retired(watermark) => (Vec::new(), Some(watermark)),
        RoomLookup::Unknown => (Vec::new(), None),
    };
    let memory = InMemory {
        recent: &recent,
        watermark: watermark.as_deref(),
    };
    let records = app
        .reader
        .page(&name, memory, params.before, limit)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "reading history failed");
            ApiError::Unavailable("history store unavailable".into())
        })?;
    let records: Vec<&ChatRecord> = records.iter().map(|r| &**r).collect();
    let first = first_within_budget(&records, history.max_page_bytes);
    let tail = if first > 0 {
        r#","more":true"#
    } else {
        r#","more":false"#
    };
    let body = messages_object("", &name, records[first..].iter().copied(), tail);
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The index of the oldest record kept when the newest ones are kept up to `budget` bytes of
/// JSON (each message plus its comma); the newest is kept whatever its size.
fn first_within_budget(records: &[&ChatRecord], budget: usize) -> usize {
    let mut used = 0;
    for (i, record) in records.iter().enumerate().rev() {
        used += record.frame.text().len() + 1;
        if used > budget && i + 1 < records.len() {
            return i + 1;
        }
    }
    0
}
