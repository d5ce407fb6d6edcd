//! The admin API for followed blogs: `/api/sources` (list, add) and `/api/sources/{id}` (read,
//! remove). Reads are every role's; adding and removing are the editor's (`api::needed_role`).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{header, StatusCode};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::{ApiError, ApiJson, ApiPath, ErrorBody};
use super::AppState;
use crate::sources::{AddSource, Source, SourceError};

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, remove))
}

fn answer(e: SourceError) -> ApiError {
    match e {
        SourceError::Invalid { field, problem } => ApiError::field(&field, problem),
        SourceError::NotFound(_) => ApiError::not_found("id", e),
        SourceError::Exists(_) => ApiError::new(StatusCode::CONFLICT, Some("url"), e),
        SourceError::Busy(_) => ApiError::new(StatusCode::CONFLICT, Some("id"), e),
        SourceError::Store(e) => ApiError::internal("source operation", e),
    }
}

/// A feed to follow.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// The feed's http(s) URL (RSS, Atom or JSON Feed).
    #[schema(format = "uri", pattern = r"^https?://[^/?#@]", max_length = 2048)]
    pub url: String,
    /// Tag names every entry gets, beside the feed's own categories.
    #[serde(default)]
    #[schema(value_type = Vec<crate::catalog::input::TagName>)]
    pub tags: Vec<String>,
    /// Default: the host. Its articles' slugs start with it.
    #[schema(min_length = 1, max_length = 200, pattern = r"[^\s\x00-\x1f\x7f-\x9f]")]
    pub name: Option<String>,
}

/// Every source.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SourceList {
    pub sources: Vec<Source>,
}

/// Follow a feed. Its first fetch, at once, adds what the feed holds without mailing anyone.
#[utoipa::path(post, path = "/sources", tag = "sources",
    request_body(content = CreateBody, description = "The feed"),
    responses(
        (status = 201, description = "Following it", body = Source,
            headers(("Location" = String, description = "The source's API path"))),
        (status = 400, description = "Bad input, the field named: a `url` that is not http(s), carries a user or password, does not resolve or resolves to a private address not in `sources.allow_private`; a bad tag or name", body = ErrorBody),
        (status = 409, description = "A source with this URL exists", body = ErrorBody),
    ))]
async fn create(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let source = state
        .sources
        .add(AddSource {
            url: body.url,
            tags: body.tags,
            name: body.name,
        })
        .await
        .map_err(answer)?;
    let mut response = (StatusCode::CREATED, Json(source.clone())).into_response();
    if let Ok(location) = http::HeaderValue::from_str(&format!("/api/sources/{}", source.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Every source: its state, last and next fetch, last error and entries.
#[utoipa::path(get, path = "/sources", tag = "sources",
    responses((status = 200, description = "The sources", body = SourceList)))]
async fn list(State(state): State<Arc<AppState>>) -> Result<Json<SourceList>, ApiError> {
    let sources = state.sources.list().await.map_err(answer)?;
    Ok(Json(SourceList { sources }))
}

/// One source.
#[utoipa::path(get, path = "/sources/{id}", tag = "sources",
    params(("id" = i64, Path, description = "The source's id", example = 1)),
    responses(
        (status = 200, description = "The source", body = Source),
        (status = 400, description = "An `id` that is not an integer", body = ErrorBody),
        (status = 404, description = "No such source", body = ErrorBody),
    ))]
async fn get_one(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Source>, ApiError> {
    Ok(Json(state.sources.get(id).await.map_err(answer)?))
}

/// Stop following a source. The articles it brought stay in the catalog.
#[utoipa::path(delete, path = "/sources/{id}", tag = "sources",
    params(("id" = i64, Path, description = "The source's id", example = 1)),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "An `id` that is not an integer", body = ErrorBody),
        (status = 404, description = "No such source", body = ErrorBody),
    ))]
async fn remove(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    state.sources.remove(id).await.map_err(answer)?;
    Ok(StatusCode::NO_CONTENT)
}
