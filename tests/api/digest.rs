//! Digests as subscribers receive them: grouped by tag, only their tags, only what is new, once.

use crate::helpers::{stdout, Daemon, SmtpSink};

fn subscriber(d: &Daemon, email: &str, tags: &[&str], cadence: &str, zone: &str) {
    let body = serde_json::json!({
        "email": email, "status": "confirmed", "tags": tags, "cadence": cadence, "time_zone": zone,
    });
    let r = d.api("POST", "/api/subscribers", Some(&body.to_string()));
    assert!(r.status == 201 || r.status == 200, "{}", r.text());
}

fn article(d: &Daemon, slug: &str, tags: &[&str], published: &str) {
    d.publish(
        &serde_json::json!({
            "slug": slug, "title": format!("Title {slug}"), "url": format!("https://blog.example/posts/{slug}"),
            "summary": format!("Summary of {slug}"), "tags": tags, "published_at": published,
            "reading_time_minutes": 5,
        })
        .to_string(),
    );
}

/// Tags exist only once an article carries them; this makes AI, Open Science and Ethics known.
fn tags(d: &Daemon) {
    article(
        d,
        "old",
        &["AI", "Open Science", "Ethics"],
        "2020-01-01T00:00:00Z",
    );
}

fn run_now(d: &Daemon) -> serde_json::Value {
    let r = d.api("POST", "/api/digests/run", Some(r#"{"now": true}"#));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Deliveries on the ledger, whatever their state.
fn deliveries(d: &Daemon) -> i64 {
    d.db()
        .query_row("SELECT count(*) FROM deliveries", &[], |r| r.get(0))
        .expect("ledger")
}

fn recent(hours_ago: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::hours(hours_ago)).to_rfc3339()
}

/// The section headings of a digest's text part, in order, with their articles.
fn sections(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("== ") {
            let name = rest.split(" ==").next().unwrap_or_default().to_string();
            out.push((name, Vec::new()));
        } else if let Some(title) = line.strip_prefix("* ") {
            if let Some(last) = out.last_mut() {
                last.1.push(title.to_string());
            }
        }
    }
    out
}

#[test]
fn a_digest_groups_new_articles_by_tag_exactly_as_specified() {
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[]);
    tags(&d);
    subscriber(&d, "all@example.com", &[], "daily", "UTC");
    article(&d, "a", &["AI", "Open Science"], &recent(3));
    article(&d, "b", &["Open Science"], &recent(1));
    article(&d, "c", &["Ethics", "AI"], &recent(5));
    article(&d, "d", &[], &recent(2));
    let report = run_now(&d);
    assert_eq!(report["planned"], 1);
    assert_eq!(report["sent"], 1);
    let mail = &sink.wait_for(1)[0];
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Future Tech Blog digest: 4 new articles")
    );
    let text = mail.text();
    assert!(
        text.contains("4 new articles in Open Science, AI, Ethics, More"),
        "{text}"
    );
    assert_eq!(
        sections(&text),
        vec![
            ("Open Science".to_string(), vec!["Title b".to_string()]),
            ("AI".to_string(), vec!["Title a".to_string()]),
            ("Ethics".to_string(), vec!["Title c".to_string()]),
            ("More".to_string(), vec!["Title d".to_string()]),
        ],
        "each article once, under its first tag; sections by their newest article; untagged in More\n{text}"
    );
    assert!(text.contains("https://blog.example/tags/open-science/feed.xml"));
    assert!(text.contains("5 min read"));
    let html = mail.html();
    assert!(
        html.contains("href=\"https://blog.example/posts/b\""),
        "{html}"
    );
    assert!(mail.header("List-Unsubscribe").is_some());
    assert_eq!(
        mail.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    // The footer's links work, and "view in browser" shows the run's generic version.
    let prefs = mail.link("https://blog.example", "/preferences/");
    assert_eq!(d.get(&prefs).status, 200);
    let archive = mail.link("https://blog.example", "/digests/");
    let page = d.get(&archive);
    assert_eq!(page.status, 200);
    for t in ["Title a", "Title b", "Title c", "Title d"] {
        assert!(page.text().contains(t), "{t}");
    }
    assert!(
        !page.text().contains("/unsubscribe/"),
        "the archive has no personal links"
    );
    assert_eq!(d.get("/digests/999").status, 404);
}

#[test]
fn chosen_tags_get_only_those_and_nothing_new_sends_nothing() {
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[]);
    tags(&d);
    subscriber(&d, "ai@example.com", &["ai"], "daily", "UTC");
    subscriber(&d, "ethics-only@example.com", &["ethics"], "daily", "UTC");
    article(&d, "a", &["Open Science", "AI"], &recent(3));
    article(&d, "b", &["Open Science"], &recent(1));
    article(&d, "d", &[], &recent(2));
    let report = run_now(&d);
    assert_eq!(report["sent"], 1, "{report}");
    let mails = sink.wait_for(1);
    assert_eq!(mails[0].header("To").as_deref(), Some("ai@example.com"));
    assert_eq!(
        sections(&mails[0].text()),
        vec![("AI".to_string(), vec!["Title a".to_string()])],
        "filed under the first tag the reader follows, even if not the article's first"
    );
    // A second run right after the first sends nothing.
    let again = run_now(&d);
    assert_eq!(again["planned"], 0, "{again}");
    assert_eq!(deliveries(&d), 1, "the second run planned no delivery");
    assert_eq!(sink.count(), 1);
    // Something new later goes out, and only that.
    article(&d, "e", &["AI"], &recent(0));
    assert_eq!(run_now(&d)["sent"], 1);
    let mails = sink.wait_for(2);
    assert_eq!(
        sections(&mails[1].text()),
        vec![("AI".to_string(), vec!["Title e".to_string()])]
    );
}

#[test]
fn a_new_subscriber_does_not_get_the_archive_and_history_imports_mail_nobody() {
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[]);
    tags(&d);
    subscriber(&d, "early@example.com", &[], "daily", "UTC");
    article(&d, "before", &["AI"], &recent(2));
    article(&d, "ancient", &["AI"], "2019-05-27T09:00:00Z");
    subscriber(&d, "late@example.com", &[], "daily", "UTC");
    let report = run_now(&d);
    assert_eq!(report["sent"], 1, "{report}");
    let mails = sink.wait_for(1);
    assert_eq!(mails[0].header("To").as_deref(), Some("early@example.com"));
    assert_eq!(
        sections(&mails[0].text()),
        vec![("AI".to_string(), vec!["Title before".to_string()])],
        "an old post imported now is not news"
    );
}

#[test]
fn unsubscribing_is_final_for_every_later_send() {
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[]);
    tags(&d);
    subscriber(&d, "leaving@example.com", &[], "daily", "UTC");
    article(&d, "a", &["AI"], &recent(1));
    run_now(&d);
    let mail = &sink.wait_for(1)[0];
    let r = d.request(
        "POST",
        &mail.unsubscribe_path("https://blog.example"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(b"List-Unsubscribe=One-Click"),
    );
    assert_eq!(r.status, 200);
    article(&d, "b", &["AI"], &recent(0));
    assert_eq!(run_now(&d)["planned"], 0);
    assert_eq!(
        deliveries(&d),
        1,
        "nothing planned for them after the unsubscribe"
    );
    assert_eq!(sink.count(), 1);
}

/// Erasing a subscriber takes their ledger rows in every state with them, and nobody else's
/// (on PostgreSQL the rows are found through two partial indexes, open and closed).
#[test]
fn removing_a_subscriber_deletes_their_deliveries_in_every_state() {
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[]);
    tags(&d);
    subscriber(&d, "leaving@example.com", &[], "daily", "UTC");
    subscriber(&d, "staying@example.com", &[], "daily", "UTC");
    article(&d, "a", &["AI"], &recent(1));
    let run = run_now(&d);
    assert_eq!(run["sent"], 2, "{run}");
    let db = d.db();
    let of = |email: &str| -> i64 {
        db.query_row(
            "SELECT count(*) FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id \
             WHERE s.email = ?1",
            &[&email],
            |r| r.get(0),
        )
        .expect("ledger")
    };
    // One sent row each; give the leaving subscriber a row in each other state.
    for state in ["sending", "pending", "failed", "skipped"] {
        let added = db
            .execute(
                "INSERT INTO deliveries (run_id, subscriber_id, state, window_end_us, articles, next_attempt_us) \
                 SELECT d.run_id, d.subscriber_id, ?1, d.window_end_us, d.articles, d.next_attempt_us \
                 FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id \
                 WHERE s.email = 'leaving@example.com' AND d.state = 'sent'",
                &[&state],
            )
            .expect("a delivery row");
        assert_eq!(added, 1, "{state}");
        if state == "sending" {
            // One open row at a time (`deliveries_open`): close it before the next open one.
            db.execute(
                "UPDATE deliveries SET state = 'failed' WHERE state = 'sending'",
                &[],
            )
            .expect("close the pending row");
        }
    }
    assert_eq!(of("leaving@example.com"), 5);
    let out = d.cli(&["subscriber", "remove", "leaving@example.com"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(of("leaving@example.com"), 0);
    assert_eq!(
        db.query_row(
            "SELECT count(*) FROM deliveries WHERE subscriber_id NOT IN (SELECT id FROM subscribers)",
            &[],
            |r| r.get::<i64>(0),
        )
        .expect("ledger"),
        0,
        "no row of theirs is left behind"
    );
    assert_eq!(of("staying@example.com"), 1);
}

/// Daily and weekly subscribers in three time zones, across Europe's 2027 daylight-saving change,
/// with an injected clock (`digest run --at`), not by waiting.
#[test]
fn who_is_due_follows_each_subscribers_zone_cadence_and_daylight_saving() {
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(
        &sink,
        &[
            ("TIDINGS_DIGEST_SEND_HOUR", "8"),
            ("TIDINGS_DIGEST_WEEKLY_DAY", "mon"),
        ],
    );
    tags(&d);
    subscriber(&d, "tokyo@example.com", &[], "daily", "Asia/Tokyo");
    subscriber(&d, "newyork@example.com", &[], "daily", "America/New_York");
    subscriber(&d, "paris@example.com", &[], "weekly", "Europe/Paris");
    article(&d, "spring", &["AI"], "2027-03-25T12:00:00Z");
    let run = |at: &str| -> u64 {
        let out = d.cli(&["digest", "run", "--at", at]);
        assert!(out.status.success(), "{}", crate::helpers::stderr(&out));
        let text = stdout(&out);
        text.split("digest run: ")
            .nth(1)
            .and_then(|t| t.split(" due").next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{text}"))
    };

    // Friday 12:00 UTC: everyone has a first slot behind them.
    assert_eq!(run("2027-03-26T12:00:00Z"), 3);
    assert_eq!(sink.wait_for(3).len(), 3, "each gets the new article once");
    // An hour later nobody is due again (a doubled or late tick sends nothing).
    assert_eq!(run("2027-03-26T13:00:00Z"), 0);
    // 08:00 in Tokyo on Saturday is 23:00 UTC on Friday; New York's next is Saturday 12:00 UTC.
    assert_eq!(run("2027-03-26T22:59:00Z"), 0);
    assert_eq!(run("2027-03-26T23:00:00Z"), 1);
    // Monday after Europe's change to summer time (28 March): 08:00 in Paris is 06:00 UTC, not 07:00.
    assert_eq!(
        run("2027-03-29T05:59:00Z"),
        2,
        "Tokyo and New York catch up once, Paris waits"
    );
    assert_eq!(
        run("2027-03-29T06:00:00Z"),
        1,
        "Paris, weekly, at 08:00 local summer time"
    );
    assert_eq!(run("2027-03-29T07:00:00Z"), 0);
    assert_eq!(
        (deliveries(&d), sink.count()),
        (3, 3),
        "nothing new after the first run: no more email"
    );
    // Preview explains without changing anything.
    let out = d.cli(&[
        "digest",
        "preview",
        "paris@example.com",
        "--at",
        "2027-03-30T09:00:00Z",
    ]);
    let text = stdout(&out);
    assert!(text.contains("weekly in Europe/Paris"), "{text}");
    assert!(text.contains("not due"), "{text}");
}

#[test]
fn dry_run_and_preview_change_nothing() {
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[]);
    tags(&d);
    subscriber(&d, "reader@example.com", &["ai"], "daily", "UTC");
    article(&d, "a", &["AI"], &recent(1));
    article(&d, "b", &["Ethics"], &recent(1));
    let r = d.api(
        "POST",
        "/api/digests/run",
        Some(r#"{"now": true, "dry_run": true}"#),
    );
    assert_eq!(r.json()["planned"], 1);
    assert_eq!(r.json()["plans"][0]["email"], "reader@example.com");
    let html = d.dir.join("preview.html");
    let out = d.cli(&[
        "digest",
        "preview",
        "reader@example.com",
        "--html",
        html.to_str().expect("path"),
    ]);
    let text = stdout(&out);
    assert!(text.contains("due now"), "{text}");
    assert!(
        text.contains("filtered out by tag: Title b [ethics]"),
        "{text}"
    );
    assert!(text.contains("1 new article in AI"), "{text}");
    assert!(std::fs::read_to_string(&html)
        .expect("html")
        .contains("Title a"));
    let runs: i64 = d
        .db()
        .query_row("SELECT count(*) FROM digest_runs", &[], |r| r.get(0))
        .expect("runs");
    assert_eq!(
        (deliveries(&d), runs),
        (0, 0),
        "no run and no delivery on record"
    );
    assert_eq!(sink.count(), 0);
    // The real run still sends it.
    assert_eq!(run_now(&d)["sent"], 1);
}

/// A digest is encoded once for everyone who would see the same thing, then personalised: each
/// copy carries its own links (in the text, the HTML and `List-Unsubscribe`, each opening that
/// reader's own page) and a DKIM signature that dkimpy verifies, with either kind of key.
#[test]
fn every_copy_of_a_shared_digest_has_its_own_links_and_a_valid_signature() {
    use crate::helpers::{dkim_keygen, dkim_record, dkim_verify};
    for algorithm in ["rsa", "ed25519"] {
        let sink = SmtpSink::start();
        let dir = tempfile::tempdir().expect("tmp");
        let (key, printed) = dkim_keygen(dir.path(), algorithm);
        let key = key.to_str().expect("path");
        let record = dkim_record(&printed);
        let d = Daemon::start_mailing(
            &sink,
            &[
                ("TIDINGS_MAIL_DKIM_SELECTOR", "news"),
                ("TIDINGS_MAIL_DKIM_DOMAIN", "blog.example"),
                ("TIDINGS_MAIL_DKIM_PRIVATE_KEY", key),
            ],
        );
        tags(&d);
        for i in 0..3 {
            subscriber(&d, &format!("same{i}@example.com"), &["ai"], "daily", "UTC");
        }
        subscriber(&d, "other@example.com", &[], "weekly", "Pacific/Auckland");
        article(&d, "a", &["AI"], &recent(1));
        article(&d, "b", &["Ethics"], &recent(2));
        assert_eq!(run_now(&d)["sent"], 4);
        let mails = sink.wait_for(4);
        assert_eq!(
            sink.pipelined(),
            vec![true; 4],
            "envelopes sent as one group"
        );
        let mut seen = std::collections::HashSet::new();
        for m in &mails {
            dkim_verify(&m.raw, &record)
                .unwrap_or_else(|log| panic!("{algorithm} signature does not verify:\n{log}"));
            let to = m.header("To").expect("To");
            let unsubscribe = m.unsubscribe_path("https://blog.example");
            let preferences = m.link("https://blog.example", "/preferences/");
            for link in [&unsubscribe, &preferences] {
                let url = format!("https://blog.example{link}");
                assert!(
                    m.text().contains(&url) && m.html().contains(&url),
                    "{url} in both parts"
                );
                assert!(seen.insert(link.clone()), "{link} is one reader's only");
            }
            let page = d.get(&preferences);
            assert_eq!(page.status, 200);
            assert!(page.text().contains(&to), "{to}'s own preferences page");
        }
        let texts: Vec<String> = mails
            .iter()
            .filter(|m| m.header("To").is_some_and(|t| t.starts_with("same")))
            .map(|m| {
                m.text()
                    .split("/preferences/")
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert_eq!(texts.len(), 3);
        assert!(texts
            .iter()
            .all(|t| t == &texts[0] && t.contains("Title a")));
    }
}
