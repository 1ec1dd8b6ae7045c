//! The HTTP surface: the WebSocket endpoint, the REST API, health, `/metrics`, and the embedded
//! browser client, assembled into one router.
//!
//! - [`websocket`]: `GET /ws` — admission, upgrade, session.
//! - [`session`]: `GET /api/session` — the page's check of a name or token before it connects.
//! - [`rooms`], [`history`]: the read-only REST API; [`params`] checks what it is asked, and
//!   [`rate_limit`] how often.
//! - [`health`]: `/health`, `/health/live`, `/health/ready` (state in [`crate::readiness`]), `/metrics`.
//! - [`assets`]: the browser client.
//! - [`error`]: [`ApiError`], the JSON error every route answers with — unknown paths and wrong
//!   methods included.
//!
//! Every response carries `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`;
//! the page adds its Content-Security-Policy. Cross-origin REST calls are refused unless
//! `CORS_ALLOW_ORIGIN` names the origin.

pub mod assets;
pub mod error;
pub mod health;
pub mod history;
mod params;
pub mod rate_limit;
pub mod rooms;
pub mod session;
mod viewer;
pub mod websocket;

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

pub use error::ApiError;

use crate::app::AppState;
use rate_limit::RestRateLimit;

/// The main router; `/metrics` is on it unless it has a listener of its own ([`metrics_router`]).
pub fn router(app: AppState, with_metrics: bool) -> Router {
    let mut api = Router::new()
        .route("/api/session", get(session::check))
        .route("/api/rooms", get(rooms::list_rooms))
        .route("/api/rooms/{name}", get(rooms::room_details))
        .route("/api/rooms/{name}/messages", get(history::room_messages))
        // An empty segment matches no `{name}`; these get the name rule's answer, not a 404.
        .route("/api/rooms/", get(empty_room_name))
        .route("/api/rooms//messages", get(empty_room_name));
    if let Some(limit) = rest_rate_limit(&app) {
        api = api.route_layer(middleware::from_fn_with_state(
            (limit, app.clone()),
            rate_limit::limit,
        ));
    }
    let api = api
        .route("/health", get(health::health))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .layer(cors(&app.config.net.cors_allow_origin));
    let mut router = Router::new()
        .merge(api)
        .route("/ws", get(websocket::upgrade))
        .route("/", get(assets::index))
        .route("/{*file}", get(assets::static_file));
    if with_metrics {
        router = router.route("/metrics", get(health::metrics));
    }
    let router = router.route_layer(middleware::from_fn(track_requests));
    let router = router.layer(middleware::from_fn_with_state(app.clone(), check_host));
    finish(router).with_state(app)
}

/// Refuses requests for a host not in ALLOWED_HOSTS, on every route: a DNS-rebinding page must
/// not read the REST API any more than open a WebSocket.
async fn check_host(
    axum::extract::State(app): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0);
    if let Some(peer) = peer {
        if let Err(refusal) = app.admission.check_host(request.headers(), peer) {
            return refusal.into_response();
        }
    }
    next.run(request).await
}

/// `/metrics` alone, for a separate METRICS_PORT.
pub fn metrics_router() -> Router {
    finish(
        Router::new()
            .route("/metrics", get(health::metrics))
            .route_layer(middleware::from_fn(track_requests)),
    )
}

/// What every router gets: JSON for unknown paths and wrong methods, and the headers every
/// response carries.
fn finish<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
}

/// The REST limiter, unless RATE_LIMITS=off or a REST rate setting is 0.
fn rest_rate_limit(app: &AppState) -> Option<std::sync::Arc<RestRateLimit>> {
    if !app.config.rate.enabled() {
        return None;
    }
    let (per_second, burst) = app.config.net.rest_rate()?;
    RestRateLimit::new(per_second, burst)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such path".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

async fn empty_room_name(State(app): State<AppState>) -> ApiError {
    match params::room_name("", app.config.limits.max_room_name_chars) {
        Err(error) => error,
        Ok(_) => ApiError::BadRequest("a room name is required".into()),
    }
}

/// Same-origin only unless asked: the embedded page needs no CORS at all, and `*` would let any
/// site's scripts read every room's history through a visitor's browser.
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
        .expose_headers([header::RETRY_AFTER])
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
