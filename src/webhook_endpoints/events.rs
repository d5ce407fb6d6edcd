//! The events endpoints receive, each `{"type", "timestamp", "data"}`, and `enqueue`: a delivery
//! per event and endpoint that wants it, written in the caller's transaction (so a change that
//! rolls back sends nothing, and one that commits loses nothing). The owners of the changes
//! call it: `subscribers::events` (and `subscribers::store::delete`), `catalog::store`, a digest
//! run's end.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::store::{Db, Error};
use crate::subscribers::events::{Kind, NewEvent};

/// One event to send.
#[derive(Debug, Clone)]
pub struct Event {
    pub event_type: &'static str,
    /// What is kept in order: one subscriber's events go out in the order they happened.
    pub subject: String,
    pub data: Value,
}

impl Event {
    /// The body every endpoint gets.
    pub fn payload(&self, at: DateTime<Utc>) -> String {
        json!({
            "type": self.event_type,
            "timestamp": at.to_rfc3339_opts(SecondsFormat::Micros, true),
            "data": self.data,
        })
        .to_string()
    }
}

/// Queues `events`, happening at `now`, for every enabled endpoint that wants them, in the
/// caller's transaction; how many deliveries. With no endpoint, no query is made.
pub fn enqueue(db: &Db, events: &[Event], now: DateTime<Utc>) -> Result<usize, Error> {
    if events.is_empty() {
        return Ok(0);
    }
    let endpoints = super::subscriptions(db)?;
    if endpoints.is_empty() {
        return Ok(0);
    }
    let mut rows = Vec::new();
    for e in events {
        let mut payload = None;
        for endpoint in endpoints.iter().filter(|s| s.wants(e.event_type)) {
            let body = payload.get_or_insert_with(|| e.payload(now)).clone();
            rows.push(super::store::NewDelivery {
                endpoint_id: endpoint.id,
                event_type: e.event_type,
                subject: e.subject.clone(),
                payload: body,
            });
        }
    }
    let n = super::store::insert_deliveries(db, &rows, now)?;
    if n > 0 {
        super::wake().notify_one();
    }
    Ok(n)
}

/// Whether some enabled endpoint wants `event_type` (from this process's copy).
pub fn wanted(db: &Db, event_type: &str) -> Result<bool, Error> {
    Ok(super::subscriptions(db)?
        .iter()
        .any(|s| s.wants(event_type)))
}

/// The type a subscriber's recorded event is sent as; `None` for those not sent.
pub fn subscriber_type(kind: Kind) -> Option<&'static str> {
    Some(match kind {
        Kind::Subscribed => "subscriber.created",
        Kind::Confirmed => "subscriber.confirmed",
        Kind::Unsubscribe => "subscriber.unsubscribed",
        Kind::Bounce => "subscriber.bounced",
        Kind::Complaint => "subscriber.complained",
        Kind::Suppressed => "subscriber.suppressed",
        _ => return None,
    })
}

/// The order key of one subscriber's events: their address, lower-cased.
fn subscriber_subject(email: &str) -> String {
    format!("subscriber:{}", email.to_lowercase())
}

/// The event for a subscriber's recorded event, if it is one endpoints get.
pub fn subscriber_event(e: &NewEvent<'_>) -> Option<Event> {
    let event_type = subscriber_type(e.kind)?;
    let mut data = json!({
        "subscriber_id": e.subscriber_id,
        "email": e.email.to_lowercase(),
        "source": e.source,
    });
    if let Some(bounce) = e.bounce {
        data["bounce"] = json!(bounce);
    }
    if let Some(delivery) = e.delivery_id {
        data["digest_delivery_id"] = json!(delivery);
    }
    Some(Event {
        event_type,
        subject: subscriber_subject(e.email),
        data,
    })
}

/// Queues the events for subscribers' recorded events (`subscribers::events::record` and
/// `record_many` call this in their transaction).
pub fn subscriber_events(
    db: &Db,
    recorded: &[NewEvent<'_>],
    now: DateTime<Utc>,
) -> Result<(), Error> {
    if super::subscriptions(db)?.is_empty() {
        return Ok(());
    }
    let events: Vec<Event> = recorded.iter().filter_map(subscriber_event).collect();
    enqueue(db, &events, now)?;
    Ok(())
}

/// `subscriber.deleted`: the subscriber with `id` and `email` was removed.
pub fn subscriber_deleted(db: &Db, id: i64, email: &str, now: DateTime<Utc>) -> Result<(), Error> {
    subscribers_deleted(db, &[(id, email.to_string())], now)
}

/// `subscriber.deleted` for each of these (id, address).
pub fn subscribers_deleted(
    db: &Db,
    gone: &[(i64, String)],
    now: DateTime<Utc>,
) -> Result<(), Error> {
    if !wanted(db, "subscriber.deleted")? {
        return Ok(());
    }
    let events: Vec<Event> = gone
        .iter()
        .map(|(id, email)| Event {
            event_type: "subscriber.deleted",
            subject: subscriber_subject(email),
            data: json!({ "subscriber_id": id, "email": email.to_lowercase() }),
        })
        .collect();
    enqueue(db, &events, now).map(|_| ())
}

/// `article.published`, `article.updated`: the article as it now is (without its content).
pub fn article_written(
    db: &Db,
    event_type: &'static str,
    article: &crate::catalog::Article,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    if !wanted(db, event_type)? {
        return Ok(());
    }
    let event = Event {
        event_type,
        subject: format!("article:{}", article.id),
        data: json!({
            "id": article.id,
            "slug": article.slug,
            "title": article.title,
            "url": article.url,
            "published_at": article.published_at.to_rfc3339(),
            "updated_at": article.updated_at.to_rfc3339(),
            "tags": article.tags.iter().map(|t| t.slug.as_str()).collect::<Vec<_>>(),
        }),
    };
    enqueue(db, &[event], now).map(|_| ())
}

/// `article.removed`.
pub fn article_removed(
    db: &Db,
    article: &crate::catalog::Article,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    if !wanted(db, "article.removed")? {
        return Ok(());
    }
    let event = Event {
        event_type: "article.removed",
        subject: format!("article:{}", article.id),
        data: json!({ "id": article.id, "slug": article.slug }),
    };
    enqueue(db, &[event], now).map(|_| ())
}

/// `digest.run.finished`, with the run's counts.
pub fn digest_run_finished(
    db: &Db,
    report: &crate::digest::RunReport,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    if !wanted(db, "digest.run.finished")? {
        return Ok(());
    }
    let event = Event {
        event_type: "digest.run.finished",
        subject: format!("digest_run:{}", report.run_id.unwrap_or(0)),
        data: json!({
            "run_id": report.run_id,
            "resumed": report.resumed,
            "due": report.due,
            "planned": report.planned,
            "sent": report.sent,
            "retried": report.retried,
            "failed": report.failed,
            "skipped": report.skipped,
            "waiting": report.waiting,
        }),
    };
    enqueue(db, &[event], now).map(|_| ())
}
