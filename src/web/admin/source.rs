//! `/admin/sources/{id}`: one followed blog in full (what `tidings source show` prints), and
//! the editor's actions on it: a poll now, and removal after a confirmation. Each action is
//! audited; the articles a removed source brought stay in the catalog.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use http::StatusCode;
use minijinja::value::Serde;
use minijinja::{context, Value};
use serde::Deserialize;

use super::sources::view;
use super::{notice, render, time, Editor, Signed, Viewer};
use crate::sources::{PollReport, Source, SourceError};
use crate::web::AppState;

#[derive(Deserialize)]
pub struct PageQuery {
    done: Option<String>,
}

fn no_such(state: &AppState, who: &Signed, id: &str) -> Response {
    let message = format!("There is no source {id}.");
    notice(
        state,
        StatusCode::NOT_FOUND,
        "No such source",
        Some(who),
        &[&message],
    )
}

/// The source `id` names, or the page to answer with instead.
async fn find(state: &AppState, who: &Signed, id: &str) -> Result<Source, Response> {
    let Ok(number) = id.parse::<i64>() else {
        return Err(no_such(state, who, id));
    };
    match state.sources.get(number).await {
        Ok(s) => Ok(s),
        Err(SourceError::NotFound(_)) => Err(no_such(state, who, id)),
        Err(e) => Err(super::db_error(state, who, e)),
    }
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    Viewer(who): Viewer,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let source = match find(&state, &who, &id).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    let done = match q.done.as_deref() {
        Some("added") => Some(
            "Following it. The first fetch adds what the feed has without mailing anyone."
                .to_string(),
        ),
        Some(other) => Some(other.to_string()),
        None => None,
    };
    render(
        &state,
        StatusCode::OK,
        "source.html",
        &format!("Source {}", source.id),
        Some(&who),
        context! {
            nav => "sources",
            source => Value::from(Serde(view(&source, Utc::now().timestamp_micros()))),
            done,
        },
    )
}

/// What a poll did, in a sentence.
fn outcome(report: &PollReport) -> String {
    let mut said = match (report.status, &report.applied) {
        (Some(304), _) => "Polled: not modified (304)".to_string(),
        (Some(status), Some(a)) => format!(
            "Polled: {status}, {} new, {} updated, {} unchanged",
            a.added, a.updated, a.unchanged
        ),
        (Some(status), None) => format!("Polled: {status}"),
        (None, _) => "Polled: no answer".to_string(),
    };
    if let Some(e) = &report.error {
        said.push_str(&format!("; {e}"));
    }
    if report.status != Some(410) {
        said.push_str(&format!("; next poll {}", time(report.next_fetch_us)));
    }
    said
}

/// Polls the source now (also one that is not due, or gone), audited; its page shows how it
/// went.
pub async fn poll(
    State(state): State<Arc<AppState>>,
    Editor(who): Editor,
    Path(id): Path<String>,
) -> Response {
    let source = match find(&state, &who, &id).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    let report = match state.sources.poll_now(source.id).await {
        Ok(r) => r,
        Err(SourceError::NotFound(_)) => return no_such(&state, &who, &id),
        Err(SourceError::Store(e)) => return super::db_error(&state, &who, e),
        Err(e) => {
            let message = format!("{e}. Nothing was changed; try again in a moment.");
            return notice(
                &state,
                StatusCode::CONFLICT,
                "Cannot poll now",
                Some(&who),
                &[&message],
            );
        }
    };
    let said = outcome(&report);
    super::audit(
        &state,
        &who,
        "source.poll",
        &format!("source {}", source.id),
        &super::sources::shorten(&said, 500),
    )
    .await;
    let done: String = url::form_urlencoded::byte_serialize(said.as_bytes()).collect();
    Redirect::to(&format!("/admin/sources/{}?done={done}", source.id)).into_response()
}

pub async fn remove_form(
    State(state): State<Arc<AppState>>,
    Editor(who): Editor,
    Path(id): Path<String>,
) -> Response {
    match find(&state, &who, &id).await {
        Ok(source) => render(
            &state,
            StatusCode::OK,
            "source_remove.html",
            "Remove source",
            Some(&who),
            context! {
                nav => "sources",
                id => source.id,
                name => source.name,
                url => source.url,
                entries => source.entries,
            },
        ),
        Err(response) => response,
    }
}

/// Stops following the source, audited. Its articles stay in the catalog.
pub async fn remove(
    State(state): State<Arc<AppState>>,
    Editor(who): Editor,
    Path(id): Path<String>,
) -> Response {
    let source = match find(&state, &who, &id).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    match state.sources.remove(source.id).await {
        Ok(removed) => {
            super::audit(
                &state,
                &who,
                "source.remove",
                &format!("source {}", removed.id),
                &removed.url,
            )
            .await;
            Redirect::to("/admin/sources?removed=1").into_response()
        }
        Err(SourceError::NotFound(_)) => no_such(&state, &who, &id),
        Err(e) => super::db_error(&state, &who, e),
    }
}
