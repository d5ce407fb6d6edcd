//! The audience tables' SQL (`audience_keys`, `audience_uniques`, `audience_days`,
//! `audience_reported`): the daily keys, a node's flush, folding finished days, and the reads
//! the report is built from. Days are whole days since 1970-01-01 (UTC).

use std::collections::{HashMap, HashSet};

use rand::RngCore;

use super::{Batch, Latest, ReportKey, Unique};
use crate::params;
use crate::store::{Db, Error};

/// Distinct (service, feed id) counts kept per feed and day: more are dropped (a forger
/// inventing services cannot grow the table without bound). The first come keep their place.
pub const REPORTS_PER_FEED_DAY: usize = 64;

/// How long daily figures are kept.
pub const KEEP_DAYS: i64 = 400;

/// The keys of `today` and tomorrow (so a node crosses midnight without waiting for a flush).
#[derive(Clone, Default)]
pub struct DayKeys {
    keys: Vec<(i64, [u8; 32])>,
}

impl DayKeys {
    #[cfg(test)]
    pub fn for_tests(keys: &[(i64, [u8; 32])]) -> DayKeys {
        DayKeys {
            keys: keys.to_vec(),
        }
    }

    pub fn for_day(&self, day: i64) -> Option<&[u8; 32]> {
        self.keys.iter().find(|(d, _)| *d == day).map(|(_, k)| k)
    }
}

/// Makes (first node to ask) and reads the keys of `today` and tomorrow, and deletes the keys of
/// days that are over.
pub fn keys(db: &Db, today: i64) -> Result<DayKeys, Error> {
    for day in [today, today + 1] {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        db.execute(
            "INSERT INTO audience_keys (day, key) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            params![day, key],
        )?;
    }
    db.execute("DELETE FROM audience_keys WHERE day < ?1", params![today])?;
    let keys = db.query_map(
        "SELECT day, key FROM audience_keys WHERE day >= ?1 AND day <= ?2",
        params![today, today + 1],
        |r| {
            let key: Vec<u8> = r.get(1)?;
            let key = <[u8; 32]>::try_from(key).map_err(|_| Error::Column {
                index: 1,
                message: "an audience key is not 32 bytes".into(),
            })?;
            Ok((r.get::<i64>(0)?, key))
        },
    )?;
    Ok(DayKeys { keys })
}

/// What one flush wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    pub uniques: usize,
    pub reports: usize,
    /// Reports not kept: their feed already had `REPORTS_PER_FEED_DAY` others that day.
    pub reports_dropped: usize,
}

/// Rows per multi-row insert of uniques.
const UNIQUE_ROWS: usize = 64;

/// Writes a node's counts, folds days that are over and prunes old ones, in one transaction
/// (under a lock, so nodes take turns).
pub fn flush(db: &Db, batch: &Batch, today: i64) -> Result<Flushed, Error> {
    db.lock("audience")?;
    let mut flushed = Flushed::default();
    let full = multi_insert(UNIQUE_ROWS);
    let one = multi_insert(1);
    for (feed, set) in &batch.uniques {
        // Uniques of days already folded (before yesterday) would be counted twice.
        let kept: Vec<&Unique> = set.iter().filter(|u| u.day >= today - 1).collect();
        let mut chunks = kept.chunks_exact(UNIQUE_ROWS);
        for chunk in chunks.by_ref() {
            let mut params: Vec<&dyn crate::store::Param> = Vec::with_capacity(UNIQUE_ROWS * 3);
            for u in chunk {
                params.extend([&u.day as &dyn crate::store::Param, feed, &u.hash]);
            }
            db.execute(&full, &params)?;
        }
        for u in chunks.remainder() {
            db.execute(&one, params![u.day, feed, u.hash])?;
        }
        flushed.uniques += kept.len();
    }
    for ((day, feed), n) in &batch.overflow {
        db.execute(
            "INSERT INTO audience_days (day, feed, uniques, overflow) VALUES (?1, ?2, 0, ?3) \
             ON CONFLICT (day, feed) DO UPDATE SET overflow = audience_days.overflow + excluded.overflow",
            params![day, feed, n],
        )?;
    }
    let mut by_feed: HashMap<(i64, &str), Vec<(&ReportKey, &Latest)>> = HashMap::new();
    for (key, latest) in &batch.reports {
        by_feed
            .entry((key.day, &key.feed))
            .or_default()
            .push((key, latest));
    }
    for ((day, feed), mut reports) in by_feed {
        // Past the cap, genuine counts of services known by name are kept before others.
        reports.sort_by_key(|(k, _)| {
            (
                k.suspect,
                !super::agent::is_known_service(&k.service),
                &k.service,
                &k.feed_id,
            )
        });
        let mut known: HashSet<(String, String, bool)> = db
            .query_map(
                "SELECT service, feed_id, suspect FROM audience_reported WHERE day = ?1 AND feed = ?2",
                params![day, feed],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?
            .into_iter()
            .collect();
        for (key, latest) in reports {
            let id = (
                key.service.to_string(),
                key.feed_id.to_string(),
                key.suspect,
            );
            if !known.contains(&id) {
                if known.len() >= REPORTS_PER_FEED_DAY {
                    flushed.reports_dropped += 1;
                    continue;
                }
                known.insert(id);
            }
            db.execute(
                "INSERT INTO audience_reported (day, feed, service, feed_id, suspect, subscribers, seen_us) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (day, feed, service, feed_id, suspect) DO UPDATE \
                 SET subscribers = excluded.subscribers, seen_us = excluded.seen_us \
                 WHERE excluded.seen_us >= audience_reported.seen_us",
                params![
                    day,
                    feed,
                    key.service,
                    key.feed_id,
                    key.suspect,
                    latest.subscribers,
                    latest.seen_us
                ],
            )?;
            flushed.reports += 1;
        }
    }
    fold(db, today)?;
    for table in ["audience_days", "audience_reported"] {
        db.execute(
            &format!("DELETE FROM {table} WHERE day < ?1"),
            params![today - KEEP_DAYS],
        )?;
    }
    Ok(flushed)
}

/// `INSERT … VALUES (?1, ?2, ?3), …` for `rows` uniques, duplicates ignored.
fn multi_insert(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|i| format!("(?{}, ?{}, ?{})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
        .collect();
    format!(
        "INSERT INTO audience_uniques (day, feed, hash) VALUES {} ON CONFLICT DO NOTHING",
        values.join(", ")
    )
}

/// Counts the hashes of days before yesterday into `audience_days.uniques` and deletes them:
/// no node adds to those days any more, and the hashes are no use once their key is gone.
pub fn fold(db: &Db, today: i64) -> Result<(), Error> {
    db.execute(
        "INSERT INTO audience_days (day, feed, uniques, overflow) \
         SELECT day, feed, COUNT(*), 0 FROM audience_uniques WHERE day < ?1 GROUP BY day, feed \
         ON CONFLICT (day, feed) DO UPDATE SET uniques = audience_days.uniques + excluded.uniques",
        params![today - 1],
    )?;
    db.execute(
        "DELETE FROM audience_uniques WHERE day < ?1",
        params![today - 1],
    )?;
    Ok(())
}

/// The first day anything was counted, if any.
pub fn first_day(db: &Db) -> Result<Option<i64>, Error> {
    db.query_row(
        "SELECT MIN(day) FROM (\
            SELECT MIN(day) AS day FROM audience_days \
            UNION ALL SELECT MIN(day) FROM audience_uniques \
            UNION ALL SELECT MIN(day) FROM audience_reported) AS firsts",
        params![],
        |r| r.get(0),
    )
}

/// Readers told apart on one day for one feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRow {
    pub feed: String,
    pub day: i64,
    pub uniques: u64,
    pub overflow: u64,
}

/// Uniques (folded and still hashed) and overflow per feed and day, from `from` on.
pub fn day_rows(db: &Db, from: i64) -> Result<Vec<DayRow>, Error> {
    let row = |r: &crate::store::Row| {
        Ok(DayRow {
            feed: r.get(0)?,
            day: r.get(1)?,
            uniques: r.get::<i64>(2)?.max(0) as u64,
            overflow: r.get::<i64>(3)?.max(0) as u64,
        })
    };
    let mut rows = db.query_map(
        "SELECT feed, day, uniques, overflow FROM audience_days WHERE day >= ?1",
        params![from],
        row,
    )?;
    rows.extend(db.query_map(
        "SELECT feed, day, COUNT(*), 0 FROM audience_uniques WHERE day >= ?1 GROUP BY feed, day",
        params![from],
        row,
    )?);
    Ok(rows)
}

/// One stored report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    pub feed: String,
    pub day: i64,
    pub service: String,
    pub feed_id: String,
    pub suspect: bool,
    pub subscribers: u64,
}

/// The reports from `from` on.
pub fn report_rows(db: &Db, from: i64) -> Result<Vec<ReportRow>, Error> {
    db.query_map(
        "SELECT feed, day, service, feed_id, suspect, subscribers FROM audience_reported WHERE day >= ?1",
        params![from],
        |r| {
            Ok(ReportRow {
                feed: r.get(0)?,
                day: r.get(1)?,
                service: r.get(2)?,
                feed_id: r.get(3)?,
                suspect: r.get(4)?,
                subscribers: r.get::<i64>(5)?.max(0) as u64,
            })
        },
    )
}
