//! The admin API for subscribers and suppressions: `GET/POST/DELETE /api/subscribers`,
//! `/api/subscribers/{email}` (and its events), `/api/suppressions` (behind the token check).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, WriteStatus};
use super::AppState;
use crate::catalog::InputError;
use crate::subscribers::csv::{admin_upsert, AdminSource, SubscriberJson, Upserted};
use crate::subscribers::events::EventView;
use crate::subscribers::flow::FlowError;
use crate::subscribers::suppressions::{self, Reason, Suppression};
use crate::subscribers::{events, store, Status, SubscriberEmail, SubscriberView};

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list, upsert, delete_by_query))
        .routes(routes!(get_one, delete_one))
        .routes(routes!(events_of))
        .routes(routes!(list_suppressions, add_suppression))
        .routes(routes!(lift_suppression))
}

async fn with_db<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&crate::store::Db) -> Result<T, FlowError> + Send + 'static,
) -> Result<T, ApiError> {
    match state.subscriptions.write(f).await {
        Ok(v) => Ok(v),
        Err(FlowError::Input(e)) => Err(ApiError::input(&e)),
        Err(e) => Err(ApiError::internal("subscriber operation", e)),
    }
}

fn parse_email(raw: &str) -> Result<SubscriberEmail, ApiError> {
    SubscriberEmail::parse(raw).map_err(|p| ApiError::field("email", p))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only subscribers with this status.
    #[param(value_type = Option<Status>)]
    status: Option<String>,
}

/// Every subscriber.
#[derive(Serialize, utoipa::ToSchema)]
struct SubscriberList {
    subscribers: Vec<SubscriberView>,
    total: usize,
}

/// Subscribers, newest first.
#[utoipa::path(get, path = "/subscribers", tag = "subscribers", params(ListQuery),
    responses(
        (status = 200, description = "The subscribers", body = SubscriberList),
        (status = 400, description = "A bad parameter; it is named", body = ErrorBody),
    ))]
async fn list(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<SubscriberList>, ApiError> {
    let status = q
        .status
        .as_deref()
        .map(Status::parse)
        .transpose()
        .map_err(|p| ApiError::field("status", p))?;
    let all = with_db(&state, move |c| Ok(store::list(c, status)?)).await?;
    let subscribers: Vec<_> = all.iter().map(|s| s.view()).collect();
    Ok(Json(SubscriberList {
        total: subscribers.len(),
        subscribers,
    }))
}

/// A written subscriber: how the write went, and the subscriber as they now are.
#[derive(Serialize, utoipa::ToSchema)]
struct SubscriberWritten {
    status: WriteStatus,
    subscriber: SubscriberView,
}

/// Add or update a subscriber by `email` (no email is sent); an unsubscribed or bounced address
/// is never re-activated (`400`, field `status`).
#[utoipa::path(post, path = "/subscribers", tag = "subscribers",
    request_body = SubscriberJson,
    responses(
        (status = 201, description = "Created", body = SubscriberWritten),
        (status = 200, description = "Updated, or unchanged", body = SubscriberWritten),
        (status = 400, description = "Bad input; the field is named", body = ErrorBody),
    ))]
async fn upsert(
    State(state): State<Arc<AppState>>,
    ApiJson(raw): ApiJson<SubscriberJson>,
) -> Result<Response, ApiError> {
    let config = state.config.clone();
    let (outcome, subscriber) = with_db(&state, move |c| {
        admin_upsert(c, &config, raw, Status::Pending, AdminSource::Api)
    })
    .await?;
    let status = match outcome {
        Upserted::Created => WriteStatus::Created,
        Upserted::Updated => WriteStatus::Updated,
        Upserted::Unchanged => WriteStatus::Unchanged,
    };
    let body = SubscriberWritten {
        status,
        subscriber: subscriber.view(),
    };
    Ok((status.http(), Json(body)).into_response())
}

/// One subscriber.
#[utoipa::path(get, path = "/subscribers/{email}", tag = "subscribers",
    params(("email" = String, Path, format = Email, description = "The address")),
    responses(
        (status = 200, description = "The subscriber", body = SubscriberView),
        (status = 400, description = "Not an email address", body = ErrorBody),
        (status = 404, description = "No such subscriber", body = ErrorBody),
    ))]
async fn get_one(
    State(state): State<Arc<AppState>>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<SubscriberView>, ApiError> {
    let email = parse_email(&raw)?;
    match with_db(&state, move |c| Ok(store::find(c, &email)?)).await? {
        Some(s) => Ok(Json(s.view())),
        None => Err(ApiError::not_found("email", "no such subscriber")),
    }
}

/// An address's history: the subscriber (if any) and their events, oldest first.
#[derive(Serialize, utoipa::ToSchema)]
struct History {
    subscriber: Option<SubscriberView>,
    events: Vec<EventView>,
}

/// A subscriber's history, oldest first; it outlives the subscriber (`subscriber remove`).
#[utoipa::path(get, path = "/subscribers/{email}/events", tag = "subscribers",
    params(("email" = String, Path, format = Email, description = "The address")),
    responses(
        (status = 200, description = "The history", body = History),
        (status = 400, description = "Not an email address", body = ErrorBody),
        (status = 404, description = "Neither a subscriber nor a history", body = ErrorBody),
    ))]
async fn events_of(
    State(state): State<Arc<AppState>>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<History>, ApiError> {
    let email = parse_email(&raw)?;
    let (subscriber, events) = with_db(&state, move |c| {
        let subscriber = store::find(c, &email)?;
        let events = events::for_email(c, email.as_str())?;
        Ok((subscriber, events))
    })
    .await?;
    if subscriber.is_none() && events.is_empty() {
        return Err(ApiError::not_found("email", "no such subscriber"));
    }
    Ok(Json(History {
        subscriber: subscriber.map(|s| s.view()),
        events,
    }))
}

/// The suppression list.
#[derive(Serialize, utoipa::ToSchema)]
struct SuppressionList {
    suppressions: Vec<Suppression>,
    total: usize,
}

/// Every suppressed address, newest first.
#[utoipa::path(get, path = "/suppressions", tag = "suppressions",
    responses((status = 200, description = "The list", body = SuppressionList)))]
async fn list_suppressions(
    State(state): State<Arc<AppState>>,
) -> Result<Json<SuppressionList>, ApiError> {
    let all = with_db(&state, |c| Ok(suppressions::list(c)?)).await?;
    Ok(Json(SuppressionList {
        total: all.len(),
        suppressions: all,
    }))
}

/// An address to suppress.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SuppressionJson {
    #[schema(format = Email)]
    email: String,
    /// `admin` when absent.
    #[schema(value_type = Option<Reason>)]
    reason: Option<String>,
    note: Option<String>,
}

/// An entry and whether this request added it.
#[derive(Serialize, utoipa::ToSchema)]
struct SuppressionAdded {
    added: bool,
    suppression: Option<Suppression>,
}

/// Suppress an address: no email of any kind goes to it; a pending or confirmed subscriber
/// becomes unsubscribed.
#[utoipa::path(post, path = "/suppressions", tag = "suppressions",
    request_body = SuppressionJson,
    responses(
        (status = 201, description = "Added", body = SuppressionAdded),
        (status = 200, description = "It already was suppressed (`added` is false)", body = SuppressionAdded),
        (status = 400, description = "Bad input; the field is named", body = ErrorBody),
    ))]
async fn add_suppression(
    State(state): State<Arc<AppState>>,
    ApiJson(raw): ApiJson<SuppressionJson>,
) -> Result<Response, ApiError> {
    let email = parse_email(&raw.email)?;
    let reason = Reason::parse(raw.reason.as_deref().unwrap_or("admin"))
        .map_err(|p| ApiError::input(&InputError::new("reason", p)))?;
    let note = raw.note.map(|n| crate::catalog::input::one_line(&n));
    let (added, entry) = with_db(&state, move |c| {
        let now = chrono::Utc::now();
        let added = suppressions::add(c, &email, reason, note.as_deref(), "admin", now)?;
        let entry = suppressions::find(c, email.as_str())?;
        Ok((added, entry))
    })
    .await?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = SuppressionAdded {
        added,
        suppression: entry,
    };
    Ok((status, Json(body)).into_response())
}

/// Lift a suppression; the subscriber stays unsubscribed.
#[utoipa::path(delete, path = "/suppressions/{email}", tag = "suppressions",
    params(("email" = String, Path, format = Email, description = "The address")),
    responses(
        (status = 204, description = "Lifted"),
        (status = 400, description = "Not an email address", body = ErrorBody),
        (status = 404, description = "Not suppressed", body = ErrorBody),
    ))]
async fn lift_suppression(
    State(state): State<Arc<AppState>>,
    ApiPath(raw): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let email = parse_email(&raw)?;
    let lifted = with_db(&state, move |c| {
        Ok(suppressions::lift(c, email.as_str(), chrono::Utc::now())?)
    })
    .await?;
    if lifted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("email", "not suppressed"))
    }
}

async fn delete_email(state: Arc<AppState>, raw: &str) -> Result<StatusCode, ApiError> {
    let email = parse_email(raw)?;
    if with_db(&state, move |c| Ok(store::delete(c, &email)?)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("email", "no such subscriber"))
    }
}

/// Delete a subscriber and their tokens (a suppression and the history stay).
#[utoipa::path(delete, path = "/subscribers/{email}", tag = "subscribers",
    params(("email" = String, Path, format = Email, description = "The address")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not an email address", body = ErrorBody),
        (status = 404, description = "No such subscriber", body = ErrorBody),
    ))]
async fn delete_one(
    State(state): State<Arc<AppState>>,
    ApiPath(raw): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    delete_email(state, &raw).await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeleteQuery {
    /// The address to delete.
    #[param(format = Email)]
    email: String,
}

/// Delete a subscriber named in the query (`?email=`).
#[utoipa::path(delete, path = "/subscribers", tag = "subscribers", params(DeleteQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "No or a bad `email`", body = ErrorBody),
        (status = 404, description = "No such subscriber", body = ErrorBody),
    ))]
async fn delete_by_query(
    State(state): State<Arc<AppState>>,
    query: Result<ApiQuery<DeleteQuery>, ApiError>,
) -> Result<StatusCode, ApiError> {
    match query {
        Ok(ApiQuery(q)) => delete_email(state, &q.email).await,
        Err(_) => Err(ApiError::field("email", "give ?email=ADDRESS to remove")),
    }
}
