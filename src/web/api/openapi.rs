//! The OpenAPI 3.1 document, generated from the routes themselves (`OpenApiRouter`/`routes!`:
//! a route registered there is in the document), finished here with what every `/api`
//! operation shares: the bearer scheme, the `401`/`403`/`503`/`500` answers, and the least role
//! each needs (`x-min-role`, from `needed_role`, the rule the token check applies). Served at
//! `GET /api/openapi.json` (no token; it holds no secret) and committed as `docs/openapi.json`.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use http::header;
use utoipa::openapi::path::Operation;
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ErrorBody;
use crate::web::AppState;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "tidings",
        description = "The admin API of tidings: articles, subscribers, suppressions, digests, the feed audience, outgoing webhook endpoints and followed blogs (sources). Every `/api` route but this document needs `Authorization: Bearer <token>` (an API token from `tidings token add NAME --role R`, or `admin.token`); each operation says the least role it needs (`x-min-role`). Errors are `{\"error\": \"...\", \"field\": \"...\"}`; a body is at most 1 MiB.",
        license(name = "MIT", identifier = "MIT")
    ),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// The document, as served and committed.
pub fn document() -> serde_json::Value {
    let (_, doc) = OpenApiRouter::<Arc<AppState>>::with_openapi(ApiDoc::openapi())
        .nest("/api", super::routes())
        .routes(routes!(openapi_json))
        .merge(crate::web::webhooks::routes())
        .merge(crate::web::websub::routes())
        .split_for_parts();
    let mut doc = serde_json::to_value(finish(doc)).unwrap_or_default();
    rules_between_fields(&mut doc);
    doc
}

/// What a struct's schema cannot say: `content_html` and `content_markdown` not both; a `PUT`
/// takes its slug from the path (a `slug` in the body must match it, so the document leaves
/// it out).
fn rules_between_fields(doc: &mut serde_json::Value) {
    let schemas = &mut doc["components"]["schemas"];
    if let Some(input) = schemas.get_mut("ArticleInput") {
        input["not"] = serde_json::json!({ "required": ["content_html", "content_markdown"] });
        let mut replacement = input.clone();
        if let Some(properties) = replacement["properties"].as_object_mut() {
            properties.remove("slug");
        }
        replacement["description"] =
            "The JSON article format, its slug given by the path (a `slug` here must match it)"
                .into();
        schemas["ArticleReplacement"] = replacement;
    }
    let put = &mut doc["paths"]["/api/articles/{slug}"]["put"]["requestBody"]["content"]
        ["application/json"]["schema"];
    if put.is_object() {
        *put = serde_json::json!({ "$ref": "#/components/schemas/ArticleReplacement" });
    }
}

/// The document's bytes: pretty JSON and a final newline, exactly as `docs/openapi.json`.
pub fn document_bytes() -> Bytes {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot write the OpenAPI document");
        "{}".into()
    });
    text.push('\n');
    Bytes::from(text)
}

/// The document's bytes, made once at start.
#[derive(Clone)]
pub struct Served(pub Bytes);

/// This document (OpenAPI 3.1). Needs no token.
#[utoipa::path(get, path = "/api/openapi.json", tag = "document", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json",
        body = Object)))]
pub async fn openapi_json(Extension(doc): Extension<Served>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], doc.0).into_response()
}

/// The router for `/api/openapi.json`, outside the token check.
pub fn router() -> axum::Router<Arc<AppState>> {
    let (router, _) = OpenApiRouter::<Arc<AppState>>::new()
        .routes(routes!(openapi_json))
        .split_for_parts();
    router
        .method_not_allowed_fallback(super::error::method_not_allowed)
        .layer(Extension(Served(document_bytes())))
}

fn error_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Error")))
            .build(),
    )
}

/// What every `/api` operation shares, and the role each needs.
fn finish(mut doc: OpenApi) -> OpenApi {
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        "bearer".into(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API token (`tidings token add NAME --role owner|editor|viewer`) or `admin.token`",
                ))
                .build(),
        ),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        let Some(relative) = path.strip_prefix("/api") else {
            continue;
        };
        if relative == "/openapi.json" {
            continue;
        }
        let operations = [
            (http::Method::GET, &mut item.get),
            (http::Method::PUT, &mut item.put),
            (http::Method::POST, &mut item.post),
            (http::Method::DELETE, &mut item.delete),
            (http::Method::PATCH, &mut item.patch),
        ];
        for (method, operation) in operations {
            if let Some(op) = operation {
                shared(op, super::needed_role(&method, relative));
            }
        }
    }
    doc
}

/// The bearer scheme, the role and the answers every `/api` operation can give.
fn shared(op: &mut Operation, role: crate::admin::Role) {
    op.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
    let needs = format!("Needs a token whose role is `{role}` or higher.");
    op.description = Some(match op.description.take() {
        Some(d) if !d.is_empty() => format!("{d}\n\n{needs}"),
        _ => needs,
    });
    op.extensions
        .get_or_insert_with(Default::default)
        .insert("x-min-role".into(), serde_json::json!(role.to_string()));
    let answers = &mut op.responses.responses;
    let mut add = |status: &str, response: ResponseBuilder| {
        answers
            .entry(status.into())
            .or_insert_with(|| RefOr::T(response.build()));
    };
    add(
        "401",
        error_response("No token, or a wrong one").header(
            "WWW-Authenticate",
            utoipa::openapi::HeaderBuilder::new()
                .schema(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::Type::String),
                )
                .build(),
        ),
    );
    add(
        "403",
        error_response(&format!(
            "The token's role is below `{role}`, the least this operation needs"
        )),
    );
    add(
        "500",
        error_response("The database failed; see the daemon's log"),
    );
    add(
        "503",
        error_response("No token exists yet (the API is off), or the database cannot check one"),
    );
    if let Some(body) = op.request_body.as_mut() {
        body_limit(body);
    }
}

/// A request body's description says the limit.
fn body_limit(body: &mut RequestBody) {
    let said = body.description.take().unwrap_or_default();
    body.description = Some(format!("{said} (at most 1 MiB)").trim().to_string());
}
