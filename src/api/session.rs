//! `GET /api/session`: who the server would let this client connect as — checked exactly as the
//! WebSocket upgrade checks it (origin, host, name rules or token), without connecting. A browser
//! cannot read why a handshake failed, so the page asks here first and shows the reason.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::Json;
use serde_json::{json, Value};

use super::ApiError;
use crate::app::AppState;

pub(super) async fn check(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, _body) = request.into_parts();
    let (user, grant) = app.admission.check_identity(&parts, peer)?;
    Ok(Json(match grant {
        None => json!({ "user": user, "mode": "open" }),
        Some(grant) => json!({
            "user": user,
            "mode": "token",
            "rooms": grant.rooms.as_ref().map(|r| r.patterns()),
            "expires_at": grant.expires_at,
        }),
    }))
}
