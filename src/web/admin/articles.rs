//! `/admin/articles`: the catalog, newest first, and the forms that add, edit and remove an
//! article. A change goes through the catalog as the API's does, so the feeds follow.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::Utc;
use http::StatusCode;
use minijinja::value::Serde;
use minijinja::{context, Value};
use serde::{Deserialize, Serialize};

use super::{notice, render, Editor, Signed, Viewer};
use crate::catalog::{Article, ArticleInput, ArticleJson, CatalogError, InputError, Upserted};
use crate::web::AppState;

const PAGE: usize = 50;

#[derive(Deserialize)]
pub struct ListQuery {
    after: Option<String>,
}

#[derive(Serialize)]
struct Row {
    slug: String,
    title: String,
    tags: Vec<String>,
    published: String,
    updated: String,
}

/// `published_us.seq`, the key of a row.
fn parse_key(s: &str) -> Option<(i64, i64)> {
    let (a, b) = s.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

pub fn when(t: &chrono::DateTime<chrono::FixedOffset>) -> String {
    t.with_timezone(&Utc)
        .format("%Y-%m-%d %H:%M UTC")
        .to_string()
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Viewer(who): Viewer,
    Query(q): Query<ListQuery>,
) -> Response {
    let after = q.after.as_deref().and_then(parse_key);
    let page = match state.catalog.page(after, PAGE + 1).await {
        Ok(p) => p,
        Err(e) => return super::db_error(&state, &who, e),
    };
    let next = (page.len() > PAGE).then(|| {
        let ((published, seq), _) = &page[PAGE - 1];
        format!("{published}.{seq}")
    });
    let rows: Vec<Row> = page
        .iter()
        .take(PAGE)
        .map(|(_, a)| Row {
            slug: a.slug.clone(),
            title: a.title.clone(),
            tags: a.tags.iter().map(|t| t.name.clone()).collect(),
            published: when(&a.published_at),
            updated: when(&a.updated_at),
        })
        .collect();
    let total = state.catalog.count().await.unwrap_or(0);
    render(
        &state,
        StatusCode::OK,
        "articles.html",
        "Articles",
        Some(&who),
        context! { nav => "articles", rows => Value::from(Serde(&rows)), next, total, first => after.is_none() },
    )
}

/// The form's fields, as posted and as shown again.
#[derive(Deserialize, Serialize, Default, Clone)]
pub struct ArticleForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    summary: String,
    /// `markdown` or `html`.
    #[serde(default)]
    format: String,
    #[serde(default)]
    content: String,
    /// Comma-separated names.
    #[serde(default)]
    tags: String,
    #[serde(default)]
    published_at: String,
    #[serde(default)]
    updated_at: String,
    #[serde(default)]
    author: String,
    #[serde(default)]
    image: String,
}

impl ArticleForm {
    fn of(a: &Article) -> ArticleForm {
        ArticleForm {
            title: a.title.clone(),
            slug: a.slug.clone(),
            url: a.url.clone(),
            summary: a.summary.clone(),
            format: "html".into(),
            content: a.content_html.clone(),
            tags: a
                .tags
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            published_at: crate::catalog::rfc3339(&a.published_at),
            updated_at: crate::catalog::rfc3339(&a.updated_at),
            author: a.author.clone().unwrap_or_default(),
            image: a.image.clone().unwrap_or_default(),
        }
    }

    /// The article this form describes, checked as every other way in checks it.
    fn parse(&self) -> Result<ArticleInput, InputError> {
        let text = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let content = Some(self.content.clone()).filter(|c| !c.trim().is_empty());
        let markdown = self.format != "html";
        ArticleInput::parse(ArticleJson {
            title: text(&self.title),
            slug: text(&self.slug),
            url: text(&self.url),
            summary: text(&self.summary),
            content_markdown: content.clone().filter(|_| markdown),
            content_html: content.filter(|_| !markdown),
            tags: Some(
                self.tags
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            published_at: text(&self.published_at),
            updated_at: text(&self.updated_at),
            author: text(&self.author),
            image: text(&self.image),
            ..ArticleJson::default()
        })
    }
}

fn form_page(
    state: &AppState,
    who: &Signed,
    status: StatusCode,
    editing: Option<&str>,
    form: &ArticleForm,
    error: Option<&InputError>,
) -> Response {
    let title = if editing.is_some() {
        "Edit article"
    } else {
        "New article"
    };
    render(
        state,
        status,
        "article_form.html",
        title,
        Some(who),
        context! {
            nav => "articles",
            form => Value::from(Serde(form)),
            editing,
            error_field => error.map(|e| e.field.clone()),
            error => error.map(|e| e.to_string()),
        },
    )
}

pub async fn new_form(State(state): State<Arc<AppState>>, Editor(who): Editor) -> Response {
    let form = ArticleForm {
        format: "markdown".into(),
        ..ArticleForm::default()
    };
    form_page(&state, &who, StatusCode::OK, None, &form, None)
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    Editor(who): Editor,
    Form(form): Form<ArticleForm>,
) -> Response {
    save(state, who, None, form).await
}

pub async fn edit_form(
    State(state): State<Arc<AppState>>,
    Viewer(who): Viewer,
    Path(slug): Path<String>,
) -> Response {
    match state.catalog.get(slug.clone()).await {
        Ok(Some(article)) => form_page(
            &state,
            &who,
            StatusCode::OK,
            Some(&article.slug),
            &ArticleForm::of(&article),
            None,
        ),
        Ok(None) => no_such(&state, &who, &slug),
        Err(e) => super::db_error(&state, &who, e),
    }
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    Editor(who): Editor,
    Path(slug): Path<String>,
    Form(mut form): Form<ArticleForm>,
) -> Response {
    // The slug names the article; the form cannot move it to another.
    form.slug = slug.clone();
    match state.catalog.get(slug.clone()).await {
        Ok(Some(_)) => save(state, who, Some(slug), form).await,
        Ok(None) => no_such(&state, &who, &slug),
        Err(e) => super::db_error(&state, &who, e),
    }
}

fn no_such(state: &AppState, who: &Signed, slug: &str) -> Response {
    let message = format!("There is no article with the slug '{slug}'.");
    notice(
        state,
        StatusCode::NOT_FOUND,
        "No such article",
        Some(who),
        &[&message],
    )
}

async fn save(
    state: Arc<AppState>,
    who: Signed,
    editing: Option<String>,
    form: ArticleForm,
) -> Response {
    let input = match form.parse() {
        Ok(input) => input,
        Err(e) => {
            return form_page(
                &state,
                &who,
                StatusCode::BAD_REQUEST,
                editing.as_deref(),
                &form,
                Some(&e),
            )
        }
    };
    if editing.is_none() {
        // A new article must not overwrite one that has its slug.
        match state.catalog.get(input.slug.as_str().to_string()).await {
            Ok(Some(_)) => {
                let e = InputError::new(
                    "slug",
                    format!(
                        "'{}' is taken by another article; choose another slug",
                        input.slug.as_str()
                    ),
                );
                return form_page(&state, &who, StatusCode::CONFLICT, None, &form, Some(&e));
            }
            Ok(None) => {}
            Err(e) => return super::db_error(&state, &who, e),
        }
    }
    let (outcome, article) = match state.catalog.upsert(input, Utc::now()).await {
        Ok(done) => done,
        Err(CatalogError::Input(e)) => {
            return form_page(
                &state,
                &who,
                StatusCode::BAD_REQUEST,
                editing.as_deref(),
                &form,
                Some(&e),
            )
        }
        Err(e) => return super::db_error(&state, &who, e),
    };
    if outcome != Upserted::Unchanged {
        state.publisher.refresh().await;
        let action = if outcome == Upserted::Created {
            "article.add"
        } else {
            "article.update"
        };
        if let Err(e) = state
            .console
            .audit(
                &who.actor(),
                action,
                Some(article.slug.clone()),
                Some(article.title.clone()),
            )
            .await
        {
            tracing::error!(error = %e, "cannot write the audit log");
        }
    }
    Redirect::to(&format!("/admin/articles/{}?saved=1", article.slug)).into_response()
}

pub async fn remove_form(
    State(state): State<Arc<AppState>>,
    Editor(who): Editor,
    Path(slug): Path<String>,
) -> Response {
    match state.catalog.get(slug.clone()).await {
        Ok(Some(article)) => render(
            &state,
            StatusCode::OK,
            "article_remove.html",
            "Remove article",
            Some(&who),
            context! { nav => "articles", slug => article.slug, article_title => article.title },
        ),
        Ok(None) => no_such(&state, &who, &slug),
        Err(e) => super::db_error(&state, &who, e),
    }
}

pub async fn remove(
    State(state): State<Arc<AppState>>,
    Editor(who): Editor,
    Path(slug): Path<String>,
) -> Response {
    match state.catalog.remove(slug.clone(), Utc::now()).await {
        Ok(true) => {
            state.publisher.refresh().await;
            if let Err(e) = state
                .console
                .audit(&who.actor(), "article.remove", Some(slug), None)
                .await
            {
                tracing::error!(error = %e, "cannot write the audit log");
            }
            Redirect::to("/admin/articles").into_response()
        }
        Ok(false) => no_such(&state, &who, &slug),
        Err(e) => super::db_error(&state, &who, e),
    }
}
