//! Outgoing webhooks, Standard Webhooks v1: the endpoints events go to, the events (written to a
//! durable queue in the transaction of the change they report: `enqueue`), their signed delivery
//! with retries (`worker`), and replay. Apart from the providers' incoming webhooks
//! (`feedback::webhooks`).

pub mod client;
pub mod events;
pub mod guard;
pub mod service;
pub mod sign;
pub mod store;
pub mod worker;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::store::{Db, Error};

pub use events::{enqueue, Event};
pub use service::{EndpointError, WebhookEndpoints};

/// Every event type there is, as endpoints name them.
pub const EVENT_TYPES: &[&str] = &[
    "subscriber.created",
    "subscriber.confirmed",
    "subscriber.unsubscribed",
    "subscriber.bounced",
    "subscriber.complained",
    "subscriber.suppressed",
    "subscriber.deleted",
    "article.published",
    "article.updated",
    "article.removed",
    "digest.run.finished",
    "ping",
];

/// The waits of `webhook_endpoints.retry_schedule`: the first before the first attempt, each
/// next one after a failure; after the last attempt a delivery is `failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(pub Vec<Duration>);

impl RetrySchedule {
    /// `0s,5s,5m,30m,2h`: numbers with `s`, `m`, `h` or `d`, comma-separated, at least one.
    pub fn parse(s: &str) -> Result<RetrySchedule, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim) {
            let unit = part.chars().last().ok_or("has an empty entry")?;
            let seconds = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => return Err(format!("'{part}' needs a unit: s, m, h or d (e.g. 5m)")),
            };
            let n: u64 = part[..part.len() - 1]
                .parse()
                .map_err(|_| format!("'{part}' is not a whole number and a unit (e.g. 5m)"))?;
            if n.saturating_mul(seconds) > 7 * 86_400 {
                return Err(format!("'{part}' is longer than 7 days"));
            }
            out.push(Duration::from_secs(n * seconds));
        }
        if out.len() > 50 {
            return Err("has more than 50 attempts".into());
        }
        Ok(RetrySchedule(out))
    }

    /// How many attempts a delivery gets.
    pub fn attempts(&self) -> u32 {
        self.0.len() as u32
    }

    /// The wait before attempt `n` (1-based), with ±10 % jitter; `None` after the last.
    pub fn wait_before(&self, n: u32) -> Option<Duration> {
        let base = *self.0.get((n as usize).checked_sub(1)?)?;
        if base.is_zero() {
            return Some(base);
        }
        let ms = base.as_millis() as i64;
        let jitter = rand::Rng::gen_range(&mut rand::thread_rng(), -(ms / 10)..=(ms / 10));
        Some(Duration::from_millis((ms + jitter).max(0) as u64))
    }
}

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule::parse("0s,5s,5m,30m,2h,5h,10h,10h").unwrap_or(RetrySchedule(vec![]))
    }
}

/// Settings every process that queues events follows (the first attempt's wait).
pub fn configure(config: &crate::config::Config) {
    if let Ok(schedule) = RetrySchedule::parse(&config.webhook_endpoints.retry_schedule) {
        if let Some(first) = schedule.0.first() {
            store::set_first_wait(*first);
        }
    }
}

/// What one enabled endpoint wants: its id and event types (empty: all).
#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: i64,
    pub event_types: Vec<String>,
}

impl Subscription {
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type)
    }
}

/// How long this process trusts its copy of the enabled endpoints: a change made by another
/// process (the CLI, another node) is seen within this; one made here at once.
const CACHE_FOR: Duration = Duration::from_secs(1);

struct Cached {
    at: Instant,
    endpoints: Arc<Vec<Subscription>>,
}

static CACHE: Mutex<Option<Cached>> = Mutex::new(None);

/// The enabled endpoints, from this process's copy (read again, in the caller's transaction, at
/// most once a second): an event with no endpoint costs no query.
pub fn subscriptions(db: &Db) -> Result<Arc<Vec<Subscription>>, Error> {
    if let Some(c) = CACHE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
    {
        if c.at.elapsed() < CACHE_FOR {
            return Ok(c.endpoints.clone());
        }
    }
    let endpoints = Arc::new(store::subscriptions(db)?);
    *CACHE.lock().unwrap_or_else(PoisonError::into_inner) = Some(Cached {
        at: Instant::now(),
        endpoints: endpoints.clone(),
    });
    Ok(endpoints)
}

/// Forgets the copy: called after this process changed an endpoint.
pub fn endpoints_changed() {
    *CACHE.lock().unwrap_or_else(PoisonError::into_inner) = None;
}

/// Woken when this process queued a delivery.
pub(crate) fn wake() -> &'static tokio::sync::Notify {
    static WAKE: std::sync::OnceLock<tokio::sync::Notify> = std::sync::OnceLock::new();
    WAKE.get_or_init(tokio::sync::Notify::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_schedule_reads_units_and_refuses_nonsense() {
        let s = RetrySchedule::parse("0s,5s,5m,30m,2h,5h,10h,10h").unwrap();
        assert_eq!(s.attempts(), 8);
        assert_eq!(s.0[3], Duration::from_secs(1800));
        assert_eq!(s.wait_before(1), Some(Duration::ZERO));
        let five = s.wait_before(2).unwrap();
        assert!(five >= Duration::from_millis(4500) && five <= Duration::from_millis(5500));
        assert_eq!(s.wait_before(9), None);
        for bad in ["", "5", "5x", "1s,,2s", "8d", "-1s"] {
            assert!(RetrySchedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_endpoint_with_no_types_wants_every_one() {
        let all = Subscription {
            id: 1,
            event_types: vec![],
        };
        let some = Subscription {
            id: 2,
            event_types: vec!["subscriber.created".into()],
        };
        assert!(all.wants("article.removed"));
        assert!(some.wants("subscriber.created") && !some.wants("article.removed"));
    }
}
