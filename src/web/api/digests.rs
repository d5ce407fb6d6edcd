//! `/api/digests`: run digests now and wait for the report (`POST /api/digests/run`).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ErrorBody, OptionalJson};
use crate::digest::RunReport;
use crate::web::AppState;

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(run_digests))
}

/// How to run: `now` makes every confirmed subscriber due now; `dry_run` plans and changes
/// nothing.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    #[serde(default)]
    now: bool,
    #[serde(default)]
    dry_run: bool,
}

/// Run digests now and answer with the run's report once it is done (waits for a run already
/// going to end first). The body is optional.
#[utoipa::path(post, path = "/digests/run", tag = "digests",
    request_body(content = Option<RunBody>, description = "Optional; empty is `{}`"),
    responses(
        (status = 200, description = "The run's report", body = RunReport),
        (status = 400, description = "Bad input; the field is named", body = ErrorBody),
    ))]
async fn run_digests(
    State(state): State<Arc<AppState>>,
    OptionalJson(body): OptionalJson<RunBody>,
) -> Result<Json<RunReport>, ApiError> {
    let opts = crate::digest::RunOptions {
        now: Utc::now(),
        force: body.now,
        dry_run: body.dry_run,
    };
    match state.digests.run(opts, None).await {
        Ok(report) => Ok(Json(report)),
        Err(e) => {
            tracing::error!(error = %e, "digest run failed");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                format!("digest run failed: {e}"),
            ))
        }
    }
}
