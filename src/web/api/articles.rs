//! `/api/articles`: the catalog through the API (list, read, create, replace, remove).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use http::{header, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiJson, ApiPath, ApiQuery, WriteStatus};
use crate::catalog::{ArticleInput, ArticleJson, ArticleView, CatalogError, InputError, Upserted};
use crate::web::AppState;

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_articles, create_article))
        .routes(routes!(get_article, put_article, delete_article))
}

/// A catalog error as the API answers it.
fn answered(e: CatalogError) -> ApiError {
    match e {
        CatalogError::Input(e) => ApiError::input(&e),
        e => ApiError::internal("catalog operation", e),
    }
}

/// A written article: how the write went, and the article as it now is.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ArticleWritten<'a> {
    pub status: WriteStatus,
    pub article: ArticleView<'a>,
}

/// The API takes `url` and `image` as the document says: RFC 3986 URIs as written (ASCII, no
/// white space, `%` followed by two hex digits, one `#` at most; no image is `null`, not ""),
/// which the catalog's own check
/// (an absolute http(s) URL) then reads. Imports keep the catalog's looser reading.
fn uris_as_written(raw: &ArticleJson) -> Result<(), ApiError> {
    for (field, value) in [("url", &raw.url), ("image", &raw.image)] {
        let Some(value) = value else { continue };
        let bytes = value.as_bytes();
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b);
        let escapes_ok = bytes.iter().enumerate().all(|(i, &b)| {
            b != b'%'
                || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        });
        let hashes = bytes.iter().filter(|&&b| b == b'#').count();
        if bytes.is_empty() || !bytes.iter().all(|&b| allowed(b)) || !escapes_ok || hashes > 1 {
            return Err(ApiError::field(
                field,
                "is not a URI as RFC 3986 writes one (ASCII, no spaces; percent-encode the rest)",
            ));
        }
    }
    Ok(())
}

async fn upsert(state: Arc<AppState>, input: ArticleInput) -> Result<Response, ApiError> {
    let (outcome, article) = state
        .catalog
        .upsert(input, Utc::now())
        .await
        .map_err(answered)?;
    if outcome != Upserted::Unchanged {
        state.publisher.refresh().await;
    }
    let status = match outcome {
        Upserted::Created => WriteStatus::Created,
        Upserted::Updated => WriteStatus::Updated,
        Upserted::Unchanged => WriteStatus::Unchanged,
    };
    let body = ArticleWritten {
        status,
        article: article.view(),
    };
    let mut response = (status.http(), Json(body)).into_response();
    if let Ok(location) = http::HeaderValue::from_str(&format!("/api/articles/{}", article.slug)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Create an article, or update the one with the same slug.
#[utoipa::path(post, path = "/articles", tag = "articles",
    request_body(content = ArticleJson, description = "The JSON article format"),
    responses(
        (status = 201, description = "Created", body = ArticleWritten,
            headers(("Location" = String, description = "The article's API path"))),
        (status = 200, description = "Updated, or unchanged", body = ArticleWritten,
            headers(("Location" = String, description = "The article's API path"))),
        (status = 400, description = "Bad input; the field is named", body = ErrorBody),
    ))]
async fn create_article(
    State(state): State<Arc<AppState>>,
    ApiJson(raw): ApiJson<ArticleJson>,
) -> Result<Response, ApiError> {
    uris_as_written(&raw)?;
    upsert(state, ArticleInput::parse(raw)?).await
}

/// Create or replace the article at this slug (a `slug` in the body must match).
#[utoipa::path(put, path = "/articles/{slug}", tag = "articles",
    params(("slug" = String, Path, description = "The article's slug",
        min_length = 1, max_length = 200, pattern = r"^[A-Za-z0-9_~-][A-Za-z0-9._~-]*$")),
    request_body(content = ArticleJson, description = "The JSON article format"),
    responses(
        (status = 201, description = "Created", body = ArticleWritten,
            headers(("Location" = String, description = "The article's API path"))),
        (status = 200, description = "Replaced, or unchanged", body = ArticleWritten,
            headers(("Location" = String, description = "The article's API path"))),
        (status = 400, description = "Bad input; the field is named", body = ErrorBody),
    ))]
async fn put_article(
    State(state): State<Arc<AppState>>,
    ApiPath(slug): ApiPath<String>,
    ApiJson(mut raw): ApiJson<ArticleJson>,
) -> Result<Response, ApiError> {
    match &raw.slug {
        Some(s) if s.trim() != slug => {
            return Err(ApiError::input(&InputError::new(
                "slug",
                format!("'{s}' does not match the URL's slug '{slug}'"),
            )))
        }
        _ => raw.slug = Some(slug),
    }
    uris_as_written(&raw)?;
    upsert(state, ArticleInput::parse(raw)?).await
}

/// Remove an article.
#[utoipa::path(delete, path = "/articles/{slug}", tag = "articles",
    params(("slug" = String, Path, description = "The article's slug")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such article", body = ErrorBody),
    ))]
async fn delete_article(
    State(state): State<Arc<AppState>>,
    ApiPath(slug): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let removed = state
        .catalog
        .remove(slug.clone(), Utc::now())
        .await
        .map_err(answered)?;
    if !removed {
        return Err(ApiError::not_found(
            "slug",
            format!("no article with slug '{slug}'"),
        ));
    }
    state.publisher.refresh().await;
    Ok(StatusCode::NO_CONTENT)
}

/// The most a page may hold.
pub const MAX_LIMIT: usize = 1000;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only articles with this tag (its slug).
    tag: Option<String>,
    /// Articles per answer (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Articles to skip.
    #[param(minimum = 0)]
    offset: Option<usize>,
}

/// A page of the catalog, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ArticleList<'a> {
    pub articles: Vec<ArticleView<'a>>,
    /// Every article in the catalog.
    pub total: u64,
    pub limit: usize,
    pub offset: usize,
}

/// `limit` as given: 1 to 1,000.
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

/// Articles, newest first.
#[utoipa::path(get, path = "/articles", tag = "articles", params(ListQuery),
    responses(
        (status = 200, description = "A page of articles", body = ArticleList),
        (status = 400, description = "A bad parameter; it is named", body = ErrorBody),
    ))]
async fn list_articles(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = checked_limit(q.limit, 100)?;
    let offset = q.offset.unwrap_or(0);
    let (articles, total) = state
        .catalog
        .store()
        .read(move |db| {
            let newest = crate::catalog::store::newest(db, q.tag.as_deref(), limit, offset)?;
            Ok::<_, CatalogError>((newest, crate::catalog::store::count(db)?))
        })
        .await
        .map_err(answered)?;
    let body = ArticleList {
        articles: articles.iter().map(|a| a.view()).collect(),
        total,
        limit,
        offset,
    };
    Ok(Json(body).into_response())
}

/// One article.
#[utoipa::path(get, path = "/articles/{slug}", tag = "articles",
    params(("slug" = String, Path, description = "The article's slug")),
    responses(
        (status = 200, description = "The article", body = ArticleView),
        (status = 404, description = "No such article", body = ErrorBody),
    ))]
async fn get_article(
    State(state): State<Arc<AppState>>,
    ApiPath(slug): ApiPath<String>,
) -> Result<Response, ApiError> {
    match state.catalog.get(slug.clone()).await.map_err(answered)? {
        Some(article) => Ok(Json(article.view()).into_response()),
        None => Err(ApiError::not_found(
            "slug",
            format!("no article with slug '{slug}'"),
        )),
    }
}

use super::ErrorBody;
