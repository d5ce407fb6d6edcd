//! One shard of the in-memory counts: per feed, the readers told apart (bounded), those that were
//! not, and each service's latest report. It remembers the last User-Agent read and the last
//! feed counted, so that a run of requests with one agent on one feed (a hosted reader, a
//! benchmark) skips the parsing and the lookup.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use super::agent::{self, Agent};
use super::{Unique, REPORTS_PER_FEED, REPORTS_PER_SHARD, UNIQUES_PER_FEED, UNIQUES_PER_SHARD};

/// Where each feed's tally is in `Shard::tallies`. The paths come from the feed cache (the
/// catalog's tags), not from clients, so a plain multiplicative hash does.
type Index = HashMap<Box<str>, usize, BuildHasherDefault<PathHasher>>;

#[derive(Default)]
pub(super) struct PathHasher(u64);

impl Hasher for PathHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in chunks.by_ref() {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[derive(Default)]
pub(super) struct Shard {
    tallies: Vec<(Box<str>, Tally)>,
    index: Index,
    uniques: usize,
    reports: usize,
    memo: Memo,
}

#[derive(Default)]
pub(super) struct Tally {
    pub uniques: HashSet<Unique>,
    /// Requests of readers not told apart, per day.
    pub overflow: Vec<(i64, u64)>,
    pub reports: Vec<Report>,
    pub reports_dropped: u64,
}

pub(super) struct Report {
    pub day: i64,
    pub service: Box<str>,
    pub feed_id: Box<str>,
    pub suspect: bool,
    pub subscribers: i64,
    pub seen_us: i64,
}

/// The last User-Agent read and what it said, and the last feed counted.
#[derive(Default)]
struct Memo {
    agent: Vec<u8>,
    verdict: Verdict,
    feed: Option<usize>,
}

#[derive(Default)]
enum Verdict {
    #[default]
    Unread,
    Reported {
        service: Box<str>,
        feed_id: Box<str>,
        subscribers: u64,
    },
    Reader,
    Ignored,
}

impl Memo {
    /// What `user_agent` says, parsed only when it is not the last one read.
    fn read(&mut self, user_agent: &[u8]) {
        let user_agent = &user_agent[..user_agent.len().min(agent::MAX_AGENT)];
        if !matches!(self.verdict, Verdict::Unread) && same(&self.agent, user_agent) {
            return;
        }
        self.verdict = match agent::classify(user_agent) {
            Agent::Reported(r) => Verdict::Reported {
                service: r.service.into(),
                feed_id: r.feed_id.into(),
                subscribers: r.subscribers,
            },
            Agent::Reader => Verdict::Reader,
            Agent::Browser | Agent::Crawler => Verdict::Ignored,
        };
        self.agent.clear();
        self.agent.extend_from_slice(user_agent);
    }
}

impl Shard {
    /// Counts one request; `false` when a reader could not be told apart (a cap was reached,
    /// or `hash` had no key for the day), so that a flush is asked for.
    pub fn count(
        &mut self,
        path: &str,
        day: i64,
        now_us: i64,
        user_agent: &[u8],
        max_reported: u64,
        hash: impl FnOnce() -> Option<[u8; 16]>,
    ) -> bool {
        self.memo.read(user_agent);
        if matches!(self.memo.verdict, Verdict::Unread | Verdict::Ignored) {
            return true;
        }
        let at = self.feed(path);
        let tally = &mut self.tallies[at].1;
        match &self.memo.verdict {
            Verdict::Unread | Verdict::Ignored => true,
            Verdict::Reported {
                service,
                feed_id,
                subscribers,
            } => {
                let latest = Report {
                    day,
                    service: Box::default(),
                    feed_id: Box::default(),
                    suspect: *subscribers > max_reported,
                    subscribers: i64::try_from(*subscribers).unwrap_or(i64::MAX),
                    seen_us: now_us,
                };
                let full = self.reports >= REPORTS_PER_SHARD;
                if tally.report(latest, service, feed_id, full) {
                    self.reports += 1;
                }
                true
            }
            Verdict::Reader => {
                let unique = hash().map(|hash| Unique { day, hash });
                let full = self.uniques >= UNIQUES_PER_SHARD;
                let (told_apart, added) = tally.reader(day, unique, full);
                if added {
                    self.uniques += 1;
                }
                told_apart
            }
        }
    }

    /// Where the tally of `path` is (made if there is none); the last feed's is checked first.
    fn feed(&mut self, path: &str) -> usize {
        if let Some(at) = self.memo.feed {
            if self
                .tallies
                .get(at)
                .is_some_and(|(p, _)| same(p.as_bytes(), path.as_bytes()))
            {
                return at;
            }
        }
        let at = match self.index.get(path) {
            Some(at) => *at,
            None => {
                self.tallies.push((path.into(), Tally::default()));
                self.index.insert(path.into(), self.tallies.len() - 1);
                self.tallies.len() - 1
            }
        };
        self.memo.feed = Some(at);
        at
    }

    /// Takes the counts (the memo of the agent stays).
    pub fn take_feeds(&mut self) -> Vec<(Box<str>, Tally)> {
        self.uniques = 0;
        self.reports = 0;
        self.index.clear();
        self.memo.feed = None;
        std::mem::take(&mut self.tallies)
    }
}

/// Byte equality without a call to libc's `memcmp`: on short strings the calls took most of a
/// count's time (perf: 60% of it).
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    for (p, q) in x.by_ref().zip(y.by_ref()) {
        let (mut u, mut v) = ([0u8; 8], [0u8; 8]);
        u.copy_from_slice(p);
        v.copy_from_slice(q);
        if u64::from_ne_bytes(u) != u64::from_ne_bytes(v) {
            return false;
        }
    }
    x.remainder().iter().zip(y.remainder()).all(|(p, q)| p == q)
}

impl Tally {
    /// Keeps `latest` as the count of its (service, feed id) (allocating the names only for
    /// one not seen since the last flush); whether it was added.
    fn report(&mut self, mut latest: Report, service: &str, feed_id: &str, full: bool) -> bool {
        if let Some(slot) = self.reports.iter_mut().find(|r| {
            r.day == latest.day
                && r.suspect == latest.suspect
                && same(r.service.as_bytes(), service.as_bytes())
                && same(r.feed_id.as_bytes(), feed_id.as_bytes())
        }) {
            slot.subscribers = latest.subscribers;
            slot.seen_us = latest.seen_us;
            return false;
        }
        if full || self.reports.len() >= REPORTS_PER_FEED {
            self.reports_dropped += 1;
            return false;
        }
        latest.service = service.into();
        latest.feed_id = feed_id.into();
        self.reports.push(latest);
        true
    }

    /// Records a reader: (told apart, added as a new unique).
    fn reader(&mut self, day: i64, unique: Option<Unique>, full: bool) -> (bool, bool) {
        match unique {
            Some(u) if self.uniques.contains(&u) => return (true, false),
            Some(u) if !full && self.uniques.len() < UNIQUES_PER_FEED => {
                self.uniques.insert(u);
                return (true, true);
            }
            _ => {}
        }
        match self.overflow.iter_mut().find(|(d, _)| *d == day) {
            Some((_, n)) => *n += 1,
            None => self.overflow.push((day, 1)),
        }
        (false, false)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn same_is_byte_equality() {
        let texts: [&[u8]; 7] = [
            b"",
            b"a",
            b"feed.xml",
            b"/feed.xml",
            b"/feed.xmm",
            b"Feedly/1.0 (+http://www.feedly.com/fetcher.html)",
            b"Feedly/1.0 (+http://www.feedly.com/fetcher.htmm)",
        ];
        for a in texts {
            for b in texts {
                assert_eq!(super::same(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }
}
