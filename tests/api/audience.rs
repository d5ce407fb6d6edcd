//! Who reads the feeds: reported subscriber counts and unique readers, counted from the
//! requests' User-Agents, written at shutdown, read back with `tidings audience` and the API.

use serde_json::Value;

use crate::helpers::{fresh_postgres_url, publish_article, stderr, Daemon, Resp, SmtpSink};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const MINIFLUX: &str = "Mozilla/5.0 (compatible; Miniflux/2.2.3; +https://miniflux.app)";
const NETNEWSWIRE: &str = "NetNewsWire (RSS Reader; https://netnewswire.com/)";

/// Each hosted reader's User-Agent, the service it is shown as, its feed id and its count.
const REPORTING: &[(&str, &str, &str, u64)] = &[
    (
        "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 134 subscribers; )",
        "Feedly",
        "",
        134,
    ),
    (
        "Mozilla/5.0 (compatible; inoreader.com; 25 subscribers)",
        "Inoreader",
        "",
        25,
    ),
    (
        "NewsBlur Feed Fetcher - 12 subscribers - https://www.newsblur.com/site/6270734/future-tech (Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/534.48.3 (KHTML, like Gecko) Version/5.1 Safari/534.48.3)",
        "NewsBlur",
        "6270734",
        12,
    ),
    ("Feedbin feed-id:1234 - 56 subscribers", "Feedbin", "1234", 56),
    (
        "Mozilla/5.0 (compatible; theoldreader.com; 3 subscribers; feed-id=5f2a9c0e1b7d)",
        "The Old Reader",
        "5f2a9c0e1b7d",
        3,
    ),
    (
        "Mozilla/5.0 (compatible; BazQux/2.4; +https://bazqux.com/fetcher; 7 subscribers)",
        "BazQux",
        "",
        7,
    ),
];

/// Scrapers forge these: above `audience.max_reported` (1,000,000 by default).
const FORGED: &[(&str, &str, u64)] = &[
    (
        "NewsBlur Feed Fetcher - 5000000 subscribers",
        "NewsBlur",
        5_000_000,
    ),
    (
        "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 2000000 subscribers; )",
        "Feedly",
        2_000_000,
    ),
];

/// A GET from `address` (the daemon trusts `X-Forwarded-For`) with this User-Agent.
fn fetch(d: &Daemon, path: &str, address: &str, agent: &str, etag: Option<&str>) -> Resp {
    let mut headers = vec![("User-Agent", agent), ("X-Forwarded-For", address)];
    if let Some(tag) = etag {
        headers.push(("If-None-Match", tag));
    }
    d.get_with(path, &headers)
}

/// A daemon with a tag feed, every feed rendered; it trusts `X-Forwarded-For`.
fn start(extra: &[(&str, &str)]) -> Daemon {
    let mut env = vec![("TIDINGS_SERVER_TRUST_PROXY", "true")];
    env.extend_from_slice(extra);
    let d = Daemon::start_with(&env);
    publish_article(&d, "hello");
    // Asked as a browser: not counted.
    d.wait_for_with("/tags/ai/atom.xml", &[("User-Agent", CHROME)], |r| {
        r.status == 200
    });
    d
}

/// Sends every kind of request; what should be counted is in the test below.
fn send_the_readers(d: &Daemon) {
    // An earlier, lower count of Feedly's: the latest of the day is kept.
    let early = "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 130 subscribers; )";
    assert_eq!(fetch(d, "/feed.xml", "192.0.2.1", early, None).status, 200);
    for (agent, ..) in REPORTING {
        assert_eq!(fetch(d, "/feed.xml", "192.0.2.1", agent, None).status, 200);
    }
    for (agent, ..) in FORGED {
        assert_eq!(
            fetch(d, "/feed.xml", "198.51.100.7", agent, None).status,
            200
        );
    }
    // Unique (address, User-Agent) pairs: a 200 and then 304s from one reader count once.
    let first = fetch(d, "/feed.xml", "10.0.0.1", MINIFLUX, None);
    assert_eq!(first.status, 200);
    let etag = first.header("etag").expect("an ETag");
    for _ in 0..2 {
        let again = fetch(d, "/feed.xml", "10.0.0.1", MINIFLUX, Some(&etag));
        assert_eq!(again.status, 304);
    }
    assert_eq!(
        fetch(d, "/feed.xml", "10.0.0.2", MINIFLUX, None).status,
        200
    );
    assert_eq!(
        fetch(d, "/feed.xml", "10.0.0.1", NETNEWSWIRE, None).status,
        200
    );
    assert_eq!(
        fetch(d, "/tags/ai/atom.xml", "10.0.0.1", MINIFLUX, None).status,
        200
    );
    // Browsers and crawlers are left out; so are pages that are not feeds, and failures.
    assert_eq!(fetch(d, "/feed.xml", "10.0.0.9", CHROME, None).status, 200);
    assert_eq!(
        fetch(d, "/feed.json", "10.0.0.10", GOOGLEBOT, None).status,
        200
    );
    assert_eq!(fetch(d, "/", "10.0.0.3", MINIFLUX, None).status, 200);
    assert_eq!(
        fetch(d, "/tags/nope/feed.xml", "10.0.0.4", MINIFLUX, None).status,
        404
    );
}

fn feed<'a>(report: &'a Value, path: &str) -> &'a Value {
    report["feeds"]
        .as_array()
        .expect("feeds")
        .iter()
        .find(|f| f["feed"] == path)
        .unwrap_or_else(|| panic!("no {path} in {report}"))
}

/// (service, feed id, subscribers, suspect) of a feed's services, as listed.
fn services(feed: &Value) -> Vec<(String, String, u64, bool)> {
    feed["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| {
            (
                s["service"].as_str().expect("service").to_string(),
                s["feed_id"].as_str().expect("feed_id").to_string(),
                s["subscribers"].as_u64().expect("subscribers"),
                s["suspect"].as_bool().expect("suspect"),
            )
        })
        .collect()
}

fn today(feed: &Value) -> &Value {
    feed["days"]
        .as_array()
        .expect("days")
        .last()
        .expect("today")
}

fn cli_report(d: &Daemon) -> Value {
    let out = d.cli(&["audience", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn audience_counts_match_what_readers_sent_with_forged_counts_suspect() {
    let mut d = start(&[]);
    send_the_readers(&d);
    // Counted in memory; the stop writes it.
    let status = d.stop();
    assert!(status.success(), "{status:?}");
    let report = cli_report(&d);

    let site_feed = feed(&report, "/feed.xml");
    let mut expected: Vec<(String, String, u64, bool)> = REPORTING
        .iter()
        .map(|(_, service, id, n)| (service.to_string(), id.to_string(), *n, false))
        .collect();
    expected.sort_by_key(|s| std::cmp::Reverse(s.2));
    expected.extend(
        FORGED
            .iter()
            .map(|(_, service, n)| (service.to_string(), String::new(), *n, true)),
    );
    expected[6..].sort_by_key(|s| std::cmp::Reverse(s.2));
    assert_eq!(services(site_feed), expected);
    let reported: u64 = REPORTING.iter().map(|r| r.3).sum();
    let t = today(site_feed);
    assert_eq!(t["reported"], reported, "{t}");
    assert_eq!(t["uniques"], 3, "{t}");
    assert_eq!(t["overflow"], 0, "{t}");
    assert_eq!(t["total"], reported + 3, "{t}");
    // The first day: the 7-day figure is today's.
    assert_eq!(site_feed["readers_7d"], (reported + 3) as f64);

    let tag_feed = feed(&report, "/tags/ai/atom.xml");
    assert_eq!(today(tag_feed)["uniques"], 1);
    assert!(services(tag_feed).is_empty());
    // Nothing else was counted: not the browser, the crawler, the index page or the 404.
    assert_eq!(
        report["feeds"].as_array().expect("feeds").len(),
        2,
        "{report}"
    );
    assert_eq!(report["site"]["suspect_reports"], 2);
    assert_eq!(report["site"]["readers_7d"], (reported + 4) as f64);

    // The table says the same, suspect counts flagged.
    let out = d.cli(&["audience"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("NewsBlur (feed 6270734)"), "{table}");
    assert_eq!(table.matches("SUSPECT").count(), 2, "{table}");

    // The API answers the same report, behind the admin token.
    d.start_again();
    let r = d.api("GET", "/api/audience", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let api = r.json();
    assert_eq!(api["feeds"], report["feeds"]);
    assert_eq!(api["site"], report["site"]);
    assert_eq!(api["max_reported"], 1_000_000);
    assert_eq!(d.get("/api/audience").status, 401);
    let bad = d.api("GET", "/api/audience?days=0", None);
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["field"], "days");
}

#[test]
fn the_cap_on_reported_counts_is_a_setting() {
    let mut d = start(&[("TIDINGS_AUDIENCE_MAX_REPORTED", "100")]);
    let feedly = REPORTING[0].0;
    assert_eq!(
        fetch(&d, "/feed.xml", "192.0.2.1", feedly, None).status,
        200
    );
    assert!(d.stop().success());
    let report = cli_report(&d);
    assert_eq!(
        services(feed(&report, "/feed.xml")),
        vec![("Feedly".to_string(), String::new(), 134, true)]
    );
    assert_eq!(today(feed(&report, "/feed.xml"))["reported"], 0);
}

#[test]
fn with_counting_off_nothing_is_counted() {
    let mut d = start(&[("TIDINGS_AUDIENCE_ENABLED", "false")]);
    send_the_readers(&d);
    assert!(d.stop().success());
    let report = cli_report(&d);
    assert_eq!(report["feeds"], serde_json::json!([]), "{report}");
    let counted: i64 = d
        .db()
        .query_row(
            "SELECT (SELECT COUNT(*) FROM audience_uniques) + (SELECT COUNT(*) FROM audience_reported) + (SELECT COUNT(*) FROM audience_keys)",
            &[],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(counted, 0);
}

#[test]
#[ignore = "needs PostgreSQL (TIDINGS_TEST_POSTGRES_URL); .ci/run sets it"]
fn two_nodes_merge_their_readers() {
    let url = fresh_postgres_url();
    let sink = SmtpSink::start();
    let trust = [("TIDINGS_SERVER_TRUST_PROXY", "true")];
    let mut a = Daemon::start_node(&url, &sink, &trust);
    let mut b = Daemon::start_node(&url, &sink, &trust);
    // The same reader reaches both nodes (a load balancer); each node has one reader of its own.
    for d in [&a, &b] {
        assert_eq!(
            fetch(d, "/feed.xml", "10.0.0.1", MINIFLUX, None).status,
            200
        );
    }
    assert_eq!(
        fetch(&a, "/feed.xml", "10.0.0.2", MINIFLUX, None).status,
        200
    );
    assert_eq!(
        fetch(&b, "/feed.xml", "10.0.0.3", MINIFLUX, None).status,
        200
    );
    let early = "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 130 subscribers; )";
    assert_eq!(fetch(&a, "/feed.xml", "192.0.2.1", early, None).status, 200);
    assert_eq!(
        fetch(&b, "/feed.xml", "192.0.2.1", REPORTING[0].0, None).status,
        200
    );
    // Each writes at its stop. (Which of two reports is later is told by when each was seen, to
    // the second; the unit tests check that order whichever node writes last.)
    assert!(a.stop().success());
    assert!(b.stop().success());
    let report = cli_report(&a);
    let t = today(feed(&report, "/feed.xml"));
    assert_eq!(t["uniques"], 3, "{report}");
    assert_eq!(t["reported"], 134, "{report}");
}
