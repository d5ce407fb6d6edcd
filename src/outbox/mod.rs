//! The outbox: every single email (confirmation, welcome) is a row here, written in the same
//! transaction as the change that calls for it and before the HTTP answer goes out. A row holds
//! what to send (template, subscriber), never the message or its token: both are made when it is
//! sent (`worker`). A worker claims a row with a lease, so a crash leaves it to be taken over.

pub mod worker;

use crate::params;
use crate::store::{Db, Error};
use chrono::{DateTime, Duration, Utc};

type Result<T, E = Error> = std::result::Result<T, E>;

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
    db: &Db,
    subscriber: i64,
    template: Template,
    now: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> Result<Option<i64>> {
    let moved = db.execute(
        "UPDATE outbox SET expires_us = CASE WHEN expires_us > ?3 THEN expires_us ELSE ?3 END \
         WHERE subscriber_id = ?1 AND template = ?2 AND state = 'queued'",
        params![subscriber, template.as_str(), expires.timestamp_micros()],
    )?;
    if moved > 0 {
        return Ok(None);
    }
    db.query_row(
        "INSERT INTO outbox (subscriber_id, template, state, created_us, expires_us, next_attempt_us) \
         VALUES (?1, ?2, 'queued', ?3, ?4, ?3) RETURNING id",
        params![
            subscriber,
            template.as_str(),
            now.timestamp_micros(),
            expires.timestamp_micros()
        ],
        |r| r.get(0),
    )
    .map(Some)
}

/// A row a worker holds until `lease_until`.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub subscriber_id: i64,
    pub template: Template,
    pub attempts: u32,
    pub lease_until: DateTime<Utc>,
    /// Given at the row's first claim; every attempt sends it again.
    pub message_id: String,
}

/// Claims for instance `owner` the oldest row that is due (or whose claim lapsed), or row
/// `only` if it is due. Times are the database's clock; on PostgreSQL a row another node is
/// claiming is skipped, not waited for. A row claimed for the first time keeps `new_id` as its
/// Message-ID; a retry or a takeover sends the one it already has.
pub fn claim(
    db: &Db,
    owner: i64,
    lease: Duration,
    only: Option<i64>,
    new_id: &dyn Fn() -> String,
) -> Result<Option<Claimed>> {
    let now_us = db.now_us()?;
    let sql = format!(
        "SELECT id, subscriber_id, template, attempts FROM outbox \
         WHERE ((state = 'queued' AND next_attempt_us <= ?1) OR (state = 'sending' AND lease_until_us <= ?1)) \
         AND (CAST(?2 AS BIGINT) IS NULL OR id = ?2) AND expires_us > ?1 \
         ORDER BY next_attempt_us, id LIMIT 1{}",
        if db.is_postgres() { " FOR UPDATE SKIP LOCKED" } else { "" }
    );
    let row: Option<(i64, i64, String, i64)> = db.query_opt(&sql, params![now_us, only], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    let Some((id, subscriber_id, template, attempts)) = row else {
        return Ok(None);
    };
    let lease_until_us = now_us + lease.num_microseconds().unwrap_or(i64::MAX / 4);
    let message_id: String = db.query_row(
        "UPDATE outbox SET state = 'sending', lease_until_us = ?2, lease_owner = ?3, \
         message_id = coalesce(message_id, ?4) WHERE id = ?1 RETURNING message_id",
        params![id, lease_until_us, owner, new_id()],
        |r| r.get(0),
    )?;
    Ok(Some(Claimed {
        id,
        subscriber_id,
        template: Template::parse(&template),
        attempts: u32::try_from(attempts).unwrap_or(0),
        lease_until: DateTime::from_timestamp_micros(lease_until_us).unwrap_or_default(),
        message_id,
    }))
}

/// Whether `owner` still holds row `id` by the database's clock: checked just before the message
/// goes out, so a worker that stalled past its lease does not send what another one took over.
pub fn still_held(db: &Db, id: i64, owner: i64) -> Result<bool> {
    let now_us = db.now_us()?;
    Ok(db
        .query_opt(
            "SELECT id FROM outbox WHERE id = ?1 AND state = 'sending' AND lease_owner = ?2 \
             AND lease_until_us > ?3",
            params![id, owner, now_us],
            |r| r.get::<i64>(0),
        )?
        .is_some())
}

/// A row that expired unsent.
pub struct Expired {
    pub id: i64,
    pub subscriber_id: i64,
    pub template: Template,
    pub last_error: Option<String>,
}

/// Rows that expired unsent: marked dropped, and returned for the record.
pub fn drop_expired(db: &Db, now: DateTime<Utc>) -> Result<Vec<Expired>> {
    db.query_map(
        "UPDATE outbox SET state = 'dropped', finished_us = ?1, lease_until_us = NULL, lease_owner = NULL \
         WHERE state IN ('queued', 'sending') AND expires_us <= ?1 AND (state = 'queued' OR lease_until_us <= ?1) \
         RETURNING id, subscriber_id, template, last_error",
        params![now.timestamp_micros()],
        |r| {
            let template: String = r.get(2)?;
            Ok(Expired {
                id: r.get(0)?,
                subscriber_id: r.get(1)?,
                template: Template::parse(&template),
                last_error: r.get(3)?,
            })
        },
    )
}

/// The claimed row went out. `false` if the claim was lost meanwhile.
pub fn sent(db: &Db, id: i64, owner: i64, message_id: &str, now: DateTime<Utc>) -> Result<bool> {
    Ok(db.execute(
        "UPDATE outbox SET state = 'sent', attempts = attempts + 1, message_id = ?2, finished_us = ?3, \
         lease_until_us = NULL, lease_owner = NULL, last_error = NULL \
         WHERE id = ?1 AND state = 'sending' AND lease_owner = ?4",
        params![id, message_id, now.timestamp_micros(), owner],
    )? == 1)
}

/// A transient failure: try again at `at`.
pub fn retry(db: &Db, id: i64, owner: i64, at: DateTime<Utc>, error: &str) -> Result<bool> {
    Ok(db.execute(
        "UPDATE outbox SET state = 'queued', attempts = attempts + 1, next_attempt_us = ?2, last_error = ?3, \
         lease_until_us = NULL, lease_owner = NULL WHERE id = ?1 AND state = 'sending' AND lease_owner = ?4",
        params![id, at.timestamp_micros(), error, owner],
    )? == 1)
}

/// Finished without being sent: `failed` (refused for good) or `dropped` (no longer wanted).
pub fn finish(
    db: &Db,
    id: i64,
    owner: i64,
    state: &str,
    error: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    Ok(db.execute(
        "UPDATE outbox SET state = ?2, last_error = ?3, finished_us = ?4, lease_until_us = NULL, \
         lease_owner = NULL WHERE id = ?1 AND state = 'sending' AND lease_owner = ?5",
        params![id, state, error, now.timestamp_micros(), owner],
    )? == 1)
}

/// The relay took a message: the ones waiting out a backoff are tried again now.
pub fn hurry(db: &Db, now: DateTime<Utc>) -> Result<usize> {
    db.execute(
        "UPDATE outbox SET next_attempt_us = ?1 WHERE state = 'queued' AND next_attempt_us > ?1",
        params![now.timestamp_micros()],
    )
}

/// How many rows are waiting or being sent.
pub fn depth(db: &Db) -> Result<i64> {
    db.query_row(
        "SELECT (SELECT count(*) FROM outbox WHERE state = 'queued') + \
                (SELECT count(*) FROM outbox WHERE state = 'sending')",
        &[],
        |r| r.get(0),
    )
}

/// When the next row is due (a queued one's next attempt, or a claim's lapse).
pub fn next_due(db: &Db) -> Result<Option<DateTime<Utc>>> {
    let us: Option<i64> = db.query_row(
        "SELECT min(t) FROM (SELECT min(next_attempt_us) AS t FROM outbox WHERE state = 'queued' \
         UNION ALL SELECT min(lease_until_us) FROM outbox WHERE state = 'sending') AS due",
        &[],
        |r| r.get(0),
    )?;
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
pub fn waiting(db: &Db) -> Result<Vec<Waiting>> {
    let time = |us: i64| {
        DateTime::from_timestamp_micros(us)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    db.query_map(
        "SELECT o.id, o.template, s.email, o.state, o.attempts, o.created_us, \
                CASE o.state WHEN 'sending' THEN o.lease_until_us ELSE o.next_attempt_us END, \
                o.expires_us, o.last_error \
         FROM outbox o JOIN subscribers s ON s.id = o.subscriber_id \
         WHERE o.state IN ('queued', 'sending') ORDER BY o.created_us, o.id",
        &[],
        |r| {
            Ok(Waiting {
                id: r.get(0)?,
                template: r.get(1)?,
                email: r.get(2)?,
                state: r.get(3)?,
                attempts: u32::try_from(r.get::<i64>(4)?).unwrap_or(0),
                queued_at: time(r.get(5)?),
                next_attempt_at: time(r.get(6)?),
                expires_at: time(r.get(7)?),
                last_error: r.get(8)?,
            })
        },
    )
}

/// One single email of the outbox, whatever its state, as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Email {
    pub id: i64,
    pub template: String,
    pub email: String,
    /// queued, sending, sent, failed or dropped.
    pub state: String,
    pub attempts: i64,
    pub queued_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub message_id: Option<String>,
}

/// Rows before row `after` (from the newest: `None`), newest first, at most `limit`: the
/// console's list, paged by id, never by offset.
pub fn page(db: &Db, after: Option<i64>, limit: usize) -> Result<Vec<Email>> {
    let time = |us: i64| DateTime::from_timestamp_micros(us).unwrap_or_default();
    db.query_map(
        "SELECT o.id, o.template, s.email, o.state, o.attempts, o.created_us, o.next_attempt_us, \
                o.expires_us, o.finished_us, o.last_error, o.message_id \
         FROM outbox o JOIN subscribers s ON s.id = o.subscriber_id \
         WHERE o.id < ?1 ORDER BY o.id DESC LIMIT ?2",
        params![after.unwrap_or(i64::MAX), limit as i64],
        |r| {
            Ok(Email {
                id: r.get(0)?,
                template: r.get(1)?,
                email: r.get(2)?,
                state: r.get(3)?,
                attempts: r.get(4)?,
                queued_at: time(r.get(5)?),
                next_attempt_at: time(r.get(6)?),
                expires_at: time(r.get(7)?),
                finished_at: r.get::<Option<i64>>(8)?.map(time),
                last_error: r.get(9)?,
                message_id: r.get(10)?,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row, newest first, paged by id.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_outbox_pages_by_id_newest_first() {
        for (s, _dir) in crate::store::tests::both().await {
            let (ids, first, second) = s
                .write(|db| -> Result<_> {
                    let now = Utc::now();
                    let mut ids = Vec::new();
                    for n in 0..3 {
                        let id: i64 = db.query_row(
                            "INSERT INTO subscribers (email, status, cadence, time_zone, created_at) \
                             VALUES (?1, 'pending', 'daily', 'UTC', '2026-01-01T00:00:00Z') RETURNING id",
                            crate::params![format!("p{n}@example.com")],
                            |r| r.get(0),
                        )?;
                        ids.push(enqueue(db, id, Template::Confirmation, now, now + Duration::hours(1))?.expect("queued"));
                    }
                    let first = page(db, None, 2)?;
                    let second = page(db, first.last().map(|r| r.id), 2)?;
                    Ok((ids, first, second))
                })
                .await
                .expect("pages");
            let shown = |p: &[Email]| {
                p.iter()
                    .map(|r| (r.id, r.email.clone(), r.state.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                shown(&first),
                [
                    (ids[2], "p2@example.com".to_string(), "queued".to_string()),
                    (ids[1], "p1@example.com".to_string(), "queued".to_string())
                ]
            );
            assert_eq!(
                shown(&second),
                [(ids[0], "p0@example.com".to_string(), "queued".to_string())]
            );
        }
    }

    fn db() -> (tempfile::TempDir, rusqlite::Connection, i64) {
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
        let conn = Db::Lite(&conn);
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

    fn new_id() -> String {
        crate::mail::new_message_id("t.example")
    }

    #[test]
    fn a_claim_is_exclusive_until_it_lapses_and_then_only_the_new_owner_finishes_it() {
        let (_dir, conn, s) = db();
        let conn = Db::Lite(&conn);
        let now = Utc::now();
        enqueue(&conn, s, Template::Welcome, now, now + Duration::hours(1)).expect("enqueue");
        // A claim that lapsed at once (as if its owner stalled past its lease).
        let first = claim(&conn, 1, Duration::seconds(-1), None, &new_id)
            .expect("claim")
            .expect("due");
        assert!(!still_held(&conn, first.id, 1).expect("held"));
        let second = claim(&conn, 2, Duration::seconds(30), None, &new_id)
            .expect("claim")
            .expect("lapsed claim taken over");
        assert_eq!(second.id, first.id);
        assert_eq!(
            second.message_id, first.message_id,
            "the first claim's id, kept"
        );
        assert!(claim(&conn, 3, Duration::seconds(30), None, &new_id)
            .expect("claim")
            .is_none());
        assert!(still_held(&conn, second.id, 2).expect("held"));
        assert!(
            !sent(&conn, first.id, 1, "<late@x>", now).expect("sent"),
            "the old owner"
        );
        assert!(sent(&conn, second.id, 2, "<m@x>", now).expect("sent"));
    }

    #[test]
    fn an_expired_row_is_dropped_not_claimed() {
        let (_dir, conn, s) = db();
        let conn = Db::Lite(&conn);
        let now = Utc::now();
        enqueue(
            &conn,
            s,
            Template::Confirmation,
            now - Duration::seconds(2),
            now - Duration::seconds(1),
        )
        .expect("enqueue");
        assert!(claim(&conn, 1, Duration::seconds(30), None, &new_id)
            .expect("claim")
            .is_none());
        let dropped = drop_expired(&conn, now).expect("drop");
        assert_eq!(dropped.len(), 1);
        assert_eq!(depth(&conn).expect("depth"), 0);
    }
}
