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
    /// Any part of the address (3 to 254 characters, matched in any case).
    #[param(
        min_length = 3,
        max_length = 254,
        pattern = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"
    )]
    q: Option<String>,
    /// Only subscribers who chose this tag (its slug).
    #[param(max_length = 200, pattern = r"^[a-z0-9-]*$")]
    tag: Option<String>,
    /// Subscribers per page (1 to 1,000); with it (or `after`, `q`, `tag`) the list pages,
    /// newest first.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `next` of the page before (opaque).
    #[param(pattern = r"^[1-9][0-9]{0,17}$")]
    after: Option<String>,
}

/// Subscribers: every one (no `limit`, `after`, `q` or `tag`), or a page.
#[derive(Serialize, utoipa::ToSchema)]
struct SubscriberList {
    subscribers: Vec<SubscriberView>,
    /// How many match: exact, but with `q`, `tag` or `after` counted only up to 10,000.
    total: u64,
    /// Present (true) when there are more than `total`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    total_capped: bool,
    /// `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// Subscribers: without `limit`, `after`, `q` or `tag`, every one (oldest first), as before;
/// with any of them, a page, newest first, paged by key (`next`).
#[utoipa::path(get, path = "/subscribers", tag = "subscribers", params(ListQuery),
    responses(
        (status = 200, description = "The subscribers", body = SubscriberList),
        (status = 400, description = "A bad parameter; it is named", body = ErrorBody),
    ))]
async fn list(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<SubscriberList>, ApiError> {
    use crate::subscribers::search::{self, MatchCount, SearchQuery};
    let status = q
        .status
        .as_deref()
        .map(Status::parse)
        .transpose()
        .map_err(|p| ApiError::field("status", p))?;
    if q.limit.is_none() && q.after.is_none() && q.q.is_none() && q.tag.is_none() {
        let all = with_db(&state, move |c| Ok(store::list(c, status)?)).await?;
        let subscribers: Vec<_> = all.iter().map(|s| s.view()).collect();
        return Ok(Json(SubscriberList {
            total: subscribers.len() as u64,
            total_capped: false,
            subscribers,
            next: None,
        }));
    }
    let limit = super::api::checked_limit(q.limit, search::MAX_API_PAGE_SIZE)?;
    for (field, value) in [("q", &q.q), ("tag", &q.tag)] {
        if value.as_deref().is_some_and(|v| v.trim() != v) {
            return Err(ApiError::field(
                field,
                "must not start or end with white space",
            ));
        }
    }
    if q.q.as_deref() == Some("") {
        return Err(ApiError::field(
            "q",
            "needs at least 3 characters of the address",
        ));
    }
    let query = SearchQuery::parse(
        q.q.as_deref(),
        status.map(Status::as_str),
        q.tag.as_deref(),
        q.after.as_deref(),
    )?;
    if q.after.as_deref().is_some_and(|a| a.trim().is_empty()) {
        return Err(ApiError::field(
            "after",
            "is empty; give the `next` of the page before",
        ));
    }
    let paged_by_filter = q.q.is_some() || q.tag.is_some() || q.after.is_some();
    let everything = q.limit.is_none();
    let store = &state.digests.store;
    let mut found = search::search(store, query.clone(), limit)
        .await
        .map_err(|e| ApiError::internal("searching subscribers", e))?;
    let mut subscribers: Vec<SubscriberView> =
        found.page.subscribers.iter().map(|s| s.view()).collect();
    // No `limit`: every match, page after page.
    while let Some(after) = found.page.next_after.filter(|_| everything) {
        let more = SearchQuery {
            after: Some(after),
            ..query.clone()
        };
        found = search::search(store, more, limit)
            .await
            .map_err(|e| ApiError::internal("searching subscribers", e))?;
        subscribers.extend(found.page.subscribers.iter().map(|s| s.view()));
    }
    let (total, total_capped) = if paged_by_filter {
        match found.count {
            MatchCount::Exact(n) => (n, false),
            MatchCount::MoreThan(n) => (n, true),
        }
    } else {
        let counts = with_db(&state, |c| Ok(store::counts_by_status(c)?)).await?;
        let n = match status {
            None => counts.pending + counts.confirmed + counts.unsubscribed + counts.bounced,
            Some(Status::Pending) => counts.pending,
            Some(Status::Confirmed) => counts.confirmed,
            Some(Status::Unsubscribed) => counts.unsubscribed,
            Some(Status::Bounced) => counts.bounced,
        };
        (n.max(0) as u64, false)
    };
    Ok(Json(SubscriberList {
        subscribers,
        total,
        total_capped,
        next: found.page.next_after.map(|id| id.to_string()),
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

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SuppressionQuery {
    /// Entries per page (1 to 1,000); with it (or `after`) the list pages, newest first.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `next` of the page before (opaque).
    #[param(pattern = r"^-?[0-9]{1,18}\.[^\x00]+$")]
    after: Option<String>,
}

/// The suppression list, or a page of it.
#[derive(Serialize, utoipa::ToSchema)]
struct SuppressionList {
    suppressions: Vec<Suppression>,
    /// How many are suppressed: exact, but with `after` counted only up to 10,000.
    total: u64,
    /// Present (true) when there are more than `total`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    total_capped: bool,
    /// `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// Suppressed addresses: without `limit` or `after` every one (by address), as before; with
/// them a page, newest first, paged by key (`next`).
#[utoipa::path(get, path = "/suppressions", tag = "suppressions", params(SuppressionQuery),
    responses(
        (status = 200, description = "The list", body = SuppressionList),
        (status = 400, description = "A bad parameter; it is named", body = ErrorBody),
    ))]
async fn list_suppressions(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<SuppressionQuery>,
) -> Result<Json<SuppressionList>, ApiError> {
    if q.limit.is_none() && q.after.is_none() {
        let all = with_db(&state, |c| Ok(suppressions::list(c)?)).await?;
        return Ok(Json(SuppressionList {
            total: all.len() as u64,
            total_capped: false,
            suppressions: all,
            next: None,
        }));
    }
    let limit = super::api::checked_limit(q.limit, 1000)?;
    let after = q
        .after
        .as_deref()
        .map(|a| {
            suppressions::Cursor::parse(a)
                .map_err(|p| ApiError::new(StatusCode::BAD_REQUEST, Some("after"), p))
        })
        .transpose()?;
    let capped = after.is_some();
    let (mut page, (total, total_capped)) = with_db(&state, move |c| {
        let page = suppressions::page(c, after.as_ref(), limit + 1)?;
        let total = if capped {
            suppressions::count_capped(c, crate::subscribers::search::COUNT_LIMIT)?
        } else {
            (suppressions::count(c)?.max(0) as u64, false)
        };
        Ok((page, total))
    })
    .await?;
    let next = (page.len() > limit).then(|| {
        page.truncate(limit);
        page.last().map(|s| s.cursor().to_string())
    });
    Ok(Json(SuppressionList {
        suppressions: page,
        total,
        total_capped,
        next: next.flatten(),
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
