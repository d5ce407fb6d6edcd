//! The outbox: every single email (confirmation, welcome) is a row here, written in the same
//! transaction as the change that calls for it and before the HTTP answer goes out. A row holds
//! what to send (template, subscriber), never the message or its token: both are made when it is
//! sent (`worker`). A worker claims a row with a lease, so a crash leaves it to be taken over.

pub mod worker;

use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, Connection, OptionalExtension};

/// The single emails there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    Confirmation,
    Welcome,
}

impl Template {
    pub fn as_str(self) -> &'static str {
        match self {
            Template::Confirmation => "confirmation",
            Template::Welcome => "welcome",
        }
    }

    fn parse(s: &str) -> Template {
        match s {
            "welcome" => Template::Welcome,
            _ => Template::Confirmation,
        }
    }
}

/// How long a welcome email may wait for the relay before it is dropped. A confirmation waits
/// as long as its link would be valid (`subscribers.confirm_ttl_hours`).
pub const WELCOME_TTL: Duration = Duration::days(3);

/// Queues `template` for a subscriber. A confirmation that is still waiting is not queued twice
/// (its expiry moves on instead); `None` then.
pub fn enqueue(
    conn: &Connection,
    subscriber: i64,
    template: Template,
    now: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> rusqlite::Result<Option<i64>> {
    let moved = conn
        .prepare_cached(
            "UPDATE outbox SET expires_us = max(expires_us, ?3) \
             WHERE subscriber_id = ?1 AND template = ?2 AND state = 'queued'",
        )?
        .execute(params![
            subscriber,
            template.as_str(),
            expires.timestamp_micros()
        ])?;
    if moved > 0 {
        return Ok(None);
    }
    conn.prepare_cached(
        "INSERT INTO outbox (subscriber_id, template, state, created_us, expires_us, next_attempt_us) \
         VALUES (?1, ?2, 'queued', ?3, ?4, ?3)",
    )?
    .execute(params![
        subscriber,
        template.as_str(),
        now.timestamp_micros(),
        expires.timestamp_micros()
    ])?;
    Ok(Some(conn.last_insert_rowid()))
}

/// A row a worker holds until `lease_until`.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub subscriber_id: i64,
    pub template: Template,
    pub attempts: u32,
    pub lease_until: DateTime<Utc>,
}

/// Claims the oldest row that is due (or whose claim lapsed), or row `only` if it is due.
pub fn claim(
    conn: &Connection,
    now: DateTime<Utc>,
    lease: Duration,
    only: Option<i64>,
) -> rusqlite::Result<Option<Claimed>> {
    let now_us = now.timestamp_micros();
    let row: Option<(i64, i64, String, u32)> = conn
        .prepare_cached(
            "SELECT id, subscriber_id, template, attempts FROM outbox \
             WHERE ((state = 'queued' AND next_attempt_us <= ?1) OR (state = 'sending' AND lease_until_us <= ?1)) \
             AND (?2 IS NULL OR id = ?2) AND expires_us > ?1 \
             ORDER BY next_attempt_us, id LIMIT 1",
        )?
        .query_row(params![now_us, only], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((id, subscriber_id, template, attempts)) = row else {
        return Ok(None);
    };
    let lease_until = now + lease;
    conn.prepare_cached("UPDATE outbox SET state = 'sending', lease_until_us = ?2 WHERE id = ?1")?
        .execute(params![id, lease_until.timestamp_micros()])?;
    Ok(Some(Claimed {
        id,
        subscriber_id,
        template: Template::parse(&template),
        attempts,
        lease_until,
    }))
}

/// A row that expired unsent.
pub struct Expired {
    pub id: i64,
    pub subscriber_id: i64,
    pub template: Template,
    pub last_error: Option<String>,
}

/// Rows that expired unsent: marked dropped, and returned for the record.
pub fn drop_expired(conn: &Connection, now: DateTime<Utc>) -> rusqlite::Result<Vec<Expired>> {
    let now_us = now.timestamp_micros();
    let mut stmt = conn.prepare_cached(
        "UPDATE outbox SET state = 'dropped', finished_us = ?1, lease_until_us = NULL \
         WHERE state IN ('queued', 'sending') AND expires_us <= ?1 AND (state = 'queued' OR lease_until_us <= ?1) \
         RETURNING id, subscriber_id, template, last_error",
    )?;
    let rows = stmt.query_map([now_us], |r| {
        let template: String = r.get(2)?;
        Ok(Expired {
            id: r.get(0)?,
            subscriber_id: r.get(1)?,
            template: Template::parse(&template),
            last_error: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// The claimed row went out. `false` if the claim was lost meanwhile.
pub fn sent(
    conn: &Connection,
    id: i64,
    message_id: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE outbox SET state = 'sent', attempts = attempts + 1, message_id = ?2, finished_us = ?3, \
             lease_until_us = NULL, last_error = NULL WHERE id = ?1 AND state = 'sending'",
        )?
        .execute(params![id, message_id, now.timestamp_micros()])?
        == 1)
}

/// A transient failure: try again at `at`.
pub fn retry(conn: &Connection, id: i64, at: DateTime<Utc>, error: &str) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE outbox SET state = 'queued', attempts = attempts + 1, next_attempt_us = ?2, last_error = ?3, \
             lease_until_us = NULL WHERE id = ?1 AND state = 'sending'",
        )?
        .execute(params![id, at.timestamp_micros(), error])?
        == 1)
}

/// Finished without being sent: `failed` (refused for good) or `dropped` (no longer wanted).
pub fn finish(
    conn: &Connection,
    id: i64,
    state: &str,
    error: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE outbox SET state = ?2, last_error = ?3, finished_us = ?4, lease_until_us = NULL \
             WHERE id = ?1 AND state = 'sending'",
        )?
        .execute(params![id, state, error, now.timestamp_micros()])?
        == 1)
}

/// The relay took a message: the ones waiting out a backoff are tried again now.
pub fn hurry(conn: &Connection, now: DateTime<Utc>) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE outbox SET next_attempt_us = ?1 WHERE state = 'queued' AND next_attempt_us > ?1",
    )?
    .execute([now.timestamp_micros()])
}

/// How many rows are waiting or being sent.
pub fn depth(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT (SELECT count(*) FROM outbox WHERE state = 'queued') + \
                (SELECT count(*) FROM outbox WHERE state = 'sending')",
    )?
    .query_row([], |r| r.get(0))
}

/// When the next row is due (a queued one's next attempt, or a claim's lapse).
pub fn next_due(conn: &Connection) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let us: Option<i64> = conn
        .prepare_cached(
            "SELECT min(t) FROM (SELECT min(next_attempt_us) AS t FROM outbox WHERE state = 'queued' \
             UNION ALL SELECT min(lease_until_us) FROM outbox WHERE state = 'sending')",
        )?
        .query_row([], |r| r.get(0))?;
    Ok(us.and_then(DateTime::from_timestamp_micros))
}

/// One waiting row, as `tidings mail queue` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Waiting {
    pub id: i64,
    pub template: String,
    pub email: String,
    pub state: String,
    pub attempts: u32,
    pub queued_at: String,
    pub next_attempt_at: String,
    pub expires_at: String,
    pub last_error: Option<String>,
}

/// Everything waiting or being sent, oldest first.
pub fn waiting(conn: &Connection) -> rusqlite::Result<Vec<Waiting>> {
    let time = |us: i64| {
        DateTime::from_timestamp_micros(us)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let mut stmt = conn.prepare(
        "SELECT o.id, o.template, s.email, o.state, o.attempts, o.created_us, \
                CASE o.state WHEN 'sending' THEN o.lease_until_us ELSE o.next_attempt_us END, \
                o.expires_us, o.last_error \
         FROM outbox o JOIN subscribers s ON s.id = o.subscriber_id \
         WHERE o.state IN ('queued', 'sending') ORDER BY o.created_us, o.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Waiting {
            id: r.get(0)?,
            template: r.get(1)?,
            email: r.get(2)?,
            state: r.get(3)?,
            attempts: r.get(4)?,
            queued_at: time(r.get(5)?),
            next_attempt_at: time(r.get(6)?),
            expires_at: time(r.get(7)?),
            last_error: r.get(8)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection, i64) {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::db::open(&dir.path().join("t.db")).expect("db");
        conn.execute(
            "INSERT INTO subscribers (email, status, cadence, time_zone, created_at) \
             VALUES ('a@example.com', 'pending', 'daily', 'UTC', '2026-01-01T00:00:00Z')",
            [],
        )
        .expect("subscriber");
        let id = conn.last_insert_rowid();
        (dir, conn, id)
    }

    #[test]
    fn a_waiting_confirmation_is_not_queued_twice() {
        let (_dir, conn, s) = db();
        let now = Utc::now();
        let first = enqueue(
            &conn,
            s,
            Template::Confirmation,
            now,
            now + Duration::hours(1),
        );
        assert!(first.expect("enqueue").is_some());
        let again = enqueue(
            &conn,
            s,
            Template::Confirmation,
            now,
            now + Duration::hours(2),
        );
        assert_eq!(again.expect("enqueue"), None);
        assert_eq!(depth(&conn).expect("depth"), 1);
    }

    #[test]
    fn a_claim_is_exclusive_until_it_lapses() {
        let (_dir, conn, s) = db();
        let now = Utc::now();
        enqueue(&conn, s, Template::Welcome, now, now + Duration::hours(1)).expect("enqueue");
        let lease = Duration::seconds(30);
        let held = claim(&conn, now, lease, None).expect("claim");
        assert!(held.is_some());
        assert!(claim(&conn, now, lease, None).expect("claim").is_none());
        let later = now + Duration::seconds(31);
        assert!(claim(&conn, later, lease, None).expect("claim").is_some());
    }

    #[test]
    fn an_expired_row_is_dropped_not_claimed() {
        let (_dir, conn, s) = db();
        let now = Utc::now();
        enqueue(
            &conn,
            s,
            Template::Confirmation,
            now,
            now + Duration::seconds(1),
        )
        .expect("enqueue");
        let later = now + Duration::seconds(2);
        assert!(claim(&conn, later, Duration::seconds(30), None)
            .expect("claim")
            .is_none());
        let dropped = drop_expired(&conn, later).expect("drop");
        assert_eq!(dropped.len(), 1);
        assert_eq!(depth(&conn).expect("depth"), 0);
    }
}
