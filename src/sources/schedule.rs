//! When a source is polled next. Pure: no I/O.
//!
//! - The regular interval follows how often the feed publishes: a quarter of the mean time
//!   between its newest entries (up to 10), between `sources.min_interval_minutes` and
//!   `sources.max_interval_minutes`; the maximum when it names no dates, or its hub pushes.
//! - Never sooner than its `ttl`, `Cache-Control: max-age`, `Expires` or `Retry-After` allow
//!   (each of them at most a day).
//! - After a failure: the minimum doubled for each failure in a row, up to the maximum, with
//!   ±20% jitter, so sources that failed together do not come back together.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

/// The longest any hint from the server pushes a poll out.
pub const HINT_CAP: Duration = Duration::from_secs(24 * 3600);

/// The bounds of the regular interval.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub min: Duration,
    pub max: Duration,
}

/// The regular interval for a feed whose entries carry these dates.
pub fn regular(dates: &[DateTime<Utc>], bounds: Bounds) -> Duration {
    let mut dates: Vec<DateTime<Utc>> = dates.to_vec();
    dates.sort_unstable_by(|a, b| b.cmp(a));
    dates.dedup();
    dates.truncate(10);
    if dates.len() < 2 {
        return bounds.max;
    }
    let span = (dates[0] - dates[dates.len() - 1])
        .to_std()
        .unwrap_or_default();
    let mean = span / (dates.len() as u32 - 1);
    (mean / 4).clamp(bounds.min, bounds.max)
}

/// What the server said about the next poll, as the earliest time it may come.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hints {
    pub ttl_minutes: Option<u32>,
    pub max_age: Option<Duration>,
    pub expires: Option<SystemTime>,
    pub retry_after: Option<Duration>,
}

impl Hints {
    /// The longest wait the hints ask for, from `now` (at most `HINT_CAP`).
    pub fn wait(&self, now: SystemTime) -> Duration {
        let ttl = self
            .ttl_minutes
            .map(|m| Duration::from_secs(u64::from(m) * 60));
        let expires = self.expires.and_then(|e| e.duration_since(now).ok());
        [ttl, self.max_age, expires, self.retry_after]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or_default()
            .min(HINT_CAP)
    }
}

/// The wait after `errors` failures in a row (≥ 1); `jitter` in `[0, 1)` spreads it ±20%.
pub fn backoff(errors: u32, bounds: Bounds, jitter: f64) -> Duration {
    let doubled = bounds
        .min
        .saturating_mul(1u32 << errors.saturating_sub(1).min(20))
        .min(bounds.max);
    doubled.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bounds = Bounds {
        min: Duration::from_secs(15 * 60),
        max: Duration::from_secs(1440 * 60),
    };

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + h * 3600, 0).unwrap()
    }

    #[test]
    fn a_feed_that_publishes_hourly_is_polled_every_quarter_hour() {
        let dates: Vec<_> = (0..10).map(at).collect();
        assert_eq!(regular(&dates, B), Duration::from_secs(15 * 60));
    }

    #[test]
    fn a_daily_feed_every_six_hours_and_a_dateless_one_at_the_maximum() {
        let dates: Vec<_> = (0..5).map(|d| at(d * 24)).collect();
        assert_eq!(regular(&dates, B), Duration::from_secs(6 * 3600));
        assert_eq!(regular(&[], B), B.max);
        let yearly: Vec<_> = (0..3).map(|y| at(y * 24 * 365)).collect();
        assert_eq!(regular(&yearly, B), B.max);
    }

    #[test]
    fn hints_take_the_longest_and_stop_at_a_day() {
        let now = SystemTime::now();
        let h = Hints {
            ttl_minutes: Some(60),
            max_age: Some(Duration::from_secs(7200)),
            expires: None,
            retry_after: None,
        };
        assert_eq!(h.wait(now), Duration::from_secs(7200));
        let h = Hints {
            retry_after: Some(Duration::from_secs(10 * 86_400)),
            ..Hints::default()
        };
        assert_eq!(h.wait(now), HINT_CAP);
    }

    #[test]
    fn backoff_doubles_to_the_maximum_with_jitter() {
        assert_eq!(backoff(1, B, 0.5), B.min);
        assert_eq!(backoff(3, B, 0.5), B.min * 4);
        assert_eq!(backoff(30, B, 0.5), B.max);
        assert!(backoff(2, B, 0.0) < backoff(2, B, 0.99));
    }
}
