//! `/admin/subscribers`: search by any part of the address, filter by status and tag, page by
//! key, and the bulk actions (owners) on everything a query matched: a confirmation page shows
//! the count first, then the action applies to the ids that match at confirmation.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Form;
use http::{header, StatusCode};
use minijinja::value::Serde;
use minijinja::{context, Value};
use serde::Deserialize;

use super::{audit, notice, render, Owner, Signed, Viewer};
use crate::subscribers::bulk::{self, Action};
use crate::subscribers::search::{self, Filter, SearchQuery};
use crate::web::AppState;

#[derive(Deserialize, Default, Clone, serde::Serialize)]
pub struct ListQuery {
    q: Option<String>,
    status: Option<String>,
    tag: Option<String>,
    after: Option<String>,
}

impl ListQuery {
    /// The query string of these filters (without `after`), for links and hidden fields.
    fn filters(&self) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [("q", &self.q), ("status", &self.status), ("tag", &self.tag)] {
            if let Some(v) = v.as_deref().filter(|v| !v.trim().is_empty()) {
                s.append_pair(k, v);
            }
        }
        s.finish()
    }
}

#[derive(serde::Serialize)]
struct Row {
    email: String,
    status: &'static str,
    tags: String,
    cadence: &'static str,
    since: String,
}

async fn tags(state: &AppState) -> Vec<(String, String)> {
    state
        .digests
        .store
        .read(crate::subscribers::store::known_tags)
        .await
        .unwrap_or_default()
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Viewer(who): Viewer,
    Query(q): Query<ListQuery>,
) -> Response {
    let known = tags(&state).await;
    let parsed = SearchQuery::parse(
        q.q.as_deref(),
        q.status.as_deref(),
        q.tag.as_deref(),
        q.after.as_deref(),
    );
    let (status, error, rows, count, next) = match parsed {
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Some(e.to_string()),
            Vec::new(),
            None,
            None,
        ),
        Ok(query) => match search::search(&state.digests.store, query, search::PAGE_SIZE).await {
            Err(e) => return super::db_error(&state, &who, e),
            Ok(found) => {
                let rows: Vec<Row> = found
                    .page
                    .subscribers
                    .iter()
                    .map(|s| Row {
                        email: s.email.as_str().to_string(),
                        status: s.status.as_str(),
                        tags: s.preferences.tags.join(", "),
                        cadence: s.preferences.cadence.as_str(),
                        since: s.created_at.format("%Y-%m-%d").to_string(),
                    })
                    .collect();
                let count = match found.count {
                    search::MatchCount::Exact(1) => "1 match".to_string(),
                    n => format!("{n} match"),
                };
                (
                    StatusCode::OK,
                    None,
                    rows,
                    Some(count),
                    found.page.next_after,
                )
            }
        },
    };
    render(
        &state,
        status,
        "subscribers.html",
        "Subscribers",
        Some(&who),
        context! {
            nav => "subscribers",
            query => Value::from(Serde(&q)),
            filters => q.filters(),
            error,
            rows => Value::from(Serde(&rows)),
            count,
            next,
            first => q.after.is_none(),
            known_tags => Value::from(Serde(&known)),
            statuses => ["pending", "confirmed", "unsubscribed", "bounced"],
        },
    )
}

#[derive(Deserialize, Default)]
pub struct BulkForm {
    #[serde(default)]
    action: String,
    q: Option<String>,
    status: Option<String>,
    tag: Option<String>,
    /// Set by the confirmation page's button.
    #[serde(default)]
    confirmed: String,
}

fn parse_bulk(form: &BulkForm) -> Result<(Option<Action>, Filter), String> {
    let filter = Filter::parse(
        form.q.as_deref(),
        form.status.as_deref(),
        form.tag.as_deref(),
    )
    .map_err(|e| e.to_string())?;
    let action = match form.action.as_str() {
        "export" => None,
        other => Some(Action::parse(other).map_err(|p| format!("action: {p}"))?),
    };
    Ok((action, filter))
}

/// The first step (a form on the list) and the second (the confirmation page's button) of a bulk
/// action: the first shows how many it would touch; the second applies it.
pub async fn bulk(
    State(state): State<Arc<AppState>>,
    Owner(who): Owner,
    Form(form): Form<BulkForm>,
) -> Response {
    let (action, filter) = match parse_bulk(&form) {
        Ok(p) => p,
        Err(problem) => {
            return notice(
                &state,
                StatusCode::BAD_REQUEST,
                "Cannot do that",
                Some(&who),
                &[&problem, "Nothing was changed."],
            )
        }
    };
    let counted = {
        let filter = filter.clone();
        state
            .digests
            .store
            .read(move |db| search::count(db, &filter))
            .await
    };
    let count = match counted {
        Ok(c) => c,
        Err(e) => return super::db_error(&state, &who, e),
    };
    let shown = ListQuery {
        q: form.q.clone(),
        status: form.status.clone(),
        tag: form.tag.clone(),
        after: None,
    };
    if form.confirmed != "yes" {
        return render(
            &state,
            StatusCode::OK,
            "bulk_confirm.html",
            "Confirm",
            Some(&who),
            context! {
                nav => "subscribers",
                action => form.action,
                count => count.to_string(),
                query => Value::from(Serde(&shown)),
                filters => shown.filters(),
                everyone => filter == Filter::default(),
            },
        );
    }
    // The ids that match now, at confirmation.
    let ids = {
        let filter = filter.clone();
        match state
            .digests
            .store
            .read(move |db| search::matching_ids(db, &filter))
            .await
        {
            Ok(ids) => ids,
            Err(e) => return super::db_error(&state, &who, e),
        }
    };
    let described = describe(&shown);
    match action {
        None => export(state, who, ids, described).await,
        Some(action) => {
            let outcome = match bulk::apply(&state.digests.store, action, &ids).await {
                Ok(o) => o,
                Err(e) => return super::db_error(&state, &who, e),
            };
            let detail = format!(
                "{} matched; {} changed, {} already so, {} gone",
                outcome.requested, outcome.changed, outcome.unchanged, outcome.missing
            );
            audit(
                &state,
                &who,
                &format!("subscribers.{}", action.as_str()),
                &described,
                &detail,
            )
            .await;
            let message = format!(
                "{}: {} subscriber{} changed, {} already so, {} gone since the search.",
                action.as_str(),
                outcome.changed,
                if outcome.changed == 1 { "" } else { "s" },
                outcome.unchanged,
                outcome.missing
            );
            render(
                &state,
                StatusCode::OK,
                "notice.html",
                "Done",
                Some(&who),
                context! { nav => "subscribers", paragraphs => vec![message] },
            )
        }
    }
}

/// The query in words, for the audit log: `q=gmail status=confirmed`, or `everyone`.
fn describe(q: &ListQuery) -> String {
    let parts: Vec<String> = [("q", &q.q), ("status", &q.status), ("tag", &q.tag)]
        .iter()
        .filter_map(|(k, v)| {
            v.as_deref()
                .filter(|v| !v.trim().is_empty())
                .map(|v| format!("{k}={v}"))
        })
        .collect();
    if parts.is_empty() {
        "everyone".into()
    } else {
        parts.join(" ")
    }
}

/// The matched subscribers as CSV (the format `subscriber import` reads), streamed 1,000 at a
/// time so that memory does not grow with the list.
async fn export(state: Arc<AppState>, who: Signed, ids: Vec<i64>, described: String) -> Response {
    audit(
        &state,
        &who,
        "subscribers.export",
        &described,
        &format!("{} rows", ids.len()),
    )
    .await;
    let store = state.digests.store.clone();
    let chunks: Vec<Vec<i64>> = ids.chunks(1000).map(<[i64]>::to_vec).collect();
    let header = {
        let mut w = csv::Writer::from_writer(Vec::new());
        let _ = crate::subscribers::csv::export_header(&mut w);
        w.into_inner().unwrap_or_default()
    };
    let body = futures_util::stream::unfold(
        (Some(header), chunks.into_iter(), store),
        |(header, mut chunks, store)| async move {
            if let Some(h) = header {
                return Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::from(h)),
                    (None, chunks, store),
                ));
            }
            let chunk = chunks.next()?;
            let written = store
                .read(move |db| {
                    let mut w = csv::Writer::from_writer(Vec::new());
                    crate::subscribers::csv::export_ids(db, &chunk, &mut w)?;
                    w.into_inner()
                        .map_err(|e| crate::subscribers::flow::FlowError::Internal(e.to_string()))
                })
                .await;
            match written {
                Ok(bytes) => Some((Ok(bytes::Bytes::from(bytes)), (None, chunks, store))),
                Err(e) => Some((
                    Err(std::io::Error::other(e.to_string())),
                    (None, chunks, store),
                )),
            }
        },
    );
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"subscribers.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}
