//! What happened to a subscriber and their mail, on record: subscribing and confirming, bounces,
//! complaints, unsubscribes (with where they came from, and the digest delivery when a digest's
//! link was used), suppressions, single emails dropped or given up, reports that were ignored.
//! Rows are keyed by the lower-cased address, so the history outlives `subscriber remove`.
//! Rows rebuilt from the subscribers' timestamps at the upgrade that began this history are
//! marked `approximate` (migration 010 / V5).

use crate::params;
use crate::store::{Db, Error};
use chrono::{DateTime, Utc};

type Result<T, E = Error> = std::result::Result<T, E>;

/// A day in microseconds: the history counts by UTC day.
const DAY_US: i64 = 86_400_000_000;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Someone asked to get digests (again): `source` says where (`form`, `api`, `csv`, `cli`).
    Subscribed,
    /// They became confirmed: through the confirmation `link`, or added as confirmed by `api`,
    /// `csv` or `cli`.
    Confirmed,
    /// A delivery came back: `detail` says hard, soft or other, and the status.
    Bounce,
    Complaint,
    Unsubscribe,
    /// The address went on the suppression list.
    Suppressed,
    /// An admin took it off again.
    Lifted,
    /// A queued single email expired before it could be sent.
    Dropped,
    /// A single email the server refused for good, or that ran out of time.
    Failed,
    /// A message about this subscriber that changed nothing (an auto-reply, a forged token).
    Ignored,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Subscribed => "subscribed",
            Kind::Confirmed => "confirmed",
            Kind::Bounce => "bounce",
            Kind::Complaint => "complaint",
            Kind::Unsubscribe => "unsubscribe",
            Kind::Suppressed => "suppressed",
            Kind::Lifted => "lifted",
            Kind::Dropped => "dropped",
            Kind::Failed => "failed",
            Kind::Ignored => "ignored",
        }
    }

    /// The kind stored as `s`.
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "subscribed" => Kind::Subscribed,
            "confirmed" => Kind::Confirmed,
            "bounce" => Kind::Bounce,
            "complaint" => Kind::Complaint,
            "unsubscribe" => Kind::Unsubscribe,
            "suppressed" => Kind::Suppressed,
            "lifted" => Kind::Lifted,
            "dropped" => Kind::Dropped,
            "failed" => Kind::Failed,
            "ignored" => Kind::Ignored,
            _ => return None,
        })
    }
}

impl serde::Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One event to record. `source` says where it came from: `form` (the subscribe page), `api`,
/// `csv`, `cli` (an admin adding subscribers), `link` (the confirmation link, the unsubscribe
/// page), `one_click` (RFC 8058 POST), `mailto`, `dsn`, `arf`, `smtp` (the reply at send time),
/// `webhook:<provider>`, `admin`, `outbox`; `unknown` in rows rebuilt at the upgrade.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub email: &'a str,
    pub subscriber_id: Option<i64>,
    pub kind: Kind,
    /// For a bounce: `hard`, `soft`, `policy` or `other`.
    pub bounce: Option<&'static str>,
    pub source: &'a str,
    pub detail: Option<String>,
    pub delivery_id: Option<i64>,
    pub outbox_id: Option<i64>,
    pub inbound_id: Option<i64>,
}

impl<'a> NewEvent<'a> {
    pub fn new(email: &'a str, kind: Kind, source: &'a str) -> NewEvent<'a> {
        NewEvent {
            email,
            subscriber_id: None,
            kind,
            bounce: None,
            source,
            detail: None,
            delivery_id: None,
            outbox_id: None,
            inbound_id: None,
        }
    }

    pub fn subscriber(mut self, id: i64) -> Self {
        self.subscriber_id = Some(id);
        self
    }

    pub fn bounce(mut self, kind: &'static str) -> Self {
        self.bounce = Some(kind);
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The digest delivery it is about (a bounce of it, an unsubscribe through its link).
    pub fn delivery(mut self, delivery: Option<i64>) -> Self {
        self.delivery_id = delivery;
        self
    }
}

/// Records `e` as happening at `now`, in the caller's transaction, and counts it for its day;
/// the new row's id.
pub fn record(db: &Db, e: &NewEvent<'_>, now: DateTime<Utc>) -> Result<i64> {
    count(db, e.kind.as_str(), 1, now)?;
    // Endpoints hear of it in this transaction (nothing is queued when there are none).
    crate::webhook_endpoints::events::subscriber_events(db, std::slice::from_ref(e), now)?;
    db.query_row(
        "INSERT INTO events (at_us, email, subscriber_id, kind, bounce, source, detail, delivery_id, outbox_id, inbound_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id",
        params![
        now.timestamp_micros(),
        e.email.to_lowercase(),
        e.subscriber_id,
        e.kind.as_str(),
        e.bounce,
        e.source,
        e.detail,
        e.delivery_id,
        e.outbox_id,
        e.inbound_id,
        ],
        |r| r.get(0),
    )
}

/// The counter of the confirmed total's net change per day (`daily_counts`).
const CONFIRMED_TOTAL: &str = "confirmed_total";

/// The number of confirmed subscribers changed by `delta` (+1, -1) at `now`: subscribers::store
/// calls this with every move into or out of `confirmed`, so `daily` can draw the total.
pub fn confirmed_total_changed(db: &Db, delta: i64, now: DateTime<Utc>) -> Result<()> {
    count(db, CONFIRMED_TOTAL, delta, now)
}

/// Adds `n` to `counter` for the UTC day of `now`, in this writer's own row (see migration 010:
/// on PostgreSQL, each connection's, so concurrent transactions never wait on one row).
fn count(db: &Db, counter: &str, n: i64, now: DateTime<Utc>) -> Result<()> {
    let sql = if db.is_postgres() {
        "INSERT INTO daily_counts (counter, day, shard, n) VALUES (?1, ?2, pg_backend_pid(), ?3) \
         ON CONFLICT (counter, day, shard) DO UPDATE SET n = daily_counts.n + excluded.n"
    } else {
        "INSERT INTO daily_counts (counter, day, shard, n) VALUES (?1, ?2, 0, ?3) \
         ON CONFLICT (counter, day, shard) DO UPDATE SET n = daily_counts.n + excluded.n"
    };
    db.execute(
        sql,
        params![counter, now.timestamp_micros().div_euclid(DAY_US), n],
    )?;
    Ok(())
}

/// Records many events at once, as `record` does each, in a few multi-row statements (a bulk
/// action records one per subscriber it changed); how many.
pub fn record_many(db: &Db, events: &[NewEvent<'_>], now: DateTime<Utc>) -> Result<usize> {
    const TYPES: [&str; 10] = [
        "BIGINT", "TEXT", "BIGINT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT", "BIGINT",
    ];
    let at = now.timestamp_micros();
    for run in crate::store::sql::pow2_runs(events, 256) {
        let emails: Vec<String> = run.iter().map(|e| e.email.to_lowercase()).collect();
        let kinds: Vec<&str> = run.iter().map(|e| e.kind.as_str()).collect();
        let mut params: Vec<&dyn crate::store::Param> = Vec::with_capacity(run.len() * 10);
        for ((e, email), kind) in run.iter().zip(&emails).zip(&kinds) {
            params.extend([
                &at as &dyn crate::store::Param,
                email,
                &e.subscriber_id,
                kind,
                &e.bounce,
                &e.source,
                &e.detail,
                &e.delivery_id,
                &e.outbox_id,
                &e.inbound_id,
            ]);
        }
        db.execute(
            &format!(
                "INSERT INTO events (at_us, email, subscriber_id, kind, bounce, source, detail, delivery_id, outbox_id, inbound_id) \
                 VALUES {}",
                crate::store::sql::values(run.len(), &TYPES)
            ),
            &params,
        )?;
    }
    crate::webhook_endpoints::events::subscriber_events(db, events, now)?;
    // Counted for their day, as `record` counts each.
    let mut per_kind: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for e in events {
        *per_kind.entry(e.kind.as_str()).or_default() += 1;
    }
    for (kind, n) in per_kind {
        count(db, kind, n, now)?;
    }
    Ok(events.len())
}

/// An event as the API and `subscriber show` give it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Event)]
pub struct EventView {
    pub at: String,
    pub kind: String,
    pub bounce: Option<String>,
    pub source: String,
    pub detail: Option<String>,
    pub delivery_id: Option<i64>,
    pub outbox_id: Option<i64>,
    pub inbound_id: Option<i64>,
    /// Rebuilt at the upgrade from a timestamp the subscriber's row kept: the time is that of the
    /// last such change, and the source is `unknown`.
    pub approximate: bool,
}

/// Every event about `email` (any case), oldest first.
pub fn for_email(db: &Db, email: &str) -> Result<Vec<EventView>> {
    db.query_map(
        "SELECT at_us, kind, bounce, source, detail, delivery_id, outbox_id, inbound_id, approximate FROM events \
         WHERE email = ?1 ORDER BY at_us, id",
        params![email.to_lowercase()],
        |r| {
        let at: i64 = r.get(0)?;
        Ok(EventView {
            at: DateTime::from_timestamp_micros(at)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            kind: r.get(1)?,
            bounce: r.get(2)?,
            source: r.get(3)?,
            detail: r.get(4)?,
            delivery_id: r.get(5)?,
            outbox_id: r.get(6)?,
            inbound_id: r.get(7)?,
            approximate: r.get(8)?,
        })
        },
    )
}

/// A bounce, complaint or unsubscribe that names a digest delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AboutDelivery {
    pub delivery_id: i64,
    pub kind: Kind,
    pub source: String,
}

/// Every bounce, complaint and unsubscribe that names a delivery with an id from `first` to
/// `last` (a run's, or several runs'), through the index of events by delivery.
pub fn about_deliveries(db: &Db, first: i64, last: i64) -> Result<Vec<AboutDelivery>> {
    let rows: Vec<(i64, String, String)> = db.query_map(
        "SELECT delivery_id, kind, source FROM events WHERE delivery_id IS NOT NULL \
         AND delivery_id BETWEEN ?1 AND ?2 AND kind IN ('bounce', 'complaint', 'unsubscribe')",
        params![first, last],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|(delivery_id, kind, source)| {
            Some(AboutDelivery {
                delivery_id,
                kind: Kind::parse(&kind)?,
                source,
            })
        })
        .collect())
}

/// One UTC day of the list's history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Day {
    pub date: chrono::NaiveDate,
    /// Subscribers who became confirmed that day (through their link, or added as confirmed).
    pub confirmations: i64,
    pub unsubscribes: i64,
    /// Bounces on record (each report, soft ones too).
    pub bounces: i64,
    pub complaints: i64,
    /// Confirmed subscribers at the end of the day (for today: now).
    pub confirmed: i64,
}

/// The `days` UTC days up to the one holding `now`, oldest first: each day's confirmations,
/// unsubscribes, bounces and complaints, and the confirmed total at its end. Read from the
/// per-day counters, a few rows per day whatever the size of the list.
pub fn daily(db: &Db, days: u32, now: DateTime<Utc>) -> Result<Vec<Day>> {
    use std::collections::HashMap;
    let days = i64::from(days.clamp(1, 3660));
    let today = now.timestamp_micros().div_euclid(DAY_US);
    let first = today - days + 1;
    let mut counts: HashMap<(String, i64), i64> = HashMap::new();
    db.query_each(
        "SELECT counter, day, CAST(sum(n) AS BIGINT) FROM daily_counts \
         WHERE counter IN ('confirmed', 'unsubscribe', 'bounce', 'complaint') AND day >= ?1 \
         GROUP BY counter, day",
        params![first],
        |r| -> Result<()> {
            counts.insert((r.get(0)?, r.get(1)?), r.get(2)?);
            Ok(())
        },
    )?;
    // The total is every change up to the day's end; today's takes any change dated later (a
    // clock set back since) too.
    let changes: Vec<(i64, i64)> = db.query_map(
        "SELECT day, CAST(sum(n) AS BIGINT) FROM daily_counts WHERE counter = ?1 GROUP BY day",
        params![CONFIRMED_TOTAL],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut confirmed: i64 = changes
        .iter()
        .filter(|(day, _)| *day < first)
        .map(|(_, n)| n)
        .sum();
    let on: HashMap<i64, i64> = changes.into_iter().collect();
    let count = |kind: &str, day: i64| counts.get(&(kind.to_string(), day)).copied().unwrap_or(0);
    let mut out = Vec::with_capacity(days as usize);
    for day in first..=today {
        confirmed += if day == today {
            on.iter()
                .filter(|(d, _)| **d >= today)
                .map(|(_, n)| n)
                .sum()
        } else {
            on.get(&day).copied().unwrap_or(0)
        };
        out.push(Day {
            date: from_us(day * DAY_US).date_naive(),
            confirmations: count("confirmed", day),
            unsubscribes: count("unsubscribe", day),
            bounces: count("bounce", day),
            complaints: count("complaint", day),
            confirmed,
        });
    }
    Ok(out)
}

fn from_us(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// What a timeline entry is: an event, or a digest sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Event(Kind),
    DigestSent,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Event(k) => k.as_str(),
            EntryKind::DigestSent => "digest_sent",
        }
    }
}

impl serde::Serialize for EntryKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One line of a subscriber's timeline.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    pub at: DateTime<Utc>,
    pub kind: EntryKind,
    /// Where an event came from (see `NewEvent`); `None` for a digest.
    pub source: Option<String>,
    /// For a bounce: hard, soft, policy or other.
    pub bounce: Option<String>,
    pub detail: Option<String>,
    /// The digest run: of a digest sent, or of the digest an event is about.
    pub run_id: Option<i64>,
    pub delivery_id: Option<i64>,
    /// Rebuilt at the upgrade (see `EventView::approximate`).
    pub approximate: bool,
}

/// Everything that happened to `email` (any case), oldest first: its events, and the digests
/// sent to the subscribers with that address, each with its run. Admin actions are in the audit
/// log, not here.
pub fn timeline(db: &Db, email: &str) -> Result<Vec<Entry>> {
    type EventRow = (
        i64,
        String,
        Option<String>,
        String,
        Option<String>,
        Option<i64>,
        bool,
    );
    let rows: Vec<EventRow> = db.query_map(
        "SELECT at_us, kind, bounce, source, detail, delivery_id, approximate FROM events \
         WHERE email = ?1 ORDER BY at_us, id",
        params![email.trim().to_lowercase()],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        },
    )?;
    // A kind this version does not know (written by a newer one) is left out.
    let mut out: Vec<Entry> = rows
        .into_iter()
        .filter_map(
            |(at, kind, bounce, source, detail, delivery_id, approximate)| {
                Some(Entry {
                    at: from_us(at),
                    kind: EntryKind::Event(Kind::parse(&kind)?),
                    source: Some(source),
                    bounce,
                    detail,
                    run_id: None,
                    delivery_id,
                    approximate,
                })
            },
        )
        .collect();
    let named: Vec<i64> = out.iter().filter_map(|e| e.delivery_id).collect();
    let runs = crate::digest::ledger::runs_of(db, &named)?;
    for e in &mut out {
        e.run_id = e.delivery_id.and_then(|d| runs.get(&d).copied());
    }
    let ids: Vec<i64> = super::store::find_all_cases(db, email)?
        .iter()
        .map(|s| s.id)
        .collect();
    out.extend(
        crate::digest::ledger::sent_digests(db, &ids)?
            .into_iter()
            .map(|d| Entry {
                at: d.at,
                kind: EntryKind::DigestSent,
                source: None,
                bounce: None,
                detail: None,
                run_id: Some(d.run_id),
                delivery_id: Some(d.delivery_id),
                approximate: false,
            }),
    );
    // Stable: events keep their recorded order among themselves.
    out.sort_by_key(|e| e.at);
    Ok(out)
}

#[cfg(test)]
mod tests;
