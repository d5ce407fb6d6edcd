//! The delivery ledger: one row per planned digest, written before anything is sent, moved to
//! `sent`, `failed` or `skipped` one transaction at a time, so no crash loses or doubles a digest
//! (only a message in flight at the moment of a kill may be sent again).

use crate::subscribers::events::{self, Kind, NewEvent};
use crate::subscribers::suppressions::{self, Reason};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

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
pub fn for_each_candidate<E: From<rusqlite::Error>>(
    conn: &Connection,
    mut f: impl FnMut(Candidate) -> Result<(), E>,
) -> Result<(), E> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.id, s.email, s.cadence, s.time_zone, \
                coalesce(s.window_start_us, CAST(strftime('%s', s.confirmed_at) AS INTEGER) * 1000000, 0), \
                s.last_slot_us, \
                (SELECT group_concat(st.tag_slug, ',') FROM subscriber_tags st WHERE st.subscriber_id = s.id) \
         FROM subscribers s WHERE s.status = 'confirmed' AND NOT EXISTS \
           (SELECT 1 FROM deliveries d WHERE d.subscriber_id = s.id AND d.state IN ('pending', 'sending')) \
         ORDER BY s.id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
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
            last_slot: r.get::<_, Option<i64>>(5)?.map(from_us),
        })?;
    }
    Ok(())
}

/// The candidate for one subscriber, if they are one (for previews).
pub fn candidate(conn: &Connection, subscriber: i64) -> rusqlite::Result<Option<Candidate>> {
    let mut found = None;
    for_each_candidate(conn, |c| {
        if c.id == subscriber {
            found = Some(c);
        }
        Ok::<(), rusqlite::Error>(())
    })?;
    Ok(found)
}

/// The oldest window among the candidates: articles added after it may be new to someone.
pub fn earliest_window(conn: &Connection) -> rusqlite::Result<Option<DateTime<Utc>>> {
    conn.query_row(
        "SELECT min(coalesce(s.window_start_us, CAST(strftime('%s', s.confirmed_at) AS INTEGER) * 1000000, 0)) \
         FROM subscribers s WHERE s.status = 'confirmed'",
        [],
        |r| r.get::<_, Option<i64>>(0),
    )
    .map(|v| v.map(from_us))
}

/// Writes a run's plan inside one transaction as it is computed (nothing is held in memory per
/// subscriber): the run, one pending delivery per digest, and the slot each subscriber's schedule
/// has now handled. Nothing is visible until `finish` commits.
pub struct PlanWriter<'c> {
    tx: rusqlite::Transaction<'c>,
    now: DateTime<Utc>,
    manual: bool,
    run_id: std::cell::Cell<Option<i64>>,
    count: std::cell::Cell<i64>,
}

impl<'c> PlanWriter<'c> {
    pub fn begin(
        conn: &'c mut Connection,
        now: DateTime<Utc>,
        manual: bool,
    ) -> rusqlite::Result<Self> {
        Ok(PlanWriter {
            tx: conn.transaction_with_behavior(TransactionBehavior::Immediate)?,
            now,
            manual,
            run_id: std::cell::Cell::new(None),
            count: std::cell::Cell::new(0),
        })
    }

    /// The transaction, for reading what the plan is based on.
    pub fn conn(&self) -> &Connection {
        &self.tx
    }

    pub fn delivery<'i>(
        &self,
        subscriber_id: i64,
        article_ids: impl Iterator<Item = &'i str>,
    ) -> rusqlite::Result<()> {
        let run_id = match self.run_id.get() {
            Some(id) => id,
            None => {
                self.tx.execute(
                    "INSERT INTO digest_runs (now_us, manual, subject, html, deliveries) VALUES (?1, ?2, '', '', 0)",
                    params![self.now.timestamp_micros(), self.manual],
                )?;
                let id = self.tx.last_insert_rowid();
                self.run_id.set(Some(id));
                id
            }
        };
        let ids =
            serde_json::to_string(&article_ids.collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into());
        self.tx
            .prepare_cached(
                "INSERT INTO deliveries (run_id, subscriber_id, state, window_end_us, articles, next_attempt_us) \
                 VALUES (?1, ?2, 'pending', ?3, ?4, 0)",
            )?
            .execute(params![run_id, subscriber_id, self.now.timestamp_micros(), ids])?;
        self.count.set(self.count.get() + 1);
        Ok(())
    }

    pub fn slot(&self, subscriber_id: i64, at: DateTime<Utc>) -> rusqlite::Result<()> {
        self.tx
            .prepare_cached("UPDATE subscribers SET last_slot_us = ?2 WHERE id = ?1")?
            .execute(params![subscriber_id, at.timestamp_micros()])
            .map(|_| ())
    }

    pub fn planned(&self) -> i64 {
        self.count.get()
    }

    /// Stores the run's archive copy and commits everything.
    pub fn finish(self, subject: &str, generic_html: &str) -> rusqlite::Result<Option<i64>> {
        let run_id = self.run_id.get();
        if let Some(id) = run_id {
            self.tx.execute(
                "UPDATE digest_runs SET subject = ?2, html = ?3, deliveries = ?4 WHERE id = ?1",
                params![id, subject, generic_html, self.count.get()],
            )?;
        }
        self.tx.commit()?;
        Ok(run_id)
    }
}

/// When the newest earlier run was planned for (the generic archive version covers what is new since).
pub fn previous_run(conn: &Connection) -> rusqlite::Result<Option<DateTime<Utc>>> {
    conn.query_row("SELECT max(now_us) FROM digest_runs", [], |r| {
        r.get::<_, Option<i64>>(0)
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
    /// Until when the claim is ours; past it another process may take the row.
    pub lease_until: DateTime<Utc>,
}

/// What the queue holds for a worker right now.
pub enum Next {
    /// Up to the asked number of deliveries, now leased to the caller, oldest first.
    Claimed(Vec<Claimed>),
    /// Only retries that are not due yet: the earliest is at this time.
    WaitUntil(DateTime<Utc>),
    Empty,
}

/// Takes up to `limit` due deliveries (pending, or sending under an expired lease) for `owner`,
/// in one transaction `tx` the caller commits (so more can be written with the claim).
pub fn claim(
    tx: &rusqlite::Transaction<'_>,
    owner: i64,
    now: DateTime<Utc>,
    lease: chrono::Duration,
    limit: usize,
) -> rusqlite::Result<Next> {
    let now_us = now.timestamp_micros();
    // Two index searches rather than one OR: with an OR, SQLite sorts every pending row for
    // each claim (a temp B-tree), which made claiming O(queue) and capped sending speed.
    let mut ids: Vec<i64> = tx
        .prepare_cached(
            "SELECT id FROM deliveries WHERE state = 'sending' AND lease_until_us < ?1 \
             AND lease_owner IS NOT ?3 LIMIT ?2",
        )?
        .query_map(params![now_us, limit as i64, owner], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if ids.len() < limit {
        let more: Vec<i64> = tx
            .prepare_cached(
                "SELECT id FROM deliveries WHERE state = 'pending' AND next_attempt_us <= ?1 \
                 ORDER BY next_attempt_us LIMIT ?2",
            )?
            .query_map(params![now_us, (limit - ids.len()) as i64], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        ids.extend(more);
    }
    let mut take = tx.prepare_cached(
        "UPDATE deliveries SET state = 'sending', lease_owner = ?2, lease_until_us = ?3 WHERE id = ?1 \
         RETURNING id, run_id, subscriber_id, window_end_us, articles, attempts",
    )?;
    let mut claimed: Vec<Claimed> = Vec::with_capacity(ids.len());
    for id in ids {
        claimed.push(take.query_row(
            params![id, owner, (now + lease).timestamp_micros()],
            |r| {
                let articles: String = r.get(4)?;
                Ok(Claimed {
                    id: r.get(0)?,
                    run_id: r.get(1)?,
                    subscriber_id: r.get(2)?,
                    window_end: from_us(r.get(3)?),
                    article_ids: serde_json::from_str(&articles).unwrap_or_default(),
                    attempts: r.get::<_, i64>(5)?.max(0) as u32,
                    lease_until: now + lease,
                })
            },
        )?);
    }
    if !claimed.is_empty() {
        claimed.sort_by_key(|c| c.id);
        return Ok(Next::Claimed(claimed));
    }
    let wait: Option<i64> = tx.query_row(
        "SELECT min(next_attempt_us) FROM deliveries WHERE state = 'pending'",
        [],
        |r| r.get(0),
    )?;
    Ok(match wait {
        Some(us) => Next::WaitUntil(from_us(us)),
        None => Next::Empty,
    })
}

/// When a paused run's deliveries are "due": 9999-12-31, far past any wait a run makes.
pub const PAUSED_US: i64 = 253_402_300_799_000_000;

/// Pauses run `run` (once): its pending deliveries wait until `resume`. The number held back,
/// or `None` if it already was paused.
pub fn pause(
    conn: &Connection,
    run: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<Option<usize>> {
    let marked = conn.execute(
        "UPDATE digest_runs SET paused_us = ?2, paused_reason = ?3 WHERE id = ?1 AND paused_us IS NULL",
        params![run, now.timestamp_micros(), reason],
    )?;
    if marked == 0 {
        return Ok(None);
    }
    Ok(Some(conn.execute(
        "UPDATE deliveries SET next_attempt_us = ?2 WHERE run_id = ?1 AND state = 'pending'",
        params![run, PAUSED_US],
    )?))
}

/// Resumes a paused run: its waiting deliveries are due now. `None` if it was not paused.
pub fn resume(conn: &Connection, run: i64, now: DateTime<Utc>) -> rusqlite::Result<Option<usize>> {
    let unmarked = conn.execute(
        "UPDATE digest_runs SET paused_us = NULL, paused_reason = NULL WHERE id = ?1 AND paused_us IS NOT NULL",
        [run],
    )?;
    if unmarked == 0 {
        return Ok(None);
    }
    Ok(Some(conn.execute(
        "UPDATE deliveries SET next_attempt_us = ?2 WHERE run_id = ?1 AND state = 'pending'",
        params![run, now.timestamp_micros()],
    )?))
}

/// Gives claimed deliveries back untouched (a worker stopping before it sent them).
pub fn release(conn: &Connection, ids: &[i64]) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE deliveries SET state = 'pending', lease_owner = NULL, lease_until_us = NULL \
         WHERE id = ?1 AND state = 'sending'",
    )?;
    for id in ids {
        stmt.execute([id])?;
    }
    Ok(())
}

/// Gives back this process's own `sending` rows: called when a run starts (one run at a time per
/// process), they are leftovers of an earlier run that stopped without settling them. A running
/// run never re-claims its own rows, even past their lease, so nothing is queued twice.
pub fn release_own(conn: &Connection, owner: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE deliveries SET state = 'pending', lease_owner = NULL, lease_until_us = NULL \
         WHERE state = 'sending' AND lease_owner = ?1",
        [owner],
    )
}

/// Gives back deliveries left `sending` by processes that no longer run (killed mid-send).
pub fn reclaim_abandoned(conn: &Connection, owner: i64) -> rusqlite::Result<usize> {
    let owners: Vec<i64> = {
        let mut stmt = conn.prepare(
            "SELECT DISTINCT lease_owner FROM deliveries WHERE state = 'sending' AND lease_owner IS NOT NULL",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut n = 0;
    for other in owners {
        if other != owner && !std::path::Path::new(&format!("/proc/{other}")).exists() {
            n += conn.execute(
                "UPDATE deliveries SET state = 'pending', lease_owner = NULL, lease_until_us = NULL \
                 WHERE state = 'sending' AND lease_owner = ?1",
                [other],
            )?;
        }
    }
    Ok(n)
}

/// The subscriber's status now (unsubscribing is final for every later send).
pub fn status_of(conn: &Connection, subscriber: i64) -> rusqlite::Result<Option<Status>> {
    conn.query_row(
        "SELECT status FROM subscribers WHERE id = ?1",
        [subscriber],
        |r| r.get::<_, String>(0),
    )
    .optional()
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

/// Sent: each delivery is `sent` and its subscriber's window moves to the end of the digest's,
/// all in one transaction.
pub fn mark_sent(conn: &mut Connection, sent: &[Sent]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut delivery = tx.prepare_cached(
            "UPDATE deliveries SET state = 'sent', message_id = ?2, sent_us = ?3, attempts = attempts + 1, \
             lease_owner = NULL, lease_until_us = NULL, last_error = NULL WHERE id = ?1",
        )?;
        let mut window = tx.prepare_cached(
            "UPDATE subscribers SET window_start_us = max(coalesce(window_start_us, 0), ?2), bounces = 0 WHERE id = ?1",
        )?;
        for s in sent {
            delivery.execute(params![s.delivery, s.message_id, s.at.timestamp_micros()])?;
            window.execute(params![s.subscriber_id, s.window_end.timestamp_micros()])?;
        }
    }
    tx.commit()
}

/// Records sent digests on a thread of its own, committing everything that arrived while the
/// previous commit ran as one transaction (group commit). `record` returns once the row is
/// committed, so a worker sends its next digest only after the last one is on disk: a kill can
/// double at most the messages in flight. It shares the run's connection (behind its mutex) with
/// the claims, rather than opening its own: two connections writing in turn meet SQLite's busy
/// handler, which sleeps in milliseconds.
pub struct Recorder {
    jobs: std::sync::mpsc::Sender<(Sent, tokio::sync::oneshot::Sender<Result<(), String>>)>,
}

/// Most deliveries recorded in one transaction.
const GROUP: usize = 256;
/// Below this many, the recorder waits `COMMIT_DELAY` for more before committing.
const SMALL_GROUP: usize = 4;
const COMMIT_DELAY: std::time::Duration = std::time::Duration::from_micros(200);

impl Recorder {
    /// Starts the thread; it ends when the recorder is dropped.
    pub fn start<C: AsMut<Connection> + Send + 'static>(
        db: std::sync::Arc<std::sync::Mutex<C>>,
    ) -> Result<Recorder, String> {
        let (jobs, queue) =
            std::sync::mpsc::channel::<(Sent, tokio::sync::oneshot::Sender<Result<(), String>>)>();
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
                        // A small group: give the other workers a moment to add theirs (as
                        // PostgreSQL's commit_delay does). Fewer, larger commits halve the
                        // ledger's CPU; the wait overlaps the workers' SMTP round trips.
                        if waited || group.len() >= SMALL_GROUP {
                            break;
                        }
                        std::thread::sleep(COMMIT_DELAY);
                        waited = true;
                    }
                    let (sent, replies): (Vec<Sent>, Vec<_>) = group.into_iter().unzip();
                    // These digests were sent: keep trying to say so (a busy or briefly
                    // failing database), and only then report the failure.
                    let mut result = Err(String::new());
                    for attempt in 0..8u32 {
                        result = {
                            let mut conn =
                                db.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            mark_sent(conn.as_mut(), &sent).map_err(|e| e.to_string())
                        };
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
    conn: &Connection,
    d: &Claimed,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> rusqlite::Result<()> {
    match retry_at {
        Some(at) => conn.execute(
            // A retry in a run paused meanwhile waits with the rest of it.
            "UPDATE deliveries SET state = 'pending', attempts = attempts + 1, \
             next_attempt_us = CASE WHEN (SELECT paused_us FROM digest_runs WHERE id = run_id) IS NULL \
             THEN ?2 ELSE ?4 END, \
             last_error = ?3, lease_owner = NULL, lease_until_us = NULL WHERE id = ?1",
            params![d.id, at.timestamp_micros(), error, PAUSED_US],
        ),
        None => conn.execute(
            "UPDATE deliveries SET state = 'failed', attempts = attempts + 1, last_error = ?2, \
             lease_owner = NULL, lease_until_us = NULL WHERE id = ?1",
            params![d.id, error],
        ),
    }
    .map(|_| ())
}

/// A permanent failure: recorded; after `bounce_limit` in a row the subscriber is `bounced`.
/// Returns whether the subscriber just became bounced.
pub fn mark_permanent(
    conn: &mut Connection,
    d: &Claimed,
    error: &str,
    bounce_limit: u32,
) -> rusqlite::Result<bool> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "UPDATE deliveries SET state = 'failed', attempts = attempts + 1, last_error = ?2, \
         lease_owner = NULL, lease_until_us = NULL WHERE id = ?1",
        params![d.id, error],
    )?;
    tx.execute(
        "UPDATE subscribers SET bounces = bounces + 1 WHERE id = ?1",
        [d.subscriber_id],
    )?;
    let bounced = tx.execute(
        "UPDATE subscribers SET status = 'bounced' WHERE id = ?1 AND bounces >= ?2 AND status = 'confirmed'",
        params![d.subscriber_id, bounce_limit],
    )? == 1;
    if let Some(s) = crate::subscribers::store::get(&tx, d.subscriber_id)? {
        let now = Utc::now();
        let mut event = NewEvent::new(s.email.as_str(), Kind::Bounce, "smtp")
            .subscriber(s.id)
            .detail(format!(
                "other: {}",
                error.chars().take(500).collect::<String>()
            ));
        event.delivery_id = Some(d.id);
        events::record(&tx, &event, now)?;
        crate::metrics::bounced("other");
        if bounced {
            suppressions::add(&tx, &s.email, Reason::Bounces, None, "smtp", now)?;
        }
    }
    tx.commit()?;
    Ok(bounced)
}

/// Not sent and not to be: the subscriber left, or nothing in it exists any more.
pub fn mark_skipped(conn: &Connection, d: &Claimed, why: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE deliveries SET state = 'skipped', last_error = ?2, lease_owner = NULL, lease_until_us = NULL WHERE id = ?1",
        params![d.id, why],
    )
    .map(|_| ())
}

/// How many deliveries wait to be sent (pending or sending).
pub fn queue_depth(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT count(*) FROM deliveries WHERE state IN ('pending', 'sending')",
        [],
        |r| r.get(0),
    )
}

/// The generic version of a run, for `/digests/{id}`.
pub fn archived(conn: &Connection, run: i64) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT html FROM digest_runs WHERE id = ?1", [run], |r| {
        r.get(0)
    })
    .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two deliveries whose leases ran out: one held by this process (still queued in its own
    /// run), one by another process.
    fn lapsed_claims() -> (tempfile::TempDir, Connection) {
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

    #[test]
    fn a_run_never_reclaims_its_own_lapsed_claims_but_takes_others() {
        let (_dir, mut conn) = lapsed_claims();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .expect("tx");
        let next = claim(&tx, 100, Utc::now(), chrono::Duration::seconds(300), 10).expect("claim");
        tx.commit().expect("commit");
        let Next::Claimed(claimed) = next else {
            panic!("the other process's lapsed claim is due");
        };
        assert_eq!(
            claimed.iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![2],
            "not its own row 1, which may still be queued in this run"
        );
        // A new run of the same process starts by taking its leftovers back.
        // Row 2 is its own now too: both go back.
        assert_eq!(release_own(&conn, 100).expect("release"), 2);
        let state: String = conn
            .query_row("SELECT state FROM deliveries WHERE id = 1", [], |r| {
                r.get(0)
            })
            .expect("row");
        assert_eq!(state, "pending");
    }
}
