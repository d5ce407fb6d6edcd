//! Digests: on each run, every due subscriber gets one email with the articles new to them, in
//! their tags, grouped by tag. Planning (`due`, `plan`) is pure; the `ledger` makes delivery
//! survive crashes; this module runs the two: plan in one transaction, then send with bounded
//! concurrency, a rate limit, retries with backoff for transient failures, and explicit outcomes.

pub mod due;
mod instant;
pub mod ledger;
pub mod plan;
mod preview;
mod render;
mod run;
mod send;

pub use self::preview::Preview;
use self::render::BodyCache;
pub use self::render::{PersonalLinks, RenderedDigest};

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};
use minijinja::{context, Value};
use rand::Rng;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use self::ledger::{Claimed, Next};
use self::plan::{Plan, Reader, Section};
use crate::catalog::Article;
use crate::config::Config;
use crate::mail::bulk::{placeholder, BodyTemplate};
use crate::mail::templates::Templates;
use crate::mail::{Failure, Mailer};
use crate::store::{instance_id, Db, Store};
use crate::subscribers::store;
use crate::subscribers::tokens::Purpose;
use crate::subscribers::{Cadence, Status, Subscriber};

#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("database error: {0}")]
    Db(#[from] crate::store::Error),
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

/// What planned a run: the schedule (or an admin asking), or the instant trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunKind {
    /// Daily and weekly subscribers whose slot is due (everyone when forced), in a run of its own.
    Scheduled,
    /// Instant subscribers whose delay is over, in the run of the UTC day.
    Instant,
}

/// What a run did.
#[derive(Debug, Default, Clone, Serialize, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    pub store: Store,
    pub mailer: Arc<Mailer>,
    pub templates: Arc<Templates>,
    pub metrics: crate::metrics::Metrics,
    /// One run at a time per process; a scheduler tick while one runs is a no-op (but waits
    /// for an instant run, which is short and would otherwise make it skip a slot).
    running: tokio::sync::Mutex<()>,
    /// The run going on (holding `running`) is an instant one.
    instant_running: AtomicBool,
    /// Stop taking new deliveries (SIGTERM).
    pub stop: CancellationToken,
    /// How long the stop may take (`server.shutdown_seconds`): a send still going near it is
    /// cut off before its final dot and handed back.
    pub deadline: crate::shutdown::Deadline,
    /// Claims this process holds, by delivery id: until when (by this node's monotonic clock,
    /// measured from the database's grant) it may still start sending each.
    leases: Mutex<std::collections::HashMap<i64, std::time::Instant>>,
    /// Article lists already loaded, by their ids.
    article_cache: Mutex<std::collections::HashMap<String, Arc<Vec<Article>>>>,
    /// Digest bodies already rendered and encoded, by what they show (see `body_template`).
    body_cache: Mutex<BodyCache>,
    /// Stand-ins for the preferences and unsubscribe tokens in a body template.
    placeholders: [String; 2],
}

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
        store: Store,
        mailer: Arc<Mailer>,
        templates: Arc<Templates>,
        stop: CancellationToken,
    ) -> Digests {
        let deadline = crate::shutdown::Deadline::new(stop.clone(), config.shutdown_budget());
        Digests {
            config,
            store,
            mailer,
            templates,
            metrics: crate::metrics::Metrics::new(),
            running: tokio::sync::Mutex::new(()),
            instant_running: AtomicBool::new(false),
            deadline,
            stop,
            leases: Mutex::new(std::collections::HashMap::new()),
            article_cache: Mutex::new(std::collections::HashMap::new()),
            body_cache: Mutex::new(BodyCache::default()),
            placeholders: {
                let len = crate::subscribers::tokens::DELIVERY_TOKEN_LEN;
                [placeholder(len), placeholder(len)]
            },
        }
    }

    /// `f` in one transaction.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db) -> Result<T, DigestError> + Send + 'static,
    ) -> Result<T, DigestError> {
        self.store.write(f).await
    }

    /// `f` outside a transaction.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db) -> Result<T, DigestError> + Send + 'static,
    ) -> Result<T, DigestError> {
        self.store.read(f).await
    }

    fn lease(&self) -> Duration {
        Duration::seconds(i64::from(self.config.digest.lease_seconds))
    }

    /// Notes claims granted (or renewed) by the database just after `asked`: this process may
    /// start sending each until `asked + lease - margin` by its own monotonic clock.
    fn hold(&self, ids: impl IntoIterator<Item = i64>, asked: std::time::Instant) {
        let margin = lease_margin(&self.config);
        let usable = (self.lease() - margin).to_std().unwrap_or_default();
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            leases.insert(id, asked + usable);
        }
    }

    /// Whether this process may still start sending delivery `id`: its claim is renewed and has
    /// more than the margin left. The check comes before the digest's envelope, one round trip
    /// before its content: a node paused after it can send one message twice per connection.
    fn still_held(&self, id: i64) -> bool {
        self.leases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .is_some_and(|until| std::time::Instant::now() < *until)
    }

    fn settled(&self, id: i64) {
        self.leases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// Renews this process's claims every third of a lease until `halt`; a claim another node
    /// took over meanwhile is not renewed, so `still_held` says no and it is not sent.
    async fn renew_leases(self: Arc<Self>, halt: CancellationToken) {
        let every = (self.lease() / 3)
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(1))
            .max(std::time::Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = halt.cancelled() => return,
            }
            let asked = std::time::Instant::now();
            let lease = self.lease();
            match self
                .write(move |db| Ok(ledger::renew(db, instance_id(), lease)?))
                .await
            {
                Ok(ids) => {
                    let held: std::collections::HashSet<i64> = ids.into_iter().collect();
                    let mine: Vec<i64> = self
                        .leases
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .keys()
                        .copied()
                        .filter(|id| held.contains(id))
                        .collect();
                    self.hold(mine, asked);
                }
                Err(e) => tracing::warn!(error = %e, "cannot renew the digest claims"),
            }
        }
    }

    /// Waits until no run is going (used at shutdown, after `stop` is cancelled).
    pub async fn idle(&self) {
        let _guard = self.running.lock().await;
    }

    /// A scheduler tick: run now unless a run is already going.
    pub async fn tick(self: &Arc<Self>) {
        let guard = match self.running.try_lock() {
            Ok(guard) => guard,
            Err(_) if self.instant_running.load(Ordering::Acquire) => {
                let guard = self.running.lock().await;
                if self.stop.is_cancelled() {
                    return;
                }
                guard
            }
            Err(_) => {
                tracing::info!("digest tick while a run is going: nothing to do");
                return;
            }
        };
        let opts = RunOptions {
            now: Utc::now(),
            force: false,
            dry_run: false,
        };
        match self
            .run_locked(RunKind::Scheduled, opts, None, None, None)
            .await
        {
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
        self.run_locked(RunKind::Scheduled, opts, progress, None, None)
            .await
    }

    /// A run that says what it planned as soon as it has (`planned` gets the report so far,
    /// with its `run_id`), then sends; for `POST /api/digests/runs`, which answers before the
    /// sending is done. Waits for a run in progress to end first, as `run` does.
    pub async fn run_announcing(
        self: &Arc<Self>,
        opts: RunOptions,
        planned: tokio::sync::oneshot::Sender<RunReport>,
    ) -> Result<RunReport, DigestError> {
        let _guard = self.running.lock().await;
        self.run_locked(RunKind::Scheduled, opts, None, None, Some(planned))
            .await
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
        self.run_locked(RunKind::Scheduled, opts, progress, Some(each), None)
            .await
    }
}

/// A claim with less than this left is handed back rather than sent: a fifth of the lease, at
/// most a minute (60 s of the default 5 minutes).
fn lease_margin(config: &Config) -> Duration {
    Duration::seconds((i64::from(config.digest.lease_seconds) / 5).clamp(1, 60))
}

/// Exponential backoff with jitter: about 1 s, 2 s, 4 s, … (±25 %), at most 5 minutes.
pub(crate) fn backoff(attempts: u32) -> Duration {
    let base = 1000_i64 << attempts.saturating_sub(1).min(8);
    let base = base.min(300_000);
    let jitter = rand::thread_rng().gen_range(-(base / 4)..=(base / 4));
    Duration::milliseconds(base + jitter)
}
