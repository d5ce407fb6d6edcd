//! The admin API for outgoing webhooks: `/api/webhook-endpoints` (create, list, read, change,
//! remove, rotate the secret, ping, the delivery log, replay). Every route is the owner's, reads
//! too: an endpoint's URL and log say where the list's data goes.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use http::{header, StatusCode};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::api::{bad_input, error, MAX_BODY};
use super::AppState;
use crate::admin::{Actor, Role};
use crate::catalog::InputError;
use crate::webhook_endpoints::service::{delivery_json, endpoint_json, Patch};
use crate::webhook_endpoints::{EndpointError, WebhookEndpoints};

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/webhook-endpoints", get(list).post(create))
        .route(
            "/webhook-endpoints/{id}",
            get(get_one).patch(update).delete(remove),
        )
        .route("/webhook-endpoints/{id}/rotate", post(rotate))
        .route("/webhook-endpoints/{id}/ping", post(ping))
        .route("/webhook-endpoints/{id}/deliveries", get(deliveries))
        .route(
            "/webhook-endpoints/{id}/deliveries/{delivery}/replay",
            post(replay_one),
        )
        .route("/webhook-endpoints/{id}/replay", post(replay_range))
}

fn service(state: &AppState) -> WebhookEndpoints {
    WebhookEndpoints::new(state.config.clone(), state.catalog.store().clone())
}

/// Reads too are the owner's (the API's middleware asks a viewer's role for a GET).
fn owner_only(actor: &Actor, what: &str) -> Result<(), Box<Response>> {
    if actor.role >= Role::Owner {
        return Ok(());
    }
    Err(Box::new(error(
        StatusCode::FORBIDDEN,
        None,
        format!("this token's role is {}; {what} needs owner", actor.role),
    )))
}

fn answer(e: EndpointError) -> Response {
    match e {
        EndpointError::Input { field, message } => {
            error(StatusCode::BAD_REQUEST, Some(field), message)
        }
        EndpointError::NotFound(_) => error(StatusCode::NOT_FOUND, Some("id"), e),
        EndpointError::NoDelivery(..) => error(StatusCode::NOT_FOUND, Some("delivery"), e),
        EndpointError::Store(e) => {
            tracing::error!(error = %e, "webhook endpoint operation failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "database error; see the daemon's log",
            )
        }
    }
}

/// An id in the path; a path that is not one names no endpoint.
fn id(raw: &str, field: &'static str) -> Result<i64, Box<Response>> {
    raw.parse::<i64>().map_err(|_| {
        Box::new(error(
            StatusCode::NOT_FOUND,
            Some(field),
            format!("no webhook endpoint {field} '{raw}'"),
        ))
    })
}

/// A JSON body of at most 1 MiB, known fields only; an empty body is `T::default()`.
async fn read_body<T: DeserializeOwned + Default>(
    body: axum::body::Body,
) -> Result<T, Box<Response>> {
    let bytes = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return Err(Box::new(bad_input(&InputError::new(
                "body",
                "is larger than the 1 MiB limit",
            ))))
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(&mut de)
        .map_err(|e| Box::new(bad_input(&crate::catalog::input::json_error(e))))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    url: Option<String>,
    #[serde(default)]
    event_types: Vec<String>,
}

async fn create(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Actor>,
    body: axum::body::Body,
) -> Response {
    if let Err(r) = owner_only(&actor, "POST /api/webhook-endpoints") {
        return *r;
    }
    let body: CreateBody = match read_body(body).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let Some(url) = body.url else {
        return bad_input(&InputError::new("url", "is required"));
    };
    match service(&state).create(&url, &body.event_types).await {
        Ok((endpoint, secret)) => {
            let mut view = endpoint_json(&endpoint);
            // Shown this once; never again.
            view["secret"] = json!(secret.expose());
            let mut response = (StatusCode::CREATED, Json(view)).into_response();
            if let Ok(location) =
                http::HeaderValue::from_str(&format!("/api/webhook-endpoints/{}", endpoint.id))
            {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Err(e) => answer(e),
    }
}

async fn list(State(state): State<Arc<AppState>>, Extension(actor): Extension<Actor>) -> Response {
    if let Err(r) = owner_only(&actor, "GET /api/webhook-endpoints") {
        return *r;
    }
    match service(&state).list().await {
        Ok(all) => {
            let views: Vec<_> = all.iter().map(endpoint_json).collect();
            Json(
                json!({ "endpoints": views, "event_types": crate::webhook_endpoints::EVENT_TYPES }),
            )
            .into_response()
        }
        Err(e) => answer(e),
    }
}

async fn get_one(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Actor>,
    Path(raw): Path<String>,
) -> Response {
    if let Err(r) = owner_only(&actor, "GET /api/webhook-endpoints/{id}") {
        return *r;
    }
    let id = match id(&raw, "id") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    match service(&state).get(id).await {
        Ok(e) => Json(endpoint_json(&e)).into_response(),
        Err(e) => answer(e),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    url: Option<String>,
    event_types: Option<Vec<String>>,
    enabled: Option<bool>,
}

async fn update(
    State(state): State<Arc<AppState>>,
    Path(raw): Path<String>,
    body: axum::body::Body,
) -> Response {
    let id = match id(&raw, "id") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let body: PatchBody = match read_body(body).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let patch = Patch {
        url: body.url,
        event_types: body.event_types,
        enabled: body.enabled,
    };
    match service(&state).update(id, patch).await {
        Ok(e) => Json(endpoint_json(&e)).into_response(),
        Err(e) => answer(e),
    }
}

async fn remove(State(state): State<Arc<AppState>>, Path(raw): Path<String>) -> Response {
    let id = match id(&raw, "id") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    match service(&state).delete(id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => answer(e),
    }
}

async fn rotate(State(state): State<Arc<AppState>>, Path(raw): Path<String>) -> Response {
    let id = match id(&raw, "id") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    match service(&state).rotate(id).await {
        Ok((endpoint, secret)) => {
            let mut view = endpoint_json(&endpoint);
            view["secret"] = json!(secret.expose());
            Json(view).into_response()
        }
        Err(e) => answer(e),
    }
}

async fn ping(State(state): State<Arc<AppState>>, Path(raw): Path<String>) -> Response {
    let id = match id(&raw, "id") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    match service(&state).ping(id).await {
        Ok(d) => (StatusCode::ACCEPTED, Json(delivery_json(&d))).into_response(),
        Err(e) => answer(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    limit: Option<usize>,
    before: Option<i64>,
}

async fn deliveries(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Actor>,
    Path(raw): Path<String>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(r) = owner_only(&actor, "GET /api/webhook-endpoints/{id}/deliveries") {
        return *r;
    }
    let id = match id(&raw, "id") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, Some("query"), e.body_text()),
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return bad_input(&InputError::new("limit", "must be from 1 to 1000"));
    }
    match service(&state).deliveries(id, q.before, limit).await {
        Ok(page) => {
            let next = (page.len() == limit)
                .then(|| page.last().map(|d| d.id))
                .flatten();
            let views: Vec<_> = page.iter().map(delivery_json).collect();
            Json(json!({ "deliveries": views, "next_before": next })).into_response()
        }
        Err(e) => answer(e),
    }
}

async fn replay_one(
    State(state): State<Arc<AppState>>,
    Path((raw, delivery)): Path<(String, String)>,
) -> Response {
    let (id, delivery) = match (id(&raw, "id"), id(&delivery, "delivery")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return *r,
    };
    match service(&state).replay(id, delivery).await {
        Ok(queued) => (
            StatusCode::ACCEPTED,
            Json(json!({ "delivery": delivery, "queued": queued })),
        )
            .into_response(),
        Err(e) => answer(e),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RangeBody {
    since: Option<String>,
    until: Option<String>,
}

fn time(field: &'static str, raw: Option<String>) -> Result<DateTime<Utc>, Box<Response>> {
    let raw =
        raw.ok_or_else(|| Box::new(bad_input(&InputError::new(field, "is required (RFC 3339)"))))?;
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            Box::new(bad_input(&InputError::new(
                field,
                format!("'{raw}' is not an RFC 3339 time ({e})"),
            )))
        })
}

async fn replay_range(
    State(state): State<Arc<AppState>>,
    Path(raw): Path<String>,
    body: axum::body::Body,
) -> Response {
    let id = match id(&raw, "id") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let body: RangeBody = match read_body(body).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let (since, until) = match (time("since", body.since), time("until", body.until)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return *r,
    };
    match service(&state).replay_range(id, since, until).await {
        Ok(n) => (StatusCode::ACCEPTED, Json(json!({ "replayed": n }))).into_response(),
        Err(e) => answer(e),
    }
}
