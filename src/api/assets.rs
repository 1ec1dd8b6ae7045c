//! The browser client, embedded so the binary serves it from any working directory.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::ApiError;

#[derive(rust_embed::RustEmbed)]
#[folder = "static/"]
struct Assets;

/// Defence in depth against XSS: only our own scripts run, and they only talk to us. `'self'`
/// in `connect-src` also covers `ws:`/`wss:` to the page's own host (CSP Level 3, which Chromium
/// and Firefox follow), so the page reaches `/ws` and nothing else.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self'; \
    img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

pub(super) async fn index() -> Response {
    serve_asset("index.html")
}

pub(super) async fn static_file(Path(file): Path<String>) -> Response {
    serve_asset(&file)
}

fn serve_asset(path: &str) -> Response {
    let Some(asset) = Assets::get(path) else {
        return ApiError::NotFound("no such path".into()).into_response();
    };
    let mime = asset.metadata.mimetype().to_string();
    let headers = [
        (header::CONTENT_TYPE, mime),
        (header::CACHE_CONTROL, "no-cache".to_string()),
        (
            header::CONTENT_SECURITY_POLICY,
            CONTENT_SECURITY_POLICY.to_string(),
        ),
    ];
    (headers, asset.data.into_owned()).into_response()
}
