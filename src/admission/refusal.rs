//! A refused WebSocket request, as the HTTP response the client gets, and counted.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::limits::LimitRefusal;
use super::origin::OriginRefusal;
use super::token::TokenError;

/// How long a client refused because the server is full (or stopping) should wait at least;
/// each is told a different time up to twice this, so they do not all come back at once.
const FULL_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Why a request may not connect.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// A request the client must fix (400).
    #[error("{0}")]
    BadRequest(String),
    /// No valid token in token mode (401).
    #[error("{0}")]
    Unauthorized(TokenError),
    /// From a host or origin not allowed (403).
    #[error("{0}")]
    Forbidden(#[from] OriginRefusal),
    /// Over a connection limit (429 for the client's address, 503 for the server).
    #[error("{0}")]
    Limited(#[from] LimitRefusal),
    /// The server is shutting down (503).
    #[error("server is shutting down")]
    ShuttingDown,
}

impl Refusal {
    /// The `reason` label of `chatterbox_connections_refused_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::BadRequest(_) => "bad_request",
            Refusal::Unauthorized(_) => "unauthorized",
            Refusal::Forbidden(OriginRefusal::Origin(_)) => "origin",
            Refusal::Forbidden(_) => "host",
            Refusal::Limited(limit) => limit.label(),
            Refusal::ShuttingDown => "shutting_down",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
            Refusal::Limited(limit) if limit.is_per_address() => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Limited(_) | Refusal::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// When to retry, jittered; `None` when retrying unchanged cannot help.
    fn retry_after(&self) -> Option<u64> {
        let (at_least, spread) = match self {
            Refusal::Limited(LimitRefusal::AddressRate { retry_after })
            | Refusal::Limited(LimitRefusal::AcceptBudget { retry_after }) => {
                (retry_after.as_secs_f64().ceil().max(1.0) as u64, 2)
            }
            Refusal::Limited(_) | Refusal::ShuttingDown => {
                let secs = FULL_RETRY_AFTER.as_secs();
                (secs, secs)
            }
            _ => return None,
        };
        Some(at_least + fastrand::u64(0..=spread))
    }
}

impl Refusal {
    /// Counts a refused WebSocket request in `chatterbox_connections_refused_total`.
    pub fn count(&self) {
        metrics::counter!("chatterbox_connections_refused_total", "reason" => self.label())
            .increment(1);
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after();
        let unauthorized = matches!(self, Refusal::Unauthorized(_));
        let mut body = json!({ "error": self.to_string(), "reason": self.label() });
        if let Some(secs) = retry_after {
            body["retry_after_seconds"] = secs.into();
        }
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"chatterbox\""),
            );
        }
        response
    }
}

/// Describes the refusal counter (idempotent; called when admission is built).
pub(super) fn describe_metric() {
    metrics::describe_counter!(
        "chatterbox_connections_refused_total",
        "WebSocket requests refused before the upgrade, by reason: bad_request, unauthorized, origin, host, address_rate, address_connections, server_full, accept_budget, shutting_down."
    );
}
