//! Following a blog that lives elsewhere, against feed servers the tests run on 127.0.0.2 (the
//! daemon allows that address alone through `sources.allow_private`): conditional GET, what the
//! server says about the next poll, redirects, `410`, entry identity, the first fetch that mails
//! nobody, removed articles that stay removed.

use crate::feed_server::{rss, Answer, FeedServer};
use crate::helpers::{stdout, Daemon, SmtpSink};
use crate::sources_client::source;

const ALLOW: (&str, &str) = ("TIDINGS_SOURCES_ALLOW_PRIVATE", "127.0.0.2");
/// Polls come from the test (`tidings source poll`), not from the daemon's schedule.
const SLOW: (&str, &str) = ("TIDINGS_SOURCES_MIN_INTERVAL_MINUTES", "600");

fn hours_ago(h: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::hours(h)).to_rfc2822()
}

/// `n` entries, `/posts/<prefix><i>`, the newest first, an hour apart.
fn entries(prefix: &str, range: std::ops::Range<usize>) -> Vec<(String, String, String, String)> {
    range
        .rev()
        .map(|i| {
            (
                format!("{prefix}guid-{i}"),
                format!("http://elsewhere.example/posts/{prefix}{i}"),
                format!("Entry {prefix}{i}"),
                hours_ago(i as i64 % 48 + 1),
            )
        })
        .collect()
}

fn doc(items: &[(String, String, String, String)]) -> String {
    let refs: Vec<(&str, &str, &str, &str)> = items
        .iter()
        .map(|(a, b, c, d)| (a.as_str(), b.as_str(), c.as_str(), d.as_str()))
        .collect();
    rss(&refs)
}

/// Adds a source through the API and waits for the daemon's first poll of it.
fn follow(d: &Daemon, url: &str, extra: serde_json::Value) -> i64 {
    let mut body = serde_json::json!({ "url": url });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    crate::sources_client::follow(d, body)
}

/// `tidings source poll ID`: its report.
fn poll(d: &Daemon, id: i64) -> serde_json::Value {
    let out = d.cli(&["source", "poll", &id.to_string()]);
    serde_json::from_str(stdout(&out).trim()).unwrap_or_else(|e| panic!("no report ({e}): {out:?}"))
}

/// (slug, title, updated_at, quiet) of every article, by slug.
fn articles(d: &Daemon) -> Vec<(String, String, String, i64)> {
    d.db()
        .query_map(
            "SELECT slug, title, updated_at, quiet FROM articles ORDER BY slug",
            &[],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("articles")
}

fn titles(d: &Daemon) -> Vec<String> {
    let mut t: Vec<String> = articles(d).into_iter().map(|a| a.1).collect();
    t.sort();
    t
}

fn run_digest(d: &Daemon) -> serde_json::Value {
    let r = d.api("POST", "/api/digests/run", Some(r#"{"now": true}"#));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn confirmed_reader(d: &Daemon, email: &str) {
    let body = serde_json::json!({"email": email, "status": "confirmed", "cadence": "daily"});
    let r = d.api("POST", "/api/subscribers", Some(&body.to_string()));
    assert!(r.status == 201 || r.status == 200, "{}", r.text());
}

#[test]
fn an_unchanged_feed_is_asked_for_conditionally_and_its_304_changes_nothing() {
    let blog = FeedServer::start("127.0.0.2");
    let lm = "Mon, 07 Dec 2026 09:00:00 GMT";
    blog.set(
        "/feed.xml",
        Answer::feed(
            doc(&entries("", 0..3)),
            &[("ETag", "\"v1\""), ("Last-Modified", lm)],
        ),
    );
    let d = Daemon::start_with(&[ALLOW, SLOW]);
    let id = follow(
        &d,
        &blog.url("/feed.xml"),
        serde_json::json!({"tags": ["Friends"]}),
    );
    let before = articles(&d);
    assert_eq!(before.len(), 3, "{before:?}");
    assert!(
        before.iter().all(|a| a.0.starts_with("127-0-0-2-")),
        "{before:?}"
    );
    let first = &blog.requests_to("/feed.xml")[0];
    assert!(first.header("if-none-match").is_none());
    assert!(
        first
            .header("user-agent")
            .is_some_and(|ua| ua.starts_with("tidings/") && ua.contains("(+https://blog.example)")),
        "{first:?}"
    );

    let report = poll(&d, id);
    assert_eq!(report["status"], 304, "{report}");
    let second = blog
        .requests_to("/feed.xml")
        .pop()
        .expect("a second request");
    assert_eq!(second.header("if-none-match"), Some("\"v1\""));
    assert_eq!(second.header("if-modified-since"), Some(lm));
    assert_eq!(second.answered, 304);
    assert_eq!(articles(&d), before, "a 304 changes no article");
    let s = source(&d, id);
    assert_eq!(s["etag"], "\"v1\"");
    assert_eq!(s["last_modified"], lm);
    assert_eq!(s["state"], "active");
    assert_eq!(s["entries"], 3);
    // The source's tag and the feed's category are the articles' tags.
    let tagged: Vec<String> = d
        .db()
        .query_map(
            "SELECT t.slug FROM article_tags x JOIN tags t ON t.id = x.tag_id \
             JOIN articles a ON a.seq = x.article_seq WHERE a.title = 'Entry 0' ORDER BY t.slug",
            &[],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tagged, ["elsewhere", "friends"]);
}

#[test]
fn max_age_and_retry_after_push_the_next_poll_out() {
    let blog = FeedServer::start("127.0.0.2");
    blog.set(
        "/feed.xml",
        Answer::feed(
            doc(&entries("", 0..10)),
            &[("Cache-Control", "public, max-age=7200")],
        ),
    );
    let d = Daemon::start_with(&[ALLOW, ("TIDINGS_SOURCES_MIN_INTERVAL_MINUTES", "1")]);
    let id = follow(&d, &blog.url("/feed.xml"), serde_json::json!({}));
    let s = source(&d, id);
    let wait = s["next_fetch_us"].as_i64().unwrap() - s["last_fetch_us"].as_i64().unwrap();
    assert!(wait >= 7_200_000_000, "max-age=7200 waited only {wait} µs");
    assert!(wait < 7_300_000_000, "{wait}");

    blog.set("/feed.xml", Answer::status(503, &[("Retry-After", "3600")]));
    let report = poll(&d, id);
    assert_eq!(report["status"], 503, "{report}");
    let s = source(&d, id);
    let wait = s["next_fetch_us"].as_i64().unwrap() - s["last_fetch_us"].as_i64().unwrap();
    assert!(
        wait >= 3_600_000_000,
        "Retry-After: 3600 waited only {wait} µs"
    );
    assert_eq!(s["errors"], 1);
    assert!(s["last_error"].as_str().unwrap().contains("503"), "{s}");
    assert_eq!(s["state"], "active", "an error never stops a source");
}

#[test]
fn a_301_seen_on_three_polls_moves_the_url_and_a_302_never_does() {
    let blog = FeedServer::start("127.0.0.2");
    blog.set("/feed.xml", Answer::feed(doc(&entries("", 0..2)), &[]));
    blog.set("/old.xml", Answer::redirect(301, "/feed.xml"));
    blog.set("/elsewhere.xml", Answer::redirect(302, "/feed.xml"));
    let d = Daemon::start_with(&[ALLOW, SLOW]);
    let moved = follow(&d, &blog.url("/old.xml"), serde_json::json!({}));
    let kept = follow(
        &d,
        &blog.url("/elsewhere.xml"),
        serde_json::json!({"name": "kept"}),
    );
    assert_eq!(source(&d, moved)["moved_seen"], 1);
    poll(&d, moved);
    assert_eq!(source(&d, moved)["url"], blog.url("/old.xml"));
    assert_eq!(source(&d, moved)["moved_seen"], 2);
    poll(&d, moved);
    assert_eq!(
        source(&d, moved)["url"],
        blog.url("/feed.xml"),
        "moved on the third poll"
    );
    assert_eq!(source(&d, moved)["added_url"], blog.url("/old.xml"));
    for _ in 0..3 {
        poll(&d, kept);
    }
    let s = source(&d, kept);
    assert_eq!(s["url"], blog.url("/elsewhere.xml"), "{s}");
    assert_eq!(s["moved_to"], serde_json::Value::Null);
    assert_eq!(
        source(&d, moved)["entries"],
        2,
        "no entry added twice by the move"
    );
    assert_eq!(source(&d, kept)["entries"], 2);
}

#[test]
fn a_410_stops_the_source() {
    let blog = FeedServer::start("127.0.0.2");
    blog.set("/feed.xml", Answer::status(410, &[]));
    let d = Daemon::start_with(&[ALLOW, ("TIDINGS_SOURCES_MIN_INTERVAL_MINUTES", "1")]);
    let id = follow(&d, &blog.url("/feed.xml"), serde_json::json!({}));
    let s = source(&d, id);
    assert_eq!(s["state"], "gone", "{s}");
    assert_eq!(s["last_status"], 410);
    let out = d.cli(&["source", "list"]);
    assert!(stdout(&out).contains("never (gone)"), "{}", stdout(&out));

    // Even once due, a gone source is not polled: another source added (which wakes the poller
    // and is polled in its pass over what is due) is read, and the gone feed is not asked again.
    d.db()
        .execute("UPDATE sources SET next_fetch_us = 0 WHERE id = ?1", &[&id])
        .expect("make it due");
    blog.set("/other.xml", Answer::feed(doc(&entries("o", 0..1)), &[]));
    follow(&d, &blog.url("/other.xml"), serde_json::json!({}));
    assert_eq!(
        blog.requests_to("/feed.xml").len(),
        1,
        "a gone feed was polled"
    );
    assert_eq!(source(&d, id)["state"], "gone");
}

#[test]
fn the_first_fetch_of_50_entries_mails_nobody_and_a_later_entry_is_mailed_once() {
    let sink = SmtpSink::start();
    let blog = FeedServer::start("127.0.0.2");
    let mut items = entries("", 0..50);
    blog.set("/feed.xml", Answer::feed(doc(&items), &[]));
    let d = Daemon::start_mailing(&sink, &[ALLOW, SLOW]);
    confirmed_reader(&d, "reader@example.com");
    let id = follow(&d, &blog.url("/feed.xml"), serde_json::json!({}));
    let seeded = articles(&d);
    assert_eq!(seeded.len(), 50);
    assert!(
        seeded.iter().all(|a| a.3 == 1),
        "the back catalogue is quiet"
    );
    let report = run_digest(&d);
    assert_eq!(report["planned"], 0, "{report}");
    assert_eq!(
        d.db()
            .query_row("SELECT count(*) FROM deliveries", &[], |r| r.get::<i64>(0))
            .unwrap(),
        0
    );

    items.insert(
        0,
        (
            "guid-new".into(),
            "http://elsewhere.example/posts/new".into(),
            "Entry new".into(),
            hours_ago(0),
        ),
    );
    // First seen now, but dated long before digest.max_age_days: never new for a digest.
    items.push((
        "guid-ancient".into(),
        "http://elsewhere.example/posts/ancient".into(),
        "Entry ancient".into(),
        hours_ago(30 * 24),
    ));
    blog.set("/feed.xml", Answer::feed(doc(&items), &[]));
    let report = poll(&d, id);
    assert_eq!(report["applied"]["added"], 2, "{report}");
    assert_eq!(report["applied"]["quiet"], 1, "{report}");
    let report = run_digest(&d);
    assert_eq!(report["sent"], 1, "{report}");
    let mails = sink.wait_for(1);
    let text = mails[0].text();
    assert!(text.contains("Entry new"), "{text}");
    assert!(!text.contains("Entry ancient"), "{text}");
    assert!(!text.contains("Entry 49"), "{text}");
    // Polled again, nothing is new.
    poll(&d, id);
    assert_eq!(run_digest(&d)["planned"], 0);
}

#[test]
fn a_feed_that_repeats_a_guid_is_known_by_its_links() {
    let sink = SmtpSink::start();
    let blog = FeedServer::start("127.0.0.2");
    let items: Vec<_> = entries("", 0..3)
        .into_iter()
        .map(|(_, l, t, d)| ("same".to_string(), l, t, d))
        .collect();
    blog.set("/feed.xml", Answer::feed(doc(&items), &[]));
    let d = Daemon::start_mailing(&sink, &[ALLOW, SLOW]);
    confirmed_reader(&d, "reader@example.com");
    let id = follow(&d, &blog.url("/feed.xml"), serde_json::json!({}));
    assert_eq!(titles(&d), ["Entry 0", "Entry 1", "Entry 2"]);
    let s = source(&d, id);
    assert_eq!(s["identity"], "link", "{s}");
    assert!(s["identity_note"].as_str().unwrap().contains("same"), "{s}");
    let show = stdout(&d.cli(&["source", "show", &id.to_string()]));
    assert!(
        show.contains("identity") && show.contains("link ("),
        "{show}"
    );
    let report = poll(&d, id);
    assert_eq!(report["applied"]["added"], 0, "{report}");
    assert_eq!(titles(&d).len(), 3);

    // A new entry that reuses the guid is new by its link: added, and mailed once.
    let mut more = items.clone();
    more.insert(
        0,
        (
            "same".into(),
            "http://elsewhere.example/posts/new".into(),
            "Entry new".into(),
            hours_ago(0),
        ),
    );
    blog.set("/feed.xml", Answer::feed(doc(&more), &[]));
    let report = poll(&d, id);
    assert_eq!(report["applied"]["added"], 1, "{report}");
    assert_eq!(titles(&d).len(), 4);
    assert_eq!(run_digest(&d)["sent"], 1);
    let mails = sink.wait_for(1);
    let text = mails[0].text();
    assert!(text.contains("Entry new"), "{text}");
    assert!(
        !text.contains("Entry 1"),
        "the seeded entries stay quiet: {text}"
    );
    poll(&d, id);
    assert_eq!(run_digest(&d)["planned"], 0, "nothing mailed twice");
}

#[test]
fn changed_guids_reordering_and_pruning_add_each_entry_once() {
    let sink = SmtpSink::start();
    let blog = FeedServer::start("127.0.0.2");
    let first = entries("", 0..3);
    blog.set("/feed.xml", Answer::feed(doc(&first), &[]));
    let d = Daemon::start_mailing(&sink, &[ALLOW, SLOW]);
    confirmed_reader(&d, "reader@example.com");
    let id = follow(&d, &blog.url("/feed.xml"), serde_json::json!({}));
    assert_eq!(titles(&d).len(), 3);

    // Every guid changes; the links stay.
    let renamed: Vec<_> = first
        .iter()
        .map(|(g, l, t, d)| (format!("{g}-v2"), l.clone(), t.clone(), d.clone()))
        .collect();
    blog.set("/feed.xml", Answer::feed(doc(&renamed), &[]));
    let report = poll(&d, id);
    assert_eq!(report["applied"]["added"], 0, "{report}");
    assert_eq!(titles(&d).len(), 3);

    // Re-ordered, one pruned, one new.
    let mut next = vec![renamed[2].clone(), renamed[0].clone()];
    next.push((
        "guid-d".into(),
        "http://elsewhere.example/posts/d".into(),
        "Entry d".into(),
        hours_ago(0),
    ));
    blog.set("/feed.xml", Answer::feed(doc(&next), &[]));
    let report = poll(&d, id);
    assert_eq!(report["applied"]["added"], 1, "{report}");
    assert_eq!(
        titles(&d),
        ["Entry 0", "Entry 1", "Entry 2", "Entry d"],
        "the pruned entry stays"
    );
    assert_eq!(run_digest(&d)["sent"], 1);
    poll(&d, id);
    assert_eq!(run_digest(&d)["planned"], 0, "nothing mailed twice");
    let mails = sink.wait_for(1);
    assert!(mails[0].text().contains("Entry d"));
}

#[test]
fn an_article_an_admin_removed_does_not_come_back() {
    let blog = FeedServer::start("127.0.0.2");
    let items = entries("", 0..2);
    blog.set("/feed.xml", Answer::feed(doc(&items), &[("ETag", "\"a\"")]));
    let d = Daemon::start_with(&[ALLOW, SLOW]);
    let id = follow(
        &d,
        &blog.url("/feed.xml"),
        serde_json::json!({"name": "Friend"}),
    );
    let slugs: Vec<String> = articles(&d).into_iter().map(|a| a.0).collect();
    assert_eq!(slugs, ["friend-0", "friend-1"]);
    let r = d.api("DELETE", "/api/articles/friend-1", None);
    assert!(r.status == 204 || r.status == 200, "{}", r.text());
    // The feed changes (a new ETag), and still lists the removed entry.
    let mut edited = items.clone();
    edited[0].2 = "Entry 1, edited".into();
    blog.set(
        "/feed.xml",
        Answer::feed(doc(&edited), &[("ETag", "\"b\"")]),
    );
    let report = poll(&d, id);
    assert_eq!(report["applied"]["removed_kept_out"], 1, "{report}");
    let slugs: Vec<String> = articles(&d).into_iter().map(|a| a.0).collect();
    assert_eq!(slugs, ["friend-0"]);
}

#[test]
fn bad_sources_are_refused_naming_the_field_and_change_nothing() {
    let d = Daemon::start_with(&[ALLOW, SLOW]);
    for (body, field) in [
        (r#"{"url": "ftp://x.example/feed"}"#, "url"),
        (r#"{"url": "http://127.0.0.1:9/feed.xml"}"#, "url"),
        (
            r#"{"url": "http://127.0.0.2:9/feed.xml", "tags": [""]}"#,
            "tags",
        ),
        (
            r#"{"url": "http://127.0.0.2:9/feed.xml", "name": ""}"#,
            "name",
        ),
        (r#"{"url": 5}"#, "url"),
    ] {
        let r = d.api("POST", "/api/sources", Some(body));
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert_eq!(r.json()["field"], field, "{body}: {}", r.text());
    }
    let r = d.api("GET", "/api/sources", None);
    assert_eq!(r.json()["sources"], serde_json::json!([]));
    let out = d.cli(&["source", "add", "http://10.1.2.3/feed.xml"]);
    assert!(!out.status.success());
    assert!(crate::helpers::stderr(&out).contains("url:"), "{out:?}");
    assert_eq!(d.api("GET", "/api/sources/99", None).status, 404);
}

#[test]
fn a_host_that_answers_429_slows_only_its_own_sources() {
    let busy = FeedServer::start("127.0.0.2");
    let other = FeedServer::start("127.0.0.3");
    busy.set("/a.xml", Answer::status(429, &[("Retry-After", "3600")]));
    busy.set("/b.xml", Answer::feed(doc(&entries("b", 0..2)), &[]));
    other.set("/c.xml", Answer::feed(doc(&entries("c", 0..2)), &[]));
    let d = Daemon::start_with(&[
        ("TIDINGS_SOURCES_ALLOW_PRIVATE", "127.0.0.2,127.0.0.3"),
        SLOW,
    ]);
    let a = follow(&d, &busy.url("/a.xml"), serde_json::json!({"name": "a"}));
    assert_eq!(source(&d, a)["last_status"], 429);
    // Another source on the same host waits for the Retry-After without a request…
    let r = d.api(
        "POST",
        "/api/sources",
        Some(&serde_json::json!({"url": busy.url("/b.xml"), "name": "b"}).to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let b = r.json()["id"].as_i64().unwrap();
    let hour_us = 3_500_000_000i64;
    crate::helpers::wait_until("b postponed", 20, || {
        let s = source(&d, b);
        s["next_fetch_us"].as_i64().unwrap() > s["created_us"].as_i64().unwrap() + hour_us
    });
    assert!(busy.requests_to("/b.xml").is_empty());
    assert!(source(&d, b)["last_fetch_us"].is_null());
    // …while another host's source is read at once.
    let c = follow(&d, &other.url("/c.xml"), serde_json::json!({"name": "c"}));
    assert_eq!(source(&d, c)["entries"], 2);
}

#[test]
fn an_instant_reader_gets_a_followed_blogs_new_entry_with_local_articles_but_never_its_back_catalogue(
) {
    let sink = SmtpSink::start();
    let blog = FeedServer::start("127.0.0.2");
    let mut items = entries("", 0..5);
    blog.set("/feed.xml", Answer::feed(doc(&items), &[]));
    let d = Daemon::start_mailing(
        &sink,
        &[
            ALLOW,
            SLOW,
            ("TIDINGS_DIGEST_INSTANT_DELAY_SECONDS", "4"),
            ("TIDINGS_DIGEST_SCHEDULE", "0 0 0 1 1 *"),
        ],
    );
    let body = serde_json::json!({"email": "now@example.com", "status": "confirmed", "cadence": "instant"});
    let r = d.api("POST", "/api/subscribers", Some(&body.to_string()));
    assert_eq!(r.status, 201, "{}", r.text());
    let id = follow(
        &d,
        &blog.url("/feed.xml"),
        serde_json::json!({"tags": ["Friends"]}),
    );
    let local = |slug: &str, title: &str| {
        d.publish(&crate::helpers::article(
            slug,
            title,
            &["Local"],
            &chrono::Utc::now().to_rfc3339(),
        ));
    };
    // The back catalogue is in the catalog, but the first instant digest holds only the local news.
    local("local-one", "Local one");
    let first = sink.wait_for(1);
    let text = first[0].text();
    assert!(text.contains("Local one"), "{text}");
    assert!(
        !text.contains("Entry 0"),
        "the back catalogue was mailed: {text}"
    );

    items.insert(
        0,
        (
            "guid-fresh".into(),
            "http://elsewhere.example/posts/fresh".into(),
            "Entry fresh".into(),
            hours_ago(0),
        ),
    );
    blog.set("/feed.xml", Answer::feed(doc(&items), &[]));
    assert_eq!(poll(&d, id)["applied"]["added"], 1);
    local("local-two", "Local two");
    let both = sink.wait_for(2);
    let text = both[1].text();
    assert!(
        text.contains("Entry fresh") && text.contains("Local two"),
        "{text}"
    );
    assert!(
        !text.contains("Local one") && !text.contains("Entry 1"),
        "{text}"
    );
}
