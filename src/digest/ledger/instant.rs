//! The instant runs: every instant send of one UTC day goes into one run, made by the day's
//! first instant plan and reopened by the later ones, so run lists and `digest.run.finished`
//! events count days, not emails. Once its day is over and nothing of it waits to be sent, the
//! run is closed, once, and its one `digest.run.finished` goes out then.

use super::{fold_sent, Result};
use crate::params;
use crate::store::Db;
use chrono::{DateTime, Utc};

const DAY_US: i64 = 86_400_000_000;

/// The UTC day of `at`, as days since 1970-01-01.
pub fn day_of(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros().div_euclid(DAY_US)
}

/// The first moment of UTC day `day`.
pub fn day_start(day: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(day.saturating_mul(DAY_US)).unwrap_or_default()
}

/// The run of UTC day `day`, made now if no instant plan of the day made it yet. The caller
/// holds the plan lock, so two nodes never make two.
pub fn day_run(db: &Db, day: i64, now: DateTime<Utc>) -> Result<i64> {
    if let Some(id) = db.query_opt(
        "SELECT id FROM digest_runs WHERE instant_day = ?1",
        params![day],
        |r| r.get(0),
    )? {
        return Ok(id);
    }
    db.query_row(
        "INSERT INTO digest_runs (now_us, manual, subject, html, deliveries, instant_day) \
         VALUES (?1, 0, '', '', 0, ?2) RETURNING id",
        params![now.timestamp_micros(), day],
        |r| r.get(0),
    )
}

/// The instant runs of days before `today` that are not closed yet, oldest first.
pub fn unclosed_before(db: &Db, today: i64) -> Result<Vec<i64>> {
    db.query_map(
        "SELECT id FROM digest_runs WHERE instant_day < ?1 AND instant_closed_us IS NULL ORDER BY id",
        params![today],
        |r| r.get(0),
    )
}

/// Closes run `run` if nothing of it waits to be sent (pending, sending, or paused); whether
/// this call closed it (a run closes once, whoever asks).
pub fn close_if_settled(db: &Db, run: i64, now: DateTime<Utc>) -> Result<bool> {
    // A digest logged as sent before a crash is `sent`, not waiting.
    fold_sent(db)?;
    let open: i64 = db.query_row(
        "SELECT count(*) FROM deliveries WHERE run_id = ?1 AND state IN ('pending', 'sending')",
        params![run],
        |r| r.get(0),
    )?;
    if open > 0 {
        return Ok(false);
    }
    Ok(db.execute(
        "UPDATE digest_runs SET instant_closed_us = ?2 WHERE id = ?1 AND instant_closed_us IS NULL",
        params![run, now.timestamp_micros()],
    )? == 1)
}

#[cfg(test)]
mod tests;
