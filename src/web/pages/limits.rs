//! The subscribe form's rate limits: per client address in this node's memory, per email
//! address in the shared database.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::Config;

/// The per-client-address limit on subscribe requests, kept in this node's memory (each node
/// of several counts its own clients). The per-email-address limit is kept in the database,
/// shared by every node: `address_limit`.
pub struct RateLimits {
    by_ip: DefaultKeyedRateLimiter<IpAddr>,
}

impl RateLimits {
    pub fn new(config: &Config) -> RateLimits {
        let per_ip =
            NonZeroU32::new(config.subscribers.ip_rate_per_minute).unwrap_or(NonZeroU32::MIN);
        RateLimits {
            by_ip: RateLimiter::keyed(Quota::per_minute(per_ip)),
        }
    }

    /// `Err(seconds to wait)` when `ip` has used its quota.
    pub(super) fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let clock = DefaultClock::default();
        let wait = |e: governor::NotUntil<_>| e.wait_time_from(clock.now()).as_secs().max(1);
        self.by_ip.check_key(&ip).map_err(wait)
    }

    /// Forgets clients whose quota has refilled (bounded memory under a flood of addresses).
    pub fn prune(&self) {
        self.by_ip.retain_recent();
    }
}

/// The per-address limit (`subscribers.address_rate_per_hour`, as a GCRA like the in-memory
/// limit: a burst of that many, then one per hour/that many), in the shared store, so that two
/// nodes behind a load balancer do not each allow the full rate. `Err(seconds to wait)`.
pub fn address_limit(
    db: &crate::store::Db,
    address: &str,
    per_hour: u32,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Result<(), u64>, crate::store::Error> {
    let key = address.trim().to_lowercase();
    db.lock(&format!("address limit {key}"))?;
    let per_hour = i64::from(per_hour.max(1));
    let interval = 3_600_000_000 / per_hour;
    let tolerance = interval * (per_hour - 1);
    let now_us = now.timestamp_micros();
    let tat: i64 = db
        .query_opt(
            "SELECT tat_us FROM address_limits WHERE address = ?1",
            crate::params![key],
            |r| r.get(0),
        )?
        .unwrap_or(now_us)
        .max(now_us);
    if tat - now_us > tolerance {
        let wait = (tat - now_us - tolerance) / 1_000_000;
        return Ok(Err(u64::try_from(wait).unwrap_or(1).max(1)));
    }
    db.execute(
        "INSERT INTO address_limits (address, tat_us) VALUES (?1, ?2) \
         ON CONFLICT (address) DO UPDATE SET tat_us = excluded.tat_us",
        crate::params![key, tat + interval],
    )?;
    Ok(Ok(()))
}

/// Forgets addresses whose quota has refilled.
pub fn prune_address_limits(
    db: &crate::store::Db,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, crate::store::Error> {
    db.execute(
        "DELETE FROM address_limits WHERE tat_us < ?1",
        crate::params![now.timestamp_micros()],
    )
}
