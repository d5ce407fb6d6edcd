//! The admin API under `/api`: JSON in and out, every route behind `Authorization: Bearer <token>`.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use http::{header, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::AppState;
use crate::admin::{Actor, Role, Via};
use crate::catalog::{ArticleInput, ArticleJson, CatalogError, InputError, Upserted};

/// Request bodies larger than this are refused.
pub const MAX_BODY: usize = 1024 * 1024;

pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .merge(super::subscribers_api::router())
        .merge(super::audience_api::router())
        .merge(super::webhook_endpoints_api::router())
        .route("/articles", get(list_articles).post(create_article))
        .route("/digests/run", axum::routing::post(run_digests))
        .route(
            "/articles/{slug}",
            get(get_article).put(put_article).delete(delete_article),
        )
        .layer(middleware::from_fn_with_state(state, require_token))
}

/// An error answer: `{"error": "...", "field": "..."}`.
pub fn error(status: StatusCode, field: Option<&str>, message: impl std::fmt::Display) -> Response {
    let body = match field {
        Some(f) => json!({ "error": message.to_string(), "field": f }),
        None => json!({ "error": message.to_string() }),
    };
    (status, Json(body)).into_response()
}

pub fn bad_input(e: &InputError) -> Response {
    error(StatusCode::BAD_REQUEST, Some(&e.field), e)
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
        Err(response) => return refused(&req, response),
    };
    let needed = needed_role(req.method(), req.uri().path());
    if actor.role < needed {
        let response = error(
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
        return refused(&req, response);
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
fn refused(req: &Request, mut response: Response) -> Response {
    if carries_body(req) {
        response
            .headers_mut()
            .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    response
}

/// The least role a request needs: any read is a viewer's; a change to articles an editor's;
/// every other change an owner's.
pub fn needed_role(method: &http::Method, path: &str) -> Role {
    if matches!(*method, http::Method::GET | http::Method::HEAD) {
        Role::Viewer
    } else if path == "/articles" || path.starts_with("/articles/") {
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
/// answer (`401`, or `503` when no token of either kind exists).
async fn authenticate(state: &AppState, given: &str) -> Result<Actor, Response> {
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
        error(
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
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "the admin API is off: add a token with `tidings token add NAME --role owner`, or set admin.token in tidings.toml or TIDINGS_ADMIN_TOKEN (e.g. openssl rand -hex 32)",
        ));
    }
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        None,
        "missing or wrong token: send Authorization: Bearer <token> (admin.token or one from `tidings token add`)",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer realm=\"tidings\""),
    );
    Err(response)
}

/// Whether a request announces a body (a length other than 0, or chunks).
fn carries_body(req: &Request) -> bool {
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// Reads a JSON article body: at most 1 MiB, UTF-8, known fields only.
async fn read_json(body: axum::body::Body) -> Result<ArticleJson, InputError> {
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    match limited.collect().await {
        Ok(collected) => ArticleJson::from_json(&collected.to_bytes()),
        Err(_) => Err(InputError::new(
            "body",
            "is larger than the 1 MiB limit (or could not be read)",
        )),
    }
}

/// A catalog answer, or the response its error calls for.
pub fn answered<T>(result: Result<T, CatalogError>) -> Result<T, Box<Response>> {
    match result {
        Ok(value) => Ok(value),
        Err(CatalogError::Input(e)) => Err(Box::new(bad_input(&e))),
        Err(e) => {
            tracing::error!(error = %e, "catalog operation failed");
            Err(Box::new(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "database error; see the daemon's log",
            )))
        }
    }
}

async fn upsert(state: Arc<AppState>, input: ArticleInput) -> Response {
    let (outcome, article) = match answered(state.catalog.upsert(input, Utc::now()).await) {
        Ok(done) => done,
        Err(response) => return *response,
    };
    if outcome != Upserted::Unchanged {
        state.publisher.refresh().await;
    }
    let (status, word) = match outcome {
        Upserted::Created => (StatusCode::CREATED, "created"),
        Upserted::Updated => (StatusCode::OK, "updated"),
        Upserted::Unchanged => (StatusCode::OK, "unchanged"),
    };
    let mut response = (
        status,
        Json(json!({ "status": word, "article": article.view() })),
    )
        .into_response();
    if let Ok(location) = http::HeaderValue::from_str(&format!("/api/articles/{}", article.slug)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

async fn create_article(State(state): State<Arc<AppState>>, body: axum::body::Body) -> Response {
    match read_json(body).await.and_then(ArticleInput::parse) {
        Ok(input) => upsert(state, input).await,
        Err(e) => bad_input(&e),
    }
}

/// Creates or replaces the article at this slug (the body's `slug`, if any, must agree).
async fn put_article(
    State(state): State<Arc<AppState>>,
    Path(slug): Path<String>,
    body: axum::body::Body,
) -> Response {
    let parsed = read_json(body).await.and_then(|mut raw| {
        match &raw.slug {
            Some(s) if s.trim() != slug => {
                return Err(InputError::new(
                    "slug",
                    format!("'{s}' does not match the URL's slug '{slug}'"),
                ))
            }
            _ => raw.slug = Some(slug),
        }
        ArticleInput::parse(raw)
    });
    match parsed {
        Ok(input) => upsert(state, input).await,
        Err(e) => bad_input(&e),
    }
}

async fn delete_article(State(state): State<Arc<AppState>>, Path(slug): Path<String>) -> Response {
    let wanted = slug.clone();
    match answered(state.catalog.remove(wanted, Utc::now()).await) {
        Ok(true) => {
            state.publisher.refresh().await;
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            Some("slug"),
            format!("no article with slug '{slug}'"),
        ),
        Err(response) => *response,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    tag: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn list_articles(
    State(state): State<Arc<AppState>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, Some("query"), e.body_text()),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let offset = q.offset.unwrap_or(0);
    let read = state
        .catalog
        .store()
        .read(move |db| {
            let newest = crate::catalog::store::newest(db, q.tag.as_deref(), limit, offset)?;
            Ok::<_, CatalogError>((newest, crate::catalog::store::count(db)?))
        })
        .await;
    let result = answered(read);
    match result {
        Ok((articles, total)) => {
            let views: Vec<_> = articles.iter().map(|a| a.view()).collect();
            Json(json!({ "articles": views, "total": total, "limit": limit, "offset": offset }))
                .into_response()
        }
        Err(response) => *response,
    }
}

async fn get_article(State(state): State<Arc<AppState>>, Path(slug): Path<String>) -> Response {
    let wanted = slug.clone();
    match answered(state.catalog.get(wanted).await) {
        Ok(Some(article)) => Json(json!(article.view())).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            Some("slug"),
            format!("no article with slug '{slug}'"),
        ),
        Err(response) => *response,
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RunBody {
    #[serde(default)]
    now: bool,
    #[serde(default)]
    dry_run: bool,
}

/// `POST /api/digests/run`: runs digests now (`{"now": true}`: everyone confirmed is due) and
/// answers with the run's report once it is done.
async fn run_digests(State(state): State<Arc<AppState>>, body: axum::body::Body) -> Response {
    let bytes = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return bad_input(&InputError::new("body", "is larger than the 1 MiB limit")),
    };
    let body: RunBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        RunBody::default()
    } else {
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize(&mut de) {
            Ok(b) => b,
            Err(e) => return bad_input(&crate::catalog::input::json_error(e)),
        }
    };
    let opts = crate::digest::RunOptions {
        now: Utc::now(),
        force: body.now,
        dry_run: body.dry_run,
    };
    match state.digests.run(opts, None).await {
        Ok(report) => Json(json!(report)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "digest run failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                format!("digest run failed: {e}"),
            )
        }
    }
}
