//! `/admin/audit`: every change made through the console, the API or the command line, newest
//! first, paged by id.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use http::StatusCode;
use minijinja::value::Serde;
use minijinja::{context, Value};
use serde::Deserialize;

use super::{notice, render, time, Viewer};
use crate::admin::audit;
use crate::web::AppState;

const PAGE: usize = 100;

#[derive(Deserialize)]
pub struct AuditQuery {
    before: Option<i64>,
}

#[derive(serde::Serialize)]
struct Row {
    at: String,
    actor: String,
    via: String,
    action: String,
    target: String,
    detail: String,
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    Viewer(who): Viewer,
    Query(q): Query<AuditQuery>,
) -> Response {
    let before = q.before;
    let entries = match state
        .console
        .store()
        .read(move |db| audit::page(db, before, PAGE + 1))
        .await
    {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the audit log");
            return notice(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "Database error",
                Some(&who),
                &["The database did not answer; see the daemon's log."],
            );
        }
    };
    let next = (entries.len() > PAGE).then(|| entries[PAGE - 1].id);
    let rows: Vec<Row> = entries
        .into_iter()
        .take(PAGE)
        .map(|e| Row {
            at: time(e.at_us),
            actor: e.actor,
            via: e.via,
            action: e.action,
            target: e.target.unwrap_or_default(),
            detail: e.detail.unwrap_or_default(),
        })
        .collect();
    render(
        &state,
        StatusCode::OK,
        "audit.html",
        "Audit log",
        Some(&who),
        context! { nav => "audit", rows => Value::from(Serde(&rows)), next, first => before.is_none() },
    )
}
