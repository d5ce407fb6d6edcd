//! The instant cadence: an instant subscriber's digest goes `digest.instant_delay_seconds` after
//! the first article new to them, with whatever else came meanwhile. Not on `digest.schedule`:
//! a trigger of its own looks when the catalog's change journal moves, when the next digest is
//! due, and at least every `RESCAN`; it plans the due ones into the UTC day's run and sends them
//! through the same ledger, workers and rules as every digest. The time zone plays no part.

use super::*;
use crate::catalog::store as catalog;
use crate::digest::ledger::{instant as days, Candidate, Candidates};

/// How often the trigger reads the change journal's newest id (one indexed read): a new article
/// is seen within this, and its digest is due from when it was added, not from when it was seen.
const JOURNAL_POLL: std::time::Duration = std::time::Duration::from_secs(1);
/// Longest the trigger sleeps without looking: a subscriber who switched to instant with
/// articles waiting, a day's run to close, a look that failed.
const RESCAN_SECONDS: i64 = 60;
/// After a look that failed, the next one waits this long.
const AFTER_ERROR_SECONDS: i64 = 5;

/// What one look of the trigger did.
enum Pass {
    /// Digests were planned and sent: look again at once (more may have come due meanwhile).
    Sent,
    /// Nobody is due yet: the next instant digest is due then (`None`: nobody waits for one).
    Idle(Option<DateTime<Utc>>),
}

impl Digests {
    /// The instant trigger: looks, sends what is due, and sleeps until the next digest is due or
    /// the catalog changes, until the service stops (a run going on is finished or handed back,
    /// as every run is).
    pub async fn run_instant(self: Arc<Self>) {
        let mut journal = self.journal_mark().await.unwrap_or(0);
        loop {
            if self.stop.is_cancelled() {
                return;
            }
            let now = Utc::now();
            let next = match self.instant_pass(now).await {
                Ok(Pass::Sent) => continue,
                Ok(Pass::Idle(next)) => next,
                Err(e) => {
                    tracing::warn!(error = %e, "instant digests: cannot look for due subscribers; trying again shortly");
                    Some(now + Duration::seconds(AFTER_ERROR_SECONDS))
                }
            };
            let tomorrow = days::day_start(days::day_of(now) + 1) + Duration::seconds(1);
            let wake = [
                next,
                Some(now + Duration::seconds(RESCAN_SECONDS)),
                Some(tomorrow),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now);
            loop {
                let left = (wake - Utc::now()).to_std().unwrap_or_default();
                if left.is_zero() {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(left.min(JOURNAL_POLL)) => {}
                    _ = self.stop.cancelled() => return,
                }
                if let Ok(mark) = self.journal_mark().await {
                    if mark != journal {
                        journal = mark;
                        break;
                    }
                }
            }
        }
    }

    /// The newest entry of the catalog's change journal (what the feed publisher follows).
    async fn journal_mark(&self) -> Result<i64, DigestError> {
        self.read(|db| Ok(catalog::last_change(db)?)).await
    }

    /// One look: close finished days' runs, find who is due, and if anyone is, plan and send
    /// their digests (after a run in progress, if any, ends).
    async fn instant_pass(self: &Arc<Self>, now: DateTime<Utc>) -> Result<Pass, DigestError> {
        self.close_instant_days(now).await?;
        let this = self.clone();
        let (due, next) = self.snapshot(move |db| this.scan_instant(db, now)).await?;
        if due == 0 {
            return Ok(Pass::Idle(next));
        }
        let guard = self.running.lock().await;
        if self.stop.is_cancelled() {
            return Ok(Pass::Idle(None));
        }
        self.instant_running.store(true, Ordering::Release);
        let opts = RunOptions {
            now: Utc::now(),
            force: false,
            dry_run: false,
        };
        let done = self
            .run_locked(RunKind::Instant, opts, None, None, None)
            .await;
        self.instant_running.store(false, Ordering::Release);
        drop(guard);
        let report = done?;
        tracing::info!(
            run = ?report.run_id, planned = report.planned, resumed = report.resumed,
            sent = report.sent, failed = report.failed, retried = report.retried,
            waiting = report.waiting, "instant digests sent"
        );
        if report.planned == 0 {
            // Someone else planned them meanwhile (another node): do not spin.
            return Ok(Pass::Idle(Some(Utc::now() + Duration::seconds(1))));
        }
        Ok(Pass::Sent)
    }

    /// `f` in one read-only transaction.
    async fn snapshot<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db) -> Result<T, DigestError> + Send + 'static,
    ) -> Result<T, DigestError> {
        self.store.snapshot(f).await
    }

    /// When `c`'s instant digest is due, from the articles added after their window (or their
    /// last instant plan, if later: what a failed digest held rides with the next one, and
    /// does not make it due again by itself).
    pub(super) fn instant_due_of(
        &self,
        c: &Candidate,
        articles: &[Article],
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let digest = &self.config.digest;
        let since = c
            .last_slot
            .map_or(c.window_start, |s| s.max(c.window_start));
        let reader = Reader {
            tags: &c.tags,
            window_start: since,
        };
        plan::instant_due(
            &reader,
            articles,
            now,
            Duration::days(i64::from(digest.max_age_days)),
            Duration::seconds(i64::from(digest.instant_delay_seconds)),
        )
    }

    /// How many instant subscribers are due at `now`, and when the next of the others is.
    fn scan_instant(
        &self,
        db: &Db,
        now: DateTime<Utc>,
    ) -> Result<(u64, Option<DateTime<Utc>>), DigestError> {
        let max_age = Duration::days(i64::from(self.config.digest.max_age_days));
        let Some(earliest) = ledger::earliest_window(db, Candidates::Instant)? else {
            return Ok((0, None));
        };
        let articles = catalog::added_since(db, earliest, now - max_age)?;
        if articles.is_empty() {
            return Ok((0, None));
        }
        let (mut due, mut next) = (0, None::<DateTime<Utc>>);
        ledger::for_each_candidate(db, Candidates::Instant, |c| -> Result<(), DigestError> {
            match self.instant_due_of(&c, &articles, now) {
                Some(at) if at <= now => due += 1,
                Some(at) => next = Some(next.map_or(at, |n| n.min(at))),
                None => {}
            }
            Ok(())
        })?;
        Ok((due, next))
    }

    /// Plans the instant subscribers due at `now` into the UTC day's run, in the caller's
    /// transaction under the plan lock: each digest holds everything new to them since their
    /// window, and their last instant plan becomes `now`.
    pub(super) fn plan_instant(
        &self,
        db: &Db,
        now: DateTime<Utc>,
    ) -> Result<RunReport, DigestError> {
        let mut report = RunReport::default();
        ledger::fold_sent(db)?;
        ledger::release_own(db, instance_id())?;
        let max_age = Duration::days(i64::from(self.config.digest.max_age_days));
        let plan = ledger::PlanWriter::begin_instant(db, now)?;
        report.resumed = ledger::queue_depth(plan.conn())?.max(0) as u64;
        let earliest = ledger::earliest_window(plan.conn(), Candidates::Instant)?.unwrap_or(now);
        let articles = catalog::added_since(plan.conn(), earliest, now - max_age)?;
        ledger::for_each_candidate(
            plan.conn(),
            Candidates::Instant,
            |c| -> Result<(), DigestError> {
                if self
                    .instant_due_of(&c, &articles, now)
                    .is_none_or(|at| at > now)
                {
                    return Ok(());
                }
                report.due += 1;
                let reader = Reader {
                    tags: &c.tags,
                    window_start: c.window_start,
                };
                if let Some(p) = plan::plan(&reader, &articles, now, max_age) {
                    plan.delivery(
                        c.id,
                        p.sections
                            .iter()
                            .flat_map(|s| s.articles.iter().map(|a| a.id.as_str())),
                    )?;
                    report.planned += 1;
                }
                plan.slot(c.id, now)?;
                Ok(())
            },
        )?;
        // The archive copy: what the day brought, for every tag.
        let day_start = days::day_start(days::day_of(now));
        let (subject, html) = if plan.planned() > 0 {
            let today = catalog::added_since(plan.conn(), day_start, now - max_age)?;
            let everyone = Reader {
                tags: &[],
                window_start: day_start,
            };
            match plan::plan(&everyone, &today, now, max_age) {
                Some(g) => {
                    let r = self.render(g.sections, now, chrono_tz::UTC, None)?;
                    (r.subject, r.html)
                }
                None => (String::new(), String::new()),
            }
        } else {
            (String::new(), String::new())
        };
        report.run_id = plan.finish(&subject, &html)?;
        Ok(report)
    }

    /// Closes the instant runs of days that are over once nothing of theirs waits to be sent,
    /// each with its one `digest.run.finished` (in the same transaction, so it goes out once).
    async fn close_instant_days(&self, now: DateTime<Utc>) -> Result<(), DigestError> {
        let today = days::day_of(now);
        let open = self
            .read(move |db| Ok(days::unclosed_before(db, today)?))
            .await?;
        for run in open {
            self.write(move |db| {
                if !days::close_if_settled(db, run, now)? {
                    return Ok(());
                }
                let Some(s) = ledger::runs(db, Some(run + 1), 1)?
                    .into_iter()
                    .find(|s| s.id == run)
                else {
                    return Ok(());
                };
                let count = |n: i64| n.max(0) as u64;
                let report = RunReport {
                    run_id: Some(run),
                    due: count(s.due),
                    planned: count(s.due),
                    sent: count(s.sent),
                    retried: count(s.retried),
                    failed: count(s.failed),
                    skipped: count(s.skipped),
                    ..RunReport::default()
                };
                crate::webhook_endpoints::events::digest_run_finished(db, &report, now)?;
                tracing::info!(run, sent = report.sent, "the day's instant run is closed");
                Ok(())
            })
            .await?;
        }
        Ok(())
    }
}
