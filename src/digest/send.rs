//! A worker: its own SMTP session, one digest in flight, the ledger rule ("record the last
//! push before pushing more"), and the outcome of each delivery: sent, retried, failed, skipped.

use super::*;

impl Digests {
    /// The articles of a delivery, loaded once per distinct list in this process.
    pub(super) async fn articles(
        self: &Arc<Self>,
        ids: &[String],
    ) -> Result<Arc<Vec<Article>>, DigestError> {
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
        let loaded = Arc::new(
            self.read(move |db| Ok(crate::catalog::store::by_ids(db, &ids)?))
                .await?,
        );
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
    pub(super) async fn compose(
        self: &Arc<Self>,
        job: Job,
    ) -> Result<Result<Outgoing, Outcome>, DigestError> {
        let Job {
            claimed: d,
            subscriber,
            preferences: prefs,
            unsubscribe: unsub,
        } = job;
        let articles = self.articles(&d.article_ids).await?;
        if articles.is_empty() {
            self.settled(d.id);
            self.write(move |db| Ok(ledger::mark_skipped(db, &d, "its articles were removed")?))
                .await?;
            self.metrics.digests_skipped.increment(1);
            return Ok(Err(Outcome::Skipped));
        }
        let template = self.body_template(&d, &subscriber, &articles)?;
        let unsubscribe_url = self
            .config
            .site_url(&format!("/unsubscribe/{}", unsub.as_str()));
        let who = crate::mail::Recipient {
            to: subscriber.email.address(),
            subscriber: subscriber.id,
            delivery: crate::mail::Delivery::Digest {
                id: d.id,
                run: d.run_id,
            },
            unsubscribe_url: &unsubscribe_url,
        };
        let message = self.mailer.build_from_template(
            &template,
            who,
            &[prefs.as_str(), unsub.as_str()],
            d.message_id.clone(),
        );
        Ok(Ok(Outgoing {
            delivery: d,
            subscriber,
            message,
            started: std::time::Instant::now(),
        }))
    }

    /// Records a delivery that was not sent: retried later (transient) or failed (permanent).
    pub(super) async fn not_sent(
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
            self.settled(d.id);
            self.write(move |db| {
                ledger::mark_retry(db, &d, &message, retry_at)?;
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
        self.settled(d.id);
        let bounced = self
            .write(move |db| Ok(ledger::mark_permanent(db, &d, &message, limit)?))
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
    pub(super) async fn work(
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
                // A claim about to lapse (or lost to another node while this one was paused)
                // could be sent by someone else: hand it back, and the feeder claims it afresh.
                if halt.is_cancelled() || !self.still_held(job.claimed.id) {
                    self.metrics.claims_released.increment(1);
                    // Start nothing new: hand it back for the next start.
                    let id = job.claimed.id;
                    self.settled(id);
                    let _ = self
                        .write(move |db| Ok(ledger::release(db, instance_id(), &[id])?))
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
            // The last check before the content goes: if this process lost the claim (it was
            // paused past its lease and another took it over), the message is abandoned unsent.
            if let Some(o) = open.take_if(|o| !self.still_held(o.delivery.id)) {
                self.metrics.claims_released.increment(1);
                session.abandon();
                let id = o.delivery.id;
                self.settled(id);
                let _ = self
                    .write(move |db| Ok(ledger::release(db, instance_id(), &[id])?))
                    .await;
                settle(Outcome::Released);
                if next.is_none() {
                    continue;
                }
            }
            // Near the stop's deadline a send still going is cut off: the connection is dropped
            // (a message whose final dot was not written is discarded by the server) and both
            // digests are handed back for the next start.
            let exchange = tokio::select! {
                e = session.exchange(ready_message(&open), ready_message(&next)) => e,
                _ = self.deadline.closing() => {
                    session.abandon();
                    let ids: Vec<i64> = open.iter().chain(next.iter()).map(|o| o.delivery.id).collect();
                    tracing::warn!(deliveries = ?ids, "stopping: digests cut off before their final dot, handed back");
                    for id in &ids {
                        self.metrics.claims_released.increment(1);
                        self.settled(*id);
                    }
                    let _ = self
                        .write(move |db| Ok(ledger::release(db, instance_id(), &ids)?))
                        .await;
                    for _ in open.iter().chain(next.iter()) {
                        settle(Outcome::Released);
                    }
                    // The deliveries still queued for this worker are handed back by the loop.
                    open = None;
                    continue;
                }
            };
            if let Some(o) = open.take() {
                match exchange.content {
                    Some(Ok(message_id)) => {
                        self.metrics.digests_sent.increment(1);
                        self.metrics
                            .send_seconds
                            .record(o.started.elapsed().as_secs_f64());
                        self.settled(o.delivery.id);
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
}
