//! `/websub/{source_id}`: the callback of tidings' WebSub subscriptions to the hubs of the blogs
//! it follows. `GET` is the hub's verification of intent (the challenge echoed only for a mode
//! and topic tidings asked for); `POST` is a push, answered `202` whether or not its signature
//! holds (as WebSub says), and a reason to poll the source only when it does.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{HeaderMap, StatusCode};

use super::AppState;
use crate::sources::hub::{Pushed, Verification};

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/websub/{id}", get(verify).post(push))
}

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
