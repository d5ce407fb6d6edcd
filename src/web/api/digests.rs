//! `/api/digests`: run digests now and wait for the report (`POST /api/digests/run`), or start
//! a run and follow it (`POST /api/digests/runs`, `GET /api/digests/runs[/{id}]`).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use http::{header, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ErrorBody, OptionalJson};
use super::{ApiPath, ApiQuery};
use crate::digest::ledger::RunSummary;
use crate::digest::RunReport;
use crate::web::AppState;

pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(run_digests))
        .routes(routes!(start_run, list_runs))
        .routes(routes!(get_run))
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

/// How to start a run: `now` makes every confirmed subscriber due now. (No `dry_run` here: a
/// dry run sends nothing, so `POST /api/digests/run` answers it at once.)
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    #[serde(default)]
    now: bool,
}

/// A run that was started: what it planned; `GET /api/digests/runs/{run_id}` follows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RunStarted {
    /// `null` when nothing was planned (nobody due had anything new).
    run_id: Option<i64>,
    due: u64,
    planned: u64,
    /// Unfinished deliveries of earlier runs, sent first.
    resumed: u64,
}

/// Start a run and answer once it is planned, before its digests are sent: `202` with
/// `Location: /api/digests/runs/{id}`. Waits for a run already going to end first, as
/// `POST /api/digests/run` does. With nobody due, `200` and no run. The body is optional.
#[utoipa::path(post, path = "/digests/runs", tag = "digests",
    request_body(content = Option<StartBody>, description = "Optional; empty is `{}`"),
    responses(
        (status = 202, description = "Planned; its digests are being sent", body = RunStarted,
            headers(("Location" = String, description = "/api/digests/runs/{id}"))),
        (status = 200, description = "Nothing was planned: no run", body = RunStarted),
        (status = 400, description = "Bad input (`dry_run` is not taken here); the field is named", body = ErrorBody),
    ))]
async fn start_run(
    State(state): State<Arc<AppState>>,
    OptionalJson(body): OptionalJson<StartBody>,
) -> Result<Response, ApiError> {
    let opts = crate::digest::RunOptions {
        now: Utc::now(),
        force: body.now,
        dry_run: false,
    };
    let (planned, plan) = tokio::sync::oneshot::channel();
    let digests = state.digests.clone();
    let run = tokio::spawn(async move {
        if let Err(e) = digests.run_announcing(opts, planned).await {
            tracing::error!(error = %e, "digest run failed");
        }
    });
    let Ok(report) = plan.await else {
        // The run ended before it planned: it failed (the log says why).
        let _ = run.await;
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "the digest run could not be planned; see the daemon's log",
        ));
    };
    let started = RunStarted {
        run_id: report.run_id,
        due: report.due,
        planned: report.planned,
        resumed: report.resumed,
    };
    let Some(id) = report.run_id else {
        return Ok(Json(started).into_response());
    };
    let mut response = (StatusCode::ACCEPTED, Json(started)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/digests/runs/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RunsQuery {
    /// Runs per page (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `next` of the page before.
    #[param(value_type = Option<String>, pattern = r"^[0-9]{1,18}$")]
    after: Option<String>,
}

/// A page of runs, newest first.
#[derive(Serialize, utoipa::ToSchema)]
struct RunPage {
    runs: Vec<RunSummary>,
    /// `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// Digest runs, newest first, with their state and counts; a page at a time by key.
#[utoipa::path(get, path = "/digests/runs", tag = "digests", params(RunsQuery),
    responses(
        (status = 200, description = "A page of runs", body = RunPage),
        (status = 400, description = "A bad parameter; it is named", body = ErrorBody),
    ))]
async fn list_runs(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> Result<Json<RunPage>, ApiError> {
    let limit = super::checked_limit(q.limit, 50)?;
    let after = match q.after.as_deref() {
        None => None,
        Some(raw) => Some(
            raw.parse::<u64>()
                .ok()
                .and_then(|id| i64::try_from(id).ok())
                .ok_or_else(|| {
                    ApiError::field("after", "is not a place in the list (the `next` of a page)")
                })?,
        ),
    };
    let mut runs = state
        .digests
        .store
        .read(move |db| crate::digest::ledger::runs(db, after, limit + 1))
        .await
        .map_err(|e| ApiError::internal("reading the digest runs", e))?;
    let next = (runs.len() > limit).then(|| {
        runs.truncate(limit);
        runs.last().map(|r| r.id.to_string())
    });
    Ok(Json(RunPage {
        runs,
        next: next.flatten(),
    }))
}

/// One run: its state and counts.
#[utoipa::path(get, path = "/digests/runs/{id}", tag = "digests",
    params(("id" = i64, Path, description = "The run's id", minimum = 1, example = 1)),
    responses(
        (status = 200, description = "The run", body = RunSummary),
        (status = 400, description = "Not a run id", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
    ))]
async fn get_run(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<RunSummary>, ApiError> {
    let detail = state
        .digests
        .store
        .read(move |db| crate::digest::ledger::run(db, id, 0))
        .await
        .map_err(|e| ApiError::internal("reading a digest run", e))?;
    match detail {
        Some(d) => Ok(Json(d.summary)),
        None => Err(ApiError::not_found("id", format!("no run {id}"))),
    }
}
