//! Our own stylesheet and script, compiled into the crate.

use axum::http::header;
use axum::response::IntoResponse;

const CSS: &str = include_str!("../../assets/app.css");
const JS: &str = include_str!("../../assets/app.js");
/// Assets change only with the crate: cache them for an hour.
const CACHE: &str = "public, max-age=3600";

/// `GET /assets/app.css`.
pub(crate) async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, CACHE)], CSS)
}

/// `GET /assets/app.js`.
pub(crate) async fn js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, CACHE)], JS)
}
