//! `tidings serve`: opens the catalog, renders every feed, serves HTTP, and on SIGTERM/SIGINT
//! stops accepting, finishes in-flight requests and exits 0.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::catalog::{sample, Catalog};
use crate::config::Config;
use crate::digest::Digests;
use crate::feeds::cache::FeedCache;
use crate::feeds::publisher::Publisher;
use crate::mail::templates::Templates;
use crate::mail::Mailer;
use crate::subscribers::flow::Subscriptions;
use crate::web::{self, AppState};

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    // First of all: a SIGTERM from now on stops the daemon cleanly (one that came between the
    // "listening on" line and a later handler would have killed it).
    let shutdown = CancellationToken::new();
    crate::shutdown::cancel_on_signal(shutdown.clone());
    // Before any metric handle is made, so they all report to it.
    let prometheus = crate::metrics::install();
    let addr = config
        .bind_addr()
        .map_err(|e| anyhow::anyhow!("config key server.bind: {e}"))?;
    let mut catalog = Catalog::open(&config.database.path)?;
    if config.catalog.load_sample {
        if let Some(report) = sample::load_if_empty(&mut catalog, &config.catalog.sample_path)
            .context("cannot load the sample catalog")?
        {
            tracing::info!(%report, "empty catalog: loaded the sample articles");
        }
    }
    let subscriber_db = crate::db::open(&config.database.path)?;
    let keys = crate::feedback::tags::Keys::load(&subscriber_db)?;
    let mailer = Arc::new(Mailer::from_config(&config, keys.clone())?);
    let templates = Arc::new(
        Templates::load(&config.mail.templates_dir).context("cannot load the email templates")?,
    );
    tracing::info!(transport = %mailer.describe(), templates = %templates.source, "mail ready");
    let subscriptions = Arc::new(Subscriptions::new(
        config.clone(),
        subscriber_db,
        mailer.clone(),
        templates.clone(),
    ));
    let digests = Arc::new(Digests::new(
        config.clone(),
        Catalog::open(&config.database.path)?,
        mailer.clone(),
        templates,
        shutdown.clone(),
    ));
    let cache = Arc::new(FeedCache::default());
    let (publisher, publisher_thread) =
        Publisher::start(config.clone(), cache.clone()).context("cannot render the feeds")?;
    let webhooks = Arc::new(crate::feedback::webhooks::Webhooks::from_config(
        &config,
        crate::feedback::apply::Rules::new(&config, keys.clone())?,
        Arc::new(std::sync::Mutex::new(crate::db::open(
            &config.database.path,
        )?)),
    )?);
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen on {addr} (set [server] bind in tidings.toml or TIDINGS_SERVER_BIND)"
        )
    })?;
    let inbound = match &config.mail.inbound.bind {
        None => None,
        Some(bind) => {
            let listener = TcpListener::bind(bind).await.with_context(|| {
                format!("cannot listen on {bind} (set [mail.inbound] bind in tidings.toml or TIDINGS_MAIL_INBOUND_BIND)")
            })?;
            // On stdout like `listening on`, before it, so a script started with port 0 learns both.
            println!("inbound on smtp://{}", listener.local_addr()?);
            let rules = crate::feedback::apply::Rules::new(&config, keys.clone())?;
            let db = Arc::new(std::sync::Mutex::new(crate::db::open(
                &config.database.path,
            )?));
            let server = Arc::new(crate::feedback::listener::Listener::new(&config, rules, db));
            Some(tokio::spawn(server.serve(listener, shutdown.clone())))
        }
    };
    let local = listener.local_addr()?;
    tracing::info!(address = %local, database = %config.database.path.display(), feeds = cache.len(), "tidings is serving");
    // One line on stdout, so scripts and tests started with port 0 learn the port.
    println!("listening on http://{local}");

    let zone: chrono_tz::Tz = config
        .digest
        .time_zone
        .parse()
        .map_err(|_| anyhow::anyhow!("config key digest.time_zone: not an IANA time zone"))?;
    let cron = crate::schedule::Cron::parse(&config.digest.schedule)
        .map_err(|e| anyhow::anyhow!("config key digest.schedule: {e}"))?;
    let ticker = digests.clone();
    let mut scheduler = crate::schedule::start(cron, zone, move || {
        let digests = ticker.clone();
        async move { digests.tick().await }
    })
    .await
    .context("cannot start the scheduler")?;
    let state = Arc::new(AppState::new(
        config.clone(),
        cache,
        catalog,
        publisher,
        web::Services {
            subscriptions,
            digests: digests.clone(),
            webhooks,
        },
        prometheus,
    ));
    tokio::spawn(housekeeping(state.clone(), shutdown.clone()));
    let outbox = tokio::spawn(state.subscriptions.clone().run_outbox(shutdown.clone()));
    web::serve(listener, state, shutdown).await;
    if let Err(e) = scheduler.shutdown().await {
        tracing::warn!(error = %e, "scheduler did not stop cleanly");
    }
    // The digest workers stop taking deliveries on shutdown; wait for the ones in flight.
    digests.idle().await;
    if let Some(task) = inbound {
        if task.await.is_err() {
            tracing::warn!("the inbound listener panicked");
        }
    }
    // The outbox worker finishes the email in flight, if any.
    if outbox.await.is_err() {
        tracing::warn!("the outbox worker panicked");
    }

    // The last handle to the publisher is gone with the server; let it finish what it was doing.
    let joined = tokio::task::spawn_blocking(move || publisher_thread.join());
    if tokio::time::timeout(Duration::from_secs(5), joined)
        .await
        .is_err()
    {
        tracing::warn!("publisher did not stop within 5 s");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Hourly chores: forget expired tokens, idle rate-limit entries and inbound messages older than
/// `mail.inbound.keep_days`.
async fn housekeeping(state: Arc<AppState>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = shutdown.cancelled() => return,
        }
        state.limits.prune();
        let db = state.subscriptions.db.clone();
        let keep_days = state.config.mail.inbound.keep_days;
        let pruned = tokio::task::spawn_blocking(move || {
            let conn = db.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = chrono::Utc::now();
            crate::subscribers::store::prune_tokens(&conn, now)?;
            crate::feedback::apply::prune(&conn, keep_days, now)
        })
        .await;
        if let Ok(Err(e)) = pruned {
            tracing::warn!(error = %e, "cannot prune expired tokens");
        }
    }
}
