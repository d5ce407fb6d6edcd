//! The delivery ledger: one row per planned digest, written before anything is sent, moved to
//! `sent`, `failed` or `skipped` one transaction at a time, so no crash loses or doubles a digest
//! (only a message in flight at the moment of a kill may be sent again).

use crate::params;
use crate::store::{Db, Error};
use crate::subscribers::events::{self, Kind, NewEvent};
use crate::subscribers::suppressions::{self, Reason};
use chrono::{DateTime, Utc};

type Result<T, E = Error> = std::result::Result<T, E>;

use crate::subscribers::{Cadence, Status, TimeZone};

/// A confirmed subscriber as the planner sees them.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: i64,
    pub email: String,
    pub cadence: Cadence,
    pub zone: TimeZone,
    pub tags: Vec<String>,
    pub window_start: DateTime<Utc>,
    pub last_slot: Option<DateTime<Utc>>,
}

fn from_us(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// Calls `f` for each confirmed subscriber with no unfinished delivery (those are finished, not
/// planned again), streaming rows so a million subscribers never sit in memory at once.
pub fn for_each_candidate<E: From<Error>>(
    db: &Db,
    mut f: impl FnMut(Candidate) -> Result<(), E>,
) -> Result<(), E> {
    let tags = if db.is_postgres() {
        "string_agg(st.tag_slug, ',')"
    } else {
        "group_concat(st.tag_slug, ',')"
    };
    let sql = format!(
        "SELECT s.id, s.email, s.cadence, s.time_zone, coalesce(s.window_start_us, 0), s.last_slot_us, \
                (SELECT {tags} FROM subscriber_tags st WHERE st.subscriber_id = s.id) \
         FROM subscribers s WHERE s.status = 'confirmed' AND NOT EXISTS \
           (SELECT 1 FROM deliveries d WHERE d.subscriber_id = s.id AND d.state IN ('pending', 'sending')) \
         ORDER BY s.id"
    );
    db.query_each_paged(&sql, &[], |r| {
        let cadence: String = r.get(2)?;
        let zone: String = r.get(3)?;
        let tags: Option<String> = r.get(6)?;
        let mut tags: Vec<String> = tags
            .map(|t| t.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        tags.sort();
        f(Candidate {
            id: r.get(0)?,
            email: r.get(1)?,
            cadence: Cadence::parse(&cadence).unwrap_or(Cadence::Daily),
            zone: TimeZone::parse(&zone).unwrap_or(TimeZone(chrono_tz::UTC)),
            tags,
            window_start: from_us(r.get(4)?),
            last_slot: r.get::<Option<i64>>(5)?.map(from_us),
        })
    })
}

/// The candidate for one subscriber, if they are one (for previews).
pub fn candidate(db: &Db, subscriber: i64) -> Result<Option<Candidate>> {
    let mut found = None;
    for_each_candidate(db, |c| {
        if c.id == subscriber {
            found = Some(c);
        }
        Ok::<(), Error>(())
    })?;
    Ok(found)
}

/// The oldest window among the candidates: articles added after it may be new to someone.
pub fn earliest_window(db: &Db) -> Result<Option<DateTime<Utc>>> {
    db.query_row(
        "SELECT min(coalesce(s.window_start_us, 0)) FROM subscribers s WHERE s.status = 'confirmed'", &[], |r| r.get::<Option<i64>>(0),
    )
    .map(|v| v.map(from_us))
}

/// Writes a run's plan inside the caller's transaction as it is computed (nothing is held in
/// memory per subscriber): the run, one pending delivery per digest, and the slot each
/// subscriber's schedule has now handled. Nothing is visible until the caller commits.
pub struct PlanWriter<'c, 'd> {
    db: &'c Db<'d>,
    now: DateTime<Utc>,
    manual: bool,
    run_id: std::cell::Cell<Option<i64>>,
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
        db.lock(PLAN_LOCK)?;
        Ok(PlanWriter {
            db,
            now,
            manual,
            run_id: std::cell::Cell::new(None),
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
                let id = self.db.query_row(
                    "INSERT INTO digest_runs (now_us, manual, subject, html, deliveries) \
                     VALUES (?1, ?2, '', '', 0) RETURNING id",
                    params![self.now.timestamp_micros(), self.manual],
                    |r| r.get(0),
                )?;
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
        let mut params: Vec<&dyn crate::store::Param> = Vec::with_capacity(slots.len() * 2);
        for (subscriber, at) in &slots {
            params.push(subscriber);
            params.push(at);
        }
        self.db.execute(
            &format!(
                "UPDATE subscribers SET last_slot_us = v.column2 FROM (VALUES {}) AS v \
                 WHERE subscribers.id = v.column1",
                values(slots.len(), &["BIGINT", "BIGINT"])
            ),
            &params,
        )?;
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
                "UPDATE digest_runs SET subject = ?2, html = ?3, deliveries = ?4 WHERE id = ?1",
                params![id, subject, generic_html, self.count.get()],
            )?;
        }
        Ok(run_id)
    }
}

/// When the newest earlier run was planned for (the generic archive version covers what is new since).
pub fn previous_run(db: &Db) -> Result<Option<DateTime<Utc>>> {
    db.query_row("SELECT max(now_us) FROM digest_runs", &[], |r| {
        r.get::<Option<i64>>(0)
    })
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

/// A digest the SMTP server accepted, to be recorded.
#[derive(Debug, Clone)]
pub struct Sent {
    pub delivery: i64,
    pub subscriber_id: i64,
    pub window_end: DateTime<Utc>,
    pub message_id: String,
    pub at: DateTime<Utc>,
}

impl Sent {
    pub fn of(d: &Claimed, message_id: String, at: DateTime<Utc>) -> Sent {
        Sent {
            delivery: d.id,
            subscriber_id: d.subscriber_id,
            window_end: d.window_end,
            message_id,
            at,
        }
    }
}

/// Sent: each delivery is `sent` and its subscriber's window moves to the end of the digest's.
/// On PostgreSQL in one statement per group of `GROUP`, which needs no transaction of its own.
/// On SQLite, in the caller's transaction, one row per digest appended to `sent_log`: a group
/// then dirties a page or two instead of a delivery row, three of its indexes and a subscriber
/// row each, and every dirty page is written to the WAL and synced by the durable commit the
/// workers wait for (BENCHMARKS.md, "The sent log"). `fold_sent` moves the rows into place.
pub fn mark_sent(db: &Db, sent: &[Sent]) -> Result<()> {
    if db.is_postgres() {
        // One round trip for the whole group: per-row statements cost a network round trip
        // each, and the workers wait for this commit.
        for chunk in sent.chunks(GROUP) {
            mark_sent_together(db, chunk)?;
        }
        return Ok(());
    }
    for s in sent {
        db.execute(
            "INSERT OR REPLACE INTO sent_log (delivery_id, subscriber_id, message_id, sent_us, window_end_us) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                s.delivery,
                s.subscriber_id,
                s.message_id,
                s.at.timestamp_micros(),
                s.window_end.timestamp_micros()
            ],
        )?;
    }
    Ok(())
}

/// Moves the digests `mark_sent` logged on SQLite into `deliveries` and `subscribers`, in the
/// caller's transaction, and empties the log; returns how many. A claim, a plan and the end of a
/// run call it first, so a digest logged before a crash is `sent` before anything could claim
/// or plan it again. Nothing to do on PostgreSQL.
pub fn fold_sent(db: &Db) -> Result<usize> {
    if db.is_postgres() {
        return Ok(0);
    }
    let folded = db.execute(FOLD_DELIVERIES, &[])?;
    // None folded: the log is empty, or holds only rows of deliveries deleted meanwhile (their
    // subscriber erased), which fold into nothing.
    if folded > 0 {
        db.execute(FOLD_SUBSCRIBERS, &[])?;
    }
    db.execute("DELETE FROM sent_log", &[])?;
    Ok(folded)
}

/// The `+` keeps SQLite from driving the join from `deliveries` (a scan of the whole ledger per
/// fold) and looking each row up in the log: it reads the log and finds each delivery by id.
/// The row's `message_id` was set when it was claimed, so it is not written again here.
const FOLD_DELIVERIES: &str = "UPDATE deliveries SET state = 'sent', \
     sent_us = l.sent_us, attempts = attempts + 1, lease_owner = NULL, lease_until_us = NULL, \
     last_error = NULL FROM sent_log l WHERE deliveries.id = +l.delivery_id";

const FOLD_SUBSCRIBERS: &str = "UPDATE subscribers SET window_start_us = \
     CASE WHEN coalesce(window_start_us, 0) > l.window_end THEN window_start_us ELSE l.window_end END, \
     bounces = 0 FROM (SELECT subscriber_id, max(window_end_us) AS window_end FROM sent_log \
     GROUP BY subscriber_id) l WHERE subscribers.id = +l.subscriber_id";

/// The sent digests `mark_sent` logged and no fold has moved yet (for `tidings migrate`).
pub fn logged_sent(db: &Db) -> Result<Vec<Sent>> {
    if db.is_postgres() {
        return Ok(Vec::new());
    }
    db.query_map(
        "SELECT delivery_id, subscriber_id, message_id, sent_us, window_end_us FROM sent_log ORDER BY delivery_id",
        &[],
        |r| {
            Ok(Sent {
                delivery: r.get(0)?,
                subscriber_id: r.get(1)?,
                message_id: r.get(2)?,
                at: from_us(r.get(3)?),
                window_end: from_us(r.get(4)?),
            })
        },
    )
}

/// `(?1, ?2), (?3, ?4), …` for `rows` rows of `types.len()` parameters, for `UPDATE … FROM
/// (VALUES …) AS v` (columns `v.column1`, …, on both backends). The first row casts to
/// `types`; PostgreSQL infers the other rows from it.
fn values(rows: usize, types: &[&str]) -> String {
    let width = types.len();
    (0..rows)
        .map(|i| {
            let cols: Vec<String> = types
                .iter()
                .enumerate()
                .map(|(c, ty)| match i {
                    0 => format!("CAST(?{} AS {ty})", c + 1),
                    _ => format!("?{}", i * width + c + 1),
                })
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `mark_sent` for a group as one PostgreSQL statement: both tables' updates in data-modifying
/// `WITH` clauses over one `VALUES` list, so the group commits in one round trip (in autocommit,
/// atomically: one statement is one transaction).
fn mark_sent_together(db: &Db, sent: &[Sent]) -> Result<()> {
    let times: Vec<(i64, i64)> = sent
        .iter()
        .map(|s| (s.at.timestamp_micros(), s.window_end.timestamp_micros()))
        .collect();
    let mut params: Vec<&dyn crate::store::Param> = Vec::with_capacity(sent.len() * 5);
    for (s, (at, end)) in sent.iter().zip(&times) {
        params.push(&s.delivery);
        params.push(&s.message_id);
        params.push(at);
        params.push(&s.subscriber_id);
        params.push(end);
    }
    db.execute(
        &format!(
            "WITH v (delivery, message_id, sent_us, subscriber, window_end) AS (VALUES {}), \
             d AS (UPDATE deliveries SET state = 'sent', sent_us = v.sent_us, \
             attempts = attempts + 1, lease_owner = NULL, lease_until_us = NULL, last_error = NULL \
             FROM v WHERE deliveries.id = v.delivery RETURNING 1), \
             s AS (UPDATE subscribers SET window_start_us = CASE WHEN coalesce(window_start_us, 0) > v.window_end \
             THEN window_start_us ELSE v.window_end END, bounces = 0 \
             FROM v WHERE subscribers.id = v.subscriber RETURNING 1) \
             SELECT (SELECT count(*) FROM d) + (SELECT count(*) FROM s)",
            values(sent.len(), &["BIGINT", "TEXT", "BIGINT", "BIGINT", "BIGINT"])
        ),
        &params,
    )?;
    Ok(())
}

/// Records sent digests on a thread of its own, committing everything that arrived while the
/// previous commit ran as one transaction (group commit). `record` returns once the row is
/// committed, so a worker sends its next digest only after the last one is on disk: a kill can
/// double at most the messages in flight. Each group commits durably (`Mode::Durable`:
/// on SQLite `synchronous=FULL`), so a recorded `sent` survives a power cut too. On SQLite it
/// shares the store's one writer connection with the claims: two connections writing in turn
/// meet SQLite's busy handler, which sleeps in milliseconds. On PostgreSQL it has a connection
/// of its own, driven on its thread (`Store::dedicated`).
pub struct Recorder {
    jobs: std::sync::mpsc::Sender<(Sent, tokio::sync::oneshot::Sender<Result<(), String>>)>,
}

/// Most deliveries recorded in one transaction.
const GROUP: usize = 256;

/// When a group is worth committing: below `small` rows, the recorder first waits `delay` once
/// for the other workers to add theirs (as PostgreSQL's `commit_delay` does). Fewer, larger
/// commits cut the database's CPU per digest; the wait overlaps the workers' SMTP round trips.
struct Grouping {
    small: usize,
    delay: std::time::Duration,
}

/// SQLite: a commit is a local `fsync`, cheap next to a wait.
const SQLITE_GROUPING: Grouping = Grouping {
    small: 4,
    delay: std::time::Duration::from_micros(200),
};

/// PostgreSQL: a commit is a statement, a WAL flush and a round trip through another process
/// that shares the CPU; larger groups leave more of it to the senders (BENCHMARKS.md, "Larger
/// groups and the recorder's own connection on PostgreSQL").
const POSTGRES_GROUPING: Grouping = Grouping {
    small: 16,
    delay: std::time::Duration::from_millis(1),
};

impl Recorder {
    /// Starts the thread; it ends when the recorder is dropped.
    pub fn start(store: crate::store::Store) -> Result<Recorder, String> {
        let (jobs, queue) =
            std::sync::mpsc::channel::<(Sent, tokio::sync::oneshot::Sender<Result<(), String>>)>();
        // On PostgreSQL a group is one statement, a transaction of its own, committed durably
        // (`synchronous_commit`): a BEGIN and a COMMIT would be two more round trips that every
        // waiting worker pays.
        let (mode, grouping) = if store.is_postgres() {
            (crate::store::Mode::Read, POSTGRES_GROUPING)
        } else {
            (crate::store::Mode::Durable, SQLITE_GROUPING)
        };
        let db = store.dedicated()?;
        std::thread::Builder::new()
            .name("tidings-ledger".into())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    let mut group = vec![first];
                    let mut waited = false;
                    loop {
                        while group.len() < GROUP {
                            match queue.try_recv() {
                                Ok(job) => group.push(job),
                                Err(_) => break,
                            }
                        }
                        if waited || group.len() >= grouping.small {
                            break;
                        }
                        std::thread::sleep(grouping.delay);
                        waited = true;
                    }
                    let (sent, replies): (Vec<Sent>, Vec<_>) = group.into_iter().unzip();
                    // These digests were sent: keep trying to say so (a busy or briefly
                    // failing database), and only then report the failure.
                    let mut result = Err(String::new());
                    for attempt in 0..8u32 {
                        result = db
                            .run(mode, |db| mark_sent(db, &sent))
                            .map_err(|e: Error| e.to_string());
                        if result.is_ok() {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(50 << attempt));
                    }
                    for reply in replies {
                        let _ = reply.send(result.clone());
                    }
                }
            })
            .map_err(|e| format!("cannot start the ledger thread: {e}"))?;
        Ok(Recorder { jobs })
    }

    /// Hands one sent digest to the ledger thread; `Pending::wait` returns once it is committed.
    pub fn submit(&self, sent: Sent) -> Pending {
        let (reply, done) = tokio::sync::oneshot::channel();
        let queued = self.jobs.send((sent, reply)).is_ok();
        Pending { done, queued }
    }
}

/// A sent digest on its way into the ledger.
pub struct Pending {
    done: tokio::sync::oneshot::Receiver<Result<(), String>>,
    queued: bool,
}

impl Pending {
    pub async fn wait(self) -> Result<(), String> {
        if !self.queued {
            return Err("the ledger thread has stopped".into());
        }
        self.done
            .await
            .map_err(|_| "the ledger thread has stopped".to_string())?
    }
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
    db.execute(
        "UPDATE subscribers SET bounces = bounces + 1 WHERE id = ?1",
        params![d.subscriber_id],
    )?;
    let bounced = db.execute(
        "UPDATE subscribers SET status = 'bounced' WHERE id = ?1 AND bounces >= ?2 AND status = 'confirmed'",
        params![d.subscriber_id, bounce_limit],
    )? == 1;
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
mod tests {
    use super::*;

    /// Two deliveries whose leases ran out: one held by instance 100 (still queued in its own
    /// run), one by instance 200.
    fn lapsed_claims() -> (tempfile::TempDir, rusqlite::Connection) {
        let dir = tempfile::tempdir().expect("tmp");
        let conn = crate::db::open(&dir.path().join("t.db")).expect("db");
        conn.execute_batch(
            "INSERT INTO subscribers (id, email, status, cadence, time_zone, created_at) VALUES
                 (1, 'a@example.com', 'confirmed', 'daily', 'UTC', '2026-01-01T00:00:00Z'),
                 (2, 'b@example.com', 'confirmed', 'daily', 'UTC', '2026-01-01T00:00:00Z');
             INSERT INTO digest_runs (id, now_us, manual, subject, html, deliveries) VALUES (1, 0, 1, '', '', 2);
             INSERT INTO deliveries (id, run_id, subscriber_id, state, window_end_us, articles, next_attempt_us, lease_owner, lease_until_us)
                 VALUES (1, 1, 1, 'sending', 0, '[]', 0, 100, 1),
                        (2, 1, 2, 'sending', 0, '[]', 0, 200, 1);",
        )
        .expect("rows");
        (dir, conn)
    }

    /// A delivery's Message-ID is made at its first claim and kept through a release, a retry
    /// and a takeover by another instance; two deliveries never share one.
    #[test]
    fn a_delivery_keeps_the_message_id_of_its_first_claim() {
        let (_dir, conn) = lapsed_claims();
        let db = Db::Lite(&conn);
        let made = std::cell::Cell::new(0);
        let new_id = || {
            made.set(made.get() + 1);
            crate::mail::new_message_id("t.example")
        };
        let lease = chrono::Duration::seconds(-1);
        let Next::Claimed(first) = claim(&db, 300, lease, 10, &new_id).expect("claim") else {
            panic!("both lapsed rows are due");
        };
        assert_eq!(first.len(), 2);
        assert_ne!(first[0].message_id, first[1].message_id);
        assert!(
            first[0].message_id < first[1].message_id,
            "made in id order"
        );
        // Released, retried, and taken over by another instance once the lease lapsed.
        release(&db, 300, &[1]).expect("release");
        mark_retry(&db, &first[1], "4xx", Some(DateTime::<Utc>::UNIX_EPOCH)).expect("retry");
        let Next::Claimed(again) = claim(&db, 400, lease, 10, &new_id).expect("claim") else {
            panic!("both rows are due again");
        };
        let ids = |c: &[Claimed]| {
            c.iter()
                .map(|d| (d.id, d.message_id.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&again), ids(&first));
        // Expired claims of 300 taken over by 500: still the same ids.
        let Next::Claimed(taken) = claim(&db, 500, lease, 10, &new_id).expect("claim") else {
            panic!("400's lapsed claims are due");
        };
        assert_eq!(ids(&taken), ids(&first));
        let stored: String = db
            .query_row("SELECT message_id FROM deliveries WHERE id = 1", &[], |r| {
                r.get(0)
            })
            .expect("row");
        assert_eq!(stored, first[0].message_id);
    }

    #[test]
    fn a_run_never_reclaims_its_own_lapsed_claims_but_takes_others() {
        let (_dir, conn) = lapsed_claims();
        let db = Db::Lite(&conn);
        let next = claim(&db, 100, chrono::Duration::seconds(300), 10, &|| {
            crate::mail::new_message_id("t.example")
        })
        .expect("claim");
        let Next::Claimed(claimed) = next else {
            panic!("the other instance's lapsed claim is due");
        };
        assert_eq!(
            claimed.iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![2],
            "not its own row 1, which may still be queued in this run"
        );
        // Renewing extends what 100 holds (both rows now) and nothing of another owner's.
        assert_eq!(
            renew(&db, 100, chrono::Duration::seconds(300)).expect("renew"),
            vec![1, 2]
        );
        assert!(renew(&db, 200, chrono::Duration::seconds(300))
            .expect("renew")
            .is_empty());
        // The old owner cannot hand back a row it lost.
        release(&db, 200, &[2]).expect("release");
        let state: String = db
            .query_row("SELECT state FROM deliveries WHERE id = 2", &[], |r| {
                r.get(0)
            })
            .expect("row");
        assert_eq!(state, "sending");
        // A new run of the same instance starts by taking its leftovers back: both go back.
        assert_eq!(release_own(&db, 100).expect("release"), 2);
        let state: String = db
            .query_row("SELECT state FROM deliveries WHERE id = 1", &[], |r| {
                r.get(0)
            })
            .expect("row");
        assert_eq!(state, "pending");
    }

    /// A digest logged as sent and not folded when the process died (a kill) is `sent` to the
    /// next claim, which therefore never takes it again, though its lease ran out.
    #[test]
    fn a_digest_logged_as_sent_before_a_crash_is_never_claimed_again() {
        let (_dir, conn) = lapsed_claims();
        let db = Db::Lite(&conn);
        conn.execute_batch(
            "UPDATE subscribers SET window_start_us = 5, bounces = 2 WHERE id = 2;
             UPDATE deliveries SET message_id = '<m@example.com>' WHERE id = 2",
        )
        .expect("window, and the id the claim gave");
        let at = from_us(1_700_000_000_000_000);
        mark_sent(
            &db,
            &[Sent {
                delivery: 2,
                subscriber_id: 2,
                window_end: from_us(42),
                message_id: "<m@example.com>".into(),
                at,
            }],
        )
        .expect("log");
        // Logged only: the ledger row is untouched until a fold.
        let state: String = db
            .query_row("SELECT state FROM deliveries WHERE id = 2", &[], |r| {
                r.get(0)
            })
            .expect("row");
        assert_eq!(state, "sending");
        assert_eq!(logged_sent(&db).expect("logged").len(), 1);
        // Instance 100 would take over 200's lapsed row 2: the fold first makes it sent.
        let next = claim(&db, 100, chrono::Duration::seconds(300), 10, &|| {
            crate::mail::new_message_id("t.example")
        })
        .expect("claim");
        assert!(
            !matches!(&next, Next::Claimed(c) if c.iter().any(|c| c.id == 2)),
            "a sent digest was claimed again"
        );
        let row: (String, Option<String>, Option<i64>, i64, Option<i64>) = db
            .query_row(
                "SELECT state, message_id, sent_us, attempts, lease_owner FROM deliveries WHERE id = 2",
                &[],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .expect("row");
        assert_eq!(
            row,
            (
                "sent".to_string(),
                Some("<m@example.com>".to_string()),
                Some(at.timestamp_micros()),
                1,
                None
            )
        );
        let subscriber: (i64, i64) = db
            .query_row(
                "SELECT window_start_us, bounces FROM subscribers WHERE id = 2",
                &[],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("subscriber");
        assert_eq!(
            subscriber,
            (42, 0),
            "the window moved, the bounce count reset"
        );
        assert!(logged_sent(&db).expect("logged").is_empty());
        assert_eq!(fold_sent(&db).expect("fold"), 0, "folded once");
    }

    /// A digest still in the log is sent to every reader that matters: it leaves the queue depth,
    /// and a bounce that quotes its Message-ID finds it at once.
    #[test]
    fn a_logged_digest_is_out_of_the_queue_and_found_by_its_message_id() {
        let (_dir, conn) = lapsed_claims();
        let db = Db::Lite(&conn);
        conn.execute_batch("UPDATE deliveries SET message_id = '<m2@example.com>' WHERE id = 2")
            .expect("the id the claim gave");
        assert_eq!(queue_depth(&db).expect("depth"), 2);
        mark_sent(
            &db,
            &[Sent {
                delivery: 2,
                subscriber_id: 2,
                window_end: from_us(42),
                message_id: "<m2@example.com>".into(),
                at: from_us(1_700_000_000_000_000),
            }],
        )
        .expect("log");
        assert_eq!(
            queue_depth(&db).expect("depth"),
            1,
            "the logged digest is sent"
        );
        let found = crate::feedback::apply::by_message_id(&db, "m2@example.com")
            .expect("lookup")
            .expect("the logged digest");
        assert_eq!((found.subscriber, found.delivery), (2, Some(2)));
        assert_eq!(
            queue_depth(&db).expect("depth"),
            1,
            "and stays so once folded"
        );
    }

    /// A fold costs the log's rows, not the ledger's: each statement reads the log and finds
    /// rows by id (a scan of `deliveries` per claim made sending O(ledger) per batch).
    #[test]
    fn folding_reads_the_log_and_finds_rows_by_id() {
        let (_dir, conn) = lapsed_claims();
        for sql in [FOLD_DELIVERIES, FOLD_SUBSCRIBERS] {
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("plan");
            let plan: Vec<String> = stmt
                .query_map([], |r| r.get::<_, String>(3))
                .expect("rows")
                .collect::<Result<_, _>>()
                .expect("plan rows");
            assert!(
                plan.iter()
                    .any(|p| p.starts_with("SEARCH deliveries")
                        || p.starts_with("SEARCH subscribers")),
                "{sql}: {plan:?}"
            );
            assert!(
                !plan
                    .iter()
                    .any(|p| p.starts_with("SCAN deliveries") || p.starts_with("SCAN subscribers")),
                "{sql}: {plan:?}"
            );
        }
    }
}
