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

use super::{checked_limit, ApiError, ApiJson, ApiPath, ApiQuery, WriteStatus};
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

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only articles with this tag (its slug).
    tag: Option<String>,
    /// Articles per answer (1 to 1,000; default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Articles to skip (not with `after`).
    #[param(minimum = 0)]
    offset: Option<usize>,
    /// The `next` of the page before (opaque; not with `offset`).
    #[param(pattern = r"^-?[0-9]{1,18}\.[0-9]{1,18}$")]
    after: Option<String>,
}

/// A page of the catalog, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ArticleList<'a> {
    pub articles: Vec<ArticleView<'a>>,
    /// Every article in the catalog: exact, but with `after` counted only up to 10,000.
    pub total: u64,
    /// Present (true) when there are more than `total`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub total_capped: bool,
    pub limit: usize,
    pub offset: usize,
    /// `after` for the next page; absent on the last (and when paging by `offset`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A place in the catalog's order, as `next` and `after` write it: `PUBLISHED_US.SEQ`.
fn parse_after(raw: &str) -> Result<crate::catalog::store::PageKey, ApiError> {
    raw.split_once('.')
        .and_then(|(p, s)| Some((p.parse::<i64>().ok()?, s.parse::<i64>().ok()?)))
        .ok_or_else(|| {
            ApiError::field("after", "is not a place in the list (the `next` of a page)")
        })
}

/// Articles, newest first: by `offset` as before, or by key with `after` (`next`).
#[utoipa::path(get, path = "/articles", tag = "articles", params(ListQuery),
    responses(
        (status = 200, description = "A page of articles", body = ArticleList),
        (status = 400, description = "A bad parameter (or `after` with `offset`); it is named", body = ErrorBody),
    ))]
async fn list_articles(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    use crate::catalog::store;
    let limit = checked_limit(q.limit, 100)?;
    if q.after.is_some() && q.offset.is_some() {
        return Err(ApiError::field(
            "after",
            "cannot be given with offset; use one or the other",
        ));
    }
    let after = q.after.as_deref().map(parse_after).transpose()?;
    let offset = q.offset.unwrap_or(0);
    let by_key = offset == 0;
    let (articles, next, total, total_capped) = state
        .catalog
        .store()
        .read(move |db| {
            if !by_key {
                let newest = store::newest(db, q.tag.as_deref(), limit, offset)?;
                return Ok::<_, CatalogError>((newest, None, store::count(db)?, false));
            }
            let mut page = match q.tag.as_deref() {
                Some(tag) => store::page_tagged(db, tag, after, limit + 1)?,
                None => store::page(db, after, limit + 1)?,
            };
            let next = (page.len() > limit).then(|| {
                page.truncate(limit);
                page.last().map(|((p, s), _)| format!("{p}.{s}"))
            });
            let (total, capped) = match after {
                Some(_) => store::count_capped(db, crate::subscribers::search::COUNT_LIMIT)?,
                None => (store::count(db)?, false),
            };
            let articles = page.into_iter().map(|(_, a)| a).collect();
            Ok((articles, next.flatten(), total, capped))
        })
        .await
        .map_err(answered)?;
    let body = ArticleList {
        articles: articles.iter().map(|a| a.view()).collect(),
        total,
        total_capped,
        limit,
        offset,
        next,
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
