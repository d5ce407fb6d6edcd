//! `/admin/sources`: the blogs tidings follows, a page of them at a time by id, each with its
//! state, last and next fetch, failures and last error; and the editor's form that adds one.
//! One source's page, its poll and its removal are in `source.rs`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::Utc;
use http::StatusCode;
use minijinja::value::Serde;
use minijinja::{context, Value};
use serde::{Deserialize, Serialize};

use super::{relative, render, time, Editor, Signed, Viewer};
use crate::sources::{AddSource, Source, SourceError};
use crate::web::AppState;

const PAGE: usize = 100;
/// How much of a last error the list shows (the source's page shows all of it).
const ERROR_CHARS: usize = 160;

/// A moment as the source pages show it: how long ago (or until), and when.
#[derive(Serialize)]
pub struct When {
    ago: String,
    at: String,
    iso: String,
}

pub fn when(us: i64, now_us: i64) -> When {
    When {
        ago: relative(us, now_us),
        at: time(us),
        iso: chrono::DateTime::from_timestamp_micros(us)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default(),
    }
}

/// The start of `text`, at most `max` characters, with `…` when cut.
pub fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((at, _)) => format!("{}…", text[..at].trim_end()),
    }
}

/// A source as its row and its page show it; every text is escaped by the templates.
#[derive(Serialize)]
pub struct SourceView {
    id: i64,
    name: String,
    url: String,
    /// Only an http(s) URL becomes a link.
    url_is_web: bool,
    added_url: String,
    slug: String,
    tags: Vec<String>,
    state: String,
    identity: String,
    identity_note: Option<String>,
    entries: i64,
    created: When,
    first_read: Option<When>,
    last_fetch: Option<When>,
    /// The HTTP status, "no answer", or empty before the first fetch.
    last_status: String,
    last_error: Option<String>,
    last_error_short: Option<String>,
    last_success: Option<When>,
    errors: i64,
    interval: String,
    /// None when the source will not be polled again.
    next_fetch: Option<When>,
    due: bool,
    etag: Option<String>,
    last_modified: Option<String>,
    moved_to: Option<String>,
    moved_seen: i64,
    hub: Option<String>,
    websub: String,
    websub_until: Option<When>,
}

pub fn view(s: &Source, now_us: i64) -> SourceView {
    let at = |us: Option<i64>| us.map(|us| when(us, now_us));
    SourceView {
        id: s.id,
        name: s.name.clone(),
        url: s.url.clone(),
        url_is_web: s.url.starts_with("https://") || s.url.starts_with("http://"),
        added_url: s.added_url.clone(),
        slug: s.slug.clone(),
        tags: s.tags.clone(),
        state: s.state.clone(),
        identity: s.identity.clone(),
        identity_note: s.identity_note.clone(),
        entries: s.entries,
        created: when(s.created_us, now_us),
        first_read: at(s.seeded_us),
        last_fetch: at(s.last_fetch_us),
        last_status: match (s.last_fetch_us, s.last_status) {
            (None, _) => String::new(),
            (Some(_), None) => "no answer".into(),
            (Some(_), Some(status)) => status.to_string(),
        },
        last_error: s.last_error.clone(),
        last_error_short: s.last_error.as_deref().map(|e| shorten(e, ERROR_CHARS)),
        last_success: at(s.last_success_us),
        errors: s.errors,
        interval: interval(s.interval_s),
        next_fetch: (s.state != "gone").then(|| when(s.next_fetch_us, now_us)),
        due: s.state != "gone" && s.next_fetch_us <= now_us,
        etag: s.etag.clone(),
        last_modified: s.last_modified.clone(),
        moved_to: s.moved_to.clone(),
        moved_seen: s.moved_seen,
        hub: s.hub.clone(),
        websub: match (s.websub_state.as_str(), &s.hub) {
            ("none", None) => "no hub".into(),
            (state, _) => state.to_string(),
        },
        websub_until: at(s.websub_lease_until_us),
    }
}

fn interval(seconds: i64) -> String {
    let (hours, minutes) = (seconds / 3_600, seconds % 3_600 / 60);
    match (hours, minutes) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    after: Option<i64>,
    /// The source just removed.
    removed: Option<i64>,
}

/// The add form's fields, as posted and as shown again.
#[derive(Deserialize, Serialize, Default)]
pub struct AddForm {
    #[serde(default)]
    url: String,
    /// Comma-separated names.
    #[serde(default)]
    tags: String,
    #[serde(default)]
    name: String,
}

/// What the add form says went wrong, and in which field.
struct FormError {
    field: String,
    message: String,
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Viewer(who): Viewer,
    Query(q): Query<ListQuery>,
) -> Response {
    let removed = q
        .removed
        .map(|id| format!("Source {id} was removed; the articles it brought stay in the catalog."));
    let shown = Shown {
        after: q.after,
        done: removed,
        form: AddForm::default(),
        error: None,
    };
    page(&state, &who, StatusCode::OK, shown).await
}

/// What the list page shows beside the sources.
struct Shown {
    after: Option<i64>,
    done: Option<String>,
    form: AddForm,
    error: Option<FormError>,
}

async fn page(state: &AppState, who: &Signed, status: StatusCode, shown: Shown) -> Response {
    let Shown {
        after,
        done,
        form,
        error,
    } = shown;
    let sources = match state
        .catalog
        .store()
        .read(move |db| crate::sources::store::page(db, after, PAGE + 1))
        .await
    {
        Ok(s) => s,
        Err(e) => return super::db_error(state, who, e),
    };
    let next = (sources.len() > PAGE).then(|| sources[PAGE - 1].id);
    let now_us = Utc::now().timestamp_micros();
    let rows: Vec<SourceView> = sources.iter().take(PAGE).map(|s| view(s, now_us)).collect();
    render(
        state,
        status,
        "sources.html",
        "Sources",
        Some(who),
        context! {
            nav => "sources",
            rows => Value::from(Serde(&rows)),
            next,
            first => after.is_none(),
            done,
            form => Value::from(Serde(&form)),
            error_field => error.as_ref().map(|e| e.field.clone()),
            error => error.map(|e| e.message),
        },
    )
}

/// Follows a feed from the form: checked as the API and the CLI check it; the first fetch
/// follows at once, and the source's page shows it.
pub async fn add(
    State(state): State<Arc<AppState>>,
    Editor(who): Editor,
    Form(form): Form<AddForm>,
) -> Response {
    // An empty name is no name: the host's is taken.
    let name = Some(form.name.trim().to_string()).filter(|n| !n.is_empty());
    let tags = form
        .tags
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let added = state
        .sources
        .add(AddSource {
            url: form.url.trim().to_string(),
            tags,
            name,
        })
        .await;
    let (status, error) = match added {
        Ok(source) => {
            super::audit(
                &state,
                &who,
                "source.add",
                &source.url,
                &format!("source {}", source.id),
            )
            .await;
            return Redirect::to(&format!("/admin/sources/{}?done=added", source.id))
                .into_response();
        }
        Err(SourceError::Invalid { field, problem }) => (
            StatusCode::BAD_REQUEST,
            FormError {
                message: format!("{field}: {problem}"),
                field,
            },
        ),
        Err(e @ SourceError::Exists(_)) => (
            StatusCode::CONFLICT,
            FormError {
                field: "url".into(),
                message: format!("url: {e}"),
            },
        ),
        Err(SourceError::Store(e)) => return super::db_error(&state, &who, e),
        Err(e) => (
            StatusCode::CONFLICT,
            FormError {
                field: String::new(),
                message: e.to_string(),
            },
        ),
    };
    let shown = Shown {
        after: None,
        done: None,
        form,
        error: Some(error),
    };
    page(&state, &who, status, shown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_error_is_cut_at_a_character_with_an_ellipsis() {
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(shorten("exactly ten", 11), "exactly ten");
        assert_eq!(shorten("ééééé ééééé", 6), "ééééé…");
        assert_eq!(shorten(&"x".repeat(500), 160).chars().count(), 161);
    }

    #[test]
    fn intervals_read_in_hours_and_minutes() {
        assert_eq!(interval(900), "15 min");
        assert_eq!(interval(3_600), "1 h");
        assert_eq!(interval(5_400), "1 h 30 min");
        assert_eq!(interval(86_400), "24 h");
    }

    #[test]
    fn a_gone_source_has_no_next_fetch_and_a_new_one_no_status() {
        let now = 1_800_000_000_000_000;
        let mut s = Source {
            id: 1,
            url: "javascript:alert(1)".into(),
            added_url: String::new(),
            slug: "x".into(),
            name: "x".into(),
            tags: vec![],
            state: "new".into(),
            identity: "guid".into(),
            identity_note: None,
            moved_to: None,
            moved_seen: 0,
            etag: None,
            last_modified: None,
            created_us: now,
            seeded_us: None,
            last_fetch_us: None,
            last_status: None,
            last_error: None,
            last_success_us: None,
            errors: 0,
            interval_s: 900,
            next_fetch_us: now,
            hub: None,
            websub_state: "none".into(),
            websub_lease_until_us: None,
            websub_renew_us: None,
            entries: 0,
        };
        let v = view(&s, now);
        assert!(!v.url_is_web, "only http(s) becomes a link");
        assert_eq!(v.last_status, "");
        assert!(v.due && v.next_fetch.is_some());
        assert_eq!(v.websub, "no hub");
        s.state = "gone".into();
        s.last_fetch_us = Some(now);
        let v = view(&s, now);
        assert!(v.next_fetch.is_none() && !v.due);
        assert_eq!(v.last_status, "no answer");
    }
}
