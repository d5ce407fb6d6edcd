//! `/admin/runs` and `/admin/runs/{id}`: each digest run's state and what became of its
//! digests, per tag, its failures with their reasons; owners pause and resume a run.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use http::StatusCode;
use minijinja::value::Serde;
use minijinja::{context, Value};
use serde::Deserialize;

use super::{notice, render, time, Owner, Viewer};
use crate::digest::ledger;
use crate::web::AppState;

const PAGE: usize = 50;
const FAILURES: usize = 100;

#[derive(Deserialize)]
pub struct Paging {
    after: Option<i64>,
}

#[derive(serde::Serialize)]
struct RunRow {
    id: i64,
    at: String,
    manual: bool,
    instant: bool,
    state: &'static str,
    paused_reason: Option<String>,
    due: i64,
    sent: i64,
    failed: i64,
    retried: i64,
    waiting: i64,
    bounced: i64,
    complained: i64,
    unsubscribed: i64,
}

fn row(s: &ledger::RunSummary) -> RunRow {
    RunRow {
        id: s.id,
        at: time(s.at.timestamp_micros()),
        manual: s.manual,
        instant: s.instant,
        state: match s.state {
            ledger::RunState::Running => "running",
            ledger::RunState::Paused => "paused",
            ledger::RunState::Done => "done",
        },
        paused_reason: s.paused_reason.clone(),
        due: s.due,
        sent: s.sent,
        failed: s.failed,
        retried: s.retried,
        waiting: s.waiting,
        bounced: s.bounced,
        complained: s.complained,
        unsubscribed: s.unsubscribed,
    }
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Viewer(who): Viewer,
    Query(q): Query<Paging>,
) -> Response {
    let after = q.after;
    let runs = match state
        .digests
        .store
        .read(move |db| ledger::runs(db, after, PAGE + 1))
        .await
    {
        Ok(r) => r,
        Err(e) => return super::db_error(&state, &who, e),
    };
    let next = (runs.len() > PAGE).then(|| runs[PAGE - 1].id);
    let rows: Vec<RunRow> = runs.iter().take(PAGE).map(row).collect();
    render(
        &state,
        StatusCode::OK,
        "runs.html",
        "Digest runs",
        Some(&who),
        context! { nav => "runs", rows => Value::from(Serde(&rows)), next, first => after.is_none() },
    )
}

pub async fn one(
    State(state): State<Arc<AppState>>,
    Viewer(who): Viewer,
    Path(id): Path<i64>,
) -> Response {
    let detail = match state
        .digests
        .store
        .read(move |db| ledger::run(db, id, FAILURES))
        .await
    {
        Ok(Some(d)) => d,
        Ok(None) => {
            let message = format!("There is no digest run {id}.");
            return notice(
                &state,
                StatusCode::NOT_FOUND,
                "No such run",
                Some(&who),
                &[&message],
            );
        }
        Err(e) => return super::db_error(&state, &who, e),
    };
    let failures: Vec<(String, i64, String)> = detail
        .failures
        .iter()
        .map(|f| {
            (
                f.email.clone().unwrap_or_else(|| "(removed)".into()),
                f.attempts,
                f.error.clone().unwrap_or_default(),
            )
        })
        .collect();
    let title = format!("Run {id}");
    render(
        &state,
        StatusCode::OK,
        "run.html",
        &title,
        Some(&who),
        context! {
            nav => "runs",
            run => Value::from(Serde(&row(&detail.summary))),
            subject => detail.subject,
            tags => Value::from(Serde(&detail.tags)),
            failures => Value::from(Serde(&failures)),
        },
    )
}

#[derive(Deserialize)]
pub struct PauseForm {
    /// `pause` or `resume`.
    #[serde(default)]
    action: String,
}

/// Pauses or resumes a run (an owner's change), then shows the run again.
pub async fn pause_or_resume(
    State(state): State<Arc<AppState>>,
    Owner(who): Owner,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<PauseForm>,
) -> Response {
    let action = form.action;
    let pausing = match action.as_str() {
        "pause" => true,
        "resume" => false,
        _ => {
            return notice(
                &state,
                StatusCode::BAD_REQUEST,
                "Unknown action",
                Some(&who),
                &["action: must be pause or resume. Nothing was changed."],
            )
        }
    };
    let reason = format!("paused by {} in the console", who.account.name);
    let done = state
        .digests
        .store
        .write(move |db| {
            if pausing {
                ledger::pause(db, id, &reason, Utc::now())
            } else {
                ledger::resume(db, id, Utc::now())
            }
        })
        .await;
    match done {
        Ok(Some(held)) => {
            let detail = format!("{held} digests");
            let name = if pausing { "run.pause" } else { "run.resume" };
            if let Err(e) = state
                .console
                .audit(&who.actor(), name, Some(format!("run {id}")), Some(detail))
                .await
            {
                tracing::error!(error = %e, "cannot write the audit log");
            }
            Redirect::to(&format!("/admin/runs/{id}")).into_response()
        }
        Ok(None) => {
            let message = if pausing {
                format!("Run {id} is paused already, or there is no such run. Nothing was changed.")
            } else {
                format!("Run {id} is not paused. Nothing was changed.")
            };
            notice(
                &state,
                StatusCode::CONFLICT,
                "Nothing to do",
                Some(&who),
                &[&message],
            )
        }
        Err(e) => super::db_error(&state, &who, e),
    }
}
