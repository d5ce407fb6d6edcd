//! HTTP: a fast path that answers GET/HEAD of cached feeds straight from memory, and an axum
//! router for everything else (health, admin API, 404s). Stops cleanly on shutdown.

pub mod admin;
pub mod api;
pub mod assets;
pub mod audience_api;
pub mod conditional;
pub mod pages;
pub mod sources_api;
pub mod subscribers_api;
pub mod webhook_endpoints_api;
pub mod webhooks;
pub mod websub;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{HeaderValue, Method, StatusCode};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::digest::Digests;
use crate::feeds::cache::FeedCache;
use crate::feeds::publisher::Publisher;
use crate::subscribers::flow::Subscriptions;

/// What every request handler can reach.
pub struct AppState {
    pub config: Arc<Config>,
    pub cache: Arc<FeedCache>,
    /// Tag feeds that are not in the cache: validators from the database, or rendered.
    pub on_demand: crate::feeds::on_demand::OnDemand,
    pub catalog: Catalog,
    pub publisher: Publisher,
    pub cache_control: HeaderValue,
    pub subscriptions: Arc<Subscriptions>,
    pub digests: Arc<Digests>,
    pub webhooks: Arc<crate::feedback::webhooks::Webhooks>,
    pub limits: pages::RateLimits,
    /// Accounts, sessions, API tokens and the audit log.
    pub console: Arc<crate::admin::console::Console>,
    pub metrics: crate::metrics::Metrics,
    /// Who reads the feeds: counted on the fast path, written in the background.
    pub audience: Arc<crate::audience::Audience>,
    /// Blogs followed through their feeds.
    pub sources: Arc<crate::sources::Sources>,
    /// Renders `/metrics`; `None` when no recorder could be installed.
    pub prometheus: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// The services behind the routes: subscriptions, digests, provider webhooks, the feed audience.
pub struct Services {
    pub subscriptions: Arc<Subscriptions>,
    pub digests: Arc<Digests>,
    pub webhooks: Arc<crate::feedback::webhooks::Webhooks>,
    pub audience: Arc<crate::audience::Audience>,
    pub sources: Arc<crate::sources::Sources>,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        cache: Arc<FeedCache>,
        catalog: Catalog,
        publisher: Publisher,
        services: Services,
        prometheus: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> AppState {
        let Services {
            subscriptions,
            digests,
            webhooks,
            audience,
            sources,
        } = services;
        let cache_control =
            HeaderValue::from_str(&format!("public, max-age={}", config.feeds.max_age))
                .unwrap_or_else(|_| HeaderValue::from_static("public, max-age=300"));
        let console = Arc::new(crate::admin::console::Console::new(
            catalog.store().clone(),
            crate::admin::sessions::Lifetime::from_config(&config),
        ));
        let on_demand = crate::feeds::on_demand::OnDemand::new(
            catalog.store().clone(),
            config.clone(),
            cache.clone(),
        );
        AppState {
            on_demand,
            limits: pages::RateLimits::new(&config),
            console,
            config,
            cache,
            catalog,
            publisher,
            cache_control,
            subscriptions,
            digests,
            webhooks,
            metrics: crate::metrics::Metrics::new(),
            audience,
            sources,
            prometheus,
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/digests/{id}", get(archived_digest))
        .route("/metrics", get(metrics))
        .nest("/api", api::router(state.clone()))
        .merge(api::openapi::router())
        .merge(pages::router())
        .merge(admin::router(state.clone()))
        .merge(assets::router())
        .merge(webhooks::router())
        .merge(websub::router())
        .fallback(not_found)
        .with_state(state)
}

/// `200` when the database answers (the feeds can be served), `503` when it does not; the body
/// says whether the database and the mail transport are reachable.
async fn healthz(axum::extract::State(state): axum::extract::State<Arc<AppState>>) -> Response {
    let db_ok = state.catalog.count().await.is_ok();
    let mail_ok = tokio::time::timeout(
        Duration::from_secs(5),
        state.subscriptions.mailer.reachable(),
    )
    .await
    .unwrap_or(false);
    let body = format!(
        "database: {}\nmail: {}\n",
        if db_ok { "ok" } else { "unreachable" },
        if mail_ok { "ok" } else { "unreachable" }
    );
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body).into_response()
}

/// Prometheus text format.
async fn metrics(axum::extract::State(state): axum::extract::State<Arc<AppState>>) -> Response {
    let Some(handle) = state.prometheus.clone() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not available\n",
        )
            .into_response();
    };
    let depth = state
        .digests
        .store
        .read(crate::digest::ledger::queue_depth)
        .await
        .unwrap_or(0);
    state.metrics.queue_depth.set(depth as f64);
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

/// The generic (all tags) version of a digest run: the email's "view in browser".
async fn archived_digest(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return (StatusCode::NOT_FOUND, "no such digest\n").into_response();
    };
    let html = state
        .digests
        .store
        .read(move |db| crate::digest::ledger::archived(db, id))
        .await;
    match html {
        Ok(Some(html)) if !html.is_empty() => axum::response::Html(html).into_response(),
        Ok(_) => (StatusCode::NOT_FOUND, "no such digest\n").into_response(),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the digest\n",
        )
            .into_response(),
    }
}

async fn not_found(uri: http::Uri) -> Response {
    let path = uri.path();
    if let Some(rest) = path.strip_prefix("/tags/") {
        let tag = rest.split('/').next().unwrap_or("");
        return (
            StatusCode::NOT_FOUND,
            format!("no tag '{tag}' in this catalog\n"),
        )
            .into_response();
    }
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// Accepts connections until `shutdown` fires, then waits for in-flight requests until
/// `deadline` (`server.shutdown_seconds`).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: CancellationToken,
    deadline: &crate::shutdown::Deadline,
) {
    let router = router(state.clone());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .keep_alive(true);
    // At most this many connections: a flood of clients that connect and stall cannot take every
    // file descriptor; past the cap the server waits for one to close before accepting more.
    let slots = Arc::new(tokio::sync::Semaphore::new(
        state.config.server.max_connections as usize,
    ));
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let router = router.clone();
        let service = hyper::service::service_fn(move |req| {
            dispatch(state.clone(), router.clone(), peer, req)
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!("stopped accepting; finishing in-flight requests");
    if deadline
        .within("in-flight HTTP requests", graceful.shutdown())
        .await
        .is_none()
    {
        tracing::warn!("closing the HTTP requests still running");
    }
}

/// The client's address: the TCP peer, or with `server.trust_proxy` the last `X-Forwarded-For`
/// hop (the one the proxy added). Rate limits and the feed audience use it alike.
pub fn client_ip(
    trust_proxy: bool,
    peer: std::net::IpAddr,
    headers: &http::HeaderMap,
) -> std::net::IpAddr {
    if trust_proxy {
        if let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
        {
            return ip;
        }
    }
    peer
}

/// A tag feed that is not in the cache: a `304` from its validators in the database when they
/// answer the request, else its bytes rendered (and cached); `None` for no such feed, which the
/// router then answers (`404`).
async fn cold_feed(
    state: &AppState,
    path: &str,
    headers: &http::HeaderMap,
) -> Option<Arc<crate::feeds::cache::Rendered>> {
    let (slug, format) = crate::feeds::on_demand::tag_feed(path)?;
    if conditional::is_conditional(headers) {
        match state.on_demand.validators(slug, format).await {
            Ok(Some(validators)) if conditional::not_modified(headers, &validators) => {
                return Some(Arc::new(validators));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, feed = path, "cannot read a feed's validators"),
        }
    }
    match state.on_demand.get(path, slug, format).await {
        Ok(rendered) => rendered,
        Err(e) => {
            tracing::error!(error = %e, feed = path, "cannot render a feed");
            None
        }
    }
}

type Body = Either<http_body_util::Full<bytes::Bytes>, axum::body::Body>;

async fn dispatch(
    state: Arc<AppState>,
    router: Router,
    peer: std::net::SocketAddr,
    mut req: http::Request<Incoming>,
) -> Result<http::Response<Body>, Infallible> {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        let cached = match state.cache.get(req.uri().path()) {
            Some(rendered) => Some(rendered),
            None => cold_feed(&state, req.uri().path(), req.headers()).await,
        };
        if let Some(rendered) = cached {
            let headers = req.headers();
            let response = conditional::respond(headers, &rendered, &state.cache_control);
            state.metrics.feed_requests.increment(1);
            let status = response.status();
            if status == StatusCode::NOT_MODIFIED {
                state.metrics.feed_not_modified.increment(1);
            }
            if status == StatusCode::OK || status == StatusCode::NOT_MODIFIED {
                let agent = headers
                    .get(http::header::USER_AGENT)
                    .map_or(&b""[..], |v| v.as_bytes());
                state.audience.count(req.uri().path(), agent, || {
                    client_ip(state.config.server.trust_proxy, peer.ip(), headers)
                });
            }
            return Ok(response.map(Either::Left));
        }
    }
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    // A body that stalls (sends nothing for `server.body_timeout_seconds`) fails the read, the
    // handler answers, and hyper closes the connection.
    let idle = Duration::from_secs(u64::from(state.config.server.body_timeout_seconds));
    let response = router
        .oneshot(req.map(|b| axum::body::Body::new(tower_http::timeout::TimeoutBody::new(idle, b))))
        .await
        .unwrap_or_else(|never| match never {});
    Ok(response.map(Either::Right))
}
