//! `GET /api/rooms` and `GET /api/rooms/{name}`: the live rooms and who is in them.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use serde_json::json;

use super::params::RoomName;
use super::ApiError;
use crate::app::AppState;

#[derive(Serialize)]
pub(super) struct RoomSummary {
    name: String,
    user_count: usize,
}

pub(super) async fn list_rooms(State(app): State<AppState>) -> Json<Vec<RoomSummary>> {
    let rooms = app
        .registry
        .rooms()
        .into_iter()
        .map(|room| RoomSummary {
            name: room.name().to_string(),
            user_count: room.user_count(),
        })
        .collect();
    Json(rooms)
}

pub(super) async fn room_details(
    State(app): State<AppState>,
    RoomName(name): RoomName,
) -> Result<Json<serde_json::Value>, ApiError> {
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
