//! `GET /ws`: admission, then the upgrade, then a session for the connection.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::response::Response;

use super::ApiError;
use crate::app::AppState;
use crate::session;
use crate::ws::WsUpgrade;

pub(super) async fn upgrade(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Result<Response, ApiError> {
    let (mut parts, _body) = request.into_parts();
    // Admission first: a bad name is the likelier mistake and gets the clearer answer.
    let client = app.admission.admit(&parts, peer)?;
    if app.is_shutting_down() {
        return Err(ApiError::Unavailable("server is shutting down".into()));
    }
    let ws = WsUpgrade::from_request_parts(&mut parts, &()).await?;
    let (response, connection) = ws.accept(app.admission.ws_config());
    // Spawned on the session tracker, so shutdown also waits for upgrades in flight. The upgrade
    // future is boxed so its state is freed once it completes instead of staying in the task.
    let connection = Box::pin(connection);
    let sessions = app.sessions.clone();
    sessions.spawn(async move {
        if let Some(connection) = connection.await {
            session::run(connection, app, client).await;
        }
    });
    Ok(response)
}
