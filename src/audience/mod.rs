//! Who reads the feeds, the FeedPress way: a hosted reader (Feedly, Inoreader, …) says in its
//! User-Agent how many of its users follow a feed, and every other reader counts as one unique
//! (client address, User-Agent) pair a day, kept only as a hash under a daily key. Browsers and
//! crawlers are left out. Counting happens in memory on the feed fast path (bounded per feed);
//! a background task writes the aggregates (`store`), and `report` reads them back.

pub mod agent;
mod counter;
pub mod report;
pub mod store;

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use self::counter::Shard;
use crate::store::Store;

pub use self::report::{AudienceReport, DayFigures, FeedAudience, ServiceCount, SiteAudience};

/// How often a node writes what it counted (and at shutdown).
pub const FLUSH_EVERY: Duration = Duration::from_secs(60);

/// Shards of the in-memory counts: each worker thread mostly has one to itself.
const SHARDS: usize = 8;
/// Distinct readers one shard keeps per feed between flushes, and over all feeds; past either,
/// a request is counted as `overflow` (a reader not told apart) and a flush is asked for.
const UNIQUES_PER_FEED: usize = 1024;
const UNIQUES_PER_SHARD: usize = 16_384;
/// Distinct reports one shard keeps per feed, and over all feeds; past either they are dropped.
const REPORTS_PER_FEED: usize = 16;
const REPORTS_PER_SHARD: usize = 4096;

/// The in-memory counter one daemon shares between its requests and its flusher.
pub struct Audience {
    enabled: bool,
    max_reported: u64,
    keys: RwLock<store::DayKeys>,
    shards: Box<[Mutex<Shard>]>,
    /// A batch a flush could not write, tried again with the next one.
    pending: Mutex<Option<Batch>>,
    full: tokio::sync::Notify,
    /// The time (µs since 1970) as the flusher last set it, once a second; 0 when it does not run.
    now_us: AtomicI64,
}

/// One distinct reader of a feed on a day: the keyed hash of (address, User-Agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Unique {
    pub day: i64,
    pub hash: [u8; 16],
}

/// Which report a count belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReportKey {
    pub day: i64,
    pub feed: String,
    pub service: String,
    pub feed_id: String,
    pub suspect: bool,
}

/// A report's latest count, and when it was seen (µs since 1970).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latest {
    pub subscribers: i64,
    pub seen_us: i64,
}

/// What was counted since the last flush, ready to write.
#[derive(Debug, Default)]
pub struct Batch {
    /// Per feed.
    pub uniques: HashMap<String, HashSet<Unique>>,
    /// Requests of readers not told apart, per (day, feed).
    pub overflow: HashMap<(i64, String), u64>,
    /// The latest count of each report.
    pub reports: HashMap<ReportKey, Latest>,
    /// Reports left out by the in-memory caps.
    pub reports_dropped: u64,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.uniques.is_empty()
            && self.overflow.is_empty()
            && self.reports.is_empty()
            && self.reports_dropped == 0
    }

    fn unique_count(&self) -> usize {
        self.uniques.values().map(HashSet::len).sum()
    }

    /// Adds `other` (an older batch) into this one; the later report of a key wins.
    fn absorb(&mut self, other: Batch) {
        for (feed, set) in other.uniques {
            self.uniques.entry(feed).or_default().extend(set);
        }
        for (key, n) in other.overflow {
            *self.overflow.entry(key).or_default() += n;
        }
        for (key, latest) in other.reports {
            let slot = self.reports.entry(key).or_insert(latest);
            if latest.seen_us > slot.seen_us {
                *slot = latest;
            }
        }
        self.reports_dropped += other.reports_dropped;
    }
}

/// Whether `path` is a feed (the fast path also serves the index page, which is not one).
pub fn is_feed(path: &str) -> bool {
    crate::feeds::Format::ALL.iter().any(|f| {
        path.strip_suffix(f.file_name())
            .is_some_and(|folder| folder.ends_with('/'))
    })
}

/// The day (since 1970-01-01, UTC) that microseconds since 1970 fall on.
pub fn day_of(us: i64) -> i64 {
    us.div_euclid(86_400_000_000)
}

/// Today, as days since 1970-01-01 (UTC).
pub fn today() -> i64 {
    clock().0
}

/// Days since 1970-01-01 (UTC) and microseconds since 1970, now.
fn clock() -> (i64, i64) {
    let us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    (day_of(us), us)
}

impl Audience {
    /// As `audience.enabled` and `audience.max_reported` say, with the day keys read at start.
    pub fn new(enabled: bool, max_reported: u64, keys: store::DayKeys) -> Audience {
        Audience {
            enabled,
            max_reported,
            keys: RwLock::new(keys),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            pending: Mutex::new(None),
            full: tokio::sync::Notify::new(),
            now_us: AtomicI64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Counts one successful (200 or 304) answer of `path`; `client` gives the client's address
    /// (asked only for a reader that is counted as a unique).
    pub fn count(&self, path: &str, user_agent: &[u8], client: impl FnOnce() -> IpAddr) {
        if !self.enabled || !is_feed(path) {
            return;
        }
        let now_us = match self.now_us.load(Ordering::Relaxed) {
            0 => clock().1,
            set => set,
        };
        self.count_at(day_of(now_us), now_us, path, user_agent, client);
    }

    /// `count` at a given time (tests).
    pub fn count_at(
        &self,
        day: i64,
        now_us: i64,
        path: &str,
        user_agent: &[u8],
        client: impl FnOnce() -> IpAddr,
    ) {
        let mut shard = self.shard();
        let counted = shard.count(path, day, now_us, user_agent, self.max_reported, || {
            self.hash(day, client(), user_agent)
        });
        drop(shard);
        if !counted {
            self.full.notify_one();
        }
    }

    /// The keyed hash of (address, User-Agent) under `day`'s key; `None` without one.
    fn hash(&self, day: i64, ip: IpAddr, user_agent: &[u8]) -> Option<[u8; 16]> {
        let keys = self.keys.read().ok()?;
        let key = keys.for_day(day)?;
        let mut hasher = blake3::Hasher::new_keyed(key);
        match ip {
            IpAddr::V4(v4) => hasher.update(&v4.to_ipv6_mapped().octets()),
            IpAddr::V6(v6) => hasher.update(&v6.octets()),
        };
        hasher.update(&user_agent[..user_agent.len().min(agent::MAX_AGENT)]);
        let mut out = [0u8; 16];
        out.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
        Some(out)
    }

    fn shard(&self) -> std::sync::MutexGuard<'_, Shard> {
        thread_local! {
            static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let index = INDEX.with(|i| {
            if i.get() == usize::MAX {
                i.set(NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
            }
            i.get()
        });
        self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes everything counted so far (leaving the counters empty).
    pub fn drain(&self) -> Batch {
        let mut batch = Batch::default();
        for shard in self.shards.iter() {
            let taken = shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take_feeds();
            for (feed, tally) in taken {
                let feed = String::from(feed);
                for (day, n) in tally.overflow {
                    *batch.overflow.entry((day, feed.clone())).or_default() += n;
                }
                for r in tally.reports {
                    let key = ReportKey {
                        day: r.day,
                        feed: feed.clone(),
                        service: r.service.into(),
                        feed_id: r.feed_id.into(),
                        suspect: r.suspect,
                    };
                    let latest = Latest {
                        subscribers: r.subscribers,
                        seen_us: r.seen_us,
                    };
                    let slot = batch.reports.entry(key).or_insert(latest);
                    if latest.seen_us > slot.seen_us {
                        *slot = latest;
                    }
                }
                batch.reports_dropped += tally.reports_dropped;
                if !tally.uniques.is_empty() {
                    batch.uniques.entry(feed).or_default().extend(tally.uniques);
                }
            }
        }
        batch
    }

    /// Writes what was counted (with a batch an earlier flush could not write) and refreshes
    /// the day keys. A batch that cannot be written is kept for the next flush, once.
    pub async fn flush(&self, store: &Store) -> Result<store::Flushed, crate::store::Error> {
        let mut batch = self.drain();
        if let Some(older) = self.pending_slot().take() {
            batch.absorb(older);
        }
        let (today, _) = clock();
        let batch = std::sync::Arc::new(batch);
        let written = {
            let batch = batch.clone();
            store
                .write(move |db| {
                    let flushed = store::flush(db, &batch, today)?;
                    Ok::<_, crate::store::Error>((flushed, store::keys(db, today)?))
                })
                .await
        };
        match written {
            Ok((flushed, keys)) => {
                if let Ok(mut slot) = self.keys.write() {
                    *slot = keys;
                }
                crate::metrics::audience_flushed();
                if batch.reports_dropped > 0 || flushed.reports_dropped > 0 {
                    tracing::warn!(
                        in_memory = batch.reports_dropped,
                        stored = flushed.reports_dropped,
                        "feed audience: reported counts dropped past the caps (many services or feed ids for one feed)"
                    );
                }
                Ok(flushed)
            }
            Err(e) => {
                let batch = std::sync::Arc::try_unwrap(batch).unwrap_or_default();
                // Kept once: past twice the in-memory caps, the older counts give way.
                if batch.unique_count() <= 2 * SHARDS * UNIQUES_PER_SHARD {
                    *self.pending_slot() = Some(batch);
                }
                Err(e)
            }
        }
    }

    fn pending_slot(&self) -> std::sync::MutexGuard<'_, Option<Batch>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Flushes every `FLUSH_EVERY` (sooner, at the next second, when a counter fills up) until
    /// `shutdown`; the daemon flushes once more after the last request was answered. Also sets
    /// the clock `count` reads once a second, which spares each request reading the time.
    pub async fn flush_every(
        self: std::sync::Arc<Self>,
        store: Store,
        shutdown: CancellationToken,
    ) {
        if !self.enabled {
            return;
        }
        let mut second = tokio::time::interval(Duration::from_secs(1));
        second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let (mut last, mut asked) = (tokio::time::Instant::now(), false);
        loop {
            tokio::select! {
                _ = second.tick() => {}
                _ = self.full.notified() => {
                    asked = true;
                    continue;
                }
                _ = shutdown.cancelled() => break,
            }
            self.now_us.store(clock().1, Ordering::Relaxed);
            if !asked && last.elapsed() < FLUSH_EVERY {
                continue;
            }
            if let Err(e) = self.flush(&store).await {
                tracing::warn!(error = %e, "cannot write the feed audience; kept for the next try");
            }
            (last, asked) = (tokio::time::Instant::now(), false);
        }
        // The requests still being answered read the clock themselves.
        self.now_us.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
