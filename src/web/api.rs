//! The admin API under `/api`: JSON in and out, every route behind `Authorization: Bearer <token>`.
//! Routes are registered through `OpenApiRouter`/`routes!`, so each one is in the OpenAPI
//! document (`openapi.rs`, served at `/api/openapi.json`); every handler answers through
//! `ApiError` (`error.rs`); one `DefaultBodyLimit` layer caps every body.

mod articles;
mod digests;
pub mod error;
pub mod openapi;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::{header, StatusCode};
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa_axum::router::OpenApiRouter;

use super::AppState;
use crate::admin::{Actor, Role, Via};
pub use error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, OptionalJson, MAX_BODY};

/// The `/api` routes (paths relative to `/api`) with their descriptions, no layers yet.
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .merge(articles::routes())
        .merge(digests::routes())
        .merge(super::subscribers_api::routes())
        .merge(super::audience_api::routes())
        .merge(super::webhook_endpoints_api::routes())
        .merge(super::sources_api::routes())
}

/// The `/api` router: the routes behind the token check, the body limit and a `405` with
/// `Allow` through `ApiError` for a method a path does not take.
pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let (api, _) = routes().split_for_parts();
    api.method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(state, require_token))
}

/// `limit` as given: 1 to 1,000 (`default` when absent).
pub fn checked_limit(limit: Option<usize>, default: usize) -> Result<usize, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::field(
            "limit",
            format!("{n} is not from 1 to {MAX_LIMIT}"),
        )),
    }
}

/// The most a page of any list may hold.
pub const MAX_LIMIT: usize = 1000;

/// How a write went: `created`, `updated` or `unchanged`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WriteStatus {
    Created,
    Updated,
    Unchanged,
}

impl WriteStatus {
    /// `201` for a created resource, else `200`.
    pub fn http(self) -> StatusCode {
        match self {
            WriteStatus::Created => StatusCode::CREATED,
            _ => StatusCode::OK,
        }
    }
}

async fn require_token(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .trim()
        .to_string();
    let actor = match authenticate(&state, &given).await {
        Ok(actor) => actor,
        Err(e) => return refused(&req, e),
    };
    let needed = needed_role(req.method(), req.uri().path());
    if actor.role < needed {
        let e = ApiError::new(
            StatusCode::FORBIDDEN,
            None,
            format!(
                "this token's role is {}; {} {} needs {}",
                actor.role,
                req.method(),
                req.uri().path(),
                needed
            ),
        );
        return refused(&req, e);
    }
    let change = (!matches!(*req.method(), http::Method::GET | http::Method::HEAD)).then(|| {
        let path = req.uri().path();
        (format!("{} /api{}", req.method(), path), audit_target(path))
    });
    req.extensions_mut().insert(actor.clone());
    let response = next.run(req).await;
    if let Some((action, target)) = change.filter(|_| response.status().is_success()) {
        // A created resource is named by its Location (the path held no slug yet).
        let target = target.or_else(|| {
            response
                .headers()
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| l.strip_prefix("/api"))
                .and_then(audit_target)
        });
        if let Err(e) = state.console.audit(&actor, action, target, None).await {
            tracing::error!(error = %e, "cannot write the audit log");
        }
    }
    response
}

/// A refusal: the body is left unread, so this connection cannot carry another request: say
/// so (RFC 9112 9.6), or the client may send its next request on a connection being closed.
fn refused(req: &Request, e: ApiError) -> Response {
    let mut response = e.into_response();
    if carries_body(req) {
        response
            .headers_mut()
            .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    response
}

/// The least role a request needs: anything on webhook endpoints an owner's (reads too: their
/// URLs and logs say where the list's data goes); any other read a viewer's; a change to
/// articles an editor's; every other change an owner's. The OpenAPI document states it for each
/// operation.
pub fn needed_role(method: &http::Method, path: &str) -> Role {
    if path == "/webhook-endpoints" || path.starts_with("/webhook-endpoints/") {
        Role::Owner
    } else if matches!(*method, http::Method::GET | http::Method::HEAD) {
        Role::Viewer
    } else if path == "/articles"
        || path.starts_with("/articles/")
        || path == "/sources"
        || path.starts_with("/sources/")
    {
        Role::Editor
    } else {
        Role::Owner
    }
}

/// What an API change acted on, for the audit log: the address or slug in its path.
fn audit_target(path: &str) -> Option<String> {
    let mut parts = path.trim_start_matches('/').split('/');
    let (noun, item) = (parts.next()?, parts.next()?);
    matches!(noun, "articles" | "subscribers" | "suppressions").then(|| {
        percent_encoding::percent_decode_str(item)
            .decode_utf8_lossy()
            .to_lowercase()
    })
}

/// Who the bearer token acts as: `admin.token` (an owner) or an API token; otherwise the
/// refusal (`401`, or `503` when no token of either kind exists).
async fn authenticate(state: &AppState, given: &str) -> Result<Actor, ApiError> {
    let configured = state.config.admin.token.as_ref().map(|t| t.expose());
    if let Some(expected) = configured {
        // Hash both sides so the comparison takes the same time whatever the lengths.
        let ok: bool = blake3::hash(given.as_bytes())
            .as_bytes()
            .ct_eq(blake3::hash(expected.as_bytes()).as_bytes())
            .into();
        if ok {
            return Ok(Actor {
                name: "admin.token".into(),
                role: Role::Owner,
                via: Via::Api,
            });
        }
    }
    let database_error = |e: crate::store::Error| {
        tracing::error!(error = %e, "cannot check an API token");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "cannot check the token: the database is unreachable",
        )
    };
    if !given.is_empty() {
        if let Some(actor) = state.console.token(given).await.map_err(database_error)? {
            return Ok(actor);
        }
    }
    if configured.is_none() && !state.console.has_tokens().await.map_err(database_error)? {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "the admin API is off: add a token with `tidings token add NAME --role owner`, or set admin.token in tidings.toml or TIDINGS_ADMIN_TOKEN (e.g. openssl rand -hex 32)",
        ));
    }
    Err(ApiError::unauthorized(
        "Bearer realm=\"tidings\"",
        "missing or wrong token: send Authorization: Bearer <token> (admin.token or one from `tidings token add`)",
    ))
}

/// Whether a request announces a body (a length other than 0, or chunks).
fn carries_body(req: &Request) -> bool {
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}
