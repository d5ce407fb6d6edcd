//! Digests: on each run, every due subscriber gets one email with the articles new to them, in
//! their tags, grouped by tag. Planning (`due`, `plan`) is pure; the `ledger` makes delivery
//! survive crashes; this module runs the two: plan in one transaction, then send with bounded
//! concurrency, a rate limit, retries with backoff for transient failures, and explicit outcomes.

pub mod due;
pub mod ledger;
pub mod plan;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};
use minijinja::{context, Value};
use rand::Rng;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use self::ledger::{Claimed, Next};
use self::plan::{Plan, Reader, Section};
use crate::catalog::{Article, Catalog};
use crate::config::Config;
use crate::mail::bulk::{placeholder, BodyTemplate};
use crate::mail::templates::Templates;
use crate::mail::{Failure, Mailer};
use crate::subscribers::store;
use crate::subscribers::tokens::Purpose;
use crate::subscribers::{Status, Subscriber};

#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("catalog error: {0}")]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error("template error: {0}")]
    Template(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// How a run is asked for.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// The moment the run plans for (the clock; injectable for tests and previews).
    pub now: DateTime<Utc>,
    /// Treat every confirmed subscriber as due now, ignoring send hour and cadence.
    pub force: bool,
    /// Plan and report, change and send nothing.
    pub dry_run: bool,
}

/// What a run did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RunReport {
    pub run_id: Option<i64>,
    /// Unfinished deliveries from earlier runs, finished first.
    pub resumed: u64,
    /// Due subscribers examined.
    pub due: u64,
    /// Digests planned (due subscribers with something new).
    pub planned: u64,
    pub sent: u64,
    pub retried: u64,
    pub failed: u64,
    pub skipped: u64,
    /// Left for a later run: retries not due yet, or stopped by shutdown.
    pub waiting: u64,
    /// With `dry_run`: who would get what.
    pub plans: Vec<PlannedDigest>,
}

/// Where a streaming dry run sends each planned digest.
pub type PlanSink = Arc<dyn Fn(PlannedDigest) + Send + Sync>;

#[derive(Debug, Clone, Serialize)]
pub struct PlannedDigest {
    pub email: String,
    pub summary: String,
    pub articles: Vec<String>,
}

/// What happened to one claimed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Sent,
    Retried,
    Failed,
    Skipped,
    /// Handed back unsent at shutdown, for the next start.
    Released,
}

fn ready_message(o: &Option<Outgoing>) -> Option<&crate::mail::Prepared> {
    o.as_ref().and_then(|o| o.message.as_ref().ok())
}

/// A digest's email, built for one claimed delivery.
struct Outgoing {
    delivery: Claimed,
    subscriber: Subscriber,
    message: Result<crate::mail::Prepared, crate::mail::SendError>,
    started: std::time::Instant,
}

/// The digest service shared by the scheduler, the API and the CLI.
pub struct Digests {
    pub config: Arc<Config>,
    pub db: Arc<Mutex<Catalog>>,
    pub mailer: Arc<Mailer>,
    pub templates: Arc<Templates>,
    pub metrics: crate::metrics::Metrics,
    /// One run at a time per process; a trigger while one runs is a no-op.
    running: tokio::sync::Mutex<()>,
    /// Stop taking new deliveries (SIGTERM).
    pub stop: CancellationToken,
    owner: i64,
    /// Article lists already loaded, by their ids.
    article_cache: Mutex<std::collections::HashMap<String, Arc<Vec<Article>>>>,
    /// Digest bodies already rendered and encoded, by what they show (see `body_template`).
    body_cache: Mutex<BodyCache>,
    /// Stand-ins for the preferences and unsubscribe tokens in a body template.
    placeholders: [String; 2],
}

/// Encoded digest bodies shared by every recipient who would see the same thing.
#[derive(Default)]
struct BodyCache {
    bodies: std::collections::HashMap<String, Arc<BodyTemplate>>,
    bytes: usize,
}

/// Most bytes of encoded bodies kept at once (a run with more distinct digests re-renders some).
const BODY_CACHE_BYTES: usize = 16 << 20;

/// A claimed delivery with what its email needs.
struct Job {
    claimed: Claimed,
    subscriber: Subscriber,
    preferences: crate::subscribers::tokens::Token,
    unsubscribe: crate::subscribers::tokens::Token,
}

enum Batch {
    Ready { ready: Vec<Job>, skipped: u64 },
    WaitUntil(DateTime<Utc>),
    Empty,
}

/// Deliveries a worker claims at once (each is still sent and recorded on its own).
const BATCH: usize = 64;
/// Longest a run waits in-process for a retry to come due before leaving it to the next run.
const MAX_IN_RUN_WAIT_SECONDS: i64 = 60;

impl Digests {
    pub fn new(
        config: Arc<Config>,
        catalog: Catalog,
        mailer: Arc<Mailer>,
        templates: Arc<Templates>,
        stop: CancellationToken,
    ) -> Digests {
        Digests {
            config,
            db: Arc::new(Mutex::new(catalog)),
            mailer,
            templates,
            metrics: crate::metrics::Metrics::new(),
            running: tokio::sync::Mutex::new(()),
            stop,
            owner: i64::from(std::process::id()),
            article_cache: Mutex::new(std::collections::HashMap::new()),
            body_cache: Mutex::new(BodyCache::default()),
            placeholders: {
                let len = crate::subscribers::tokens::Token::generate().as_str().len();
                [placeholder(len), placeholder(len)]
            },
        }
    }

    async fn with_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Catalog) -> Result<T, DigestError> + Send + 'static,
    ) -> Result<T, DigestError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut catalog = db.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut catalog)
        })
        .await
        .map_err(|e| DigestError::Internal(e.to_string()))?
    }

    /// Waits until no run is going (used at shutdown, after `stop` is cancelled).
    pub async fn idle(&self) {
        let _guard = self.running.lock().await;
    }

    /// A scheduler tick: run now unless a run is already going.
    pub async fn tick(self: &Arc<Self>) {
        let Ok(guard) = self.running.try_lock() else {
            tracing::info!("digest tick while a run is going: nothing to do");
            return;
        };
        let opts = RunOptions {
            now: Utc::now(),
            force: false,
            dry_run: false,
        };
        match self.run_locked(opts, None, None).await {
            Ok(r) if r.planned + r.resumed > 0 => tracing::info!(
                run = ?r.run_id, planned = r.planned, resumed = r.resumed, sent = r.sent,
                failed = r.failed, retried = r.retried, waiting = r.waiting, "digest run done"
            ),
            Ok(_) => tracing::debug!("digest run: nobody due with anything new"),
            Err(e) => tracing::error!(error = %e, "digest run failed; the next tick resumes it"),
        }
        drop(guard);
    }

    /// A run asked for by the API or the CLI (waits for a run in progress to end first).
    pub async fn run(
        self: &Arc<Self>,
        opts: RunOptions,
        progress: Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
    ) -> Result<RunReport, DigestError> {
        let _guard = self.running.lock().await;
        self.run_locked(opts, progress, None).await
    }

    /// A dry run that hands each planned digest to `each` as it is planned instead of keeping
    /// them all in the report (a million subscribers' plans do not fit in memory).
    pub async fn dry_run_each(
        self: &Arc<Self>,
        mut opts: RunOptions,
        progress: Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
        each: PlanSink,
    ) -> Result<RunReport, DigestError> {
        opts.dry_run = true;
        let _guard = self.running.lock().await;
        self.run_locked(opts, progress, Some(each)).await
    }

    async fn run_locked(
        self: &Arc<Self>,
        opts: RunOptions,
        progress: Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
        each: Option<PlanSink>,
    ) -> Result<RunReport, DigestError> {
        // Articles may have been edited since the last run.
        self.article_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        *self
            .body_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = BodyCache::default();
        let this = self.clone();
        let mut report = self
            .with_db(move |catalog| this.plan_run(catalog, opts, each))
            .await?;
        if opts.dry_run {
            return Ok(report);
        }
        let total = report.planned + report.resumed;
        let done = Arc::new(AtomicU64::new(0));
        let counts = Arc::new(Mutex::new(RunReport::default()));
        let record = {
            let counts = counts.clone();
            let done = done.clone();
            Arc::new(move |outcome: Outcome| {
                let mut c = counts.lock().unwrap_or_else(PoisonError::into_inner);
                match outcome {
                    Outcome::Sent => c.sent += 1,
                    Outcome::Retried => c.retried += 1,
                    Outcome::Failed => c.failed += 1,
                    Outcome::Skipped => c.skipped += 1,
                    Outcome::Released => {}
                }
                drop(c);
                if !matches!(outcome, Outcome::Retried | Outcome::Released) {
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if let Some(p) = &progress {
                        p(total, n);
                    }
                }
            })
        };
        let limiter = NonZeroU32::new(self.config.digest.rate_per_second).map(|rate| {
            Arc::new(governor::RateLimiter::direct(governor::Quota::per_second(
                rate,
            )))
        });
        // Sending rewrites the same ledger and subscriber pages over and over: checkpoint the WAL
        // every ~40 MB rather than every ~4 MB, so each hot page is copied back once, not ten times.
        self.with_db(|c| {
            c.connection()
                .pragma_update(None, "wal_autocheckpoint", 10_000)?;
            Ok(())
        })
        .await?;
        let recorder = ledger::Recorder::start(self.db.clone()).map_err(DigestError::Internal)?;
        let recorder = Arc::new(recorder);
        // One feeder claims deliveries (and mints their links) ahead of the workers, so a worker
        // never waits for a claim; `in_flight` counts those claimed and not yet settled.
        let (queue, deliveries) = async_channel::bounded::<Job>(BATCH * 2);
        let in_flight = Arc::new(AtomicU64::new(0));
        // Stops this run (not the service): the ledger cannot record sends, or a worker died.
        let halt = self.stop.child_token();
        let mut workers = tokio::task::JoinSet::new();
        {
            let this = self.clone();
            let in_flight = in_flight.clone();
            let record = record.clone();
            let halt = halt.clone();
            workers.spawn(async move {
                loop {
                    if halt.is_cancelled() {
                        break;
                    }
                    let busy = in_flight.load(Ordering::Relaxed) > 0;
                    match this.next_batch().await {
                        Ok(Batch::Ready { ready, skipped }) => {
                            for _ in 0..skipped {
                                record(Outcome::Skipped);
                            }
                            in_flight.fetch_add(ready.len() as u64, Ordering::Relaxed);
                            for p in ready {
                                if let Err(unsent) = queue.send(p).await {
                                    let id = unsent.0.claimed.id;
                                    let _ = this
                                        .with_db(move |c| {
                                            Ok(ledger::release(c.connection(), &[id])?)
                                        })
                                        .await;
                                }
                            }
                        }
                        // Workers still sending may yet hand back retries: look again shortly.
                        Ok(Batch::WaitUntil(_) | Batch::Empty) if busy => {
                            tokio::select! {
                                _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
                                _ = halt.cancelled() => break,
                            }
                        }
                        Ok(Batch::WaitUntil(at)) => {
                            let wait = at - Utc::now();
                            if wait > Duration::seconds(MAX_IN_RUN_WAIT_SECONDS) {
                                break;
                            }
                            let sleep = wait
                                .to_std()
                                .unwrap_or_default()
                                .max(std::time::Duration::from_millis(20));
                            tokio::select! {
                                _ = tokio::time::sleep(sleep) => {}
                                _ = halt.cancelled() => break,
                            }
                        }
                        Ok(Batch::Empty) => break,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot read the delivery ledger");
                            break;
                        }
                    }
                }
                // Dropping `queue` tells the workers there is no more.
            });
        }
        for _ in 0..self.config.digest.concurrency.max(1) {
            let record = record.clone();
            let in_flight = in_flight.clone();
            let settle = move |outcome: Outcome| {
                in_flight.fetch_sub(1, Ordering::Relaxed);
                record(outcome);
            };
            workers.spawn(self.clone().work(
                deliveries.clone(),
                recorder.clone(),
                limiter.clone(),
                halt.clone(),
                settle,
            ));
        }
        while let Some(done) = workers.join_next().await {
            if let Err(e) = done {
                // Its claimed rows stay `sending` until their lease ends; the rest of the run
                // stops rather than wait for them.
                tracing::error!(error = %e, "a digest worker died; stopping this run");
                halt.cancel();
            }
        }
        let counts = counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        report.sent = counts.sent;
        report.retried = counts.retried;
        report.failed = counts.failed;
        report.skipped = counts.skipped;
        report.waiting = self
            .with_db(|c| Ok(ledger::queue_depth(c.connection())?))
            .await
            .unwrap_or(0)
            .max(0) as u64;
        Ok(report)
    }

    /// Plans the run: finds the due subscribers, plans each digest, and writes it all (plus the
    /// slots handled) in one transaction. With `dry_run`, writes nothing.
    fn plan_run(
        &self,
        catalog: &mut Catalog,
        opts: RunOptions,
        each: Option<PlanSink>,
    ) -> Result<RunReport, DigestError> {
        let mut report = RunReport::default();
        if !opts.dry_run {
            ledger::release_own(catalog.connection(), self.owner)?;
            let reclaimed = ledger::reclaim_abandoned(catalog.connection(), self.owner)?;
            if reclaimed > 0 {
                tracing::info!(
                    reclaimed,
                    "resuming deliveries a stopped process left mid-send"
                );
            }
        }
        let digest = &self.config.digest;
        let weekly_day = due::parse_weekday(&digest.weekly_day).unwrap_or(chrono::Weekday::Mon);
        let max_age = Duration::days(i64::from(digest.max_age_days));
        // Read and write in one immediate transaction: a concurrent run (the CLI while the
        // daemon runs) waits, then sees these rows and slots, so nobody is planned twice.
        let plan = ledger::PlanWriter::begin(catalog.connection_mut(), opts.now, opts.force)?;
        report.resumed = ledger::queue_depth(plan.conn())?.max(0) as u64;
        let earliest = ledger::earliest_window(plan.conn())?.unwrap_or(opts.now);
        let articles = crate::catalog::added_since(plan.conn(), earliest, opts.now - max_age)?;
        let previous_run = ledger::previous_run(plan.conn())?;
        ledger::for_each_candidate(plan.conn(), |c| -> Result<(), DigestError> {
            let slot =
                due::current_slot(c.cadence, c.zone.0, digest.send_hour, weekly_day, opts.now);
            if !(opts.force || due::is_due(c.last_slot, slot)) {
                return Ok(());
            }
            report.due += 1;
            let reader = Reader {
                tags: &c.tags,
                window_start: c.window_start,
            };
            if let Some(p) = plan::plan(&reader, &articles, opts.now, max_age) {
                if opts.dry_run {
                    let planned = PlannedDigest {
                        email: c.email.clone(),
                        summary: p.summary(),
                        articles: p
                            .sections
                            .iter()
                            .flat_map(|s| s.articles.iter().map(|a| a.title.clone()))
                            .collect(),
                    };
                    match &each {
                        Some(each) => each(planned),
                        None => report.plans.push(planned),
                    }
                } else {
                    plan.delivery(
                        c.id,
                        p.sections
                            .iter()
                            .flat_map(|s| s.articles.iter().map(|a| a.id.as_str())),
                    )?;
                }
                report.planned += 1;
            }
            if !opts.force && !opts.dry_run {
                plan.slot(c.id, slot)?;
            }
            Ok(())
        })?;
        if opts.dry_run {
            // Dropping the writer rolls back: a dry run changes nothing.
            return Ok(report);
        }
        // The archive copy: everything new since the previous run, for every tag.
        let since = previous_run.unwrap_or(opts.now - max_age);
        let everyone = Reader {
            tags: &[],
            window_start: since,
        };
        let (subject, html) = match plan::plan(&everyone, &articles, opts.now, max_age) {
            Some(g) if plan.planned() > 0 => {
                let r = self.render(g.sections, opts.now, chrono_tz::UTC, None)?;
                (r.subject, r.html)
            }
            _ => (String::new(), String::new()),
        };
        report.run_id = plan.finish(&subject, &html)?;
        Ok(report)
    }

    /// Claims a batch of deliveries and, in the same transaction, loads each subscriber and
    /// mints the links their email carries; deliveries whose subscriber left are skipped here.
    async fn next_batch(self: &Arc<Self>) -> Result<Batch, DigestError> {
        let this = self.clone();
        self.with_db(move |catalog| {
            let link_ttl = Duration::days(this.config.subscribers.link_ttl_days as i64);
            let now = Utc::now();
            let tx = catalog
                .connection_mut()
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let claimed = match ledger::claim(
                &tx,
                this.owner,
                now,
                Duration::seconds(i64::from(this.config.digest.lease_seconds)),
                BATCH,
            )? {
                Next::Claimed(c) => c,
                Next::WaitUntil(at) => {
                    tx.commit()?;
                    return Ok(Batch::WaitUntil(at));
                }
                Next::Empty => {
                    tx.commit()?;
                    return Ok(Batch::Empty);
                }
            };
            let key = store::link_key(&tx)?;
            let mut ready = Vec::with_capacity(claimed.len());
            let mut skipped = 0;
            for d in claimed {
                let subscriber = match store::get(&tx, d.subscriber_id)? {
                    Some(s) if s.status == Status::Confirmed => s,
                    _ => {
                        ledger::mark_skipped(&tx, &d, "no longer subscribed")?;
                        skipped += 1;
                        continue;
                    }
                };
                let expires = (now + link_ttl).timestamp();
                let email = subscriber.email.to_string();
                let preferences = key.seal(subscriber.id, &email, Purpose::Preferences, expires);
                let unsubscribe = key.seal(subscriber.id, &email, Purpose::Unsubscribe, expires);
                ready.push(Job {
                    claimed: d,
                    subscriber,
                    preferences,
                    unsubscribe,
                });
            }
            tx.commit()?;
            this.metrics.digests_skipped.increment(skipped);
            Ok(Batch::Ready { ready, skipped })
        })
        .await
    }

    /// The articles of a delivery, loaded once per distinct list in this process.
    async fn articles(self: &Arc<Self>, ids: &[String]) -> Result<Arc<Vec<Article>>, DigestError> {
        let key = ids.join("\n");
        if let Some(hit) = self
            .article_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(hit.clone());
        }
        let ids = ids.to_vec();
        let loaded = Arc::new(self.with_db(move |c| Ok(c.by_ids(&ids)?)).await?);
        let mut cache = self
            .article_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(key, loaded.clone());
        Ok(loaded)
    }

    /// The email for a claimed delivery, or the outcome when there is none to send.
    async fn compose(self: &Arc<Self>, job: Job) -> Result<Result<Outgoing, Outcome>, DigestError> {
        let Job {
            claimed: d,
            subscriber,
            preferences: prefs,
            unsubscribe: unsub,
        } = job;
        let articles = self.articles(&d.article_ids).await?;
        if articles.is_empty() {
            self.with_db(move |c| {
                Ok(ledger::mark_skipped(
                    c.connection(),
                    &d,
                    "its articles were removed",
                )?)
            })
            .await?;
            self.metrics.digests_skipped.increment(1);
            return Ok(Err(Outcome::Skipped));
        }
        let template = self.body_template(&d, &subscriber, &articles)?;
        let unsubscribe_url = self
            .config
            .site_url(&format!("/unsubscribe/{}", unsub.as_str()));
        let message = self.mailer.build_from_template(
            &template,
            subscriber.email.address(),
            &[prefs.as_str(), unsub.as_str()],
            &unsubscribe_url,
        );
        Ok(Ok(Outgoing {
            delivery: d,
            subscriber,
            message,
            started: std::time::Instant::now(),
        }))
    }

    /// Records a delivery that was not sent: retried later (transient) or failed (permanent).
    async fn not_sent(
        self: &Arc<Self>,
        d: Claimed,
        subscriber: &Subscriber,
        e: crate::mail::SendError,
    ) -> Result<Outcome, DigestError> {
        let config = self.config.clone();
        if e.failure == Failure::Transient {
            let attempts = d.attempts + 1;
            let retry_at =
                (attempts < config.digest.max_attempts).then(|| Utc::now() + backoff(attempts));
            tracing::warn!(delivery = d.id, attempts, error = %e, retry = retry_at.is_some(), "digest not sent (transient)");
            let gave_up = retry_at.is_none();
            let message = e.message.clone();
            self.with_db(move |c| {
                ledger::mark_retry(c.connection(), &d, &message, retry_at)?;
                Ok(())
            })
            .await?;
            return Ok(if gave_up {
                self.metrics.digests_failed.increment(1);
                Outcome::Failed
            } else {
                self.metrics.digests_retried.increment(1);
                Outcome::Retried
            });
        }
        tracing::warn!(delivery = d.id, error = %e, "digest refused (permanent)");
        let limit = config.mail.bounce_limit.max(1);
        let message = e.message.clone();
        let bounced = self
            .with_db(move |c| {
                Ok(ledger::mark_permanent(
                    c.connection_mut(),
                    &d,
                    &message,
                    limit,
                )?)
            })
            .await?;
        if bounced {
            tracing::warn!(email = %subscriber.email, "subscriber marked bounced");
        }
        self.metrics.digests_failed.increment(1);
        Ok(Outcome::Failed)
    }

    /// One worker: its own SMTP session, deliveries from the feeder until there are none. Each
    /// round trip carries one digest's content and the next one's envelope (`Session::exchange`);
    /// a digest's content goes out only once the previous digest's `sent` row is committed, so at
    /// any moment a worker has at most one digest the server may have accepted and the ledger
    /// does not yet say `sent`.
    async fn work(
        self: Arc<Self>,
        deliveries: async_channel::Receiver<Job>,
        recorder: Arc<ledger::Recorder>,
        limiter: Option<Arc<governor::DefaultDirectRateLimiter>>,
        halt: CancellationToken,
        settle: impl Fn(Outcome),
    ) {
        let mailer = self.mailer.clone();
        let mut session = mailer.session();
        // The digest whose envelope the server accepted; its content goes next.
        let mut open: Option<Outgoing> = None;
        // The digest the server took whose `sent` row may not be committed yet.
        let mut unrecorded: Option<ledger::Pending> = None;
        let recorded = |result: Result<(), String>| match result {
            Ok(()) => Outcome::Sent,
            Err(e) => {
                // Sending on would pile up digests the ledger does not know were sent.
                tracing::error!(error = %e, "cannot record a sent digest (it may be sent again); stopping this run");
                halt.cancel();
                Outcome::Retried
            }
        };
        loop {
            // The next delivery; while a digest is open there is no waiting for one.
            let job = match deliveries.try_recv() {
                Ok(job) => Some(job),
                Err(async_channel::TryRecvError::Closed) => None,
                Err(async_channel::TryRecvError::Empty) if open.is_some() => None,
                Err(async_channel::TryRecvError::Empty) => {
                    // Settle the last digest before waiting: the feeder may be waiting for it.
                    if let Some(p) = unrecorded.take() {
                        settle(recorded(p.wait().await));
                    }
                    deliveries.recv().await.ok()
                }
            };
            if job.is_none() && open.is_none() {
                break;
            }
            let mut next = None;
            if let Some(job) = job {
                // A claim about to lapse could be taken by another process: hand it back, and
                // the feeder claims it afresh.
                let lapsing = job.claimed.lease_until - lease_margin(&self.config);
                if halt.is_cancelled() || Utc::now() >= lapsing {
                    self.metrics.claims_released.increment(1);
                    // Start nothing new: hand it back for the next start.
                    let id = job.claimed.id;
                    let _ = self
                        .with_db(move |c| Ok(ledger::release(c.connection(), &[id])?))
                        .await;
                    settle(Outcome::Released);
                } else {
                    if let Some(l) = &limiter {
                        l.until_ready().await;
                    }
                    match self.compose(job).await {
                        Ok(Ok(out)) => match &out.message {
                            Ok(_) => next = Some(out),
                            Err(e) => {
                                let e = e.clone();
                                let outcome = self.not_sent(out.delivery, &out.subscriber, e).await;
                                settle(outcome.unwrap_or(Outcome::Retried));
                            }
                        },
                        Ok(Err(outcome)) => settle(outcome),
                        Err(e) => {
                            tracing::error!(error = %e, "delivery bookkeeping failed; it will be retried");
                            settle(Outcome::Retried);
                        }
                    }
                }
            }
            if open.is_none() && next.is_none() {
                continue;
            }
            if open.is_some() {
                if let Some(p) = unrecorded.take() {
                    settle(recorded(p.wait().await));
                }
            }
            let exchange = session
                .exchange(ready_message(&open), ready_message(&next))
                .await;
            if let Some(o) = open.take() {
                match exchange.content {
                    Some(Ok(message_id)) => {
                        self.metrics.digests_sent.increment(1);
                        self.metrics
                            .send_seconds
                            .record(o.started.elapsed().as_secs_f64());
                        unrecorded = Some(recorder.submit(ledger::Sent::of(
                            &o.delivery,
                            message_id,
                            Utc::now(),
                        )));
                    }
                    result => {
                        let e = match result {
                            Some(Err(e)) => e,
                            _ => crate::mail::SendError {
                                failure: Failure::Transient,
                                message: "no reply to the content".into(),
                            },
                        };
                        let outcome = self.not_sent(o.delivery, &o.subscriber, e).await;
                        settle(outcome.unwrap_or(Outcome::Retried));
                    }
                }
            }
            if let Some(n) = next {
                match exchange.envelope {
                    Some(Ok(())) => open = Some(n),
                    Some(Err(e)) => {
                        let outcome = self.not_sent(n.delivery, &n.subscriber, e).await;
                        settle(outcome.unwrap_or(Outcome::Retried));
                    }
                    None => {
                        let e = crate::mail::SendError {
                            failure: Failure::Transient,
                            message: "no reply to the envelope".into(),
                        };
                        let outcome = self.not_sent(n.delivery, &n.subscriber, e).await;
                        settle(outcome.unwrap_or(Outcome::Retried));
                    }
                }
            }
        }
        if let Some(p) = unrecorded {
            settle(recorded(p.wait().await));
        }
        session.close().await;
    }

    /// The encoded body of a delivery's digest as this subscriber sees it, with placeholders for
    /// their links: rendered once per distinct content (sections, articles, local dates) per run.
    fn body_template(
        &self,
        d: &Claimed,
        subscriber: &Subscriber,
        articles: &[Article],
    ) -> Result<Arc<BodyTemplate>, DigestError> {
        use std::fmt::Write as _;
        let sections = plan::group(
            &subscriber.preferences.tags,
            articles.iter().collect(),
            true,
        );
        let zone = subscriber.preferences.time_zone.0;
        let day = |t: DateTime<chrono::FixedOffset>| t.with_timezone(&zone).date_naive();
        let mut key = format!("{}|{}", d.run_id, day(d.window_end.fixed_offset()));
        for s in &sections {
            let _ = write!(key, "|{}", s.tag.map(|t| t.slug.as_str()).unwrap_or(""));
            for a in &s.articles {
                let _ = write!(key, ",{}@{}", a.id, day(a.published_at));
            }
        }
        if let Some(hit) = self
            .body_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bodies
            .get(&key)
        {
            return Ok(hit.clone());
        }
        let [prefs, unsub] = &self.placeholders;
        let links = PersonalLinks {
            preferences: self.config.site_url(&format!("/preferences/{prefs}")),
            unsubscribe: self.config.site_url(&format!("/unsubscribe/{unsub}")),
            archive: self.config.site_url(&format!("/digests/{}", d.run_id)),
        };
        let rendered = self.render(sections, d.window_end, zone, Some(&links))?;
        let template = Arc::new(
            BodyTemplate::new(
                rendered.subject,
                rendered.text,
                rendered.html,
                &[prefs, unsub],
                self.mailer.signs(),
            )
            .map_err(DigestError::Template)?,
        );
        let mut cache = self
            .body_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.bytes + template.size() > BODY_CACHE_BYTES {
            *cache = BodyCache::default();
        }
        cache.bytes += template.size();
        cache.bodies.insert(key, template.clone());
        Ok(template)
    }

    /// Renders the digest email (personal with `links`, else the archive's generic version).
    pub fn render(
        &self,
        sections: Vec<Section<'_>>,
        now: DateTime<Utc>,
        zone: chrono_tz::Tz,
        links: Option<&PersonalLinks>,
    ) -> Result<RenderedDigest, DigestError> {
        let plan = Plan { sections };
        let config = &self.config;
        let sections: Vec<Value> = plan
            .sections
            .iter()
            .map(|s| {
                let (name, feed) = match s.tag {
                    Some(t) => (t.name.clone(), config.site_url(&format!("/tags/{}/feed.xml", t.slug))),
                    None => ("More".to_string(), config.site_url("/feed.xml")),
                };
                let articles: Vec<Value> = s
                    .articles
                    .iter()
                    .map(|a| {
                        context! {
                            title => &a.title,
                            url => &a.url,
                            date => a.published_at.with_timezone(&zone).format("%B %-d, %Y").to_string(),
                            reading_time_minutes => a.reading_time_minutes,
                            summary => &a.summary,
                        }
                    })
                    .collect();
                context! { name => name, feed_url => feed, articles => articles }
            })
            .collect();
        let ctx = context! {
            site => &config.site.title,
            site_url => config.site_url("/"),
            summary => plan.summary(),
            count => plan.count(),
            date => now.with_timezone(&zone).format("%B %-d, %Y").to_string(),
            sections => sections,
            personal => links.is_some(),
            preferences_url => links.map(|l| l.preferences.clone()).unwrap_or_default(),
            unsubscribe_url => links.map(|l| l.unsubscribe.clone()).unwrap_or_default(),
            archive_url => links.map(|l| l.archive.clone()).unwrap_or_default(),
            subscribe_url => config.site_url("/subscribe"),
        };
        let subject = self
            .templates
            .render_line(&config.digest.subject, ctx.clone())
            .map_err(DigestError::Template)?;
        let body = self
            .templates
            .render("digest", ctx)
            .map_err(DigestError::Template)?;
        Ok(RenderedDigest {
            subject,
            text: body.text,
            html: body.html,
        })
    }

    /// `tidings digest preview`: the next digest for one subscriber and why, changing nothing.
    pub fn preview(
        &self,
        email: &crate::subscribers::SubscriberEmail,
        now: DateTime<Utc>,
    ) -> Result<Preview, DigestError> {
        let catalog = self.db.lock().unwrap_or_else(PoisonError::into_inner);
        let conn = catalog.connection();
        let subscriber = store::find(conn, email)?
            .ok_or_else(|| DigestError::Internal(format!("no subscriber {email}")))?;
        let candidate = ledger::candidate(conn, subscriber.id)?;
        let digest = &self.config.digest;
        let weekly_day = due::parse_weekday(&digest.weekly_day).unwrap_or(chrono::Weekday::Mon);
        let max_age = Duration::days(i64::from(digest.max_age_days));
        let slot = due::current_slot(
            subscriber.preferences.cadence,
            subscriber.preferences.time_zone.0,
            digest.send_hour,
            weekly_day,
            now,
        );
        let mut lines = vec![format!(
            "{}: {}, {} in {}, tags: {}",
            subscriber.email,
            subscriber.status.as_str(),
            subscriber.preferences.cadence.as_str(),
            subscriber.preferences.time_zone.name(),
            if subscriber.preferences.tags.is_empty() {
                "every tag".to_string()
            } else {
                subscriber.preferences.tags.join(", ")
            }
        )];
        let Some(c) = candidate else {
            lines.push(if subscriber.status == Status::Confirmed {
                "not planned: a digest for them is still being delivered".into()
            } else {
                format!("gets no digest: {}", subscriber.status.as_str())
            });
            return Ok(Preview { lines, html: None });
        };
        let next_slot = due::current_slot(
            c.cadence,
            c.zone.0,
            digest.send_hour,
            weekly_day,
            now + Duration::days(if c.cadence == crate::subscribers::Cadence::Weekly {
                7
            } else {
                1
            }),
        );
        if due::is_due(c.last_slot, slot) {
            lines.push(format!(
                "due now (slot {} in their time zone)",
                slot.with_timezone(&c.zone.0).format("%Y-%m-%d %H:%M %Z")
            ));
        } else {
            lines.push(format!(
                "not due: this slot was handled; next at {}",
                next_slot
                    .with_timezone(&c.zone.0)
                    .format("%Y-%m-%d %H:%M %Z")
            ));
        }
        lines.push(format!(
            "new means: added after {} and published after {}",
            c.window_start.to_rfc3339(),
            (now - max_age).to_rfc3339()
        ));
        let articles = catalog.added_since(c.window_start, now - max_age)?;
        let everyone = Reader {
            tags: &[],
            window_start: c.window_start,
        };
        let mine = Reader {
            tags: &c.tags,
            window_start: c.window_start,
        };
        let all = plan::plan(&everyone, &articles, now, max_age);
        let planned = plan::plan(&mine, &articles, now, max_age);
        let kept: Vec<String> = planned
            .as_ref()
            .map(|p| p.article_ids())
            .unwrap_or_default();
        if let Some(all) = &all {
            for s in &all.sections {
                for a in &s.articles {
                    if !kept.contains(&a.id) {
                        lines.push(format!(
                            "filtered out by tag: {} [{}]",
                            a.title,
                            a.tags
                                .iter()
                                .map(|t| t.slug.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                }
            }
        }
        let html = match planned {
            None => {
                lines.push("nothing new: no email would be sent".into());
                None
            }
            Some(p) => {
                lines.push(p.summary());
                for s in &p.sections {
                    lines.push(format!(
                        "  {}:",
                        s.tag.map(|t| t.name.as_str()).unwrap_or("More")
                    ));
                    for a in &s.articles {
                        lines.push(format!("    {} ({})", a.title, a.url));
                    }
                }
                let links = PersonalLinks {
                    preferences: self.config.site_url("/preferences/PREVIEW"),
                    unsubscribe: self.config.site_url("/unsubscribe/PREVIEW"),
                    archive: self.config.site_url("/digests/PREVIEW"),
                };
                Some(self.render(p.sections, now, c.zone.0, Some(&links))?.html)
            }
        };
        Ok(Preview { lines, html })
    }
}

pub struct PersonalLinks {
    pub preferences: String,
    pub unsubscribe: String,
    pub archive: String,
}

pub struct RenderedDigest {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub struct Preview {
    pub lines: Vec<String>,
    pub html: Option<String>,
}

/// A claim with less than this left is handed back rather than sent: a fifth of the lease, at
/// most a minute (60 s of the default 5 minutes).
fn lease_margin(config: &Config) -> Duration {
    Duration::seconds((i64::from(config.digest.lease_seconds) / 5).clamp(1, 60))
}

/// Exponential backoff with jitter: about 1 s, 2 s, 4 s, … (±25 %), at most 5 minutes.
fn backoff(attempts: u32) -> Duration {
    let base = 1000_i64 << attempts.saturating_sub(1).min(8);
    let base = base.min(300_000);
    let jitter = rand::thread_rng().gen_range(-(base / 4)..=(base / 4));
    Duration::milliseconds(base + jitter)
}
