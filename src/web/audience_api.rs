//! `GET /api/audience`: who reads the feeds (behind the admin token, like every `/api` route).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use serde::Deserialize;

use super::api::{bad_input, error};
use super::AppState;
use crate::audience::report;
use crate::catalog::InputError;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/audience", get(audience))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AudienceQuery {
    days: Option<String>,
}

/// The report of the last `days` days (default 30, at most 365).
async fn audience(
    State(state): State<Arc<AppState>>,
    query: Result<Query<AudienceQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, Some("query"), e.body_text()),
    };
    let days = match q.days.as_deref().map(report::parse_days).transpose() {
        Ok(days) => days.unwrap_or(report::DEFAULT_DAYS),
        Err(message) => return bad_input(&InputError::new("days", message)),
    };
    let (enabled, max_reported) = (
        state.config.audience.enabled,
        state.config.audience.max_reported,
    );
    let today = crate::audience::today();
    let read = state
        .catalog
        .store()
        .read(move |db| report::read(db, today, days, enabled, max_reported))
        .await;
    match read {
        Ok(report) => Json(report).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the feed audience");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "database error; see the daemon's log",
            )
        }
    }
}
