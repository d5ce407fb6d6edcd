//! What the ledger tells about runs, for the console: a page of runs with their counts (newest
//! first, paged by id), one run in detail, its failures, and the digests a subscriber was sent.
//! Reads only, and none of them counts a run's sent rows one by one: a run's `sent` is what it
//! planned less what is waiting, failed or skipped, which an index of the few notable rows
//! (`deliveries_run_notable`) and the open rows give; bounces, complaints and unsubscribes are the
//! events that name the run's deliveries.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{from_us, Result};
use crate::params;
use crate::store::Db;
use crate::subscribers::events::{self, Kind};
use chrono::{DateTime, Utc};

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Deliveries wait to be sent or are being sent.
    Running,
    /// Deliveries wait until `tidings digest resume` (a wave of policy bounces paused it).
    Paused,
    /// Nothing is left to send.
    Done,
}

/// One run and what became of its digests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RunSummary {
    pub id: i64,
    /// The moment the run was planned for.
    pub at: DateTime<Utc>,
    /// Asked for (`digest run --now`, the API) rather than scheduled.
    pub manual: bool,
    /// The instant sends of one UTC day (`at` is the day's first), not a scheduled run.
    pub instant: bool,
    pub state: RunState,
    pub paused_reason: Option<String>,
    /// Digests planned.
    pub due: i64,
    pub sent: i64,
    pub failed: i64,
    /// Not sent and not to be: the subscriber left, or the articles were removed.
    pub skipped: i64,
    /// Digests that met a temporary failure and were (or will be) tried again.
    pub retried: i64,
    /// Waiting to be sent, or being sent.
    pub waiting: i64,
    /// Digests that bounced after the relay took them (DSN, provider webhook); a refusal at send
    /// time is a failure.
    pub bounced: i64,
    /// Digests reported as spam.
    pub complained: i64,
    /// Unsubscribes through the links (or the provider's report) of this run's digests.
    pub unsubscribed: i64,
}

/// How many of a run's digests carried articles of one tag.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TagDigests {
    pub slug: String,
    pub name: String,
    pub due: i64,
    pub sent: i64,
}

/// A digest that was not delivered, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    pub delivery_id: i64,
    pub subscriber_id: i64,
    /// `None` once the subscriber was removed.
    pub email: Option<String>,
    pub attempts: i64,
    /// The last error the relay gave (or why it was given up).
    pub error: Option<String>,
}

/// One run for its page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunDetail {
    pub summary: RunSummary,
    pub subject: String,
    /// Most digests first.
    pub tags: Vec<TagDigests>,
    /// The newest `failures` asked for; `run_failures` pages on.
    pub failures: Vec<Failure>,
}

/// A digest sent to a subscriber.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SentDigest {
    pub delivery_id: i64,
    pub run_id: i64,
    pub at: DateTime<Utc>,
}

/// A run's row, before its counts.
struct RunRow {
    id: i64,
    at: i64,
    manual: bool,
    instant: bool,
    due: i64,
    paused: bool,
    paused_reason: Option<String>,
    deliveries: Option<(i64, i64)>,
    subject: String,
}

fn run_rows(db: &Db, before: i64, limit: usize) -> Result<Vec<RunRow>> {
    db.query_map(
        "SELECT id, now_us, manual, deliveries, paused_us, paused_reason, first_delivery_id, \
         last_delivery_id, subject, instant_day FROM digest_runs WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
        params![before, limit as i64],
        |r| {
            let first: Option<i64> = r.get(6)?;
            let last: Option<i64> = r.get(7)?;
            Ok(RunRow {
                id: r.get(0)?,
                at: r.get(1)?,
                manual: r.get(2)?,
                instant: r.get::<Option<i64>>(9)?.is_some(),
                due: r.get(3)?,
                paused: r.get::<Option<i64>>(4)?.is_some(),
                paused_reason: r.get(5)?,
                deliveries: first.zip(last),
                subject: r.get(8)?,
            })
        },
    )
}

/// Runs before run `after` (all runs: `None`), newest first, at most `limit`, with their
/// counts: the console's list, and its chart of the last 30.
pub fn runs(db: &Db, after: Option<i64>, limit: usize) -> Result<Vec<RunSummary>> {
    let rows = run_rows(db, after.unwrap_or(i64::MAX), limit)?;
    summarise(db, &rows)
}

/// The failed, skipped and retried rows of runs `?1` to `?2`, by kind, through the index that
/// holds only them (its predicate is repeated word for word, so that SQLite uses it).
const NOTABLE: &str = "SELECT run_id, state, CASE WHEN attempts > 1 THEN 1 ELSE 0 END, count(*) \
     FROM deliveries WHERE run_id BETWEEN ?1 AND ?2 AND (state IN ('failed', 'skipped') OR attempts > 1) \
     GROUP BY run_id, state, CASE WHEN attempts > 1 THEN 1 ELSE 0 END";

/// The open rows of runs `?1` to `?2` and how many of them are retries, through the index of
/// open rows (`deliveries_open`): few once a run is done.
const WAITING: &str = "SELECT run_id, count(*), CAST(sum(CASE WHEN attempts >= 1 THEN 1 ELSE 0 END) AS BIGINT) \
     FROM deliveries WHERE state IN ('pending', 'sending') AND run_id BETWEEN ?1 AND ?2 GROUP BY run_id";

/// `WAITING` on SQLite, where a digest in the sent log is sent already.
const WAITING_NOT_LOGGED: &str =
    "SELECT run_id, count(*), CAST(sum(CASE WHEN attempts >= 1 THEN 1 ELSE 0 END) AS BIGINT) \
     FROM deliveries WHERE state IN ('pending', 'sending') AND run_id BETWEEN ?1 AND ?2 \
     AND NOT EXISTS (SELECT 1 FROM sent_log l WHERE l.delivery_id = deliveries.id) GROUP BY run_id";

/// Run `?1`'s failed rows before delivery `?2`, newest first, through the same index.
const FAILURES: &str = "SELECT d.id, d.subscriber_id, s.email, d.attempts, d.last_error FROM deliveries d \
     LEFT JOIN subscribers s ON s.id = d.subscriber_id \
     WHERE d.run_id = ?1 AND d.state = 'failed' AND (d.state IN ('failed', 'skipped') OR d.attempts > 1) \
     AND d.id < ?2 ORDER BY d.id DESC LIMIT ?3";

fn summarise(db: &Db, rows: &[RunRow]) -> Result<Vec<RunSummary>> {
    let (Some(newest), Some(oldest)) = (rows.first(), rows.last()) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<RunSummary> = rows
        .iter()
        .map(|r| RunSummary {
            id: r.id,
            at: from_us(r.at),
            manual: r.manual,
            instant: r.instant,
            state: RunState::Done,
            paused_reason: r.paused_reason.clone(),
            due: r.due,
            sent: 0,
            failed: 0,
            skipped: 0,
            retried: 0,
            waiting: 0,
            bounced: 0,
            complained: 0,
            unsubscribed: 0,
        })
        .collect();
    let index: HashMap<i64, usize> = out.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    db.query_each(NOTABLE, params![oldest.id, newest.id], |r| -> Result<()> {
        let Some(&i) = index.get(&r.get::<i64>(0)?) else {
            return Ok(());
        };
        let state: String = r.get(1)?;
        let retried: bool = r.get(2)?;
        let n: i64 = r.get(3)?;
        let s = &mut out[i];
        match state.as_str() {
            "failed" => s.failed += n,
            "skipped" => s.skipped += n,
            _ => {}
        }
        // Open rows are counted with the rest of the open ones, below.
        if retried && matches!(state.as_str(), "sent" | "failed" | "skipped") {
            s.retried += n;
        }
        Ok(())
    })?;
    db.query_each(
        if db.is_postgres() {
            WAITING
        } else {
            WAITING_NOT_LOGGED
        },
        params![oldest.id, newest.id],
        |r| -> Result<()> {
            if let Some(&i) = index.get(&r.get::<i64>(0)?) {
                out[i].waiting += r.get::<i64>(1)?;
                out[i].retried += r.get::<i64>(2)?;
            }
            Ok(())
        },
    )?;
    // Bounces, complaints and unsubscribes that name a delivery of these runs.
    let ranges: Vec<(i64, i64)> = rows.iter().filter_map(|r| r.deliveries).collect();
    if let (Some(lo), Some(hi)) = (
        ranges.iter().map(|r| r.0).min(),
        ranges.iter().map(|r| r.1).max(),
    ) {
        let about = events::about_deliveries(db, lo, hi)?;
        // A run's deliveries lie in its id range (given out in order under the plan lock), so
        // each event's run is found among these few ranges, with no read per delivery. A day's
        // instant run is reopened all day: runs planned meanwhile lie inside its range, so the
        // events that fall in an instant run's range are put down by their row's own run.
        let in_range = |delivery: i64| {
            rows.iter().find(|r| {
                r.deliveries
                    .is_some_and(|(a, b)| a <= delivery && delivery <= b)
            })
        };
        let shared: Vec<i64> = about
            .iter()
            .map(|a| a.delivery_id)
            .filter(|&d| in_range(d).is_some_and(|r| r.instant))
            .collect();
        let owners = if shared.is_empty() {
            HashMap::new()
        } else {
            runs_of(db, &shared)?
        };
        let run_of = |delivery: i64| match in_range(delivery) {
            Some(r) if r.instant => owners.get(&delivery).copied(),
            found => found.map(|r| r.id),
        };
        let mut seen: HashSet<(i64, Kind)> = HashSet::new();
        for a in about {
            let Some(&i) = run_of(a.delivery_id).and_then(|run| index.get(&run)) else {
                continue;
            };
            // A refusal at send time is already a failure; each digest counts once per kind.
            if (a.kind == Kind::Bounce && a.source == "smtp")
                || !seen.insert((a.delivery_id, a.kind))
            {
                continue;
            }
            match a.kind {
                Kind::Bounce => out[i].bounced += 1,
                Kind::Complaint => out[i].complained += 1,
                Kind::Unsubscribe => out[i].unsubscribed += 1,
                _ => {}
            }
        }
    }
    for (s, row) in out.iter_mut().zip(rows) {
        s.sent = (s.due - s.waiting - s.failed - s.skipped).max(0);
        s.state = match (s.waiting, row.paused) {
            (0, _) => RunState::Done,
            (_, true) => RunState::Paused,
            (_, false) => RunState::Running,
        };
    }
    Ok(out)
}

/// Run `id` for its page: its counts, the digests per tag, and its newest `failures` failures.
pub fn run(db: &Db, id: i64, failures: usize) -> Result<Option<RunDetail>> {
    let rows = run_rows(db, id.saturating_add(1), 1)?;
    let Some(row) = rows.first().filter(|r| r.id == id) else {
        return Ok(None);
    };
    let summary = summarise(db, &rows)?
        .pop()
        .ok_or(crate::store::Error::NoRow)?;
    Ok(Some(RunDetail {
        summary,
        subject: row.subject.clone(),
        tags: tag_digests(db, row)?,
        failures: run_failures(db, id, None, failures)?,
    }))
}

/// How many of a run's digests carried each tag: its rows by id range, grouped by their
/// article lists (few distinct ones), then the lists' tags from the catalog.
fn tag_digests(db: &Db, row: &RunRow) -> Result<Vec<TagDigests>> {
    let Some((first, last)) = row.deliveries else {
        return Ok(Vec::new());
    };
    let lists: Vec<(String, String, i64)> = db.query_map(
        "SELECT articles, state, count(*) FROM deliveries WHERE id BETWEEN ?1 AND ?2 AND run_id = ?3 \
         GROUP BY articles, state",
        params![first, last, row.id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let parsed: Vec<(Vec<String>, bool, i64)> = lists
        .into_iter()
        .map(|(articles, state, n)| {
            let ids: Vec<String> = serde_json::from_str(&articles).unwrap_or_default();
            (ids, state == "sent", n)
        })
        .collect();
    let mut ids: Vec<String> = parsed.iter().flat_map(|(a, _, _)| a.clone()).collect();
    ids.sort();
    ids.dedup();
    let tags_of: HashMap<String, Vec<crate::catalog::Tag>> =
        crate::catalog::store::by_ids(db, &ids)?
            .into_iter()
            .map(|a| (a.id, a.tags))
            .collect();
    let mut by_tag: BTreeMap<String, TagDigests> = BTreeMap::new();
    for (articles, sent, n) in parsed {
        let mut tags: Vec<&crate::catalog::Tag> = articles
            .iter()
            .filter_map(|a| tags_of.get(a))
            .flatten()
            .collect();
        tags.sort_by(|a, b| a.slug.cmp(&b.slug));
        tags.dedup_by(|a, b| a.slug == b.slug);
        for tag in tags {
            let entry = by_tag
                .entry(tag.slug.clone())
                .or_insert_with(|| TagDigests {
                    slug: tag.slug.clone(),
                    name: tag.name.clone(),
                    due: 0,
                    sent: 0,
                });
            entry.due += n;
            if sent {
                entry.sent += n;
            }
        }
    }
    let mut out: Vec<TagDigests> = by_tag.into_values().collect();
    out.sort_by(|a, b| b.due.cmp(&a.due).then_with(|| a.slug.cmp(&b.slug)));
    Ok(out)
}

/// Run `run`'s failed digests before delivery `after` (all: `None`), newest first, at most
/// `limit`, with the relay's last answer.
pub fn run_failures(db: &Db, run: i64, after: Option<i64>, limit: usize) -> Result<Vec<Failure>> {
    db.query_map(
        FAILURES,
        params![run, after.unwrap_or(i64::MAX), limit as i64],
        |r| {
            Ok(Failure {
                delivery_id: r.get(0)?,
                subscriber_id: r.get(1)?,
                email: r.get(2)?,
                attempts: r.get(3)?,
                error: r.get(4)?,
            })
        },
    )
}

/// The run of each of these deliveries (those that still exist).
pub fn runs_of(db: &Db, deliveries: &[i64]) -> Result<HashMap<i64, i64>> {
    let mut ids = deliveries.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(crate::store::sql::ID_LIST_MAX) {
        let list = crate::store::sql::IdList::new(1, chunk);
        let params: Vec<&dyn crate::store::Param> = list.params().collect();
        db.query_each(
            &format!(
                "SELECT id, run_id FROM deliveries WHERE id IN ({})",
                list.marks
            ),
            &params,
            |r| -> Result<()> {
                out.insert(r.get(0)?, r.get(1)?);
                Ok(())
            },
        )?;
    }
    Ok(out)
}

/// Every digest sent to these subscribers, oldest first, with its run (on SQLite those still in
/// the sent log too).
pub fn sent_digests(db: &Db, subscribers: &[i64]) -> Result<Vec<SentDigest>> {
    let mut out = Vec::new();
    for &subscriber in subscribers {
        // Every closed state is named, so that PostgreSQL reads its index of closed rows (V3).
        db.query_each(
            "SELECT id, run_id, sent_us, state FROM deliveries WHERE subscriber_id = ?1 \
             AND state IN ('sent', 'failed', 'skipped')",
            params![subscriber],
            |r| -> Result<()> {
                let state: String = r.get(3)?;
                if let ("sent", Some(at)) = (state.as_str(), r.get::<Option<i64>>(2)?) {
                    out.push(SentDigest {
                        delivery_id: r.get(0)?,
                        run_id: r.get(1)?,
                        at: from_us(at),
                    });
                }
                Ok(())
            },
        )?;
        if !db.is_postgres() {
            out.extend(db.query_map(
                "SELECT l.delivery_id, d.run_id, l.sent_us FROM sent_log l \
                 JOIN deliveries d ON d.id = l.delivery_id WHERE l.subscriber_id = ?1 AND d.state = 'sending'",
                params![subscriber],
                |r| {
                    Ok(SentDigest {
                        delivery_id: r.get(0)?,
                        run_id: r.get(1)?,
                        at: from_us(r.get(2)?),
                    })
                },
            )?);
        }
    }
    out.sort_by_key(|d| (d.at, d.delivery_id));
    Ok(out)
}

#[cfg(test)]
mod tests;
