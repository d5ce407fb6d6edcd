//! The subscriber's pages: subscribe, confirm, preferences, unsubscribe. Plain server-rendered
//! HTML that works without JavaScript; a GET never changes anything.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use axum::extract::{ConnectInfo, Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use minijinja::value::Serde;
use minijinja::{context, Environment, Value};
use serde::Serialize;

use super::AppState;
use crate::catalog::InputError;
use crate::config::Config;
use crate::subscribers::flow::FlowError;
use crate::subscribers::store::TokenProblem;
use crate::subscribers::tokens::{Purpose, Token};
use crate::subscribers::{Cadence, Preferences, Subscriber, SubscriberEmail, TimeZone};

mod limits;

pub use limits::{address_limit, prune_address_limits, RateLimits};

const MAX_FORM: usize = 64 * 1024;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/subscribe", get(subscribe_form).post(subscribe))
        .route("/confirm/{token}", get(confirm_page).post(confirm))
        .route(
            "/preferences/{token}",
            get(preferences_page).post(save_preferences),
        )
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe_page).post(unsubscribe),
        )
}

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = crate::html::environment();
        for (name, source) in [
            ("base.html", include_str!("pages/base.html")),
            ("notice.html", include_str!("pages/notice.html")),
            ("prefs_fields.html", include_str!("pages/prefs_fields.html")),
            ("subscribe.html", include_str!("pages/subscribe.html")),
            ("confirm.html", include_str!("pages/confirm.html")),
            ("preferences.html", include_str!("pages/preferences.html")),
            ("unsubscribe.html", include_str!("pages/unsubscribe.html")),
        ] {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(name, error = %e, "page template does not compile");
            }
        }
        env
    })
}

fn page(state: &AppState, status: StatusCode, name: &str, title: &str, ctx: Value) -> Response {
    let site = &state.config.site;
    let base = context! {
        site => &site.title,
        site_url => state.config.site_url("/"),
        lang => &site.language,
        title => title,
    };
    let merged = context! { ..ctx, ..base };
    match templates()
        .get_template(name)
        .and_then(|t| t.render(merged))
    {
        Ok(html) => {
            let mut response = (status, Html(html)).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
            response
        }
        Err(e) => {
            tracing::error!(name, error = %e, "cannot render page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot render this page\n",
            )
                .into_response()
        }
    }
}

fn notice(state: &AppState, status: StatusCode, title: &str, paragraphs: &[&str]) -> Response {
    page(
        state,
        status,
        "notice.html",
        title,
        context! { paragraphs => paragraphs.iter().map(|p| p.to_string()).collect::<Vec<_>>(), link => Value::from(()) },
    )
}

fn token_problem(state: &AppState, problem: TokenProblem) -> Response {
    match problem {
        TokenProblem::Unknown => notice(
            state,
            StatusCode::NOT_FOUND,
            "Link not found",
            &["This link is not valid. Check that it was copied whole, or use the link in a more recent email."],
        ),
        TokenProblem::Expired => notice(
            state,
            StatusCode::GONE,
            "Link expired",
            &["This link has expired. Subscribe again to get a new one."],
        ),
        TokenProblem::Used => notice(
            state,
            StatusCode::GONE,
            "Link already used",
            &["This link has already been used. If you confirmed, you are subscribed."],
        ),
    }
}

fn flow_error(state: &AppState, e: FlowError) -> Response {
    match e {
        FlowError::Token(p) => token_problem(state, p),
        FlowError::Input(e) => notice(
            state,
            StatusCode::BAD_REQUEST,
            "Please check the form",
            &[&e.to_string()],
        ),
        other => {
            tracing::error!(error = %other, "subscriber flow failed");
            notice(
                state,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                &["Please try again in a moment."],
            )
        }
    }
}

fn parse_token(raw: &str) -> Result<Token, TokenProblem> {
    Token::from_url(raw).ok_or(TokenProblem::Unknown)
}

/// A submitted form: every field, repeated ones (`tags`) kept in order.
pub struct Form(pub Vec<(String, String)>);

impl Form {
    async fn read(body: axum::body::Body) -> Result<Form, InputError> {
        let bytes = http_body_util::Limited::new(body, MAX_FORM)
            .collect()
            .await
            .map_err(|_| InputError::new("body", "is larger than 64 KiB"))?
            .to_bytes();
        Ok(Form::parse(&bytes))
    }

    /// An `application/x-www-form-urlencoded` body, as browsers send it.
    pub fn parse(body: &[u8]) -> Form {
        Form(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Tags, cadence and time zone, each checked (tags against the catalog later, in the flow).
    pub fn preferences(&self, config: &Config) -> Result<Preferences, InputError> {
        let cadence = match self.get("cadence").filter(|c| !c.is_empty()) {
            Some(c) => Cadence::parse(c).map_err(|p| InputError::new("cadence", p))?,
            None => Cadence::parse(&config.subscribers.default_cadence).unwrap_or(Cadence::Daily),
        };
        let time_zone = match self.get("time_zone").filter(|z| !z.is_empty()) {
            Some(z) => TimeZone::parse(z).map_err(|p| InputError::new("time_zone", p))?,
            None => TimeZone::parse(&config.subscribers.default_time_zone)
                .unwrap_or(TimeZone(chrono_tz::UTC)),
        };
        Ok(Preferences {
            tags: self.all("tags"),
            cadence,
            time_zone,
        })
    }
}

#[derive(Serialize)]
struct TagChoice {
    slug: String,
    name: String,
    checked: bool,
}

async fn prefs_context(state: &AppState, prefs: Option<&Preferences>) -> Value {
    let chosen: Vec<String> = prefs.map(|p| p.tags.clone()).unwrap_or_default();
    let tags = state
        .catalog
        .tags()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|t| TagChoice {
            checked: chosen.contains(&t.slug),
            slug: t.slug,
            name: t.name,
        })
        .collect::<Vec<_>>();
    let zones: Vec<&'static str> = chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()).collect();
    let config = &state.config.subscribers;
    context! {
        tags => Value::from(Serde(&tags)),
        zones => zones,
        cadence => prefs.map(|p| p.cadence.as_str()).unwrap_or(config.default_cadence.as_str()),
        time_zone => prefs.map(|p| p.time_zone.name()).unwrap_or(config.default_time_zone.as_str()),
    }
}

/// The client's address, as `super::client_ip` reads it.
pub(crate) fn client_ip(state: &AppState, peer: Option<SocketAddr>, headers: &HeaderMap) -> IpAddr {
    let peer = peer
        .map(|p| p.ip())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    super::client_ip(state.config.server.trust_proxy, peer, headers)
}

async fn subscribe_form(State(state): State<Arc<AppState>>) -> Response {
    let ctx = prefs_context(&state, None).await;
    page(
        &state,
        StatusCode::OK,
        "subscribe.html",
        "Subscribe",
        context! { email => "", error => "", ..ctx },
    )
}

async fn subscribe(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let ip = client_ip(&state, Some(peer), &headers);
    let form = match Form::read(body).await {
        Ok(f) => f,
        Err(e) => return flow_error(&state, FlowError::Input(e)),
    };
    let raw_email = form.get("email").unwrap_or("").to_string();
    let limited = match state.limits.check(ip) {
        Err(wait) => Err(wait),
        Ok(()) => {
            let address = raw_email.clone();
            let per_hour = state.config.subscribers.address_rate_per_hour;
            let checked = state
                .subscriptions
                .write(move |db| Ok(address_limit(db, &address, per_hour, chrono::Utc::now())?))
                .await;
            match checked {
                Ok(result) => result,
                Err(e) => return flow_error(&state, e),
            }
        }
    };
    if let Err(wait) = limited {
        let mut response = notice(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            &["Please wait a little and try again."],
        );
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    let parsed = SubscriberEmail::parse(&raw_email)
        .map_err(|p| InputError::new("email", p))
        .and_then(|email| Ok((email, form.preferences(&state.config)?)));
    let result = match parsed {
        Ok((email, prefs)) => state.subscriptions.subscribe(email, prefs).await,
        Err(e) => Err(FlowError::Input(e)),
    };
    match result {
        Ok(()) => notice(
            &state,
            StatusCode::OK,
            "Check your inbox",
            &["If this address can be subscribed, a message with a confirmation link is on its way. Open it to start receiving digests."],
        ),
        Err(FlowError::Input(e)) => {
            let prefs = form.preferences(&state.config).ok();
            let ctx = prefs_context(&state, prefs.as_ref()).await;
            page(
                &state,
                StatusCode::BAD_REQUEST,
                "subscribe.html",
                "Subscribe",
                context! { email => raw_email, error => e.to_string(), zone_chosen => prefs.is_some(), ..ctx },
            )
        }
        Err(e) => flow_error(&state, e),
    }
}

/// A GET on a confirm or unsubscribe link: a page with a button that POSTs; nothing changes.
async fn button_page(
    state: &AppState,
    raw: &str,
    purpose: Purpose,
    template: &str,
    title: &str,
) -> Response {
    let token = match parse_token(raw) {
        Ok(t) => t,
        Err(p) => return token_problem(state, p),
    };
    match state.subscriptions.check(token.clone(), purpose).await {
        Ok(s) => page(
            state,
            StatusCode::OK,
            template,
            title,
            context! { email => s.email.as_str(), token => token.as_str() },
        ),
        Err(e) => flow_error(state, e),
    }
}

async fn confirm_page(State(state): State<Arc<AppState>>, Path(raw): Path<String>) -> Response {
    button_page(
        &state,
        &raw,
        Purpose::Confirm,
        "confirm.html",
        "Confirm your subscription",
    )
    .await
}

async fn confirm(State(state): State<Arc<AppState>>, Path(raw): Path<String>) -> Response {
    let token = match parse_token(&raw) {
        Ok(t) => t,
        Err(p) => return token_problem(&state, p),
    };
    match state.subscriptions.confirm(token).await {
        Ok((subscriber, preferences)) => page(
            &state,
            StatusCode::OK,
            "notice.html",
            "You are subscribed",
            context! {
                paragraphs => vec![format!("{} will receive {} digests.", subscriber.email, subscriber.preferences.cadence.as_str())],
                link => context! { url => format!("/preferences/{}", preferences.as_str()), label => "Choose tags, cadence and time zone" },
            },
        ),
        Err(e) => flow_error(&state, e),
    }
}

async fn preferences_page(State(state): State<Arc<AppState>>, Path(raw): Path<String>) -> Response {
    let token = match parse_token(&raw) {
        Ok(t) => t,
        Err(p) => return token_problem(&state, p),
    };
    match state
        .subscriptions
        .check(token.clone(), Purpose::Preferences)
        .await
    {
        Ok(s) => preferences_view(&state, StatusCode::OK, &s, &token, false, "").await,
        Err(e) => flow_error(&state, e),
    }
}

async fn preferences_view(
    state: &AppState,
    status: StatusCode,
    s: &Subscriber,
    token: &Token,
    saved: bool,
    error: &str,
) -> Response {
    let ctx = prefs_context(state, Some(&s.preferences)).await;
    page(
        state,
        status,
        "preferences.html",
        "Your preferences",
        context! {
            email => s.email.as_str(),
            status => s.status.as_str(),
            token => token.as_str(),
            saved => saved,
            error => error,
            ..ctx
        },
    )
}

async fn save_preferences(
    State(state): State<Arc<AppState>>,
    Path(raw): Path<String>,
    body: axum::body::Body,
) -> Response {
    let token = match parse_token(&raw) {
        Ok(t) => t,
        Err(p) => return token_problem(&state, p),
    };
    let form = match Form::read(body).await {
        Ok(f) => f,
        Err(e) => return flow_error(&state, FlowError::Input(e)),
    };
    if form.get("action") == Some("unsubscribe") {
        return match state
            .subscriptions
            .unsubscribe(token, Purpose::Preferences, "link")
            .await
        {
            Ok(s) => unsubscribed(&state, &s),
            Err(e) => flow_error(&state, e),
        };
    }
    let prefs = match form.preferences(&state.config) {
        Ok(p) => p,
        Err(e) => return flow_error(&state, FlowError::Input(e)),
    };
    match state
        .subscriptions
        .save_preferences(token.clone(), prefs)
        .await
    {
        Ok(s) => preferences_view(&state, StatusCode::OK, &s, &token, true, "").await,
        Err(FlowError::Input(e)) => match state
            .subscriptions
            .check(token.clone(), Purpose::Preferences)
            .await
        {
            Ok(s) => {
                preferences_view(
                    &state,
                    StatusCode::BAD_REQUEST,
                    &s,
                    &token,
                    false,
                    &e.to_string(),
                )
                .await
            }
            Err(e) => flow_error(&state, e),
        },
        Err(e) => flow_error(&state, e),
    }
}

fn unsubscribed(state: &AppState, s: &Subscriber) -> Response {
    let text = format!(
        "{} will receive nothing more from {}.",
        s.email, state.config.site.title
    );
    notice(state, StatusCode::OK, "You are unsubscribed", &[&text])
}

async fn unsubscribe_page(State(state): State<Arc<AppState>>, Path(raw): Path<String>) -> Response {
    button_page(
        &state,
        &raw,
        Purpose::Unsubscribe,
        "unsubscribe.html",
        "Unsubscribe",
    )
    .await
}

/// RFC 8058 one-click: a POST with `List-Unsubscribe=One-Click` unsubscribes at once, no cookies.
async fn unsubscribe(
    State(state): State<Arc<AppState>>,
    Path(raw): Path<String>,
    body: axum::body::Body,
) -> Response {
    let token = match parse_token(&raw) {
        Ok(t) => t,
        Err(p) => return token_problem(&state, p),
    };
    let form = match Form::read(body).await {
        Ok(f) => f,
        Err(e) => return flow_error(&state, FlowError::Input(e)),
    };
    if form.get("List-Unsubscribe") != Some("One-Click") {
        return notice(
            &state,
            StatusCode::BAD_REQUEST,
            "Unsubscribe",
            &["The request must carry List-Unsubscribe=One-Click (RFC 8058)."],
        );
    }
    // The page's own button says so; anything else is a mail client's RFC 8058 POST.
    let source = match form.get("via") {
        Some("page") => "link",
        _ => "one_click",
    };
    match state
        .subscriptions
        .unsubscribe(token, Purpose::Unsubscribe, source)
        .await
    {
        Ok(s) => unsubscribed(&state, &s),
        Err(e) => flow_error(&state, e),
    }
}
