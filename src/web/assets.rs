//! Scripts tidings serves itself (pages never load anything from another host).

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::header;

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/assets/time-zone.js", get(time_zone))
}

/// Preselects the browser's time zone on the subscribe form.
async fn time_zone() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("assets/time-zone.js"),
    )
        .into_response()
}
