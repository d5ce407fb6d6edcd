//! What happened to a subscriber's mail, on record: bounces, complaints, unsubscribes (with where
//! they came from), suppressions, single emails dropped or given up, reports that were ignored.
//! Rows are keyed by the lower-cased address, so the history outlives `subscriber remove`.

use crate::params;
use crate::store::{Db, Error};
use chrono::{DateTime, Utc};

type Result<T, E = Error> = std::result::Result<T, E>;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
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
}

/// One event to record. `source` says where it came from: `link` (the unsubscribe page),
/// `one_click` (RFC 8058 POST), `mailto`, `dsn`, `arf`, `smtp` (the reply at send time),
/// `webhook:<provider>`, `admin`, `outbox`.
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
}

pub fn record(db: &Db, e: &NewEvent<'_>, now: DateTime<Utc>) -> Result<i64> {
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
    Ok(events.len())
}

/// An event as the API and `subscriber show` give it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EventView {
    pub at: String,
    pub kind: String,
    pub bounce: Option<String>,
    pub source: String,
    pub detail: Option<String>,
    pub delivery_id: Option<i64>,
    pub outbox_id: Option<i64>,
    pub inbound_id: Option<i64>,
}

/// Every event about `email` (any case), oldest first.
pub fn for_email(db: &Db, email: &str) -> Result<Vec<EventView>> {
    db.query_map(
        "SELECT at_us, kind, bounce, source, detail, delivery_id, outbox_id, inbound_id FROM events \
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
        })
        },
    )
}
