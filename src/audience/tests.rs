use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use super::store::{self, DayKeys};
use super::{is_feed, report, Audience, Batch, Latest, ReportKey, Unique};
use crate::store::{Location, Store};

const FEEDLY: &[u8] = b"Feedly/1.0 (+http://www.feedly.com/fetcher.html; 134 subscribers; )";
const MINIFLUX: &[u8] = b"Mozilla/5.0 (compatible; Miniflux/2.2.3; +https://miniflux.app)";
const CHROME: &[u8] = b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const GOOGLEBOT: &[u8] =
    b"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

fn ip(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
}

fn not_asked() -> IpAddr {
    panic!("the address is only read for readers counted as uniques")
}

/// An audience with keys for `day` and the next, made up (no database).
fn audience(day: i64, max_reported: u64) -> Audience {
    let keys = DayKeys::for_tests(&[(day, [7; 32]), (day + 1, [8; 32])]);
    Audience::new(true, max_reported, keys)
}

fn latest(subscribers: i64, seen_us: i64) -> Latest {
    Latest {
        subscribers,
        seen_us,
    }
}

fn key(day: i64, feed: &str, service: &str, feed_id: &str, suspect: bool) -> ReportKey {
    ReportKey {
        day,
        feed: feed.into(),
        service: service.into(),
        feed_id: feed_id.into(),
        suspect,
    }
}

#[test]
fn feeds_are_the_feed_files_of_the_site_and_its_tags() {
    for path in [
        "/feed.xml",
        "/atom.xml",
        "/feed.json",
        "/tags/ai/feed.xml",
        "/tags/ai/atom.xml",
    ] {
        assert!(is_feed(path), "{path}");
    }
    for path in ["/", "/index.html", "/xfeed.xml", "feed.xml", "/tags/ai/"] {
        assert!(!is_feed(path), "{path}");
    }
}

#[test]
fn each_agent_is_counted_as_it_says() {
    let day = 20_000;
    let a = audience(day, 1_000_000);
    a.count_at(day, 1, "/feed.xml", FEEDLY, not_asked);
    a.count_at(
        day,
        2,
        "/feed.xml",
        b"Feedly/1.0 (+http://www.feedly.com/fetcher.html; 140 subscribers; )",
        not_asked,
    );
    a.count_at(
        day,
        3,
        "/feed.xml",
        b"NewsBlur Feed Fetcher - 5000000 subscribers",
        not_asked,
    );
    a.count_at(
        day,
        4,
        "/atom.xml",
        b"Feedbin feed-id:1234 - 56 subscribers",
        not_asked,
    );
    a.count_at(day, 5, "/feed.xml", CHROME, not_asked);
    a.count_at(day, 6, "/feed.xml", GOOGLEBOT, not_asked);
    // The same (address, agent) twice is one reader; another address or agent is another.
    a.count_at(day, 7, "/feed.xml", MINIFLUX, || ip(1));
    a.count_at(day, 8, "/feed.xml", MINIFLUX, || ip(1));
    a.count_at(day, 9, "/feed.xml", MINIFLUX, || ip(2));
    a.count_at(day, 10, "/feed.xml", b"curl/8.5.0", || ip(1));
    let batch = a.drain();
    assert_eq!(batch.uniques["/feed.xml"].len(), 3);
    assert_eq!(batch.uniques.len(), 1);
    assert!(batch.overflow.is_empty());
    assert_eq!(batch.reports.len(), 3);
    assert_eq!(
        batch.reports[&key(day, "/feed.xml", "Feedly", "", false)],
        latest(140, 2)
    );
    assert_eq!(
        batch.reports[&key(day, "/feed.xml", "NewsBlur", "", true)],
        latest(5_000_000, 3)
    );
    assert_eq!(
        batch.reports[&key(day, "/atom.xml", "Feedbin", "1234", false)],
        latest(56, 4)
    );
    // Drained: the next flush starts from nothing.
    assert!(a.drain().is_empty());
}

#[test]
fn a_count_is_suspect_only_above_the_cap() {
    let day = 20_000;
    let a = audience(day, 134);
    a.count_at(day, 1, "/feed.xml", FEEDLY, not_asked);
    a.count_at(
        day,
        2,
        "/feed.xml",
        b"Feedly/1.0 (+http://www.feedly.com/fetcher.html; 135 subscribers; )",
        not_asked,
    );
    let batch = a.drain();
    assert_eq!(
        batch.reports[&key(day, "/feed.xml", "Feedly", "", false)],
        latest(134, 1)
    );
    assert_eq!(
        batch.reports[&key(day, "/feed.xml", "Feedly", "", true)],
        latest(135, 2)
    );
}

#[test]
fn the_counters_are_bounded_and_what_overflows_is_counted() {
    let day = 20_000;
    let a = audience(day, 1_000_000);
    // One thread: one shard.
    for n in 0..super::UNIQUES_PER_FEED as u32 + 6 {
        a.count_at(day, 1, "/feed.xml", MINIFLUX, || ip(n));
    }
    // A reader already known is still recognised once the set is full.
    a.count_at(day, 1, "/feed.xml", MINIFLUX, || ip(0));
    for n in 0..super::REPORTS_PER_FEED + 4 {
        let agent = format!("Service{n}/1.0 (3 subscribers)");
        a.count_at(day, 1, "/feed.xml", agent.as_bytes(), not_asked);
    }
    let batch = a.drain();
    assert_eq!(batch.uniques["/feed.xml"].len(), super::UNIQUES_PER_FEED);
    assert_eq!(batch.overflow[&(day, "/feed.xml".to_string())], 6);
    assert_eq!(batch.reports.len(), super::REPORTS_PER_FEED);
    assert_eq!(batch.reports_dropped, 4);
}

#[test]
fn without_the_days_key_readers_are_counted_but_not_told_apart() {
    let a = Audience::new(true, 1_000_000, DayKeys::default());
    a.count_at(20_000, 1, "/feed.xml", MINIFLUX, || ip(1));
    a.count_at(20_000, 1, "/feed.xml", MINIFLUX, || ip(1));
    let batch = a.drain();
    assert!(batch.uniques.is_empty());
    assert_eq!(batch.overflow[&(20_000, "/feed.xml".to_string())], 2);
}

#[test]
fn nothing_is_counted_when_disabled() {
    let a = Audience::new(false, 1_000_000, DayKeys::default());
    a.count("/feed.xml", FEEDLY, not_asked);
    a.count("/feed.xml", MINIFLUX, not_asked);
    assert!(a.drain().is_empty());
}

/// A fresh SQLite store, and a PostgreSQL one when the tests were given a server.
async fn stores() -> Vec<(Option<tempfile::TempDir>, Store)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let lite = Store::open(&Location::Sqlite(dir.path().join("t.db")), 2)
        .await
        .expect("open");
    let mut all = vec![(Some(dir), lite)];
    if let Some(pg) = crate::store::tests::fresh_postgres().await {
        all.push((None, Store::open(&pg, 4).await.expect("pg")));
    }
    all
}

async fn read(store: &Store, today: i64) -> report::AudienceReport {
    store
        .read(move |db| report::read(db, today, 30, true, 1_000_000))
        .await
        .expect("report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_the_days_key_and_merge_their_readers() {
    for (_dir, store) in stores().await {
        let today = super::today();
        let keys = || {
            let store = store.clone();
            async move {
                store
                    .write(move |db| store::keys(db, today))
                    .await
                    .expect("keys")
            }
        };
        let (one, two) = (
            Audience::new(true, 1_000_000, keys().await),
            Audience::new(true, 1_000_000, keys().await),
        );
        // The same reader reaches both nodes; each has one of its own.
        one.count_at(today, 10, "/feed.xml", MINIFLUX, || ip(1));
        two.count_at(today, 11, "/feed.xml", MINIFLUX, || ip(1));
        one.count_at(today, 12, "/feed.xml", MINIFLUX, || ip(2));
        two.count_at(today, 13, "/feed.xml", MINIFLUX, || ip(3));
        // The later report of one service wins, whichever node flushes last.
        two.count_at(today, 20, "/feed.xml", FEEDLY, not_asked);
        one.count_at(
            today,
            10,
            "/feed.xml",
            b"Feedly/1.0 (+http://www.feedly.com/fetcher.html; 99 subscribers; )",
            not_asked,
        );
        two.flush(&store).await.expect("flush two");
        let flushed = one.flush(&store).await.expect("flush one");
        assert_eq!((flushed.uniques, flushed.reports), (2, 1));
        let r = read(&store, today).await;
        let feed = &r.feeds[0];
        let t = *feed.days.last().expect("today");
        assert_eq!((t.uniques, t.reported, t.total), (3, 134, 137));
        assert_eq!(feed.readers_7d, 137.0);
        assert_eq!(r.site.readers_7d, 137.0);
        assert_eq!(r.since, Some(report::date(today)));
        // No address is stored: only 16-byte hashes.
        let hashes: Vec<Vec<u8>> = store
            .read(|db| {
                db.query_map("SELECT hash FROM audience_uniques", crate::params![], |r| {
                    r.get(0)
                })
            })
            .await
            .expect("hashes");
        assert_eq!(hashes.len(), 3);
        assert!(hashes.iter().all(|h| h.len() == 16));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_days_are_folded_and_their_keys_deleted() {
    for (_dir, store) in stores().await {
        let day = 20_000;
        let mut batch = Batch::default();
        let set: HashSet<Unique> = (0..5u8).map(|n| Unique { day, hash: [n; 16] }).collect();
        batch.uniques.insert("/feed.xml".into(), set);
        batch.overflow.insert((day, "/feed.xml".into()), 2);
        store
            .write(move |db| {
                store::keys(db, day)?;
                store::flush(db, &batch, day)
            })
            .await
            .expect("flush");
        // Three days on: the day is folded, its hashes and keys are gone.
        let later = day + 3;
        let mut late = Batch::default();
        // A node that still held uniques of that day cannot add them twice.
        late.uniques.insert(
            "/feed.xml".into(),
            [Unique { day, hash: [9; 16] }].into_iter().collect(),
        );
        let flushed = store
            .write(move |db| {
                store::keys(db, later)?;
                store::flush(db, &late, later)
            })
            .await
            .expect("flush later");
        assert_eq!(flushed.uniques, 0);
        let (hashes, keys): (i64, Vec<i64>) = store
            .read(|db| {
                Ok::<_, crate::store::Error>((
                    db.query_row(
                        "SELECT COUNT(*) FROM audience_uniques",
                        crate::params![],
                        |r| r.get(0),
                    )?,
                    db.query_map(
                        "SELECT day FROM audience_keys ORDER BY day",
                        crate::params![],
                        |r| r.get(0),
                    )?,
                ))
            })
            .await
            .expect("state");
        assert_eq!(hashes, 0);
        assert_eq!(keys, vec![later, later + 1]);
        let r = read(&store, later).await;
        let folded = r.feeds[0]
            .days
            .iter()
            .find(|d| d.day == report::date(day))
            .copied()
            .expect("the folded day");
        assert_eq!((folded.uniques, folded.overflow), (5, 2));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_keeps_a_bounded_number_of_reports_a_day() {
    for (_dir, store) in stores().await {
        let day = 20_000;
        let mut batch = Batch::default();
        for n in 0..store::REPORTS_PER_FEED_DAY + 6 {
            batch.reports.insert(
                key(day, "/feed.xml", &format!("Service{n}"), "", false),
                latest(3, 1),
            );
        }
        let flushed = store
            .write(move |db| store::flush(db, &batch, day))
            .await
            .expect("flush");
        assert_eq!(flushed.reports, store::REPORTS_PER_FEED_DAY);
        assert_eq!(flushed.reports_dropped, 6);
        // One already kept is still updated.
        let mut again = Batch::default();
        again
            .reports
            .insert(key(day, "/feed.xml", "Service0", "", false), latest(8, 2));
        again
            .reports
            .insert(key(day, "/feed.xml", "Another", "", false), latest(8, 2));
        let flushed = store
            .write(move |db| store::flush(db, &again, day))
            .await
            .expect("flush again");
        assert_eq!((flushed.reports, flushed.reports_dropped), (1, 1));
        let r = read(&store, day).await;
        let service0 = r.feeds[0]
            .services
            .iter()
            .find(|s| s.service == "Service0")
            .expect("kept");
        assert_eq!(service0.subscribers, 8);
    }
}

#[test]
fn one_agent_across_feeds_counts_on_each_feed() {
    let day = 20_000;
    let a = audience(day, 1_000_000);
    for (at, path) in ["/feed.xml", "/atom.xml", "/feed.xml", "/tags/ai/feed.json"]
        .into_iter()
        .enumerate()
    {
        a.count_at(day, at as i64, path, FEEDLY, not_asked);
    }
    a.count_at(day, 9, "/atom.xml", MINIFLUX, || ip(1));
    let batch = a.drain();
    assert_eq!(batch.reports.len(), 3);
    assert_eq!(
        batch.reports[&key(day, "/feed.xml", "Feedly", "", false)],
        latest(134, 2)
    );
    assert!(batch
        .reports
        .contains_key(&key(day, "/atom.xml", "Feedly", "", false)));
    assert_eq!(batch.uniques["/atom.xml"].len(), 1);
    // After a drain the shard starts again (its memo of the last feed too).
    a.count_at(day, 10, "/feed.xml", FEEDLY, not_asked);
    assert_eq!(a.drain().reports.len(), 1);
}
