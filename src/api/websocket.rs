//! `GET /ws`: admission, then the upgrade, then a session for the connection.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::response::Response;

use super::ApiError;
use crate::app::AppState;
use crate::protocol::frames;
use crate::session;
use crate::ws::WsUpgrade;

pub(super) async fn upgrade(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Result<Response, ApiError> {
    let (mut parts, _body) = request.into_parts();
    // A request that is no upgrade at all is told so before it costs any budget; then
    // admission, before any upgrade work: who, from where, how many.
    let ws = WsUpgrade::from_request_parts(&mut parts, &()).await?;
    let admitted = app
        .admission
        .admit(&parts, peer, app.is_shutting_down())
        .inspect_err(|refusal| refusal.count())?;
    let (response, connection) = ws.accept(app.admission.ws_config(), admitted.subprotocol);
    // Spawned on the session tracker, so shutdown also waits for upgrades in flight. The upgrade
    // future is boxed so its state is freed once it completes instead of staying in the task.
    let connection = Box::pin(connection);
    let greeting = admitted
        .resume_ticket
        .as_deref()
        .map(|ticket| frames::welcome(&admitted.client.user, ticket));
    let sessions = app.sessions.clone();
    sessions.spawn(async move {
        if let Some(connection) = connection.await {
            let permit = admitted.permit; // the connection's place in the limits, until it ends
            session::run(connection, app, admitted.client, greeting).await;
            drop(permit);
        }
    });
    Ok(response)
}
