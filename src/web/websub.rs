//! `/websub/{source_id}`: the callback of tidings' WebSub subscriptions to the hubs of the blogs
//! it follows. `GET` is the hub's verification of intent (the challenge echoed only for a mode
//! and topic tidings asked for); `POST` is a push, answered `202` whether or not its signature
//! holds (as WebSub says), and a reason to poll the source only when it does.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::sources::hub::{Pushed, Verification};

/// The callback's routes, as the OpenAPI document describes them.
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(verify, push))
}

pub fn router() -> axum::Router<Arc<AppState>> {
    let (router, _) = routes().split_for_parts();
    router
}

/// A hub's verification of intent for tidings' subscription (or unsubscription) to a followed
/// blog's feed. Not for programs of yours: only a hub tidings asked answers correctly.
#[utoipa::path(get, path = "/websub/{source_id}", tag = "websub",
    security(()),
    params(
        ("source_id" = String, Path, description = "The followed source's id", example = "1"),
        ("hub.mode" = String, Query, description = "subscribe, unsubscribe or denied"),
        ("hub.topic" = String, Query, description = "The feed's URL"),
        ("hub.challenge" = Option<String>, Query, description = "Echoed when the mode and topic are what tidings asked for"),
        ("hub.lease_seconds" = Option<i64>, Query, description = "The lease the hub grants"),
    ),
    responses(
        (status = 200, description = "The challenge, echoed (or a denial taken note of)", body = String, content_type = "text/plain"),
        (status = 404, description = "Not a mode and topic tidings asked for"),
    ))]
async fn verify(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let field = |k: &str| q.get(k).cloned().unwrap_or_default();
    let mode = field("hub.mode");
    if mode == "denied" {
        if field("hub.topic").is_empty() {
            return StatusCode::NOT_FOUND.into_response();
        }
        state.sources.denied(id).await;
        return StatusCode::OK.into_response();
    }
    let v = Verification {
        mode,
        topic: field("hub.topic"),
        challenge: field("hub.challenge"),
        lease_seconds: q.get("hub.lease_seconds").and_then(|s| s.parse().ok()),
    };
    match state.sources.verify(id, v).await {
        Some(challenge) => (
            StatusCode::OK,
            [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            challenge,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A hub's push of a followed blog's feed, checked against `X-Hub-Signature` (HMAC with the
/// subscription's secret: sha1, sha256, sha384 or sha512). Answered `202` whether or not the
/// signature holds; only a valid one makes tidings poll the feed (the body is not used as
/// content).
#[utoipa::path(post, path = "/websub/{source_id}", tag = "websub",
    security(()),
    params(
        ("source_id" = String, Path, description = "The followed source's id", example = "1"),
        ("X-Hub-Signature" = Option<String>, Header, description = "`sha256=<hex>`"),
    ),
    request_body(content = String, description = "The feed, as the hub pushes it", content_type = "application/xml"),
    responses(
        (status = 202, description = "Received"),
        (status = 410, description = "No such source: the hub may stop"),
        (status = 413, description = "Larger than `sources.max_bytes`"),
    ))]
async fn push(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return StatusCode::GONE.into_response();
    };
    let limit = state.config.sources.max_bytes as usize;
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let signature = headers.get("x-hub-signature").and_then(|v| v.to_str().ok());
    match state.sources.pushed(id, signature, &bytes).await {
        Pushed::Gone => StatusCode::GONE.into_response(),
        Pushed::Polling | Pushed::Ignored => StatusCode::ACCEPTED.into_response(),
    }
}
