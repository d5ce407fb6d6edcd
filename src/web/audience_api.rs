//! `GET /api/audience`: who reads the feeds (behind the token check, like every `/api` route).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::{ApiError, ApiQuery, ErrorBody};
use super::AppState;
use crate::audience::report::{self, AudienceReport};

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(audience))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AudienceQuery {
    /// Days of figures (1 to 365, default 30).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 365)]
    days: Option<String>,
}

/// The feed audience of the last `days` days.
#[utoipa::path(get, path = "/audience", tag = "audience", params(AudienceQuery),
    responses(
        (status = 200, description = "The report", body = AudienceReport),
        (status = 400, description = "A bad `days`", body = ErrorBody),
    ))]
async fn audience(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<AudienceQuery>,
) -> Result<Json<AudienceReport>, ApiError> {
    let days = q
        .days
        .as_deref()
        .map(report::parse_days)
        .transpose()
        .map_err(|message| ApiError::field("days", message))?
        .unwrap_or(report::DEFAULT_DAYS);
    let (enabled, max_reported) = (
        state.config.audience.enabled,
        state.config.audience.max_reported,
    );
    let today = crate::audience::today();
    state
        .catalog
        .store()
        .read(move |db| report::read(db, today, days, enabled, max_reported))
        .await
        .map(Json)
        .map_err(|e| ApiError::internal("reading the feed audience", e))
}
