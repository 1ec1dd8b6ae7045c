//! The WebSocket opening handshake (RFC 6455 §4.2) as an axum extractor.
//!
//! Unlike axum's `WebSocketUpgrade`, it hands over the raw TCP stream rather than a
//! tokio-tungstenite stream, so [`WsConnection`] owns every byte of write-side state.

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hyper::upgrade::OnUpgrade;
use serde_json::json;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::WsConnection;

/// A valid WebSocket upgrade request, ready to be accepted.
pub struct WsUpgrade {
    accept_key: String,
    on_upgrade: OnUpgrade,
}

/// Why a request to a WebSocket endpoint is not a valid upgrade.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeRejection {
    #[error("WebSocket upgrades must use GET")]
    NotGet,
    #[error("not a WebSocket upgrade: the Connection header must include \"upgrade\"")]
    NoConnectionUpgrade,
    #[error("not a WebSocket upgrade: the Upgrade header must be \"websocket\"")]
    NotWebSocket,
    #[error("unsupported WebSocket version: Sec-WebSocket-Version must be 13")]
    BadVersion,
    #[error("missing Sec-WebSocket-Key header")]
    NoKey,
    #[error("this connection cannot be upgraded")]
    NotUpgradable,
}

impl IntoResponse for UpgradeRejection {
    fn into_response(self) -> Response {
        let status = match self {
            UpgradeRejection::NotGet => StatusCode::METHOD_NOT_ALLOWED,
            UpgradeRejection::BadVersion => StatusCode::UPGRADE_REQUIRED,
            UpgradeRejection::NotUpgradable => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut response = (status, Json(json!({ "error": self.to_string() }))).into_response();
        if status == StatusCode::UPGRADE_REQUIRED {
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        response
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WsUpgrade {
    type Rejection = UpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if parts.method != Method::GET {
            return Err(UpgradeRejection::NotGet);
        }
        let headers = &parts.headers;
        if !has_token(headers, header::CONNECTION, "upgrade") {
            return Err(UpgradeRejection::NoConnectionUpgrade);
        }
        if !has_token(headers, header::UPGRADE, "websocket") {
            return Err(UpgradeRejection::NotWebSocket);
        }
        if headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            return Err(UpgradeRejection::BadVersion);
        }
        let key = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or(UpgradeRejection::NoKey)?;
        let accept_key = derive_accept_key(key.as_bytes());
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(UpgradeRejection::NotUpgradable)?;
        Ok(WsUpgrade {
            accept_key,
            on_upgrade,
        })
    }
}

impl WsUpgrade {
    /// The `101 Switching Protocols` response, and the connection it turns into once hyper has
    /// sent it (`None` if the client went away first). Spawn the connection's work; return the
    /// response from the handler.
    /// `subprotocol` is selected in the response (it must be one the client offered).
    pub fn accept(
        self,
        config: WebSocketConfig,
        subprotocol: Option<&'static str>,
    ) -> (
        Response,
        impl std::future::Future<Output = Option<WsConnection>> + Send + 'static,
    ) {
        let mut response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_ACCEPT, self.accept_key);
        if let Some(subprotocol) = subprotocol {
            response = response.header(header::SEC_WEBSOCKET_PROTOCOL, subprotocol);
        }
        let response = response
            .body(Body::empty())
            .expect("static headers and a derived key are valid");
        let on_upgrade = self.on_upgrade;
        let connection = async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(error) => {
                    tracing::debug!(%error, "client left during the WebSocket upgrade");
                    return None;
                }
            };
            match crate::net::upgraded_tcp(upgraded) {
                Some((tcp, read_buf)) => Some(WsConnection::new(tcp, &read_buf, config)),
                None => {
                    tracing::error!("upgraded connection is not a TCP stream; closing it");
                    None
                }
            }
        };
        (response, connection)
    }
}

/// Whether a comma-separated header lists `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}
