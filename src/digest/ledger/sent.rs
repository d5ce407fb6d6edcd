//! Recording sent digests: the group-committing `Recorder` thread and, on SQLite, the
//! `sent_log` it appends to and `fold_sent` empties into `deliveries` (and, through the
//! subscribers' own statement, their windows).

use super::{from_us, Claimed, Result};
use crate::params;
use crate::store::{Db, Error};
use chrono::{DateTime, Utc};

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
        db.execute(&fold_subscribers(), &[])?;
    }
    db.execute("DELETE FROM sent_log", &[])?;
    Ok(folded)
}

/// The `+` keeps SQLite from driving the join from `deliveries` (a scan of the whole ledger per
/// fold) and looking each row up in the log: it reads the log and finds each delivery by id.
/// The row's `message_id` was set when it was claimed, so it is not written again here.
pub(super) const FOLD_DELIVERIES: &str = "UPDATE deliveries SET state = 'sent', \
     sent_us = l.sent_us, attempts = attempts + 1, lease_owner = NULL, lease_until_us = NULL, \
     last_error = NULL FROM sent_log l WHERE deliveries.id = +l.delivery_id";

/// The subscribers' side of a fold: the log's digests, one row per subscriber, through
/// `subscribers::store::digest_sent_sql`; the `+` has SQLite read the log and find each
/// subscriber by id.
pub(super) fn fold_subscribers() -> String {
    crate::subscribers::store::digest_sent_sql(
        "(SELECT subscriber_id, max(window_end_us) AS window_end FROM sent_log \
         GROUP BY subscriber_id) l",
        "+l.subscriber_id",
        "l.window_end",
    )
}

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

/// `mark_sent` for a group as one PostgreSQL statement: both tables' updates in data-modifying
/// `WITH` clauses over one `VALUES` list, so the group commits in one round trip (in autocommit,
/// atomically: one statement is one transaction). A row's Message-ID was set when it was claimed;
/// one claimed by an earlier version (or copied by `migrate` from such a log) gets the one it was
/// sent with (an unchanged value does not stop a HOT update).
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
             message_id = coalesce(deliveries.message_id, v.message_id), \
             attempts = attempts + 1, lease_owner = NULL, lease_until_us = NULL, last_error = NULL \
             FROM v WHERE deliveries.id = v.delivery RETURNING 1), \
             s AS ({} RETURNING 1) \
             SELECT (SELECT count(*) FROM d) + (SELECT count(*) FROM s)",
            crate::store::sql::values(
                sent.len(),
                &["BIGINT", "TEXT", "BIGINT", "BIGINT", "BIGINT"]
            ),
            crate::subscribers::store::digest_sent_sql("v", "v.subscriber", "v.window_end"),
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
