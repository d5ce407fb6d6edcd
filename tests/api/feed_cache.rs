//! Feeds rendered when asked: tag feeds that are not in memory are rendered on request (once, however
//! many ask at the same moment), a conditional request for one is answered from the validators in
//! the database without rendering it, the memory they take stays within `feeds.cache_bytes`, a
//! publish changes exactly the feeds it touched, and the mirror holds what is served.

use std::collections::BTreeMap;
use std::io::Read;

use crate::golden::{daemon_on, feed_paths, fixture_daemon};
use crate::helpers::{wait_until, Daemon};

/// A metric that must be there (the helper's `metric` reads a missing one as 0).
fn metric(d: &Daemon, name: &str) -> f64 {
    let text = d.get("/metrics").text();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

/// Waits until the pass after start has brought the mirror and every validator up to date.
fn wait_caught_up(d: &Daemon) {
    wait_until("the mirror to catch up", 60, || {
        metric(d, "tidings_feed_mirror_catching_up") == 0.0
    });
}

/// Renders made because a reader asked for a feed that was not in memory (0 before any).
fn renders(d: &Daemon) -> f64 {
    d.metric("tidings_feed_renders_total")
}

fn etags(d: &Daemon, paths: &[String]) -> BTreeMap<String, String> {
    paths
        .iter()
        .map(|p| {
            let r = d.get(p);
            assert_eq!(r.status, 200, "{p}");
            (p.clone(), r.header("etag").expect("ETag"))
        })
        .collect()
}

#[test]
fn a_cold_tag_feed_is_rendered_once_and_its_cached_copy_is_the_same_bytes() {
    let d = fixture_daemon(&[]);
    assert_eq!(renders(&d), 0.0, "start renders no tag feed on request");
    let path = "/tags/topic-007/atom.xml";
    let cold = d.get(path);
    assert_eq!(cold.status, 200);
    assert_eq!(renders(&d), 1.0);
    let cached = d.get(path);
    assert_eq!(renders(&d), 1.0, "the second request is served from memory");
    assert_eq!(cold.body, cached.body);
    assert_eq!(cold.header("etag"), cached.header("etag"));
    assert_eq!(cold.header("last-modified"), cached.header("last-modified"));
    let golden = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/feeds/tag-atom.xml"),
    )
    .expect("golden");
    assert_eq!(cold.body, golden);
    // gzip: its own ETag, and the same bytes once inflated.
    let gz = d.get_with(path, &[("accept-encoding", "gzip")]);
    assert_eq!(gz.header("content-encoding").as_deref(), Some("gzip"));
    let etag = cold.header("etag").expect("ETag");
    assert_eq!(
        gz.header("etag").expect("ETag"),
        format!("{}-gz\"", &etag[..etag.len() - 1])
    );
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_end(&mut plain)
        .expect("gunzip");
    assert_eq!(plain, cold.body);
    // A tag the catalog does not have is still a 404 that says so, and is not cached.
    let missing = d.get("/tags/no-such-tag/feed.xml");
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("no tag 'no-such-tag'"));
}

#[test]
fn concurrent_requests_for_one_cold_feed_render_it_once() {
    let d = fixture_daemon(&[]);
    let path = "/tags/topic-042/feed.json";
    let bodies: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|_| {
                s.spawn(|| {
                    let r = d.get(path);
                    assert_eq!(r.status, 200);
                    r.body
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("request"))
            .collect()
    });
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(renders(&d), 1.0, "twelve requests, one render");
}

#[test]
fn a_cold_feed_gets_a_304_from_its_validators_without_being_rendered() {
    let mut d = fixture_daemon(&[]);
    wait_caught_up(&d);
    let path = "/tags/topic-123/feed.xml";
    let first = d.get(path);
    let etag = first.header("etag").expect("ETag");
    let gz_etag = d
        .get_with(path, &[("accept-encoding", "gzip")])
        .header("etag")
        .expect("ETag");
    let last_modified = first.header("last-modified").expect("Last-Modified");
    // A new process holds no tag feed: the answer comes from the database.
    d.restart();
    let r = d.get_with(path, &[("if-none-match", &etag)]);
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag").as_deref(), Some(etag.as_str()));
    assert_eq!(
        r.header("last-modified").as_deref(),
        Some(last_modified.as_str())
    );
    assert!(r.body.is_empty());
    let r = d.get_with(
        path,
        &[("if-none-match", &gz_etag), ("accept-encoding", "gzip")],
    );
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag").as_deref(), Some(gz_etag.as_str()));
    let r = d.get_with(path, &[("if-modified-since", &last_modified)]);
    assert_eq!(r.status, 304);
    assert_eq!(renders(&d), 0.0, "no feed was rendered to answer them");
    // A validator that does not match gets the feed, rendered now.
    let r = d.get_with(path, &[("if-none-match", "\"something-else\"")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, first.body);
    assert_eq!(renders(&d), 1.0);
}

#[test]
fn a_publish_changes_the_etag_of_every_format_of_every_touched_tag_and_of_no_other_feed() {
    // A small cache: some tag feeds are held, most are not.
    let d = fixture_daemon(&[("TIDINGS_FEEDS_CACHE_BYTES", "300000")]);
    wait_caught_up(&d);
    let paths = feed_paths();
    let before = etags(&d, &paths);
    // A new article, the newest, in Topic 001; and golden-0002 (Topic 002, 017 and 031) loses
    // Topic 031: it is updated, so the feeds of the tags it keeps show its new update time.
    d.publish(
        &serde_json::json!({
            "slug": "a-new-one", "title": "A new one", "url": "https://blog.example/a-new-one",
            "published_at": "2026-06-01T12:00:00Z", "tags": ["Topic 001"],
        })
        .to_string(),
    );
    let fixture: Vec<serde_json::Value> =
        serde_json::from_str(&crate::golden::fixture_json()).expect("fixture");
    let mut article = fixture[2].clone();
    assert_eq!(
        article["tags"],
        serde_json::json!(["Topic 002", "Topic 017", "Topic 031"])
    );
    article["tags"] = serde_json::json!(["Topic 002", "Topic 017"]);
    d.publish(&article.to_string());
    let after = etags(&d, &paths);
    let changed: Vec<&String> = paths.iter().filter(|p| before[*p] != after[*p]).collect();
    let mut expected: Vec<&String> = paths
        .iter()
        .filter(|p| {
            !p.starts_with("/tags/")
                || ["001", "002", "017", "031"]
                    .iter()
                    .any(|t| p.starts_with(&format!("/tags/topic-{t}/")))
        })
        .collect();
    expected.sort();
    assert_eq!(expected.len(), 15);
    let mut changed_sorted = changed.clone();
    changed_sorted.sort();
    assert_eq!(changed_sorted, expected);
    // The new ETags hold for conditional requests from this node's cache and database alike.
    for p in &changed {
        let r = d.get_with(p, &[("if-none-match", &after[*p])]);
        assert_eq!(r.status, 304, "{p}");
    }
}

#[test]
fn the_mirror_holds_what_is_served_for_hot_and_cold_feeds() {
    let d = fixture_daemon(&[("TIDINGS_FEEDS_CACHE_BYTES", "200000")]);
    wait_caught_up(&d);
    let mirror = d.dir.join("mirror");
    let check = |paths: &[String]| {
        for p in paths {
            let served = d.get(p);
            assert_eq!(served.status, 200);
            let file = mirror.join(p.trim_start_matches('/'));
            let on_disk = std::fs::read(&file).unwrap_or_else(|e| panic!("{p}: {e}"));
            assert!(
                on_disk == served.body,
                "{p}: the mirror differs from what is served"
            );
            let gz = std::fs::read(format!("{}.gz", file.display())).expect("gzip copy");
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut plain)
                .expect("gunzip");
            assert!(plain == served.body, "{p}: the .gz copy differs");
        }
    };
    // Every feed was written after start, before any reader asked for it.
    check(&feed_paths());
    // Hot (topic-000 was just requested and fits) and cold feeds after a publish.
    d.publish(
        &serde_json::json!({
            "slug": "mirrored", "title": "Mirrored", "url": "https://blog.example/mirrored",
            "published_at": "2026-04-01T12:00:00Z", "tags": ["Topic 000 & <Co>", "Topic 199"],
        })
        .to_string(),
    );
    let touched: Vec<String> = feed_paths()
        .into_iter()
        .filter(|p| {
            !p.starts_with("/tags/") || p.contains("/topic-000") || p.contains("/topic-199/")
        })
        .collect();
    wait_until("the mirror to show the publish", 30, || {
        std::fs::read(mirror.join("feed.xml"))
            .is_ok_and(|b| String::from_utf8_lossy(&b).contains("Mirrored"))
            && std::fs::read(mirror.join("tags/topic-199/feed.json"))
                .is_ok_and(|b| String::from_utf8_lossy(&b).contains("Mirrored"))
    });
    wait_until("the mirror to settle", 30, || {
        touched.iter().all(|p| {
            let served = d.get(p).body;
            std::fs::read(mirror.join(p.trim_start_matches('/'))).is_ok_and(|b| b == served)
        })
    });
    check(&touched);
}

#[test]
fn three_hundred_tag_feeds_in_three_formats_stay_within_feeds_cache_bytes() {
    // 300 tags, 5 articles each, about 3 KB of content per article.
    let body = "<p>".to_string() + &"Words about the topic. ".repeat(120) + "</p>";
    let articles: Vec<serde_json::Value> = (0..1500)
        .map(|i| {
            serde_json::json!({
                "slug": format!("a-{i}"), "title": format!("Article {i}"),
                "url": format!("https://blog.example/a-{i}"),
                "published_at": format!("2026-02-{:02}T{:02}:00:00Z", 1 + i % 28, i % 24),
                "content_html": body, "tags": [format!("Tag {:03}", i % 300)],
            })
        })
        .collect();
    let cap: u64 = 1 << 20;
    let d = daemon_on(
        &serde_json::to_string(&articles).expect("JSON"),
        &[("TIDINGS_FEEDS_CACHE_BYTES", &cap.to_string())],
    );
    let mut seen_bytes = 0.0f64;
    for t in 0..300 {
        for f in ["feed.xml", "atom.xml", "feed.json"] {
            let r = d.get(&format!("/tags/tag-{t:03}/{f}"));
            assert_eq!(r.status, 200);
        }
        if t % 25 == 24 {
            let bytes = metric(&d, "tidings_feed_cache_bytes");
            assert!(bytes <= cap as f64, "{bytes} bytes held after {t} tags");
            seen_bytes = seen_bytes.max(bytes);
        }
    }
    // It did hold feeds (each tag's three are about 50 KB with their gzip copies)...
    assert!(seen_bytes > (cap / 2) as f64, "held at most {seen_bytes}");
    // ...and every one was rendered on request, however many were dropped since.
    assert_eq!(renders(&d), 900.0);
}
