//! `GET`/`POST /admin/login` and `POST /admin/logout`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use minijinja::context;
use serde::Deserialize;

use super::{cookie, notice, render, set_cookie, Viewer};
use crate::admin::console::LoginRefused;
use crate::admin::sessions::{self, COOKIE, LOGIN_COOKIE};
use crate::web::AppState;

#[derive(Deserialize, Default)]
pub struct Next {
    next: Option<String>,
}

/// Where to go after login: a console path, never another site.
fn destination(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/admin") && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/admin",
    }
}

/// The login form, with a login cookie (the form's CSRF secret: there is no session yet).
fn login_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    next: Option<&str>,
    username: &str,
    error: &str,
) -> Response {
    let secret = cookie(headers, LOGIN_COOKIE)
        .filter(|c| c.len() == 43)
        .map(str::to_string)
        .unwrap_or_else(crate::admin::random_secret);
    let mut response = render(
        state,
        status,
        "login.html",
        "Sign in",
        None,
        context! {
            csrf => sessions::csrf_token(&secret),
            next => destination(next),
            username => username,
            error => error,
        },
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, LOGIN_COOKIE, &secret, None),
    );
    response
}

pub async fn form(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(next): Query<Next>,
) -> Response {
    match state.console.has_accounts().await {
        Ok(true) => login_page(
            &state,
            &headers,
            StatusCode::OK,
            next.next.as_deref(),
            "",
            "",
        ),
        Ok(false) => notice(
            &state,
            StatusCode::OK,
            "No account yet",
            None,
            &[
                "The console has no account yet. On the server, run:",
                "tidings admin add NAME --role owner",
                "It prints a new password once (or reads one from standard input). Then reload this page.",
            ],
        ),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the accounts");
            notice(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "Database unreachable",
                None,
                &["The database did not answer. Try again in a moment."],
            )
        }
    }
}

#[derive(Deserialize)]
pub struct Credentials {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

pub async fn submit(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<Credentials>,
) -> Response {
    let client = crate::web::pages::client_ip(&state, Some(peer), &headers);
    let next = form.next.clone();
    let username = form.username.trim().to_string();
    if username.is_empty() || form.password.is_empty() {
        return login_page(
            &state,
            &headers,
            StatusCode::BAD_REQUEST,
            next.as_deref(),
            &username,
            "Enter your name and your password.",
        );
    }
    match state
        .console
        .login(username.clone(), form.password, client)
        .await
    {
        Ok((session, _account)) => {
            let mut response = Redirect::to(destination(next.as_deref())).into_response();
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                set_cookie(&state, COOKIE, &session, None),
            );
            headers.append(
                header::SET_COOKIE,
                set_cookie(&state, LOGIN_COOKIE, "", Some(0)),
            );
            response
        }
        Err(LoginRefused::Wrong) => login_page(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            next.as_deref(),
            &username,
            "Wrong name or password.",
        ),
        Err(LoginRefused::Locked(wait)) => {
            let minutes = wait.div_ceil(60);
            let message = format!(
                "Too many failed sign-ins for this account or from this address. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            );
            let mut response = notice(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                "Try again later",
                None,
                &[&message],
            );
            if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
        Err(LoginRefused::Db(e)) => {
            tracing::error!(error = %e, "cannot check a login");
            notice(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "Database unreachable",
                None,
                &["The database did not answer. Try again in a moment."],
            )
        }
    }
}

/// Ends the session (the CSRF check has passed already) and clears the cookie.
pub async fn logout(State(state): State<Arc<AppState>>, Viewer(who): Viewer) -> Response {
    if let Err(e) = state.console.logout(&who.session).await {
        tracing::error!(error = %e, "cannot end a session");
    }
    let mut response = Redirect::to("/admin/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(&state, COOKIE, "", Some(0)));
    response
}
