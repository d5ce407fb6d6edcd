//! `POST /webhooks/ses`, `/webhooks/postmark`, `/webhooks/mailgun`, `/webhooks/sendgrid`:
//! provider events, authenticated by each provider's own scheme (`feedback::webhooks`) before
//! anything changes. An unconfigured provider answers `404`, a bad signature `401`, a malformed
//! body (or one over the 1 MiB limit) `400`.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::Json;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::{ApiError, ApiPath, ErrorBody, MAX_BODY};
use super::AppState;
use crate::feedback::webhooks::Refusal;

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(handle))
}

/// The webhook routes, under the same body limit as `/api`.
pub fn router() -> axum::Router<Arc<AppState>> {
    let (router, _) = routes().split_for_parts();
    router
        .method_not_allowed_fallback(super::api::error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// What became of each event of the request.
#[derive(Serialize, utoipa::ToSchema)]
struct Outcomes {
    /// One line per event (a replay says so and changes nothing).
    outcomes: Vec<String>,
}

/// A provider's bounce and complaint events, authenticated by its own scheme (SES: SNS
/// signatures; Postmark: HTTP Basic; Mailgun: HMAC; SendGrid: ECDSA) before anything changes.
/// Not for programs of yours: only the provider can sign.
#[utoipa::path(post, path = "/webhooks/{provider}", tag = "provider webhooks",
    security(()),
    params(("provider" = String, Path, description = "ses, postmark, mailgun or sendgrid",
        example = "postmark")),
    request_body(content = String, description = "The provider's own JSON (or form) body, as it sends it", content_type = "application/json"),
    responses(
        (status = 200, description = "Handled", body = Outcomes),
        (status = 400, description = "A malformed body, or one over 1 MiB", body = ErrorBody),
        (status = 401, description = "A bad signature, credentials or a stale timestamp", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "Basic realm"))),
        (status = 403, description = "Another SNS topic", body = ErrorBody),
        (status = 404, description = "This provider is not configured here", body = ErrorBody),
        (status = 502, description = "SNS could not be reached to confirm a subscription", body = ErrorBody),
        (status = 503, description = "Not stored; the provider will retry", body = ErrorBody),
    ))]
async fn handle(
    State(state): State<Arc<AppState>>,
    ApiPath(provider): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Outcomes>, ApiError> {
    let hooks = state.webhooks.clone();
    if !hooks.configured(&provider) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            None,
            format!(
                "no webhook for '{}' is configured here",
                provider.chars().take(40).collect::<String>()
            ),
        ));
    }
    let bytes = body?;
    let handled =
        tokio::task::spawn_blocking(move || hooks.handle(&provider, &headers, &bytes)).await;
    match handled {
        Ok(Ok(outcomes)) => Ok(Json(Outcomes { outcomes })),
        Ok(Err(refusal)) => Err(match refusal {
            Refusal::Unauthorized(m) => {
                ApiError::unauthorized("Basic realm=\"tidings webhooks\"", m)
            }
            Refusal::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, None, m),
            Refusal::Malformed(m) => ApiError::new(StatusCode::BAD_REQUEST, None, m),
            Refusal::Upstream(m) => ApiError::new(StatusCode::BAD_GATEWAY, None, m),
            Refusal::Unavailable(m) => {
                tracing::warn!(error = %m, "webhook not stored; the provider will retry");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, None, m)
            }
            Refusal::NotConfigured => ApiError::new(StatusCode::NOT_FOUND, None, "not configured"),
        }),
        Err(e) => {
            tracing::error!(error = %e, "webhook task failed");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "internal error",
            ))
        }
    }
}
