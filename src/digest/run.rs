//! A run: plan every delivery in one transaction, then a feeder claims them in batches (minting
//! each reader's links) for the workers, and the run waits for them.

use super::*;

impl Digests {
    pub(super) async fn run_locked(
        self: &Arc<Self>,
        kind: RunKind,
        opts: RunOptions,
        progress: Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
        each: Option<PlanSink>,
        planned: Option<tokio::sync::oneshot::Sender<RunReport>>,
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
            .write(move |db| match kind {
                RunKind::Scheduled => this.plan_run(db, opts, each),
                RunKind::Instant => this.plan_instant(db, opts.now),
            })
            .await?;
        if let Some(planned) = planned {
            let _ = planned.send(report.clone());
        }
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
        let recorder =
            ledger::Recorder::start(self.store.clone()).map_err(DigestError::Internal)?;
        let recorder = Arc::new(recorder);
        // One feeder claims deliveries (and mints their links) ahead of the workers, so a worker
        // never waits for a claim; `in_flight` counts those claimed and not yet settled.
        let (queue, deliveries) = async_channel::bounded::<Job>(BATCH * 2);
        let in_flight = Arc::new(AtomicU64::new(0));
        // Stops this run (not the service): the ledger cannot record sends, or a worker died.
        let halt = self.stop.child_token();
        let renewing = halt.child_token();
        let renewer = tokio::spawn(self.clone().renew_leases(renewing.clone()));
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
                                    this.settled(id);
                                    let _ = this
                                        .write(move |db| {
                                            Ok(ledger::release(db, instance_id(), &[id])?)
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
        renewing.cancel();
        let _ = renewer.await;
        // The last digests the workers logged as sent, in place for the report and every
        // reader; in the same transaction, `digest.run.finished` for webhook endpoints.
        let finished = report.clone();
        let folded = self
            .write(move |db| {
                ledger::fold_sent(db)?;
                let mut finished = finished;
                finished.waiting = ledger::queue_depth(db)?.max(0) as u64;
                // The day's instant run says it finished once, when the day is over
                // (`Digests::close_instant_days`), not after each of its sends.
                if kind == RunKind::Scheduled && (finished.run_id.is_some() || finished.resumed > 0)
                {
                    crate::webhook_endpoints::events::digest_run_finished(
                        db,
                        &finished,
                        chrono::Utc::now(),
                    )?;
                }
                Ok::<_, DigestError>(())
            })
            .await;
        if let Err(e) = folded {
            tracing::warn!(error = %e, "cannot fold the sent log; the next claim or run will");
        }
        report.waiting = self
            .read(|db| Ok(ledger::queue_depth(db)?))
            .await
            .unwrap_or(0)
            .max(0) as u64;
        Ok(report)
    }

    /// Plans the run: finds the due subscribers, plans each digest, and writes it all (plus the
    /// slots handled) in one transaction. With `dry_run`, writes nothing.
    pub(super) fn plan_run(
        &self,
        db: &Db,
        opts: RunOptions,
        each: Option<PlanSink>,
    ) -> Result<RunReport, DigestError> {
        let mut report = RunReport::default();
        // Digests sent before a crash are `sent` before anyone is planned or released.
        ledger::fold_sent(db)?;
        if !opts.dry_run {
            ledger::release_own(db, instance_id())?;
        }
        let digest = &self.config.digest;
        let weekly_day = due::parse_weekday(&digest.weekly_day).unwrap_or(chrono::Weekday::Mon);
        let max_age = Duration::days(i64::from(digest.max_age_days));
        // Read and write in one transaction under the plan lock: a concurrent run (the CLI
        // while the daemon runs, another node) waits, then sees these rows and slots, so nobody
        // is planned twice.
        let plan = ledger::PlanWriter::begin(db, opts.now, opts.force)?;
        report.resumed = ledger::queue_depth(plan.conn())?.max(0) as u64;
        let earliest =
            ledger::earliest_window(plan.conn(), ledger::Candidates::All)?.unwrap_or(opts.now);
        let articles =
            crate::catalog::store::added_since(plan.conn(), earliest, opts.now - max_age)?;
        let previous_run = ledger::previous_run(plan.conn())?;
        ledger::for_each_candidate(
            plan.conn(),
            ledger::Candidates::All,
            |c| -> Result<(), DigestError> {
                // Instant subscribers have their own trigger (`instant.rs`); only a forced run,
                // which sends everyone what is new now, takes them too.
                if c.cadence == Cadence::Instant && !opts.force {
                    return Ok(());
                }
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
            },
        )?;
        if opts.dry_run {
            // A dry run wrote nothing: no delivery and no slot.
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
    pub(super) async fn next_batch(self: &Arc<Self>) -> Result<Batch, DigestError> {
        let this = self.clone();
        let asked = std::time::Instant::now();
        let batch = self
            .write(move |tx| {
                let link_ttl = Duration::days(this.config.subscribers.link_ttl_days as i64);
                let now = Utc::now();
                let new_id = || this.mailer.new_message_id();
                let claimed = match ledger::claim(tx, instance_id(), this.lease(), BATCH, &new_id)?
                {
                    Next::Claimed(c) => c,
                    Next::WaitUntil(at) => return Ok(Batch::WaitUntil(at)),
                    Next::Empty => return Ok(Batch::Empty),
                };
                let key = store::link_key(tx)?;
                let ids: Vec<i64> = claimed.iter().map(|d| d.subscriber_id).collect();
                let subscribers = store::get_many(tx, &ids)?;
                let mut ready = Vec::with_capacity(claimed.len());
                let mut skipped = 0;
                for d in claimed {
                    let subscriber = match subscribers.get(&d.subscriber_id).cloned() {
                        Some(s) if s.status == Status::Confirmed => s,
                        _ => {
                            ledger::mark_skipped(tx, &d, "no longer subscribed")?;
                            skipped += 1;
                            continue;
                        }
                    };
                    let expires = (now + link_ttl).timestamp();
                    let email = subscriber.email.to_string();
                    // Both links name this delivery, so an unsubscribe is put down to its run.
                    let seal = |purpose| {
                        key.seal_for_delivery(subscriber.id, d.id, &email, purpose, expires)
                    };
                    let preferences = seal(Purpose::Preferences);
                    let unsubscribe = seal(Purpose::Unsubscribe);
                    ready.push(Job {
                        claimed: d,
                        subscriber,
                        preferences,
                        unsubscribe,
                    });
                }
                this.metrics.digests_skipped.increment(skipped);
                Ok(Batch::Ready { ready, skipped })
            })
            .await?;
        if let Batch::Ready { ready, .. } = &batch {
            self.hold(ready.iter().map(|j| j.claimed.id), asked);
        }
        Ok(batch)
    }
}
