//! The daemon's life, shaped like mini-redis's `server.rs`: `serve` binds the listeners and
//! installs the signal handlers; `run(listeners, config, shutdown)` is the one entry point that
//! starts every part, serves until `shutdown`, and returns once each task and thread has stopped
//! (HTTP, scheduler, digest workers and the ledger, outbox, inbound listener, notifications,
//! publisher, finisher, mirror, WebSub, the feed audience's flusher).

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
use crate::store::Store;
use crate::subscribers::flow::Subscriptions;
use crate::web::{self, AppState};

/// The sockets the daemon serves: HTTP, and the inbound SMTP listener when configured.
pub struct Listeners {
    pub http: TcpListener,
    pub inbound: Option<TcpListener>,
}

impl Listeners {
    /// Binds `server.bind` and `mail.inbound.bind`.
    pub async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let addr = config
            .bind_addr()
            .map_err(|e| anyhow::anyhow!("config key server.bind: {e}"))?;
        let http = TcpListener::bind(addr).await.with_context(|| {
            format!(
                "cannot listen on {addr} (set [server] bind in tidings.toml or TIDINGS_SERVER_BIND)"
            )
        })?;
        let inbound = match &config.mail.inbound.bind {
            None => None,
            Some(bind) => Some(TcpListener::bind(bind).await.with_context(|| {
                format!("cannot listen on {bind} (set [mail.inbound] bind in tidings.toml or TIDINGS_MAIL_INBOUND_BIND)")
            })?),
        };
        Ok(Listeners { http, inbound })
    }
}

/// `tidings serve`: stops cleanly on SIGTERM or SIGINT.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // First of all: a SIGTERM from now on stops the daemon cleanly (one that came between the
    // "listening on" line and a later handler would have killed it).
    let shutdown = CancellationToken::new();
    crate::shutdown::cancel_on_signal(shutdown.clone());
    let listeners = Listeners::bind(&config).await?;
    run(listeners, Arc::new(config), shutdown).await
}

/// Serves on `listeners` until `shutdown` is cancelled, then waits for everything to stop.
pub async fn run(
    listeners: Listeners,
    config: Arc<Config>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Before any metric handle is made, so they all report to it.
    let prometheus = crate::metrics::install();
    let location = config.database.location();
    let store = Store::open(&location, config.database.pool_size).await?;
    tracing::info!(
        database = %location.describe(),
        instance = format!("{:016x}", crate::store::instance_id()),
        "database ready"
    );
    let catalog = Catalog::new(store.clone());
    if config.catalog.load_sample {
        if let Some(report) = sample::load_if_empty(&catalog, &config.catalog.sample_path)
            .await
            .context("cannot load the sample catalog")?
        {
            tracing::info!(%report, "empty catalog: loaded the sample articles");
        }
    }
    let keys = store.write(crate::feedback::tags::Keys::load).await?;
    let mailer = Arc::new(Mailer::from_config(&config, keys.clone())?);
    let templates = Arc::new(
        Templates::load(&config.mail.templates_dir).context("cannot load the email templates")?,
    );
    tracing::info!(transport = %mailer.describe(), templates = %templates.source, "mail ready");
    let subscriptions = Arc::new(Subscriptions::new(
        config.clone(),
        store.clone(),
        mailer.clone(),
        templates.clone(),
    ));
    let digests = Arc::new(Digests::new(
        config.clone(),
        store.clone(),
        mailer.clone(),
        templates,
        shutdown.clone(),
    ));
    let today = crate::audience::today();
    let audience_keys = match config.audience.enabled {
        true => store
            .write(move |db| crate::audience::store::keys(db, today))
            .await
            .context("cannot read the feed audience's keys")?,
        false => Default::default(),
    };
    let audience = Arc::new(crate::audience::Audience::new(
        config.audience.enabled,
        config.audience.max_reported,
        audience_keys,
    ));
    let cache = Arc::new(FeedCache::new(config.feeds.cache_bytes));
    // The first render reads the store from this thread (blocking): off the async workers.
    let (publisher, feed_threads) = {
        let (config, store, cache) = (config.clone(), store.clone(), cache.clone());
        tokio::task::spawn_blocking(move || Publisher::start(config, store, cache))
            .await
            .context("the feed renderer panicked")?
            .context("cannot render the feeds")?
    };
    let notifications = store.postgres().map(|pg| {
        let publisher = publisher.clone();
        tokio::spawn(crate::store::postgres::listen(
            pg.connector().clone(),
            "tidings_catalog",
            move || publisher.changed(),
            shutdown.clone(),
        ))
    });
    let webhooks = Arc::new(crate::feedback::webhooks::Webhooks::from_config(
        &config,
        crate::feedback::apply::Rules::new(&config, keys.clone())?,
        store.clone(),
    )?);
    let inbound = match listeners.inbound {
        None => None,
        Some(listener) => {
            // On stdout like `listening on`, before it, so a script started with port 0 learns both.
            println!("inbound on smtp://{}", listener.local_addr()?);
            let rules = crate::feedback::apply::Rules::new(&config, keys.clone())?;
            let server = Arc::new(crate::feedback::listener::Listener::new(
                &config,
                rules,
                store.clone(),
            ));
            Some(tokio::spawn(server.serve(listener, shutdown.clone())))
        }
    };
    let listener = listeners.http;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, feeds = cache.len(), "tidings is serving");
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
    let sources = Arc::new(
        crate::sources::Sources::new(&config, store.clone())
            .map_err(|e| anyhow::anyhow!("sources: {e}"))?,
    );
    {
        let publisher = publisher.clone();
        sources.on_change(move || publisher.changed());
    }
    let instant = tokio::spawn(digests.clone().run_instant());
    let state = Arc::new(AppState::new(
        config.clone(),
        cache,
        catalog,
        publisher,
        web::Services {
            subscriptions,
            digests: digests.clone(),
            webhooks,
            audience: audience.clone(),
            sources: sources.clone(),
        },
        prometheus,
    ));
    let chores = tokio::spawn(housekeeping(state.clone(), shutdown.clone()));
    let audience_flusher = tokio::spawn(
        audience
            .clone()
            .flush_every(store.clone(), shutdown.clone()),
    );
    // Every wait from here on ends by the deadline (`server.shutdown_seconds` after the stop
    // was asked for): what is still running then is left, and the process exits.
    let deadline = digests.deadline.clone();
    let outbox = tokio::spawn(
        state
            .subscriptions
            .clone()
            .run_outbox(shutdown.clone(), deadline.clone()),
    );
    let webhook_worker = Arc::new(
        crate::webhook_endpoints::worker::Worker::new(&config, store.clone())
            .map_err(|e| anyhow::anyhow!("webhook endpoints: {e}"))?,
    );
    let webhook_deliveries = tokio::spawn(webhook_worker.run(shutdown.clone(), deadline.clone()));
    let source_poller = tokio::spawn(sources.run(shutdown.clone()));
    web::serve(listener, state, shutdown.clone(), &deadline).await;
    // Every request is answered: what they counted goes to the database.
    if let Some(Err(_)) = deadline
        .within("the audience flusher", audience_flusher)
        .await
    {
        tracing::warn!("the audience flusher panicked");
    }
    if audience.enabled() {
        if let Some(Err(e)) = deadline
            .within("the feed audience", audience.flush(&store))
            .await
        {
            tracing::warn!(error = %e, "cannot write the feed audience counted since the last flush");
        }
    }
    if let Some(Err(e)) = deadline.within("the scheduler", scheduler.shutdown()).await {
        tracing::warn!(error = %e, "scheduler did not stop cleanly");
    }
    // The digest workers stop taking deliveries on shutdown and finish the ones in flight
    // (their `sent` rows are committed by the ledger thread before a run ends); a send still
    // going near the deadline is cut off before its final dot and handed back.
    deadline.within("the digest run", digests.idle()).await;
    for (name, task) in [
        ("the instant digests", Some(instant)),
        ("the inbound listener", inbound),
        ("the outbox worker", Some(outbox)),
        ("the webhook deliveries", Some(webhook_deliveries)),
        ("the source poller", Some(source_poller)),
        ("the notification listener", notifications),
        ("housekeeping", Some(chores)),
    ] {
        if let Some(task) = task {
            if let Some(Err(_)) = deadline.within(name, task).await {
                tracing::warn!("{name} panicked");
            }
        }
    }
    // The last handle to the publisher is gone with the server; let it, the finisher, the
    // mirror and WebSub finish what they were doing.
    let joined = tokio::task::spawn_blocking(move || feed_threads.join());
    deadline.within("the feed threads", joined).await;
    tracing::info!("stopped");
    Ok(())
}

/// Hourly chores, the first at start: forget expired tokens, idle rate-limit entries, inbound
/// messages older than `mail.inbound.keep_days` and finished webhook deliveries and attempts
/// older than `webhook_endpoints.keep_days`; fold the subscribers' status moves into their counts.
async fn housekeeping(state: Arc<AppState>, shutdown: CancellationToken) {
    let mut first = true;
    loop {
        if !std::mem::take(&mut first) {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
        state.limits.prune();
        let keep_days = state.config.mail.inbound.keep_days;
        let hook_days = state.config.webhook_endpoints.keep_days;
        let pruned = state
            .subscriptions
            .store
            .write(move |db| {
                let now = chrono::Utc::now();
                crate::subscribers::store::prune_tokens(db, now)?;
                crate::subscribers::store::fold_counts(db)?;
                crate::web::pages::prune_address_limits(db, now)?;
                crate::webhook_endpoints::store::prune(db, hook_days, now)?;
                crate::feedback::apply::prune(db, keep_days, now)
            })
            .await;
        if let Err(e) = pruned {
            tracing::warn!(error = %e, "cannot prune expired tokens");
        }
    }
}
