//! The admin API for subscribers: `GET/POST/DELETE /api/subscribers` (behind the admin token).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::json;

use super::api::{bad_input, error, MAX_BODY};
use super::AppState;
use crate::catalog::InputError;
use crate::subscribers::csv::{admin_upsert, AdminSource, SubscriberJson, Upserted};
use crate::subscribers::flow::FlowError;
use crate::subscribers::suppressions::{self, Reason};
use crate::subscribers::{events, store, Status, SubscriberEmail};

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/subscribers",
            get(list).post(upsert).delete(delete_by_query),
        )
        .route("/subscribers/{email}", get(get_one).delete(delete_one))
        .route("/subscribers/{email}/events", get(events_of))
        .route(
            "/suppressions",
            get(list_suppressions).post(add_suppression),
        )
        .route(
            "/suppressions/{email}",
            axum::routing::delete(lift_suppression),
        )
}

async fn with_db<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&crate::store::Db) -> Result<T, FlowError> + Send + 'static,
) -> Result<T, Response> {
    match state.subscriptions.write(f).await {
        Ok(v) => Ok(v),
        Err(FlowError::Input(e)) => Err(bad_input(&e)),
        Err(e) => {
            tracing::error!(error = %e, "subscriber operation failed");
            Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "database error; see the daemon's log",
            ))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    email: Option<String>,
}

async fn list(
    State(state): State<Arc<AppState>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, Some("query"), e.body_text()),
    };
    let status = match q.status.as_deref().map(Status::parse).transpose() {
        Ok(s) => s,
        Err(p) => return bad_input(&InputError::new("status", p)),
    };
    match with_db(&state, move |c| Ok(store::list(c, status)?)).await {
        Ok(all) => {
            let views: Vec<_> = all.iter().map(|s| s.view()).collect();
            Json(json!({ "subscribers": views, "total": views.len() })).into_response()
        }
        Err(r) => r,
    }
}

async fn upsert(State(state): State<Arc<AppState>>, body: axum::body::Body) -> Response {
    let bytes = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return bad_input(&InputError::new("body", "is larger than the 1 MiB limit")),
    };
    let raw: SubscriberJson = {
        let text = match std::str::from_utf8(&bytes) {
            Ok(t) => t,
            Err(e) => {
                return bad_input(&InputError::new(
                    "body",
                    format!("is not valid UTF-8 ({e})"),
                ))
            }
        };
        let mut de = serde_json::Deserializer::from_str(text);
        match serde_path_to_error::deserialize(&mut de) {
            Ok(r) => r,
            Err(e) => return bad_input(&crate::catalog::input::json_error(e)),
        }
    };
    let config = state.config.clone();
    match with_db(&state, move |c| {
        admin_upsert(c, &config, raw, Status::Pending, AdminSource::Api)
    })
    .await
    {
        Ok((outcome, subscriber)) => {
            let (status, word) = match outcome {
                Upserted::Created => (StatusCode::CREATED, "created"),
                Upserted::Updated => (StatusCode::OK, "updated"),
                Upserted::Unchanged => (StatusCode::OK, "unchanged"),
            };
            (
                status,
                Json(json!({ "status": word, "subscriber": subscriber.view() })),
            )
                .into_response()
        }
        Err(r) => r,
    }
}

fn parse_email(raw: &str) -> Result<SubscriberEmail, InputError> {
    SubscriberEmail::parse(raw).map_err(|p| InputError::new("email", p))
}

async fn get_one(State(state): State<Arc<AppState>>, Path(raw): Path<String>) -> Response {
    let email = match parse_email(&raw) {
        Ok(e) => e,
        Err(e) => return bad_input(&e),
    };
    match with_db(&state, move |c| Ok(store::find(c, &email)?)).await {
        Ok(Some(s)) => Json(json!(s.view())).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, Some("email"), "no such subscriber"),
        Err(r) => r,
    }
}

/// A subscriber's history, oldest first; it outlives the subscriber (`subscriber remove`).
async fn events_of(State(state): State<Arc<AppState>>, Path(raw): Path<String>) -> Response {
    let email = match parse_email(&raw) {
        Ok(e) => e,
        Err(e) => return bad_input(&e),
    };
    match with_db(&state, move |c| {
        let subscriber = store::find(c, &email)?;
        let events = events::for_email(c, email.as_str())?;
        Ok((subscriber, events))
    })
    .await
    {
        Ok((None, events)) if events.is_empty() => {
            error(StatusCode::NOT_FOUND, Some("email"), "no such subscriber")
        }
        Ok((subscriber, events)) => Json(json!({
            "subscriber": subscriber.map(|s| s.view()),
            "events": events,
        }))
        .into_response(),
        Err(r) => r,
    }
}

async fn list_suppressions(State(state): State<Arc<AppState>>) -> Response {
    match with_db(&state, |c| Ok(suppressions::list(c)?)).await {
        Ok(all) => Json(json!({ "total": all.len(), "suppressions": all })).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuppressionJson {
    email: Option<String>,
    reason: Option<String>,
    note: Option<String>,
}

/// `POST /api/suppressions {"email": ..., "reason"?: ..., "note"?: ...}`: 201 when added, 200
/// when it already was suppressed.
async fn add_suppression(State(state): State<Arc<AppState>>, body: axum::body::Body) -> Response {
    let bytes = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return bad_input(&InputError::new("body", "is larger than the 1 MiB limit")),
    };
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let raw: SuppressionJson = match serde_path_to_error::deserialize(&mut de) {
        Ok(r) => r,
        Err(e) => return bad_input(&crate::catalog::input::json_error(e)),
    };
    let email = match parse_email(raw.email.as_deref().unwrap_or("")) {
        Ok(e) => e,
        Err(e) => return bad_input(&e),
    };
    let reason = match Reason::parse(raw.reason.as_deref().unwrap_or("admin")) {
        Ok(r) => r,
        Err(p) => return bad_input(&InputError::new("reason", p)),
    };
    let note = raw.note.map(|n| crate::catalog::input::one_line(&n));
    match with_db(&state, move |c| {
        let now = chrono::Utc::now();
        let added = suppressions::add(c, &email, reason, note.as_deref(), "admin", now)?;
        let entry = suppressions::find(c, email.as_str())?;
        Ok((added, entry))
    })
    .await
    {
        Ok((added, entry)) => {
            let status = if added {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (
                status,
                Json(json!({ "added": added, "suppression": entry })),
            )
                .into_response()
        }
        Err(r) => r,
    }
}

async fn lift_suppression(State(state): State<Arc<AppState>>, Path(raw): Path<String>) -> Response {
    let email = match parse_email(&raw) {
        Ok(e) => e,
        Err(e) => return bad_input(&e),
    };
    match with_db(&state, move |c| {
        let lifted = suppressions::lift(c, email.as_str(), chrono::Utc::now())?;
        Ok(lifted)
    })
    .await
    {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, Some("email"), "not suppressed"),
        Err(r) => r,
    }
}

async fn delete_email(state: Arc<AppState>, raw: &str) -> Response {
    let email = match parse_email(raw) {
        Ok(e) => e,
        Err(e) => return bad_input(&e),
    };
    match with_db(&state, move |c| Ok(store::delete(c, &email)?)).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, Some("email"), "no such subscriber"),
        Err(r) => r,
    }
}

async fn delete_one(State(state): State<Arc<AppState>>, Path(raw): Path<String>) -> Response {
    delete_email(state, &raw).await
}

async fn delete_by_query(
    State(state): State<Arc<AppState>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match query {
        Ok(Query(ListQuery { email: Some(e), .. })) => delete_email(state, &e).await,
        _ => bad_input(&InputError::new("email", "give ?email=ADDRESS to remove")),
    }
}
