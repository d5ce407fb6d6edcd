//! The SQL of outgoing webhooks: `webhook_endpoints`, `webhook_deliveries` (the durable queue,
//! one row per event and endpoint) and `webhook_attempts` (the delivery log). Only this module
//! touches them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::Subscription;
use crate::params;
use crate::secret::Secret;
use crate::store::sql::{pow2_runs, values, IdList};
use crate::store::{Db, Error, Param};

type Result<T, E = Error> = std::result::Result<T, E>;

/// The answer kept of each attempt, at most.
pub const RESPONSE_KEPT: usize = 1024;

/// An endpoint as the API, the CLI and the console show it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: i64,
    pub url: String,
    /// Empty: every type.
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_us: i64,
    pub last_success_us: Option<i64>,
    pub failing_since_us: Option<i64>,
    /// Until then the secret rotated out still signs beside the new one.
    pub previous_secret_until_us: Option<i64>,
}

const ENDPOINT_COLUMNS: &str = "id, url, event_types, enabled, disabled_reason, created_us, \
     last_success_us, failing_since_us, previous_until_us";

fn read_endpoint(r: &crate::store::Row) -> Result<Endpoint> {
    let types: String = r.get(2)?;
    Ok(Endpoint {
        id: r.get(0)?,
        url: r.get(1)?,
        event_types: split_types(&types),
        enabled: r.get(3)?,
        disabled_reason: r.get(4)?,
        created_us: r.get(5)?,
        last_success_us: r.get(6)?,
        failing_since_us: r.get(7)?,
        previous_secret_until_us: r.get(8)?,
    })
}

fn split_types(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Every enabled endpoint and what it wants.
pub fn subscriptions(db: &Db) -> Result<Vec<Subscription>> {
    db.query_map(
        "SELECT id, event_types FROM webhook_endpoints WHERE enabled = 1 ORDER BY id",
        params![],
        |r| {
            let types: String = r.get(1)?;
            Ok(Subscription {
                id: r.get(0)?,
                event_types: split_types(&types),
            })
        },
    )
}

/// Adds an endpoint (enabled) with `secret`; its id.
pub fn create(
    db: &Db,
    url: &str,
    event_types: &[String],
    secret: &Secret,
    now_us: i64,
) -> Result<i64> {
    db.query_row(
        "INSERT INTO webhook_endpoints (url, event_types, secret, enabled, created_us) \
         VALUES (?1, ?2, ?3, 1, ?4) RETURNING id",
        params![url, event_types.join(","), secret.expose(), now_us],
        |r| r.get(0),
    )
}

pub fn list(db: &Db) -> Result<Vec<Endpoint>> {
    db.query_map(
        &format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY id"),
        params![],
        read_endpoint,
    )
}

pub fn get(db: &Db, id: i64) -> Result<Option<Endpoint>> {
    db.query_opt(
        &format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?1"),
        params![id],
        read_endpoint,
    )
}

/// Changes what is given; enabling again forgets why it was disabled and how long it failed.
pub fn update(
    db: &Db,
    id: i64,
    url: Option<&str>,
    event_types: Option<&[String]>,
    enabled: Option<bool>,
) -> Result<bool> {
    let types = event_types.map(|t| t.join(","));
    Ok(db.execute(
        "UPDATE webhook_endpoints SET url = coalesce(?2, url), event_types = coalesce(?3, event_types), \
         disabled_reason = CASE WHEN CAST(?4 AS BIGINT) = 1 THEN NULL \
             WHEN CAST(?4 AS BIGINT) = 0 THEN 'disabled by an admin' ELSE disabled_reason END, \
         failing_since_us = CASE WHEN CAST(?4 AS BIGINT) = 1 THEN NULL ELSE failing_since_us END, \
         enabled = coalesce(CAST(?4 AS BIGINT), enabled) WHERE id = ?1",
        params![id, url, types, enabled.map(i64::from)],
    )? == 1)
}

/// Removes an endpoint with its deliveries and their log.
pub fn delete(db: &Db, id: i64) -> Result<bool> {
    db.execute(
        "DELETE FROM webhook_attempts WHERE delivery_id IN \
         (SELECT id FROM webhook_deliveries WHERE endpoint_id = ?1)",
        params![id],
    )?;
    db.execute(
        "DELETE FROM webhook_deliveries WHERE endpoint_id = ?1",
        params![id],
    )?;
    Ok(db.execute("DELETE FROM webhook_endpoints WHERE id = ?1", params![id])? == 1)
}

/// Puts `secret` in place; the one it replaces signs beside it until `previous_until_us`.
pub fn rotate(db: &Db, id: i64, secret: &Secret, previous_until_us: i64) -> Result<bool> {
    Ok(db.execute(
        "UPDATE webhook_endpoints SET previous_secret = secret, previous_until_us = ?3, secret = ?2 \
         WHERE id = ?1",
        params![id, secret.expose(), previous_until_us],
    )? == 1)
}

/// Where a delivery goes and what signs it.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    /// The current secret first, then the rotated-out one while it still signs.
    pub secrets: Vec<Secret>,
}

/// The targets of endpoints `ids`, secrets as valid at `now_us`.
pub fn targets(db: &Db, ids: &[i64], now_us: i64) -> Result<HashMap<i64, Target>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(crate::store::sql::ID_LIST_MAX) {
        let list = IdList::new(1, chunk);
        db.query_each(
            &format!(
                "SELECT id, url, secret, previous_secret, previous_until_us FROM webhook_endpoints \
                 WHERE id IN ({})",
                list.marks
            ),
            &list.params().collect::<Vec<_>>(),
            |r| -> Result<()> {
                let mut secrets = vec![Secret::new(r.get::<String>(2)?)];
                let previous: Option<String> = r.get(3)?;
                let until: Option<i64> = r.get(4)?;
                if let (Some(p), Some(until)) = (previous, until) {
                    if until > now_us {
                        secrets.push(Secret::new(p));
                    }
                }
                out.insert(
                    r.get(0)?,
                    Target {
                        url: r.get(1)?,
                        secrets,
                    },
                );
                Ok(())
            },
        )?;
    }
    Ok(out)
}

/// One delivery to queue.
pub struct NewDelivery {
    pub endpoint_id: i64,
    pub event_type: &'static str,
    pub subject: String,
    pub payload: String,
}

/// The `webhook-id` of a new delivery.
pub fn new_message_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

/// The wait before a delivery's first attempt (`webhook_endpoints.retry_schedule`'s first entry),
/// set from the configuration when a process starts.
static FIRST_WAIT_US: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

pub fn set_first_wait(wait: std::time::Duration) {
    FIRST_WAIT_US.store(
        i64::try_from(wait.as_micros()).unwrap_or(i64::MAX / 4),
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// Queues `rows` (a few multi-row statements for many); how many.
pub fn insert_deliveries(db: &Db, rows: &[NewDelivery], now: DateTime<Utc>) -> Result<usize> {
    const TYPES: [&str; 7] = ["BIGINT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT"];
    let at = now.timestamp_micros();
    let due = at.saturating_add(FIRST_WAIT_US.load(std::sync::atomic::Ordering::Relaxed));
    for run in pow2_runs(rows, 128) {
        let ids: Vec<String> = run.iter().map(|_| new_message_id()).collect();
        let mut p: Vec<&dyn Param> = Vec::with_capacity(run.len() * TYPES.len());
        for (row, id) in run.iter().zip(&ids) {
            p.extend([
                &row.endpoint_id as &dyn Param,
                id,
                &row.event_type,
                &row.subject,
                &row.payload,
                &at,
                &due,
            ]);
        }
        db.execute(
            &format!(
                "INSERT INTO webhook_deliveries (endpoint_id, message_id, event_type, subject, payload, created_us, next_attempt_us) \
                 VALUES {}",
                values(run.len(), &TYPES)
            ),
            &p,
        )?;
    }
    Ok(rows.len())
}

/// A delivery a worker holds.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub endpoint_id: i64,
    pub message_id: String,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: u32,
    pub created_us: i64,
}

/// Claims for `owner`, until `lease_us` from now, at most `limit` due deliveries of enabled
/// endpoints, none of which waits for an earlier one of its subject (still pending, or held).
/// On PostgreSQL rows another node is claiming are skipped, not waited for.
pub fn claim(db: &Db, owner: i64, lease_us: i64, limit: usize) -> Result<Vec<Claimed>> {
    let now_us = db.now_us()?;
    let sql = format!(
        "SELECT d.id FROM webhook_deliveries d \
         WHERE d.state = 'pending' AND d.next_attempt_us <= ?1 \
         AND (d.lease_until_us IS NULL OR d.lease_until_us <= ?1) \
         AND EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = d.endpoint_id AND w.enabled = 1) \
         AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.state = 'pending' \
             AND e.endpoint_id = d.endpoint_id AND e.subject = d.subject AND e.id < d.id) \
         ORDER BY d.next_attempt_us, d.id LIMIT ?2{}",
        if db.is_postgres() {
            " FOR UPDATE OF d SKIP LOCKED"
        } else {
            ""
        }
    );
    let ids: Vec<i64> = db.query_map(&sql, params![now_us, limit as i64], |r| r.get(0))?;
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(crate::store::sql::ID_LIST_MAX) {
        let list = IdList::new(3, chunk);
        let until = now_us.saturating_add(lease_us);
        let mut p: Vec<&dyn Param> = vec![&owner, &until];
        p.extend(list.params());
        out.extend(db.query_map(
            &format!(
                "UPDATE webhook_deliveries SET lease_owner = ?1, lease_until_us = ?2 WHERE id IN ({}) \
                 RETURNING id, endpoint_id, message_id, payload, attempts, created_us",
                list.marks
            ),
            &p,
            |r| {
                Ok(Claimed {
                    id: r.get(0)?,
                    endpoint_id: r.get(1)?,
                    message_id: r.get(2)?,
                    payload: r.get(3)?,
                    attempts: u32::try_from(r.get::<i64>(4)?).unwrap_or(0),
                    created_us: r.get(5)?,
                })
            },
        )?);
    }
    out.sort_by_key(|c| c.id);
    Ok(out)
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Result_ {
    /// A `2xx`.
    Delivered,
    /// Try again at this time (microseconds).
    Retry(i64),
    /// Out of attempts: `failed`, replayable.
    Failed,
    /// `410 Gone`: failed, and the endpoint is disabled.
    Gone,
}

/// One attempt, as the log keeps it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub delivery_id: i64,
    pub endpoint_id: i64,
    pub at_us: i64,
    pub status: Option<u16>,
    pub latency_us: i64,
    /// The first 1 KiB of the answer, or what went wrong.
    pub response: String,
    pub result: Result_,
}

/// Records attempts made by `owner` (one transaction for many); the endpoints disabled by a
/// `410` among them.
pub fn record(db: &Db, owner: i64, attempts: &[Attempt]) -> Result<Vec<i64>> {
    const TYPES: [&str; 5] = ["BIGINT", "BIGINT", "BIGINT", "BIGINT", "TEXT"];
    for run in pow2_runs(attempts, 64) {
        let statuses: Vec<Option<i64>> = run.iter().map(|a| a.status.map(i64::from)).collect();
        let mut p: Vec<&dyn Param> = Vec::with_capacity(run.len() * TYPES.len());
        for (a, status) in run.iter().zip(&statuses) {
            p.extend([
                &a.delivery_id as &dyn Param,
                &a.at_us,
                status,
                &a.latency_us,
                &a.response,
            ]);
        }
        db.execute(
            &format!(
                "INSERT INTO webhook_attempts (delivery_id, at_us, status, latency_us, response) VALUES {}",
                values(run.len(), &TYPES)
            ),
            &p,
        )?;
    }
    let mut gone = Vec::new();
    let mut succeeded: HashMap<i64, i64> = HashMap::new();
    let mut failing: HashMap<i64, i64> = HashMap::new();
    for a in attempts {
        let status = a.status.map(i64::from);
        let error = (a.result != Result_::Delivered).then_some(a.response.as_str());
        let (state, next) = match a.result {
            Result_::Delivered => ("delivered", None),
            Result_::Retry(at) => ("pending", Some(at)),
            Result_::Failed | Result_::Gone => ("failed", None),
        };
        db.execute(
            "UPDATE webhook_deliveries SET state = ?2, attempts = attempts + 1, \
             next_attempt_us = coalesce(?3, next_attempt_us), last_status = ?4, last_error = ?5, \
             finished_us = CASE WHEN ?2 = 'pending' THEN NULL ELSE CAST(?6 AS BIGINT) END, \
             lease_owner = NULL, lease_until_us = NULL WHERE id = ?1 AND lease_owner = ?7",
            params![a.delivery_id, state, next, status, error, a.at_us, owner],
        )?;
        if a.result == Result_::Delivered {
            succeeded.insert(a.endpoint_id, a.at_us);
        } else {
            failing.entry(a.endpoint_id).or_insert(a.at_us);
        }
        if a.result == Result_::Gone && !gone.contains(&a.endpoint_id) {
            gone.push(a.endpoint_id);
        }
    }
    for (id, at) in succeeded {
        db.execute(
            "UPDATE webhook_endpoints SET last_success_us = ?2, failing_since_us = NULL WHERE id = ?1",
            params![id, at],
        )?;
    }
    for (id, at) in failing {
        db.execute(
            "UPDATE webhook_endpoints SET failing_since_us = coalesce(failing_since_us, ?2) \
             WHERE id = ?1 AND (last_success_us IS NULL OR last_success_us < ?2)",
            params![id, at],
        )?;
    }
    let mut disabled = Vec::new();
    for id in gone {
        if disable(db, id, "the endpoint answered 410 Gone")? {
            disabled.push(id);
        }
    }
    Ok(disabled)
}

/// Disables an enabled endpoint, saying why; `false` if it was not enabled.
pub fn disable(db: &Db, id: i64, reason: &str) -> Result<bool> {
    Ok(db.execute(
        "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = ?2 WHERE id = ?1 AND enabled = 1",
        params![id, reason],
    )? == 1)
}

/// Disables every enabled endpoint failing without a success since `before_us`; their ids.
pub fn disable_failing(db: &Db, before_us: i64, reason: &str) -> Result<Vec<i64>> {
    db.query_map(
        "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = ?2 \
         WHERE enabled = 1 AND failing_since_us IS NOT NULL AND failing_since_us <= ?1 RETURNING id",
        params![before_us, reason],
        |r| r.get(0),
    )
}

/// Hands back what `owner` still holds (a stop cut a delivery off): due again at once.
pub fn release(db: &Db, owner: i64, ids: &[i64]) -> Result<()> {
    for chunk in ids.chunks(crate::store::sql::ID_LIST_MAX) {
        let list = IdList::new(2, chunk);
        let mut p: Vec<&dyn Param> = vec![&owner];
        p.extend(list.params());
        db.execute(
            &format!(
                "UPDATE webhook_deliveries SET lease_owner = NULL, lease_until_us = NULL \
                 WHERE lease_owner = ?1 AND state = 'pending' AND id IN ({})",
                list.marks
            ),
            &p,
        )?;
    }
    Ok(())
}

/// Forgets what is older than `keep_days`: finished deliveries (delivered or failed) that
/// finished before then, with their attempts, and any attempt made before then. Pending
/// deliveries stay. How many deliveries and attempts went.
pub fn prune(db: &Db, keep_days: u32, now: DateTime<Utc>) -> Result<(usize, usize)> {
    let before = (now - chrono::Duration::days(i64::from(keep_days))).timestamp_micros();
    let attempts = db.execute(
        "DELETE FROM webhook_attempts WHERE at_us < ?1 OR delivery_id IN \
         (SELECT id FROM webhook_deliveries WHERE state <> 'pending' AND finished_us < ?1)",
        params![before],
    )?;
    let deliveries = db.execute(
        "DELETE FROM webhook_deliveries WHERE state <> 'pending' AND finished_us < ?1",
        params![before],
    )?;
    Ok((deliveries, attempts))
}

/// Deliveries waiting (or being attempted).
pub fn queue_depth(db: &Db) -> Result<i64> {
    db.query_row(
        "SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'",
        params![],
        |r| r.get(0),
    )
}

/// When the next waiting delivery is due (microseconds), if one is.
pub fn next_due(db: &Db) -> Result<Option<i64>> {
    db.query_row(
        "SELECT min(next_attempt_us) FROM webhook_deliveries WHERE state = 'pending'",
        params![],
        |r| r.get(0),
    )
}

mod log;
pub use log::{deliveries, replay, replay_range, AttemptView, DeliveryView};
