//! The daemon's delivery worker: claim due deliveries with a lease (as the outbox and the digest
//! ledger do; `FOR UPDATE SKIP LOCKED` on PostgreSQL, so two nodes never take one row), sign
//! and POST each (up to `webhook_endpoints.concurrency` at once, over pooled connections), and
//! record the attempts in batches. A delivery whose subject has an earlier one still waiting is
//! not claimed (one subscriber's events go in the order they happened).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use super::client::Client;
use super::store::{self, Attempt, Claimed, Result_, Target};
use super::RetrySchedule;
use crate::config::Config;
use crate::store::{instance_id, Store};

/// What one pass of the dispatcher found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Deliveries were claimed and handed to senders.
    Claimed(usize),
    /// Nothing due.
    EmptyQueue,
}

pub struct Worker {
    store: Store,
    client: Arc<Client>,
    schedule: RetrySchedule,
    timeout: Duration,
    concurrency: usize,
    disable_after: chrono::Duration,
    queue_depth: metrics::Gauge,
}

/// Counted per attempt: `delivered`, `retried`, `failed` (out of attempts) or `gone` (410).
fn counted(result: &Result_) {
    let outcome = match result {
        Result_::Delivered => "delivered",
        Result_::Retry(_) => "retried",
        Result_::Failed => "failed",
        Result_::Gone => "gone",
    };
    metrics::counter!("tidings_webhook_endpoint_deliveries_total", "outcome" => outcome)
        .increment(1);
}

/// The audit log's name for the daemon acting on its own. The log's `via` is one of console,
/// api and cli (a CHECK in migration 009): the worker serves the API's endpoints, so `api`, and
/// the name says who.
fn daemon() -> crate::admin::Actor {
    crate::admin::Actor {
        name: "tidings (webhook delivery)".into(),
        role: crate::admin::Role::Owner,
        via: crate::admin::Via::Api,
    }
}

impl Worker {
    pub fn new(config: &Config, store: Store) -> Result<Worker, String> {
        let c = &config.webhook_endpoints;
        let schedule = RetrySchedule::parse(&c.retry_schedule)?;
        super::configure(config);
        metrics::describe_counter!(
            "tidings_webhook_endpoint_deliveries_total",
            "webhook delivery attempts, by outcome (delivered, retried, failed, gone)"
        );
        metrics::describe_gauge!(
            "tidings_webhook_endpoint_queue_depth",
            "webhook deliveries waiting or being attempted"
        );
        Ok(Worker {
            store,
            client: Arc::new(Client::new(c.allow_private)?),
            schedule,
            timeout: Duration::from_secs(u64::from(c.timeout_seconds)),
            concurrency: c.concurrency.max(1) as usize,
            disable_after: chrono::Duration::hours(i64::from(c.disable_after_hours)),
            queue_depth: metrics::gauge!("tidings_webhook_endpoint_queue_depth"),
        })
    }

    /// Delivers until `shutdown`; then waits (by `deadline`) for the attempts in flight and
    /// records them. One cut off keeps its lease and is sent again after it lapses.
    pub async fn run(
        self: Arc<Self>,
        shutdown: CancellationToken,
        deadline: crate::shutdown::Deadline,
    ) {
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let (done, results) = mpsc::unbounded_channel::<Attempt>();
        let recorder = tokio::spawn(self.clone().record_loop(results));
        let mut depth_at = Instant::now() - Duration::from_secs(10);
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            if depth_at.elapsed() >= Duration::from_secs(1) {
                depth_at = Instant::now();
                if let Ok(n) = self.store.read(store::queue_depth).await {
                    self.queue_depth.set(n as f64);
                }
            }
            // Wait for a free sender before claiming, so nothing claimed waits on us.
            let first = tokio::select! {
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = shutdown.cancelled() => break,
            };
            match self.dispatch(first, &permits, &done).await {
                Ok(Outcome::Claimed(_)) => continue,
                Ok(Outcome::EmptyQueue) => {}
                Err(e) => tracing::error!(error = %e, "webhooks: cannot read the queue"),
            }
            // Until the next retry is due, at most a second (rows queued by another process or
            // node). A row due already but not claimable waits for an earlier one of its subject
            // or for a lease: the recorder wakes us when those move.
            let wait = match self.store.read(store::next_due).await {
                Ok(Some(at)) if at > Utc::now().timestamp_micros() => Duration::from_micros(
                    (at - Utc::now().timestamp_micros()).clamp(0, 1_000_000) as u64,
                ),
                _ => Duration::from_secs(1),
            };
            tokio::select! {
                _ = super::wake().notified() => {}
                _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        // The attempts in flight end within their timeout; wait for them, then for the record.
        let all = self.concurrency as u32;
        deadline
            .within(
                "the webhook deliveries in flight",
                permits.acquire_many(all),
            )
            .await;
        drop(done);
        if let Some(Err(_)) = deadline.within("the webhook recorder", recorder).await {
            tracing::warn!("the webhook recorder panicked");
        }
    }

    /// Claims as many due deliveries as there are free senders (`first` is one) and starts
    /// sending them.
    async fn dispatch(
        self: &Arc<Self>,
        first: tokio::sync::OwnedSemaphorePermit,
        permits: &Arc<Semaphore>,
        done: &mpsc::UnboundedSender<Attempt>,
    ) -> Result<Outcome, crate::store::Error> {
        let free = permits.available_permits() + 1;
        // Long enough for the attempt (bounded by the timeout) and its record; a node that died
        // holding a delivery gives it up this soon.
        let lease_us = (self.timeout + Duration::from_secs(10)).as_micros() as i64;
        let (claimed, targets) = self
            .store
            .write(move |db| {
                let claimed = store::claim(db, instance_id(), lease_us, free)?;
                let mut ids: Vec<i64> = claimed.iter().map(|c| c.endpoint_id).collect();
                ids.sort_unstable();
                ids.dedup();
                let targets = store::targets(db, &ids, db.now_us()?)?;
                Ok::<_, crate::store::Error>((claimed, targets))
            })
            .await?;
        if claimed.is_empty() {
            return Ok(Outcome::EmptyQueue);
        }
        let n = claimed.len();
        let mut first = Some(first);
        for job in claimed {
            let permit = match first.take() {
                Some(p) => p,
                None => match permits.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let target = targets.get(&job.endpoint_id).cloned();
            let this = self.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let attempt = this.attempt(&job, target).await;
                counted(&attempt.result);
                let _ = done.send(attempt);
                drop(permit);
            });
        }
        Ok(Outcome::Claimed(n))
    }

    /// One attempt at `job`: signed, POSTed, and what it means.
    async fn attempt(&self, job: &Claimed, target: Option<Target>) -> Attempt {
        let started = Instant::now();
        let at = Utc::now();
        let answer = match target {
            None => Err("the endpoint is gone".to_string()),
            Some(target) => match super::guard::parse(&target.url) {
                Err(e) => Err(e.0),
                Ok(url) => {
                    let timestamp = at.timestamp();
                    let body = Bytes::from(job.payload.clone());
                    let headers = [
                        ("webhook-id", job.message_id.clone()),
                        ("webhook-timestamp", timestamp.to_string()),
                        (
                            "webhook-signature",
                            super::sign::signature(
                                &target.secrets,
                                &job.message_id,
                                timestamp,
                                &body,
                            ),
                        ),
                    ];
                    match tokio::time::timeout(self.timeout, self.client.post(&url, &headers, body))
                        .await
                    {
                        Ok(answer) => answer,
                        Err(_) => Err(format!(
                            "no answer within {} s (webhook_endpoints.timeout_seconds)",
                            self.timeout.as_secs()
                        )),
                    }
                }
            },
        };
        let latency_us = started.elapsed().as_micros() as i64;
        let made = job.attempts + 1;
        let retry = |asked: Option<Duration>| match self.schedule.wait_before(made + 1) {
            Some(wait) => {
                let wait = asked.unwrap_or(wait);
                Result_::Retry(
                    Utc::now().timestamp_micros()
                        + wait.as_micros().min(i64::MAX as u128 / 4) as i64,
                )
            }
            None => Result_::Failed,
        };
        let (status, response, result) = match answer {
            Ok(a) if (200..300).contains(&a.status) => (Some(a.status), a.body, Result_::Delivered),
            Ok(a) if a.status == 410 => (Some(a.status), a.body, Result_::Gone),
            Ok(a) => {
                let result = retry(a.retry_after);
                (Some(a.status), a.body, result)
            }
            Err(e) => (None, e, retry(None)),
        };
        Attempt {
            delivery_id: job.id,
            endpoint_id: job.endpoint_id,
            at_us: at.timestamp_micros(),
            status,
            latency_us,
            response,
            result,
        }
    }

    /// Writes attempts as they come, many per transaction; disables the endpoints that answered
    /// `410` or failed too long, each with an audit entry.
    async fn record_loop(self: Arc<Self>, mut results: mpsc::UnboundedReceiver<Attempt>) {
        let mut batch = Vec::with_capacity(256);
        while results.recv_many(&mut batch, 256).await > 0 {
            let attempts = std::mem::take(&mut batch);
            let disable_after = self.disable_after;
            let written = self
                .store
                .write(move |db| {
                    let owner = instance_id();
                    let gone = store::record(db, owner, &attempts)?;
                    let now = Utc::now();
                    let reason = format!(
                        "failing without a success for {} hours (webhook_endpoints.disable_after_hours)",
                        disable_after.num_hours()
                    );
                    let stale = store::disable_failing(
                        db,
                        (now - disable_after).timestamp_micros(),
                        &reason,
                    )?;
                    for (id, why) in gone
                        .iter()
                        .map(|id| (id, "the endpoint answered 410 Gone"))
                        .chain(stale.iter().map(|id| (id, reason.as_str())))
                    {
                        let target = format!("webhook-endpoint {id}");
                        crate::admin::audit::record(
                            db,
                            &daemon(),
                            "webhook_endpoint.disable",
                            Some(&target),
                            Some(why),
                            now.timestamp_micros(),
                        )?;
                    }
                    Ok::<_, crate::store::Error>(!gone.is_empty() || !stale.is_empty())
                })
                .await;
            match written {
                Ok(disabled) => {
                    if disabled {
                        super::endpoints_changed();
                    }
                    // What waited for these may go now.
                    super::wake().notify_one();
                }
                Err(e) => {
                    // Their leases lapse and they are attempted again.
                    tracing::error!(error = %e, "webhooks: cannot record attempts");
                }
            }
        }
    }
}
