//! The API's one error type, `ApiError` (`{"error": "...", "field": "..."}`), and the extractors
//! whose rejections go through it: `ApiJson` (a body under the one `DefaultBodyLimit`, UTF-8,
//! known fields only), `ApiQuery` and `ApiPath`, each naming the field that was wrong.

use axum::extract::rejection::{BytesRejection, FailedToBufferBody, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::catalog::InputError;

/// Request bodies larger than this are refused (one `DefaultBodyLimit` layer over `/api` and
/// `/webhooks`).
pub const MAX_BODY: usize = 1024 * 1024;

/// Every error answer of the API: a status, and `{"error": "...", "field": "..."}` (no `field`
/// when no one field is to blame).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub field: Option<String>,
    pub message: String,
    /// `WWW-Authenticate` for a `401`.
    challenge: Option<&'static str>,
}

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What was wrong; for bad input it starts with the field's name (`title: is required`).
    pub error: String,
    /// The field (or query parameter, path part, `body`) that was wrong, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, field: Option<&str>, message: impl std::fmt::Display) -> Self {
        ApiError {
            status,
            field: field.map(str::to_string),
            message: message.to_string(),
            challenge: None,
        }
    }

    /// `400` naming the field: `field: problem`.
    pub fn input(e: &InputError) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, Some(&e.field), e)
    }

    /// `400` for `field`, with the message `field: problem`.
    pub fn field(field: &str, problem: impl std::fmt::Display) -> Self {
        ApiError::input(&InputError::new(field, problem.to_string()))
    }

    pub fn not_found(field: &str, message: impl std::fmt::Display) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, Some(field), message)
    }

    /// `500`: the cause goes to the log, not to the client.
    pub fn internal(what: &str, cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "{what} failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "database error; see the daemon's log",
        )
    }

    /// `401` with a `WWW-Authenticate` challenge of `scheme`.
    pub fn unauthorized(challenge: &'static str, message: impl std::fmt::Display) -> Self {
        ApiError {
            challenge: Some(challenge),
            ..ApiError::new(StatusCode::UNAUTHORIZED, None, message)
        }
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        ApiError::input(&e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            field: self.field,
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// A body that could not be read: over the limit, stalled, or cut off.
impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        match rejection {
            BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                ApiError::field("body", "is larger than the 1 MiB limit")
            }
            other => ApiError::field("body", format!("could not be read ({other})")),
        }
    }
}

/// A path part that is not what the route expects (e.g. not UTF-8 once decoded).
impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        use axum::extract::path::ErrorKind;
        let field = match &rejection {
            PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
                ErrorKind::ParseErrorAtKey { key, .. }
                | ErrorKind::InvalidUtf8InPathParam { key } => key.clone(),
                _ => "path".to_string(),
            },
            _ => "path".to_string(),
        };
        ApiError::field(&field, rejection.body_text())
    }
}

/// Reads a JSON value from `bytes`: UTF-8 first, then serde with the path of a bad field.
pub fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ApiError::field("body", format!("is not valid UTF-8 ({e})")))?;
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de)
        .map_err(|e| ApiError::input(&crate::catalog::input::json_error(e)))
}

/// A JSON body (any or no `Content-Type`, as the API always took): at most `MAX_BODY` bytes,
/// UTF-8, and every error naming its field.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await?;
        from_json(&bytes).map(ApiJson)
    }
}

/// A JSON body that may be empty (or only white space, or `null`): then `T::default()`.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        from_json::<Option<T>>(&bytes).map(|t| OptionalJson(t.unwrap_or_default()))
    }
}

/// A query string, every error naming the parameter (an unknown one is refused).
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| ApiError::input(&crate::catalog::input::json_error(e)))
    }
}

/// A path parameter; a rejection names it.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(t)) => Ok(ApiPath(t)),
            Err(rejection) => {
                let mut e = ApiError::from(rejection);
                // A route with one parameter: that is the one to blame.
                if e.field.as_deref() == Some("path") {
                    let params =
                        axum::extract::RawPathParams::from_request_parts(parts, state).await;
                    if let Ok(params) = params {
                        let keys: Vec<&str> = params.iter().map(|(k, _)| k).collect();
                        if let [key] = keys[..] {
                            e = ApiError::field(key, e.message.trim_start_matches("path: "));
                        }
                    }
                }
                Err(e)
            }
        }
    }
}

/// `405` with `Allow` (set by the router) for a method a route does not take.
pub async fn method_not_allowed(method: http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        format!("{method} is not allowed here; the Allow header lists what is"),
    )
}
