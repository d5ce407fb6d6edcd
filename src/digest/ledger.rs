//! The delivery ledger: one row per planned digest, written before anything is sent, moved to
//! `sent`, `failed` or `skipped` one transaction at a time, so no crash loses or doubles a digest
//! (only a message in flight at the moment of a kill may be sent again).

use crate::params;
use crate::store::{Db, Error};
use crate::subscribers::events::{self, Kind, NewEvent};
use crate::subscribers::suppressions::{self, Reason};
use chrono::{DateTime, Utc};

type Result<T, E = Error> = std::result::Result<T, E>;

mod candidates;
pub mod instant;
mod runs;
mod sent;
pub use candidates::{candidate, earliest_window, for_each_candidate, Candidate, Candidates};
pub use runs::{
    run, run_failures, runs, runs_of, sent_digests, Failure, RunDetail, RunState, RunSummary,
    SentDigest, TagDigests,
};
pub use sent::{fold_sent, logged_sent, mark_sent, Pending, Recorder, Sent};

use crate::subscribers::Status;

fn from_us(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// Writes a run's plan inside the caller's transaction as it is computed (nothing is held in
/// memory per subscriber): the run, one pending delivery per digest, and the slot each
/// subscriber's schedule has now handled. Nothing is visible until the caller commits.
pub struct PlanWriter<'c, 'd> {
    db: &'c Db<'d>,
    now: DateTime<Utc>,
    manual: bool,
    /// The UTC day whose instant run this plan adds to (`None`: a run of its own).
    instant_day: Option<i64>,
    run_id: std::cell::Cell<Option<i64>>,
    /// No delivery of an earlier run has an id this high (the run's rows are read by id range).
    first_delivery: std::cell::Cell<i64>,
    count: std::cell::Cell<i64>,
    /// Deliveries and slots not yet written, at most `PLAN_BATCH` of each: one statement per
    /// batch instead of one per subscriber (on PostgreSQL each statement is a round trip).
    deliveries: std::cell::RefCell<Vec<(i64, String)>>,
    slots: std::cell::RefCell<Vec<(i64, i64)>>,
}

const PLAN_BATCH: usize = 256;

/// Held while a run is planned: two nodes whose schedules fire at once take turns, and the
/// second finds every slot handled, so one run is planned, not two.
pub const PLAN_LOCK: &str = "digest plan";

impl<'c, 'd> PlanWriter<'c, 'd> {
    pub fn begin(db: &'c Db<'d>, now: DateTime<Utc>, manual: bool) -> Result<Self> {
        Self::start(db, now, manual, None)
    }

    /// A plan of the instant trigger: its deliveries go into the run of `now`'s UTC day,
    /// reopened if an earlier plan of the day made it (`instant::day_of`).
    pub fn begin_instant(db: &'c Db<'d>, now: DateTime<Utc>) -> Result<Self> {
        Self::start(db, now, false, Some(instant::day_of(now)))
    }

    fn start(
        db: &'c Db<'d>,
        now: DateTime<Utc>,
        manual: bool,
        instant_day: Option<i64>,
    ) -> Result<Self> {
        db.lock(PLAN_LOCK)?;
        Ok(PlanWriter {
            db,
            now,
            manual,
            instant_day,
            run_id: std::cell::Cell::new(None),
            first_delivery: std::cell::Cell::new(0),
            count: std::cell::Cell::new(0),
            deliveries: std::cell::RefCell::new(Vec::with_capacity(PLAN_BATCH)),
            slots: std::cell::RefCell::new(Vec::with_capacity(PLAN_BATCH)),
        })
    }

    /// The transaction, for reading what the plan is based on.
    pub fn conn(&self) -> &Db<'d> {
        self.db
    }

    pub fn delivery<'i>(
        &self,
        subscriber_id: i64,
        article_ids: impl Iterator<Item = &'i str>,
    ) -> Result<()> {
        let run_id = match self.run_id.get() {
            Some(id) => id,
            None => {
                let id = match self.instant_day {
                    Some(day) => instant::day_run(self.db, day, self.now)?,
                    None => self.db.query_row(
                        "INSERT INTO digest_runs (now_us, manual, subject, html, deliveries) \
                         VALUES (?1, ?2, '', '', 0) RETURNING id",
                        params![self.now.timestamp_micros(), self.manual],
                        |r| r.get(0),
                    )?,
                };
                // Under the plan lock no other run adds deliveries: this run's come after.
                self.first_delivery.set(self.db.query_row(
                    "SELECT coalesce(max(id), 0) + 1 FROM deliveries",
                    &[],
                    |r| r.get(0),
                )?);
                self.run_id.set(Some(id));
                id
            }
        };
        let ids =
            serde_json::to_string(&article_ids.collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into());
        self.count.set(self.count.get() + 1);
        let full = {
            let mut rows = self.deliveries.borrow_mut();
            rows.push((subscriber_id, ids));
            rows.len() >= PLAN_BATCH
        };
        if full {
            self.write_deliveries(run_id)?;
        }
        Ok(())
    }

    fn write_deliveries(&self, run_id: i64) -> Result<()> {
        let rows = std::mem::take(&mut *self.deliveries.borrow_mut());
        if rows.is_empty() {
            return Ok(());
        }
        let values: Vec<String> = (0..rows.len())
            .map(|i| format!("(?1, ?{}, 'pending', ?2, ?{}, 0)", 3 + 2 * i, 4 + 2 * i))
            .collect();
        let now_us = self.now.timestamp_micros();
        let mut params: Vec<&dyn crate::store::Param> = vec![&run_id, &now_us];
        for (subscriber, articles) in &rows {
            params.push(subscriber);
            params.push(articles);
        }
        self.db.execute(
            &format!(
                "INSERT INTO deliveries (run_id, subscriber_id, state, window_end_us, articles, next_attempt_us) \
                 VALUES {}",
                values.join(", ")
            ),
            &params,
        )?;
        Ok(())
    }

    pub fn slot(&self, subscriber_id: i64, at: DateTime<Utc>) -> Result<()> {
        let full = {
            let mut slots = self.slots.borrow_mut();
            slots.push((subscriber_id, at.timestamp_micros()));
            slots.len() >= PLAN_BATCH
        };
        if full {
            self.write_slots()?;
        }
        Ok(())
    }

    fn write_slots(&self) -> Result<()> {
        let slots = std::mem::take(&mut *self.slots.borrow_mut());
        if slots.is_empty() {
            return Ok(());
        }
        crate::subscribers::store::record_slots(self.db, &slots)?;
        Ok(())
    }

    pub fn planned(&self) -> i64 {
        self.count.get()
    }

    /// Stores the run's archive copy; the caller's commit makes the plan visible.
    pub fn finish(self, subject: &str, generic_html: &str) -> Result<Option<i64>> {
        self.write_slots()?;
        let run_id = self.run_id.get();
        if let Some(id) = run_id {
            self.write_deliveries(id)?;
            self.db.execute(
                // A reopened instant run keeps its first delivery and adds to its count.
                "UPDATE digest_runs SET subject = ?2, html = ?3, deliveries = deliveries + ?4, \
                 first_delivery_id = coalesce(first_delivery_id, ?5), \
                 last_delivery_id = (SELECT max(id) FROM deliveries) WHERE id = ?1",
                params![
                    id,
                    subject,
                    generic_html,
                    self.count.get(),
                    self.first_delivery.get()
                ],
            )?;
            if self.instant_day.is_some() {
                // The day's run was paused (its sender blocked): what it takes in waits too.
                self.db.execute(
                    "UPDATE deliveries SET next_attempt_us = ?3 WHERE run_id = ?1 AND id >= ?2 \
                     AND state = 'pending' AND EXISTS \
                     (SELECT 1 FROM digest_runs r WHERE r.id = ?1 AND r.paused_us IS NOT NULL)",
                    params![id, self.first_delivery.get(), PAUSED_US],
                )?;
            }
        }
        Ok(run_id)
    }
}

/// When the newest earlier scheduled or asked-for run was planned for (the generic archive
/// version covers what is new since; the instant runs keep their own).
pub fn previous_run(db: &Db) -> Result<Option<DateTime<Utc>>> {
    db.query_row(
        "SELECT max(now_us) FROM digest_runs WHERE instant_day IS NULL",
        &[],
        |r| r.get::<Option<i64>>(0),
    )
    .map(|v| v.map(from_us))
}

/// A delivery claimed by this process.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub run_id: i64,
    pub subscriber_id: i64,
    pub window_end: DateTime<Utc>,
    pub article_ids: Vec<String>,
    pub attempts: u32,
    /// Fixed when the delivery was first claimed; every attempt sends it again.
    pub message_id: String,
}

/// What the queue holds for a worker right now.
pub enum Next {
    /// Up to the asked number of deliveries, now leased to the caller, oldest first.
    Claimed(Vec<Claimed>),
    /// Only retries that are not due yet: the earliest is at this time.
    WaitUntil(DateTime<Utc>),
    Empty,
}

/// Takes up to `limit` due deliveries (pending, or sending under another owner's expired lease)
/// for instance `owner`, leased for `lease` by the database's clock, in the caller's
/// transaction (so more can be written with the claim). On PostgreSQL rows another node is
/// claiming right now are skipped (`FOR UPDATE SKIP LOCKED`), so nodes never wait on each other.
/// A delivery claimed for the first time is given its Message-ID (`new_id()`, made in id order
/// so they sort by time); a retry, a resume or a takeover keeps the one it has.
pub fn claim(
    db: &Db,
    owner: i64,
    lease: chrono::Duration,
    limit: usize,
    new_id: &dyn Fn() -> String,
) -> Result<Next> {
    fold_sent(db)?;
    let now_us = db.now_us()?;
    let skip = if db.is_postgres() {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    // Two index searches rather than one OR: with an OR, SQLite sorts every pending row for
    // each claim (a temp B-tree), which made claiming O(queue) and capped sending speed. A
    // run never takes back its own lapsed rows: they may still be queued in it.
    let mut ids: Vec<i64> = db.query_map(
        &format!(
            "SELECT id FROM deliveries WHERE state = 'sending' AND lease_until_us < ?1 \
             AND lease_owner IS DISTINCT FROM ?3 LIMIT ?2{skip}"
        ),
        params![now_us, limit, owner],
        |r| r.get(0),
    )?;
    if ids.len() < limit {
        let more: Vec<i64> = db.query_map(
            &format!(
                "SELECT id FROM deliveries WHERE state = 'pending' AND next_attempt_us <= ?1 \
                 ORDER BY next_attempt_us LIMIT ?2{skip}"
            ),
            params![now_us, limit - ids.len()],
            |r| r.get(0),
        )?;
        ids.extend(more);
    }
    let lease_until_us = now_us + lease.num_microseconds().unwrap_or(i64::MAX / 4);
    let mut claimed: Vec<Claimed> = Vec::with_capacity(ids.len());
    ids.sort_unstable();
    // One statement for the batch (a round trip on PostgreSQL), prepared once per list size.
    for chunk in ids.chunks(crate::store::sql::ID_LIST_MAX) {
        let list = crate::store::sql::IdList::new(3, chunk);
        // A new id for each row, used only where the row has none yet; the list is padded like
        // the ids (the last pair repeated), so the text is one of a few.
        let fresh: Vec<String> = chunk.iter().map(|_| new_id()).collect();
        let len = list.len();
        let mut params: Vec<&dyn crate::store::Param> = vec![&owner, &lease_until_us];
        params.extend(list.params());
        for i in 0..len {
            params.push(&fresh[i.min(fresh.len() - 1)]);
        }
        let cases: String = (0..len)
            .map(|i| format!(" WHEN ?{} THEN ?{}", 3 + i, 3 + len + i))
            .collect();
        claimed.extend(db.query_map(
            &format!(
                "UPDATE deliveries SET state = 'sending', lease_owner = ?1, lease_until_us = ?2, \
                 message_id = coalesce(message_id, CASE id{cases} END) \
                 WHERE id IN ({}) RETURNING id, run_id, subscriber_id, window_end_us, articles, attempts, message_id",
                list.marks
            ),
            &params,
            read_claimed,
        )?);
    }
    if !claimed.is_empty() {
        claimed.sort_by_key(|c| c.id);
        return Ok(Next::Claimed(claimed));
    }
    // Nothing to take now: the earliest retry, or the earliest moment another owner's claim
    // lapses (a killed node's rows are taken over then; a live node renews its own first).
    let wait: Option<i64> = db.query_row(
        "SELECT min(t) FROM (SELECT min(next_attempt_us) AS t FROM deliveries WHERE state = 'pending' \
         UNION ALL SELECT min(lease_until_us) FROM deliveries WHERE state = 'sending' \
         AND lease_owner IS DISTINCT FROM ?1) AS due",
        params![owner],
        |r| r.get(0),
    )?;
    Ok(match wait {
        Some(us) => Next::WaitUntil(from_us(us)),
        None => Next::Empty,
    })
}

fn read_claimed(r: &crate::store::Row) -> Result<Claimed> {
    let articles: String = r.get(4)?;
    Ok(Claimed {
        id: r.get(0)?,
        run_id: r.get(1)?,
        subscriber_id: r.get(2)?,
        window_end: from_us(r.get(3)?),
        article_ids: serde_json::from_str(&articles).unwrap_or_default(),
        attempts: r.get::<i64>(5)?.max(0) as u32,
        message_id: r.get(6)?,
    })
}

/// Extends for `lease` (by the database's clock) every claim `owner` still holds; the ids it
/// still holds. A row another node took over after this one's lease lapsed is not among them.
pub fn renew(db: &Db, owner: i64, lease: chrono::Duration) -> Result<Vec<i64>> {
    let now_us = db.now_us()?;
    db.query_map(
        "UPDATE deliveries SET lease_until_us = ?2 WHERE state = 'sending' AND lease_owner = ?1 \
         RETURNING id",
        params![
            owner,
            now_us + lease.num_microseconds().unwrap_or(i64::MAX / 4)
        ],
        |r| r.get(0),
    )
}

/// When a paused run's deliveries are "due": 9999-12-31, far past any wait a run makes.
pub const PAUSED_US: i64 = 253_402_300_799_000_000;

/// Forgets the ledger rows of subscribers being deleted (on PostgreSQL no foreign key cascades
/// to them: see migrations/postgres/V2). Every state is named so that PostgreSQL finds the rows
/// through its two partial indexes, open and closed (V3), rather than reading the whole ledger.
pub fn forget_subscribers(db: &Db, ids: &[i64]) -> Result<usize> {
    let mut forgotten = 0;
    for chunk in ids.chunks(crate::store::sql::ID_LIST_MAX) {
        let list = crate::store::sql::IdList::new(1, chunk);
        let params: Vec<&dyn crate::store::Param> = list.params().collect();
        forgotten += db.execute(
            &format!(
                "DELETE FROM deliveries WHERE subscriber_id IN ({}) \
                 AND (state IN ('pending', 'sending') OR state IN ('sent', 'failed', 'skipped'))",
                list.marks
            ),
            &params,
        )?;
    }
    Ok(forgotten)
}

/// Pauses run `run` (once): its pending deliveries wait until `resume`. The number held back,
/// or `None` if it already was paused.
pub fn pause(db: &Db, run: i64, reason: &str, now: DateTime<Utc>) -> Result<Option<usize>> {
    let marked = db.execute(
        "UPDATE digest_runs SET paused_us = ?2, paused_reason = ?3 WHERE id = ?1 AND paused_us IS NULL",
        params![run, now.timestamp_micros(), reason],
    )?;
    if marked == 0 {
        return Ok(None);
    }
    Ok(Some(db.execute(
        "UPDATE deliveries SET next_attempt_us = ?2 WHERE run_id = ?1 AND state = 'pending'",
        params![run, PAUSED_US],
    )?))
}

/// Resumes a paused run: its waiting deliveries are due now. `None` if it was not paused.
pub fn resume(db: &Db, run: i64, now: DateTime<Utc>) -> Result<Option<usize>> {
    let unmarked = db.execute(
        "UPDATE digest_runs SET paused_us = NULL, paused_reason = NULL WHERE id = ?1 AND paused_us IS NOT NULL",
        params![run],
    )?;
    if unmarked == 0 {
        return Ok(None);
    }
    Ok(Some(db.execute(
        "UPDATE deliveries SET next_attempt_us = ?2 WHERE run_id = ?1 AND state = 'pending'",
        params![run, now.timestamp_micros()],
    )?))
}

/// Gives claimed deliveries back untouched (a worker stopping before it sent them); only rows
/// `owner` still holds.
pub fn release(db: &Db, owner: i64, ids: &[i64]) -> Result<()> {
    for id in ids {
        db.execute(
            "UPDATE deliveries SET state = 'pending', lease_owner = NULL, lease_until_us = NULL \
             WHERE id = ?1 AND state = 'sending' AND lease_owner = ?2",
            params![id, owner],
        )?;
    }
    Ok(())
}

/// Gives back this process's own `sending` rows: called when a run starts (one run at a time per
/// process), they are leftovers of an earlier run that stopped without settling them. A running
/// run never re-claims its own rows, even past their lease, so nothing is queued twice. Rows
/// other processes left (killed mid-send) are taken over once their lease lapses (`claim`).
pub fn release_own(db: &Db, owner: i64) -> Result<usize> {
    db.execute(
        "UPDATE deliveries SET state = 'pending', lease_owner = NULL, lease_until_us = NULL \
         WHERE state = 'sending' AND lease_owner = ?1",
        params![owner],
    )
}

/// The subscriber's status now (unsubscribing is final for every later send).
pub fn status_of(db: &Db, subscriber: i64) -> Result<Option<Status>> {
    db.query_opt(
        "SELECT status FROM subscribers WHERE id = ?1",
        params![subscriber],
        |r| r.get::<String>(0),
    )
    .map(|s| s.and_then(|s| Status::parse(&s).ok()))
}

/// A transient failure: retry at `retry_at`, or give up as `failed` when out of attempts.
pub fn mark_retry(
    db: &Db,
    d: &Claimed,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> Result<()> {
    match retry_at {
        Some(at) => db.execute(
            // A retry in a run paused meanwhile waits with the rest of it.
            "UPDATE deliveries SET state = 'pending', attempts = attempts + 1, \
             next_attempt_us = CASE WHEN (SELECT paused_us FROM digest_runs WHERE id = run_id) IS NULL \
             THEN CAST(?2 AS BIGINT) ELSE CAST(?4 AS BIGINT) END, \
             last_error = ?3, lease_owner = NULL, lease_until_us = NULL WHERE id = ?1",
            params![d.id, at.timestamp_micros(), error, PAUSED_US],
        ),
        None => db.execute(
            "UPDATE deliveries SET state = 'failed', attempts = attempts + 1, last_error = ?2, \
             lease_owner = NULL, lease_until_us = NULL WHERE id = ?1",
            params![d.id, error],
        ),
    }
    .map(|_| ())
}

/// A permanent failure: recorded, in the caller's transaction; after `bounce_limit` in a row
/// the subscriber is `bounced`. Returns whether the subscriber just became bounced.
pub fn mark_permanent(db: &Db, d: &Claimed, error: &str, bounce_limit: u32) -> Result<bool> {
    db.execute(
        "UPDATE deliveries SET state = 'failed', attempts = attempts + 1, last_error = ?2, \
         lease_owner = NULL, lease_until_us = NULL WHERE id = ?1",
        params![d.id, error],
    )?;
    let bounced = crate::subscribers::store::count_bounce(db, d.subscriber_id, bounce_limit)?;
    if let Some(s) = crate::subscribers::store::get(db, d.subscriber_id)? {
        let now = Utc::now();
        let mut event = NewEvent::new(s.email.as_str(), Kind::Bounce, "smtp")
            .subscriber(s.id)
            .detail(format!(
                "other: {}",
                error.chars().take(500).collect::<String>()
            ));
        event.delivery_id = Some(d.id);
        events::record(db, &event, now)?;
        crate::metrics::bounced("other");
        if bounced {
            suppressions::add(db, &s.email, Reason::Bounces, None, "smtp", now)?;
        }
    }
    Ok(bounced)
}

/// Not sent and not to be: the subscriber left, or nothing in it exists any more.
pub fn mark_skipped(db: &Db, d: &Claimed, why: &str) -> Result<()> {
    db.execute(
        "UPDATE deliveries SET state = 'skipped', last_error = ?2, lease_owner = NULL, lease_until_us = NULL WHERE id = ?1",
        params![d.id, why],
    )
    .map(|_| ())
}

/// How many deliveries wait to be sent (pending or sending); on SQLite not those the sent log
/// already holds, which are sent and wait only for a fold.
pub fn queue_depth(db: &Db) -> Result<i64> {
    let sql = if db.is_postgres() {
        "SELECT count(*) FROM deliveries WHERE state IN ('pending', 'sending')"
    } else {
        "SELECT (SELECT count(*) FROM deliveries WHERE state IN ('pending', 'sending')) - \
         (SELECT count(*) FROM sent_log l JOIN deliveries d ON d.id = l.delivery_id AND d.state = 'sending')"
    };
    db.query_row(sql, &[], |r| r.get(0))
}

/// The generic version of a run, for `/digests/{id}`.
pub fn archived(db: &Db, run: i64) -> Result<Option<String>> {
    db.query_opt(
        "SELECT html FROM digest_runs WHERE id = ?1",
        params![run],
        |r| r.get(0),
    )
}

#[cfg(test)]
mod tests;
