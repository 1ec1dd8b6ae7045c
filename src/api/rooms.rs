//! `GET /api/rooms` and `GET /api/rooms/{name}`: the live rooms and who is in them.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use serde_json::json;

use super::params::RoomName;
use super::viewer::Viewer;
use super::ApiError;
use crate::app::AppState;

#[derive(Serialize)]
pub(super) struct RoomSummary {
    name: String,
    user_count: usize,
}

/// The live rooms (in token mode, those the token may join).
pub(super) async fn list_rooms(
    State(app): State<AppState>,
    viewer: Viewer,
) -> Json<Vec<RoomSummary>> {
    let rooms = app
        .registry
        .rooms()
        .into_iter()
        .filter(|room| viewer.may_see(room.name()))
        .map(|room| RoomSummary {
            name: room.name().to_string(),
            user_count: room.user_count(),
        })
        .collect();
    Json(rooms)
}

pub(super) async fn room_details(
    State(app): State<AppState>,
    viewer: Viewer,
    RoomName(name): RoomName,
) -> Result<Json<serde_json::Value>, ApiError> {
    viewer.check(&name)?;
    let room = app
        .registry
        .get(&name)
        .ok_or_else(|| ApiError::NotFound(format!("room \"{name}\" not found")))?;
    let users = room.users();
    Ok(Json(json!({
        "name": name,
        "user_count": users.len(),
        "users": users,
    })))
}
