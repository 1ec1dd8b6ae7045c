//! `GET /api/rooms/{name}/messages`: pages backwards through a room's history, live or not.
//!
//! Served by the history reader: recent pages of live rooms come from memory, older ones from
//! the store once committed. A request never makes the writer flush, so REST traffic cannot
//! disturb how history is written.

use axum::extract::State;
use axum::http::{header, Uri};
use axum::response::{IntoResponse, Response};

use super::params::{PageQuery, RoomName};
use super::ApiError;
use crate::app::AppState;
use crate::history::InMemory;
use crate::protocol::frames::messages_object;
use crate::rooms::RoomLookup;

pub(super) async fn room_messages(
    State(app): State<AppState>,
    RoomName(name): RoomName,
    uri: Uri,
) -> Result<Response, ApiError> {
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
    let body = messages_object("", &name, records.iter().map(|r| &**r), "");
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
