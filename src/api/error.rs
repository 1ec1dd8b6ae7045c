//! The one error type of the HTTP API: a status and a JSON `{"error": "..."}` body. Internals
//! are logged where they happen, never shown: messages are our own sentences, never a parser's.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::admission::Refusal;
use crate::ws::upgrade::UpgradeRejection;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// A token that may not see this.
    #[error("{0}")]
    Forbidden(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Over the per-address REST rate; the client may retry after this many seconds.
    #[error("too many requests from this address; retry in {0} s")]
    TooManyRequests(u64),
    #[error("{0}")]
    Unavailable(String),
    /// Refused by admission.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Not a valid WebSocket upgrade (answered with its own status, e.g. 426).
    #[error(transparent)]
    Upgrade(#[from] UpgradeRejection),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::Upgrade(rejection) => return rejection.into_response(),
            ApiError::Refused(refusal) => return refusal.into_response(),
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooManyRequests(seconds) => {
                let body = json!({ "error": self.to_string(), "retry_after_seconds": seconds });
                let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                return response;
            }
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}
