//! `POST /webhooks/ses`, `/webhooks/postmark`, `/webhooks/mailgun`, `/webhooks/sendgrid`:
//! provider events, authenticated by each provider's own scheme (`feedback::webhooks`) before
//! anything changes. An unconfigured provider answers `404`, a bad signature `401`, a malformed
//! body `400`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;

use super::api::{error, MAX_BODY};
use super::AppState;
use crate::feedback::webhooks::Refusal;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/webhooks/{provider}", post(handle))
}

async fn handle(
    State(state): State<Arc<AppState>>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let hooks = state.webhooks.clone();
    if !hooks.configured(&provider) {
        return error(
            StatusCode::NOT_FOUND,
            None,
            format!(
                "no webhook for '{}' is configured here",
                provider.chars().take(40).collect::<String>()
            ),
        );
    }
    let bytes = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                Some("body"),
                "is larger than the 1 MiB limit",
            )
        }
    };
    let handled =
        tokio::task::spawn_blocking(move || hooks.handle(&provider, &headers, &bytes)).await;
    match handled {
        Ok(Ok(outcomes)) => Json(json!({ "outcomes": outcomes })).into_response(),
        Ok(Err(refusal)) => {
            let (status, message) = match refusal {
                Refusal::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m),
                Refusal::Forbidden(m) => (StatusCode::FORBIDDEN, m),
                Refusal::Malformed(m) => (StatusCode::BAD_REQUEST, m),
                Refusal::Upstream(m) => (StatusCode::BAD_GATEWAY, m),
                Refusal::Unavailable(m) => {
                    tracing::warn!(error = %m, "webhook not stored; the provider will retry");
                    (StatusCode::SERVICE_UNAVAILABLE, m)
                }
                Refusal::NotConfigured => (StatusCode::NOT_FOUND, "not configured".into()),
            };
            let mut r = error(status, None, message);
            if status == StatusCode::UNAUTHORIZED {
                r.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Basic realm=\"tidings webhooks\""),
                );
            }
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "webhook task failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, None, "internal error")
        }
    }
}
