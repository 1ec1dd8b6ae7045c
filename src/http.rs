//! HTTP routes: the WebSocket upgrade, the REST API, `/metrics`, and the embedded browser client.
//!
//! Errors are JSON `{"error": "..."}` with a fitting status ([`ApiError`]); internals are logged,
//! never shown. Bad WebSocket requests are refused with a status *before* the upgrade.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::QueryRejection;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::app::AppState;
use crate::protocol::{messages_object, validate_name};
use crate::session;
use crate::telemetry;
use crate::ws::upgrade::UpgradeRejection;
use crate::ws::WsUpgrade;

/// Errors of the HTTP API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
    /// Not a valid WebSocket upgrade (answered with its own status, e.g. 426).
    #[error(transparent)]
    Upgrade(#[from] UpgradeRejection),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::Upgrade(rejection) => return rejection.into_response(),
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

/// The main router. `/metrics` is on it unless METRICS_PORT moves it to [`metrics_router`].
pub fn router(app: AppState) -> Router {
    let api = Router::new()
        .route("/health", get(health))
        .route("/api/rooms", get(list_rooms))
        .route("/api/rooms/{name}", get(room_details))
        .route("/api/rooms/{name}/messages", get(room_messages))
        .layer(cors(&app.config.cors_allow_origin));
    let mut router = Router::new()
        .merge(api)
        .route("/ws", get(upgrade))
        .route("/", get(index))
        .route("/{*file}", get(static_file));
    if app.config.metrics_port == 0 {
        router = router.route("/metrics", get(metrics));
    }
    router
        .route_layer(middleware::from_fn(track_requests))
        .with_state(app)
}

/// `/metrics` alone, for a separate METRICS_PORT.
pub fn metrics_router() -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn(track_requests))
}

fn cors(setting: &str) -> CorsLayer {
    let origins = match setting.trim() {
        "*" => AllowOrigin::any(),
        list => AllowOrigin::list(
            list.split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        ),
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET])
}

async fn track_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("chatterbox_http_requests_total", "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("chatterbox_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

#[derive(Deserialize)]
struct WsParams {
    user: Option<String>,
}

async fn upgrade(
    State(app): State<AppState>,
    params: Result<Query<WsParams>, QueryRejection>,
    ws: Result<WsUpgrade, UpgradeRejection>,
) -> Result<Response, ApiError> {
    // The user is checked first: a bad name is the likelier mistake and gets the clearer answer.
    let Query(params) = params?;
    let user = params
        .user
        .ok_or_else(|| ApiError::BadRequest("missing ?user= parameter".into()))?;
    validate_name("user", &user, app.config.max_user_name_chars).map_err(ApiError::BadRequest)?;
    if *app.shutdown.borrow() {
        return Err(ApiError::Unavailable("server is shutting down".into()));
    }
    let ws = ws?;
    let config = &app.config;
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(config.ws_read_buffer_bytes)
        .max_message_size(Some(config.max_frame_bytes))
        .max_frame_size(Some(config.max_frame_bytes));
    let (response, connection) = ws.accept(ws_config);
    let user: Arc<str> = user.into();
    // Spawned on the session tracker, so shutdown also waits for upgrades in flight. The upgrade
    // future is boxed so its state is freed once it completes instead of staying in the task.
    let connection = Box::pin(connection);
    let sessions = app.sessions.clone();
    sessions.spawn(async move {
        if let Some(connection) = connection.await {
            session::run(connection, app, user).await;
        }
    });
    Ok(response)
}

async fn health(State(app): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started.elapsed().as_secs(),
        "rooms": app.registry.room_count(),
    }))
}

#[derive(Serialize)]
struct RoomSummary {
    name: String,
    user_count: usize,
}

async fn list_rooms(State(app): State<AppState>) -> Json<Vec<RoomSummary>> {
    let rooms = app
        .registry
        .rooms()
        .into_iter()
        .map(|room| RoomSummary {
            name: room.name().to_string(),
            user_count: room.users().len(),
        })
        .collect();
    Json(rooms)
}

async fn room_details(
    State(app): State<AppState>,
    Path(name): Path<String>,
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

#[derive(Deserialize)]
struct PageParams {
    before: Option<u64>,
    limit: Option<usize>,
}

/// Pages backwards through a room's stored history, live members or not.
async fn room_messages(
    State(app): State<AppState>,
    Path(name): Path<String>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    let limit = params.limit.unwrap_or(app.config.max_history);
    if limit == 0 || limit > app.config.max_page_size {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {}",
            app.config.max_page_size
        )));
    }
    // Messages accepted a moment ago may still be in the writer's queue.
    app.history
        .flush()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let records = app
        .store
        .before(&name, params.before, limit)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "reading history failed");
            ApiError::Unavailable("history store unavailable".into())
        })?;
    Ok(json_response(messages_object(
        "",
        &name,
        records.iter(),
        "",
    )))
}

fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        telemetry::recorder().render(),
    )
        .into_response()
}

/// The browser client, embedded so the binary serves it from any working directory.
#[derive(rust_embed::RustEmbed)]
#[folder = "static/"]
struct Assets;

async fn index() -> Response {
    serve_asset("index.html")
}

async fn static_file(Path(file): Path<String>) -> Response {
    serve_asset(&file)
}

fn serve_asset(path: &str) -> Response {
    let Some(asset) = Assets::get(path) else {
        return ApiError::NotFound(format!("no such path: /{path}")).into_response();
    };
    let mime = asset.metadata.mimetype().to_string();
    let headers = [
        (header::CONTENT_TYPE, mime),
        (header::CACHE_CONTROL, "no-cache".to_string()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        // Defence in depth against XSS: only our own scripts run, and they only talk to us.
        (
            header::CONTENT_SECURITY_POLICY,
            CONTENT_SECURITY_POLICY.to_string(),
        ),
    ];
    (headers, asset.data.into_owned()).into_response()
}

const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self' ws: wss:; \
    img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";
