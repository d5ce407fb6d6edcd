//! `/admin/suppressions` and `/admin/outbox`: the suppression list and the single emails, newest
//! first, paged by key.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use http::StatusCode;
use minijinja::value::Serde;
use minijinja::{context, Value};
use serde::Deserialize;

use super::{notice, render, time, Viewer};
use crate::subscribers::suppressions::{self, Cursor};
use crate::web::AppState;

const PAGE: usize = 100;

#[derive(Deserialize)]
pub struct Paging {
    after: Option<String>,
}

#[derive(serde::Serialize)]
struct Suppressed {
    email: String,
    reason: &'static str,
    note: String,
    at: String,
}

pub async fn suppressions(
    State(state): State<Arc<AppState>>,
    Viewer(who): Viewer,
    Query(q): Query<Paging>,
) -> Response {
    let after = match q.after.as_deref().map(Cursor::parse).transpose() {
        Ok(a) => a,
        Err(problem) => {
            return notice(
                &state,
                StatusCode::BAD_REQUEST,
                "Bad page",
                Some(&who),
                &[&problem],
            )
        }
    };
    let first = after.is_none();
    let found = state
        .digests
        .store
        .read(move |db| suppressions::page(db, after.as_ref(), PAGE + 1))
        .await;
    let page = match found {
        Ok(p) => p,
        Err(e) => return super::db_error(&state, &who, e),
    };
    let next = (page.len() > PAGE).then(|| page[PAGE - 1].cursor().to_string());
    let rows: Vec<Suppressed> = page
        .iter()
        .take(PAGE)
        .map(|s| Suppressed {
            email: s.email.clone(),
            reason: s.reason.as_str(),
            note: s.note.clone().unwrap_or_default(),
            at: time(s.created_us),
        })
        .collect();
    render(
        &state,
        StatusCode::OK,
        "suppressions.html",
        "Suppressions",
        Some(&who),
        context! { nav => "suppressions", rows => Value::from(Serde(&rows)), next, first },
    )
}

#[derive(serde::Serialize)]
struct Single {
    id: i64,
    template: String,
    email: String,
    state: String,
    attempts: i64,
    queued: String,
    next: String,
    expires: String,
    finished: String,
    error: String,
}

pub async fn outbox(
    State(state): State<Arc<AppState>>,
    Viewer(who): Viewer,
    Query(q): Query<Paging>,
) -> Response {
    let after = q.after.as_deref().and_then(|a| a.parse::<i64>().ok());
    let found = state
        .digests
        .store
        .read(move |db| {
            Ok::<_, crate::store::Error>((
                crate::outbox::page(db, after, PAGE + 1)?,
                crate::outbox::depth(db)?,
            ))
        })
        .await;
    let (page, depth) = match found {
        Ok(p) => p,
        Err(e) => return super::db_error(&state, &who, e),
    };
    let next = (page.len() > PAGE).then(|| page[PAGE - 1].id);
    let rows: Vec<Single> = page
        .iter()
        .take(PAGE)
        .map(|e| Single {
            id: e.id,
            template: e.template.clone(),
            email: e.email.clone(),
            state: e.state.clone(),
            attempts: e.attempts,
            queued: time(e.queued_at.timestamp_micros()),
            next: time(e.next_attempt_at.timestamp_micros()),
            expires: time(e.expires_at.timestamp_micros()),
            finished: e
                .finished_at
                .map(|t| time(t.timestamp_micros()))
                .unwrap_or_default(),
            error: e.last_error.clone().unwrap_or_default(),
        })
        .collect();
    render(
        &state,
        StatusCode::OK,
        "outbox.html",
        "Outbox",
        Some(&who),
        context! { nav => "outbox", rows => Value::from(Serde(&rows)), next, depth, first => after.is_none() },
    )
}
