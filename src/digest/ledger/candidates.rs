//! Who a plan reads: the confirmed subscribers with no digest still being delivered, as the
//! planner sees them, and the oldest window among them.

use super::{from_us, Result};
use crate::store::{Db, Error};
use crate::subscribers::{Cadence, TimeZone};
use chrono::{DateTime, Utc};

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

/// Which confirmed subscribers a plan reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Candidates {
    /// Everyone (a scheduled or asked-for run; it leaves out the instant ones unless forced).
    All,
    /// The instant subscribers alone, through their own index (the instant trigger).
    Instant,
}

impl Candidates {
    /// The condition on `subscribers s` (on SQLite, the `+` keeps the status index out, so the
    /// instant subscribers' own index is read).
    fn filter(self, db: &Db) -> &'static str {
        match (self, db.is_postgres()) {
            (Candidates::All, _) => "s.status = 'confirmed'",
            (Candidates::Instant, true) => "s.cadence = 'instant' AND s.status = 'confirmed'",
            (Candidates::Instant, false) => "s.cadence = 'instant' AND +s.status = 'confirmed'",
        }
    }
}

/// Calls `f` for each confirmed subscriber (of `which`) with no unfinished delivery (those are
/// finished, not planned again), streaming rows so a million subscribers never sit in memory at
/// once.
pub fn for_each_candidate<E: From<Error>>(
    db: &Db,
    which: Candidates,
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
         FROM subscribers s WHERE {} AND NOT EXISTS \
           (SELECT 1 FROM deliveries d WHERE d.subscriber_id = s.id AND d.state IN ('pending', 'sending')) \
         ORDER BY s.id",
        which.filter(db)
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
    for_each_candidate(db, Candidates::All, |c| {
        if c.id == subscriber {
            found = Some(c);
        }
        Ok::<(), Error>(())
    })?;
    Ok(found)
}

/// The oldest window among the candidates: articles added after it may be new to someone.
pub fn earliest_window(db: &Db, which: Candidates) -> Result<Option<DateTime<Utc>>> {
    db.query_row(
        &format!(
            "SELECT min(coalesce(s.window_start_us, 0)) FROM subscribers s WHERE {}",
            which.filter(db)
        ),
        &[],
        |r| r.get::<Option<i64>>(0),
    )
    .map(|v| v.map(from_us))
}
