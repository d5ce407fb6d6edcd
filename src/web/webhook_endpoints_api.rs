//! The admin API for outgoing webhooks: `/api/webhook-endpoints` (create, list, read, change,
//! remove, rotate the secret, ping, the delivery log, replay). Every route is the owner's, reads
//! too (`api::needed_role`): an endpoint's URL and log say where the list's data goes.

mod views;

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use http::{header, StatusCode};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::{checked_limit, ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use super::AppState;
use crate::webhook_endpoints::service::Patch;
use crate::webhook_endpoints::{EndpointError, WebhookEndpoints};
use views::{
    CreateBody, DeliveryJson, DeliveryPage, EndpointList, EndpointView, PatchBody, RangeBody,
    Replayed, ReplayedRange, WithSecret,
};

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, remove))
        .routes(routes!(rotate))
        .routes(routes!(ping))
        .routes(routes!(deliveries))
        .routes(routes!(replay_one))
        .routes(routes!(replay_range))
}

fn service(state: &AppState) -> WebhookEndpoints {
    WebhookEndpoints::new(state.config.clone(), state.catalog.store().clone())
}

fn answer(e: EndpointError) -> ApiError {
    match e {
        EndpointError::Input { field, message } => ApiError::field(field, message),
        EndpointError::NotFound(_) => ApiError::not_found("id", e),
        EndpointError::NoDelivery(..) => ApiError::not_found("delivery", e),
        EndpointError::Store(e) => ApiError::internal("webhook endpoint operation", e),
    }
}

/// Add an endpoint. The answer holds its signing secret, shown this once: it is never shown
/// again (rotate it to get a new one).
#[utoipa::path(post, path = "/webhook-endpoints", tag = "webhook endpoints",
    request_body(content = CreateBody, description = "The endpoint"),
    responses(
        (status = 201, description = "Added; the body holds the secret, shown this once",
            body = WithSecret,
            headers(("Location" = String, description = "The endpoint's API path"))),
        (status = 400, description = "Bad input, the field named: a `url` that is not http(s), carries a user or password, does not resolve within 2 s or resolves to a private address; an unknown event type", body = ErrorBody),
    ))]
async fn create(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let (endpoint, secret) = service(&state)
        .create(&body.url, &body.event_types)
        .await
        .map_err(answer)?;
    let view = WithSecret {
        endpoint: EndpointView::from(&endpoint),
        secret: secret.expose().to_string(),
    };
    let mut response = (StatusCode::CREATED, Json(view)).into_response();
    if let Ok(location) =
        http::HeaderValue::from_str(&format!("/api/webhook-endpoints/{}", endpoint.id))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Every endpoint (never a secret), and the event types there are.
#[utoipa::path(get, path = "/webhook-endpoints", tag = "webhook endpoints",
    responses((status = 200, description = "The endpoints", body = EndpointList)))]
async fn list(State(state): State<Arc<AppState>>) -> Result<Json<EndpointList>, ApiError> {
    let all = service(&state).list().await.map_err(answer)?;
    Ok(Json(EndpointList {
        endpoints: all.iter().map(EndpointView::from).collect(),
        event_types: crate::webhook_endpoints::EVENT_TYPES.to_vec(),
    }))
}

/// One endpoint (never its secret).
#[utoipa::path(get, path = "/webhook-endpoints/{id}", tag = "webhook endpoints",
    params(("id" = i64, Path, description = "The endpoint's id", example = 1)),
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        (status = 400, description = "An `id` that is not an integer", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    ))]
async fn get_one(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<EndpointView>, ApiError> {
    let e = service(&state).get(id).await.map_err(answer)?;
    Ok(Json(EndpointView::from(&e)))
}

/// Change an endpoint's `url`, `event_types` or `enabled`.
#[utoipa::path(patch, path = "/webhook-endpoints/{id}", tag = "webhook endpoints",
    params(("id" = i64, Path, description = "The endpoint's id", example = 1)),
    request_body(content = PatchBody, description = "What changes"),
    responses(
        (status = 200, description = "The endpoint as it now is", body = EndpointView),
        (status = 400, description = "Bad input, the field named (a `url` as when adding one)", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    ))]
async fn update(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<PatchBody>,
) -> Result<Json<EndpointView>, ApiError> {
    let patch = Patch {
        url: body.url,
        event_types: body.event_types,
        enabled: body.enabled,
    };
    let e = service(&state).update(id, patch).await.map_err(answer)?;
    Ok(Json(EndpointView::from(&e)))
}

/// Remove an endpoint, its deliveries and their log.
#[utoipa::path(delete, path = "/webhook-endpoints/{id}", tag = "webhook endpoints",
    params(("id" = i64, Path, description = "The endpoint's id", example = 1)),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "An `id` that is not an integer", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    ))]
async fn remove(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    service(&state).delete(id).await.map_err(answer)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret, shown this once; the old one still signs beside it until
/// `previous_secret_valid_until` (`webhook_endpoints.rotation_hours`).
#[utoipa::path(post, path = "/webhook-endpoints/{id}/rotate", tag = "webhook endpoints",
    params(("id" = i64, Path, description = "The endpoint's id", example = 1)),
    responses(
        (status = 200, description = "Rotated; the body holds the new secret, shown this once",
            body = WithSecret),
        (status = 400, description = "An `id` that is not an integer", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    ))]
async fn rotate(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<WithSecret>, ApiError> {
    let (endpoint, secret) = service(&state).rotate(id).await.map_err(answer)?;
    Ok(Json(WithSecret {
        endpoint: EndpointView::from(&endpoint),
        secret: secret.expose().to_string(),
    }))
}

/// Queue a `ping` event for this endpoint.
#[utoipa::path(post, path = "/webhook-endpoints/{id}/ping", tag = "webhook endpoints",
    params(("id" = i64, Path, description = "The endpoint's id", example = 1)),
    responses(
        (status = 202, description = "Queued: the delivery", body = DeliveryJson),
        (status = 400, description = "An `id` that is not an integer", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    ))]
async fn ping(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, Json<DeliveryJson>), ApiError> {
    let d = service(&state).ping(id).await.map_err(answer)?;
    Ok((StatusCode::ACCEPTED, Json(DeliveryJson::from(&d))))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// How many (1 to 1,000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Only deliveries older than this one (a `next_before`).
    before: Option<i64>,
}

/// This endpoint's deliveries, newest first, each with its attempts.
#[utoipa::path(get, path = "/webhook-endpoints/{id}/deliveries", tag = "webhook endpoints",
    params(("id" = i64, Path, description = "The endpoint's id", example = 1), PageQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryPage),
        (status = 400, description = "A bad `id`, `limit` or `before`", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    ))]
async fn deliveries(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let limit = checked_limit(q.limit, 100)?;
    let page = service(&state)
        .deliveries(id, q.before, limit)
        .await
        .map_err(answer)?;
    let next_before = (page.len() == limit)
        .then(|| page.last().map(|d| d.id))
        .flatten();
    Ok(Json(DeliveryPage {
        deliveries: page.iter().map(DeliveryJson::from).collect(),
        next_before,
    }))
}

/// Send one delivery again (with the same `webhook-id`).
#[utoipa::path(post, path = "/webhook-endpoints/{id}/deliveries/{delivery}/replay",
    tag = "webhook endpoints",
    params(("id" = i64, Path, description = "The endpoint's id", example = 1),
        ("delivery" = i64, Path, description = "The delivery's id", example = 1)),
    responses(
        (status = 202, description = "Queued (or still pending)", body = Replayed),
        (status = 400, description = "An `id` or `delivery` that is not an integer", body = ErrorBody),
        (status = 404, description = "No such endpoint or delivery", body = ErrorBody),
    ))]
async fn replay_one(
    State(state): State<Arc<AppState>>,
    ApiPath((id, delivery)): ApiPath<(i64, i64)>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let queued = service(&state).replay(id, delivery).await.map_err(answer)?;
    Ok((StatusCode::ACCEPTED, Json(Replayed { delivery, queued })))
}

fn time(field: &'static str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ApiError::field(field, format!("'{raw}' is not an RFC 3339 time ({e})")))
}

/// Send again every finished delivery made in `[since, until)`.
#[utoipa::path(post, path = "/webhook-endpoints/{id}/replay", tag = "webhook endpoints",
    params(("id" = i64, Path, description = "The endpoint's id", example = 1)),
    request_body(content = RangeBody, description = "The time range"),
    responses(
        (status = 202, description = "Queued", body = ReplayedRange),
        (status = 400, description = "A bad `id`, `since` or `until` (which must be later than `since`)", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    ))]
async fn replay_range(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<RangeBody>,
) -> Result<(StatusCode, Json<ReplayedRange>), ApiError> {
    let (since, until) = (time("since", &body.since)?, time("until", &body.until)?);
    let replayed = service(&state)
        .replay_range(id, since, until)
        .await
        .map_err(answer)?;
    Ok((StatusCode::ACCEPTED, Json(ReplayedRange { replayed })))
}
