//! `GET /health`, `/health/live`, `/health/ready` and `/metrics`.
//!
//! `/health` is the original's summary and stays as it was. `/health/live` answers while the
//! process serves HTTP at all (restart it when this fails); `/health/ready` answers 503 while
//! the server drains or its store does not answer (send it no new clients meanwhile).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::app::AppState;
use crate::telemetry;

pub(super) async fn health(State(app): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started.elapsed().as_secs(),
        "rooms": app.registry.room_count(),
    }))
}

pub(super) async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "live" }))
}

pub(super) async fn ready(State(app): State<AppState>) -> Response {
    match app.readiness.check().await {
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "error": why.to_string() })),
        )
            .into_response(),
    }
}

pub(super) async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        telemetry::recorder().render(),
    )
        .into_response()
}
