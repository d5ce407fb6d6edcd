//! `/admin/audience`: who reads the feeds, per feed: each hosted reader's latest reported count
//! (suspect ones apart), the readers told apart each day, and the 7-day figure.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use http::StatusCode;
use minijinja::value::Serde;
use minijinja::{context, Value};
use serde::Deserialize;

use super::charts;
use super::{notice, render, Viewer};
use crate::audience::report::{self, AudienceReport};
use crate::web::AppState;

#[derive(Deserialize)]
pub struct AudienceQuery {
    days: Option<String>,
}

/// The report of the last `days` days, as the API reads it.
pub async fn read(state: &AppState, days: i64) -> Result<AudienceReport, crate::store::Error> {
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
}

/// The chart of the 7-day figure per feed, most read first (at most 15 feeds).
pub fn chart(report: &AudienceReport) -> String {
    let mut rows: Vec<(String, f64)> = report
        .feeds
        .iter()
        .map(|f| (f.feed.clone(), f.readers_7d))
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    rows.truncate(15);
    charts::horizontal_bars(
        "Feed readers: the 7-day mean per feed",
        "chart-audience",
        &rows,
        "#1a73e8",
    )
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    Viewer(who): Viewer,
    Query(q): Query<AudienceQuery>,
) -> Response {
    let days = match q.days.as_deref().map(report::parse_days).transpose() {
        Ok(d) => d.unwrap_or(report::DEFAULT_DAYS),
        Err(problem) => {
            let message = format!("days: {problem}");
            return notice(
                &state,
                StatusCode::BAD_REQUEST,
                "Bad period",
                Some(&who),
                &[&message],
            );
        }
    };
    let report = match read(&state, days).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "console: cannot read the feed audience");
            return notice(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "Database error",
                Some(&who),
                &["The database did not answer; see the daemon's log."],
            );
        }
    };
    render(
        &state,
        StatusCode::OK,
        "audience.html",
        "Feed audience",
        Some(&who),
        context! {
            nav => "audience",
            days,
            chart => Value::from_safe_string(chart(&report)),
            report => Value::from(Serde(&report)),
        },
    )
}
