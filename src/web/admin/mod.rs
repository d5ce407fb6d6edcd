//! The admin console under `/admin`: server-rendered pages over the owners' functions. Every
//! page needs a live session (`Viewer`, `Editor` or `Owner`, the extractors that check the
//! role), and every state-changing request passes the CSRF check in `csrf` first, so neither
//! can be forgotten by a handler.

mod articles;
mod audience;
mod audit;
pub mod charts;
mod dashboard;
mod lists;
mod login;
mod runs;
mod settings;
mod source;
mod sources;
mod subscriber;
mod subscribers;
mod webhooks;

use std::sync::{Arc, OnceLock};

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use minijinja::{context, Environment, Value};

use super::AppState;
use crate::admin::accounts::Account;
use crate::admin::sessions::{self, COOKIE, LOGIN_COOKIE};
use crate::admin::{Actor, Role};

/// Console forms are small; an article's body is the largest thing posted.
const MAX_FORM: usize = 2 * 1024 * 1024;

pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin", get(dashboard::page))
        .route("/admin/", get(|| async { Redirect::to("/admin") }))
        .route("/admin/login", get(login::form).post(login::submit))
        .route("/admin/logout", axum::routing::post(login::logout))
        .route("/admin/settings", get(settings::page))
        .route("/admin/audit", get(audit::page))
        .route("/admin/audience", get(audience::page))
        .route("/admin/runs", get(runs::list))
        .route(
            "/admin/runs/{id}",
            get(runs::one).post(runs::pause_or_resume),
        )
        .route("/admin/subscribers", get(subscribers::list))
        .route(
            "/admin/subscribers/bulk",
            axum::routing::post(subscribers::bulk),
        )
        .route(
            "/admin/subscribers/{email}",
            get(subscriber::page).post(subscriber::act),
        )
        .route("/admin/suppressions", get(lists::suppressions))
        .route("/admin/outbox", get(lists::outbox))
        .route("/admin/webhooks", get(webhooks::list))
        .route(
            "/admin/webhooks/{id}",
            get(webhooks::one).post(webhooks::act),
        )
        .route("/admin/sources", get(sources::list).post(sources::add))
        .route("/admin/sources/{id}", get(source::page))
        .route(
            "/admin/sources/{id}/poll",
            axum::routing::post(source::poll),
        )
        .route(
            "/admin/sources/{id}/remove",
            get(source::remove_form).post(source::remove),
        )
        .route("/admin/articles", get(articles::list))
        .route(
            "/admin/articles/new",
            get(articles::new_form).post(articles::create),
        )
        .route(
            "/admin/articles/{slug}",
            get(articles::edit_form).post(articles::update),
        )
        .route(
            "/admin/articles/{slug}/remove",
            get(articles::remove_form).post(articles::remove),
        )
        .layer(middleware::from_fn_with_state(state, csrf))
}

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = crate::html::environment();
        for (name, source) in [
            ("base.html", include_str!("templates/base.html")),
            ("login.html", include_str!("templates/login.html")),
            ("notice.html", include_str!("templates/notice.html")),
            ("dashboard.html", include_str!("templates/dashboard.html")),
            ("articles.html", include_str!("templates/articles.html")),
            ("settings.html", include_str!("templates/settings.html")),
            ("audit.html", include_str!("templates/audit.html")),
            ("audience.html", include_str!("templates/audience.html")),
            ("runs.html", include_str!("templates/runs.html")),
            ("run.html", include_str!("templates/run.html")),
            (
                "suppressions.html",
                include_str!("templates/suppressions.html"),
            ),
            ("outbox.html", include_str!("templates/outbox.html")),
            ("webhooks.html", include_str!("templates/webhooks.html")),
            ("webhook.html", include_str!("templates/webhook.html")),
            ("sources.html", include_str!("templates/sources.html")),
            ("source.html", include_str!("templates/source.html")),
            (
                "source_remove.html",
                include_str!("templates/source_remove.html"),
            ),
            (
                "subscribers.html",
                include_str!("templates/subscribers.html"),
            ),
            (
                "bulk_confirm.html",
                include_str!("templates/bulk_confirm.html"),
            ),
            ("subscriber.html", include_str!("templates/subscriber.html")),
            (
                "subscriber_delete.html",
                include_str!("templates/subscriber_delete.html"),
            ),
            (
                "article_form.html",
                include_str!("templates/article_form.html"),
            ),
            (
                "article_remove.html",
                include_str!("templates/article_remove.html"),
            ),
        ] {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(name, error = %e, "console template does not compile");
            }
        }
        env
    })
}

/// Renders a console page. `who` is the signed-in account (for the menu and the logout
/// form's CSRF token), absent on the login page.
pub fn render(
    state: &AppState,
    status: StatusCode,
    name: &str,
    title: &str,
    who: Option<&Signed>,
    ctx: Value,
) -> Response {
    let base = context! {
        site => &state.config.site.title,
        title => title,
        account => who.map(|w| w.account.name.clone()),
        role => who.map(|w| w.account.role.as_str()),
        csrf => who.map(|w| w.csrf.clone()),
        can_edit => who.is_some_and(|w| w.account.role >= Role::Editor),
        is_owner => who.is_some_and(|w| w.account.role >= Role::Owner),
    };
    match templates()
        .get_template(name)
        .and_then(|t| t.render(context! { ..ctx, ..base }))
    {
        Ok(html) => {
            let mut response = (status, Html(html)).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            );
            headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
                     script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
                ),
            );
            response
        }
        Err(e) => {
            tracing::error!(name, error = %e, "cannot render a console page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot render this page\n",
            )
                .into_response()
        }
    }
}

/// A short page with a title and a few paragraphs.
pub fn notice(
    state: &AppState,
    status: StatusCode,
    title: &str,
    who: Option<&Signed>,
    paragraphs: &[&str],
) -> Response {
    render(
        state,
        status,
        "notice.html",
        title,
        who,
        context! { paragraphs => paragraphs.iter().map(|p| p.to_string()).collect::<Vec<_>>() },
    )
}

/// Records a console action in the audit log; a failure to write it is logged, and the action
/// (already done) stands.
pub async fn audit(state: &AppState, who: &Signed, action: &str, target: &str, detail: &str) {
    if let Err(e) = state
        .console
        .audit(
            &who.actor(),
            action,
            Some(target.to_string()),
            Some(detail.to_string()),
        )
        .await
    {
        tracing::error!(error = %e, "cannot write the audit log");
    }
}

/// The page for a database that did not answer: logged, and nothing was changed.
pub fn db_error(state: &AppState, who: &Signed, e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "console: a database operation failed");
    notice(
        state,
        StatusCode::SERVICE_UNAVAILABLE,
        "Database error",
        Some(who),
        &["The database did not answer; see the daemon's log. Nothing was changed."],
    )
}

/// A time as the console shows it.
pub fn time(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// How long before (or after) `now_us` a moment is, in the largest unit that reads well:
/// "just now", "5 min ago", "3 h ago", "2 days ago", "in 15 min" (rounded to the nearest).
pub fn relative(us: i64, now_us: i64) -> String {
    let seconds = (now_us.saturating_sub(us) / 1_000_000).unsigned_abs();
    let amount = match seconds {
        s if s < 60 => {
            return match us <= now_us {
                true => "just now".into(),
                false => "in under a minute".into(),
            }
        }
        s if s < 90 * 60 => format!("{} min", (s + 30) / 60),
        s if s < 48 * 3_600 => format!("{} h", (s + 1_800) / 3_600),
        s => format!("{} days", (s + 43_200) / 86_400),
    };
    match us <= now_us {
        true => format!("{amount} ago"),
        false => format!("in {amount}"),
    }
}

/// The value of cookie `name` in a request's headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, and `Secure` when the site is https.
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let secure = if state.config.site.base_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let age = max_age
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/admin; HttpOnly; SameSite=Strict{secure}{age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("tidings_invalid=1"))
}

/// A signed-in account, its session id and the CSRF token for its forms.
#[derive(Debug, Clone)]
pub struct Signed {
    pub account: Account,
    pub session: String,
    pub csrf: String,
}

impl Signed {
    pub fn actor(&self) -> Actor {
        self.account.in_console()
    }
}

/// Any signed-in account: every read but the subscriber export and Settings.
pub struct Viewer(pub Signed);
/// An editor or an owner: articles.
pub struct Editor(pub Signed);
/// An owner: everything.
pub struct Owner(pub Signed);

/// The session behind a request, if it is live, and at least `need`; otherwise the answer: a
/// redirect to the login page, or `403`.
async fn signed(parts: &mut Parts, state: &Arc<AppState>, need: Role) -> Result<Signed, Response> {
    if let Some(found) = parts.extensions.get::<Signed>() {
        return match refusal(state, found, need) {
            None => Ok(found.clone()),
            Some(response) => Err(*response),
        };
    }
    let to_login = || {
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/admin");
        let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
        Redirect::to(&format!("/admin/login?next={next}")).into_response()
    };
    let Some(session) = cookie(&parts.headers, COOKIE).map(str::to_string) else {
        return Err(to_login());
    };
    let account = match state.console.resume(&session).await {
        Ok(Some(account)) => account,
        Ok(None) => return Err(to_login()),
        Err(e) => {
            tracing::error!(error = %e, "cannot read a console session");
            return Err(notice(
                state,
                StatusCode::SERVICE_UNAVAILABLE,
                "Database unreachable",
                None,
                &["The database did not answer. Try again in a moment."],
            ));
        }
    };
    let found = Signed {
        csrf: sessions::csrf_token(&session),
        account,
        session,
    };
    parts.extensions.insert(found.clone());
    match refusal(state, &found, need) {
        None => Ok(found),
        Some(response) => Err(*response),
    }
}

/// The `403` for an account whose role is below `need`.
fn refusal(state: &AppState, found: &Signed, need: Role) -> Option<Box<Response>> {
    if found.account.role >= need {
        return None;
    }
    let message = format!(
        "Your role is {}; this needs {}. Nothing was changed.",
        found.account.role, need
    );
    Some(Box::new(notice(
        state,
        StatusCode::FORBIDDEN,
        "Not allowed",
        Some(found),
        &[&message],
    )))
}

macro_rules! role_extractor {
    ($name:ident, $role:expr) => {
        impl FromRequestParts<Arc<AppState>> for $name {
            type Rejection = Response;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &Arc<AppState>,
            ) -> Result<Self, Self::Rejection> {
                signed(parts, state, $role).await.map($name)
            }
        }
    };
}

role_extractor!(Viewer, Role::Viewer);
role_extractor!(Editor, Role::Editor);
role_extractor!(Owner, Role::Owner);

/// The CSRF check for every console request that may change something: the form's `csrf`
/// field must be the token of this browser's session (or, on the login form, of its login
/// cookie). Anything else gets `403` and goes no further.
async fn csrf(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    let secret_cookie = if req.uri().path() == "/admin/login" {
        LOGIN_COOKIE
    } else {
        COOKIE
    };
    let secret = cookie(req.headers(), secret_cookie).map(str::to_string);
    let (parts, body) = req.into_parts();
    let bytes =
        match http_body_util::Limited::new(body, MAX_FORM).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return notice(
                &state,
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                None,
                &["This form is larger than the 2 MiB the console accepts. Nothing was changed."],
            ),
        };
    let given = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let ok = secret
        .as_deref()
        .is_some_and(|s| sessions::csrf_matches(s, &given));
    if !ok {
        return notice(
            &state,
            StatusCode::FORBIDDEN,
            "Form expired",
            None,
            &[
                "This form did not come from this console, or your session has changed since it was shown. Nothing was changed.",
                "Go back, reload the page and try again.",
            ],
        );
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_in_the_folder_is_loaded_and_compiles() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/web/admin/templates");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).expect("the templates folder") {
            let name = entry.expect("an entry").file_name();
            let name = name.to_string_lossy();
            if let Err(e) = super::templates().get_template(&name) {
                panic!("{name}: {e}");
            }
            seen += 1;
        }
        assert!(seen > 20, "{seen} templates");
    }

    #[test]
    fn times_read_relative_to_now_in_the_unit_that_fits() {
        let now = 1_800_000_000_000_000;
        let s = 1_000_000;
        assert_eq!(super::relative(now - 5 * s, now), "just now");
        assert_eq!(super::relative(now + 5 * s, now), "in under a minute");
        assert_eq!(super::relative(now - 300 * s, now), "5 min ago");
        assert_eq!(super::relative(now + 900 * s, now), "in 15 min");
        assert_eq!(super::relative(now - 80 * 60 * s, now), "80 min ago");
        assert_eq!(super::relative(now - 3 * 3_600 * s, now), "3 h ago");
        assert_eq!(super::relative(now + 24 * 3_600 * s, now), "in 24 h");
        assert_eq!(super::relative(now - 3 * 86_400 * s, now), "3 days ago");
        assert_eq!(
            super::relative(now + 10 * 3_600 * s - 2 * s, now),
            "in 10 h"
        );
    }
}
