//! Instant digests: one email `digest.instant_delay_seconds` after the first new article, with
//! what came meanwhile, as edited, without what was removed; through the same ledger as every
//! digest, so a `kill -9` loses nobody; one run per UTC day; `instant` taken wherever a cadence is.

use std::collections::HashSet;

use crate::helpers::{received, stderr, stdout, wait_until, Daemon, SmtpSink};

const BASE: &str = "https://blog.example";

/// A daemon whose schedule does not fire during a test (midnight on 1 January), so that only
/// the instant trigger sends, with this delay.
fn start(sink: &SmtpSink, delay: &str, extra: &[(&str, &str)]) -> Daemon {
    let mut env = vec![
        ("TIDINGS_DIGEST_INSTANT_DELAY_SECONDS", delay),
        ("TIDINGS_DIGEST_SCHEDULE", "0 0 0 1 1 *"),
    ];
    env.extend_from_slice(extra);
    Daemon::start_mailing(sink, &env)
}

fn subscriber(d: &Daemon, email: &str, tags: &[&str], cadence: &str) -> i64 {
    let body = serde_json::json!({
        "email": email, "status": "confirmed", "tags": tags, "cadence": cadence,
    });
    let r = d.api("POST", "/api/subscribers", Some(&body.to_string()));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["subscriber"]["cadence"], cadence);
    subscriber_id(d, email)
}

fn subscriber_id(d: &Daemon, email: &str) -> i64 {
    d.db()
        .query_row(
            "SELECT id FROM subscribers WHERE email = ?1",
            &[&email.to_string()],
            |r| r.get(0),
        )
        .expect("subscriber")
}

/// Publishes (or replaces) an article published now; when it entered the catalog.
fn publish(d: &Daemon, slug: &str, title: &str, tags: &[&str]) -> chrono::DateTime<chrono::Utc> {
    d.publish(
        &serde_json::json!({
            "slug": slug, "title": title, "url": format!("{BASE}/posts/{slug}"),
            "tags": tags, "published_at": chrono::Utc::now().to_rfc3339(),
        })
        .to_string(),
    );
    added_at(d, slug)
}

fn added_at(d: &Daemon, slug: &str) -> chrono::DateTime<chrono::Utc> {
    d.db()
        .read(|db| tidings::catalog::store::get(db, slug))
        .expect("read")
        .expect("article")
        .added_at
}

/// A subscriber's digests on the ledger: (run, planned at, article ids, state), oldest first.
fn deliveries(d: &Daemon, subscriber: i64) -> Vec<(i64, i64, String, String)> {
    d.db()
        .query_map(
            "SELECT run_id, window_end_us, articles, state FROM deliveries WHERE subscriber_id = ?1 \
             ORDER BY id",
            &[&subscriber],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("ledger")
}

fn article_id(d: &Daemon, slug: &str) -> String {
    d.db()
        .read(|db| tidings::catalog::store::get(db, slug))
        .expect("read")
        .expect("article")
        .id
}

/// Where an instant subscriber's window now starts: nothing added before it is new to them.
fn window_start(d: &Daemon, subscriber: i64) -> i64 {
    d.db()
        .query_row(
            "SELECT coalesce(window_start_us, 0) FROM subscribers WHERE id = ?1",
            &[&subscriber],
            |r| r.get(0),
        )
        .expect("subscriber")
}

/// Waits until the subscriber's digests are all sent (folded into the ledger).
fn wait_sent(d: &Daemon, subscriber: i64, n: usize) -> Vec<(i64, i64, String, String)> {
    wait_until("the digests to be recorded as sent", 30, || {
        let rows = deliveries(d, subscriber);
        rows.len() == n && rows.iter().all(|r| r.3 == "sent")
    });
    deliveries(d, subscriber)
}

#[test]
fn two_articles_within_the_delay_come_in_one_email_at_the_first_ones_time() {
    let sink = SmtpSink::start();
    let d = start(&sink, "8", &[]);
    let reader = subscriber(&d, "now@example.com", &[], "instant");
    let first = publish(&d, "first", "First news", &["AI"]);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let second = publish(&d, "second", "Second news", &["Ethics"]);
    let delay = chrono::Duration::seconds(8);
    assert!(second < first + delay, "the second came within the delay");

    let mail = &sink.wait_for(1)[0];
    assert_eq!(mail.header("To").as_deref(), Some("now@example.com"));
    let text = mail.text();
    assert!(
        text.contains("First news") && text.contains("Second news"),
        "{text}"
    );
    assert!(mail.header("List-Unsubscribe").is_some());
    assert!(mail.header("Message-ID").is_some());
    let rows = wait_sent(&d, reader, 1);
    let planned_at = chrono::DateTime::from_timestamp_micros(rows[0].1).expect("time");
    assert!(
        planned_at >= first + delay,
        "not before the first article's delay: {planned_at} < {first} + 8 s"
    );
    assert!(
        planned_at < second + delay,
        "the second article did not push it back: {planned_at} >= {second} + 8 s"
    );
    let ids: Vec<String> = serde_json::from_str(&rows[0].2).expect("ids");
    let mut ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    ids.sort();
    let mut expected = [article_id(&d, "first"), article_id(&d, "second")];
    expected.sort();
    assert_eq!(ids, expected.iter().map(String::as_str).collect::<Vec<_>>());
    // Both are behind the reader's window now: nothing more is due for them.
    assert!(window_start(&d, reader) >= second.timestamp_micros());
    let preview = d.cli(&["digest", "preview", "now@example.com"]);
    assert!(preview.status.success(), "{}", stderr(&preview));
    assert!(
        stdout(&preview).contains("not due: instant"),
        "{}",
        stdout(&preview)
    );
    assert_eq!(sink.count(), 1);
}

#[test]
fn an_edit_within_the_delay_is_sent_as_edited_and_a_removed_article_not_at_all() {
    let sink = SmtpSink::start();
    let d = start(&sink, "6", &[]);
    // Tags exist once an article carries them; one published long ago is never new.
    d.publish(&crate::helpers::article(
        "old",
        "Old",
        &["AI", "Ethics"],
        "2020-01-01T00:00:00Z",
    ));
    let everything = subscriber(&d, "all@example.com", &[], "instant");
    let ai_only = subscriber(&d, "ai@example.com", &["ai"], "instant");
    let gone = publish(&d, "gone", "Withdrawn story", &["AI"]);
    let draft = publish(&d, "draft", "A draft title", &["Ethics"]);
    publish(&d, "draft", "The final title", &["Ethics"]);
    assert_eq!(added_at(&d, "draft"), draft, "an edit is not a new article");
    assert_eq!(d.api("DELETE", "/api/articles/gone", None).status, 204);
    assert!(
        chrono::Utc::now() < gone + chrono::Duration::seconds(6),
        "the edit and the removal came within the delay"
    );

    let mail = &sink.wait_for(1)[0];
    assert_eq!(mail.header("To").as_deref(), Some("all@example.com"));
    let text = mail.text();
    assert!(text.contains("The final title"), "{text}");
    assert!(!text.contains("A draft title"), "{text}");
    assert!(!text.contains("Withdrawn story"), "{text}");
    assert!(
        mail.html().contains("The final title") && !mail.html().contains("Withdrawn"),
        "{}",
        mail.html()
    );
    let rows = wait_sent(&d, everything, 1);
    assert_eq!(
        rows[0].2,
        serde_json::json!([article_id(&d, "draft")]).to_string()
    );
    // The look that sent it came after the removed article's delay (it came first): the
    // reader of AI alone, whose only article it was, got nothing planned, and nothing waits.
    let planned_at = chrono::DateTime::from_timestamp_micros(rows[0].1).expect("time");
    assert!(planned_at >= gone + chrono::Duration::seconds(6));
    assert!(deliveries(&d, ai_only).is_empty());
    let preview = stdout(&d.cli(&["digest", "preview", "ai@example.com"]));
    assert!(preview.contains("nothing new"), "{preview}");
    assert_eq!(sink.count(), 1);
}

#[test]
fn the_instant_trigger_sends_no_daily_subscriber_and_a_scheduled_run_no_instant_one() {
    let sink = SmtpSink::start();
    let d = start(&sink, "2", &[]);
    let instant = subscriber(&d, "instant@example.com", &[], "instant");
    let daily = subscriber(&d, "daily@example.com", &[], "daily");
    publish(&d, "news", "Fresh news", &["AI"]);
    let mail = &sink.wait_for(1)[0];
    assert_eq!(mail.header("To").as_deref(), Some("instant@example.com"));
    wait_sent(&d, instant, 1);
    assert!(
        deliveries(&d, daily).is_empty(),
        "the instant look that sent it planned nothing for the daily reader"
    );
    // A scheduled run (not forced) sends the daily reader theirs, and the instant one nothing.
    let r = d.api("POST", "/api/digests/run", Some("{}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["planned"], 1, "{}", r.text());
    let mails = sink.wait_for(2);
    assert_eq!(mails[1].header("To").as_deref(), Some("daily@example.com"));
    assert_eq!(deliveries(&d, instant).len(), 1);
    assert_eq!(received(&sink)["instant@example.com"], 1);
}

#[test]
fn a_kill_9_during_an_instant_run_loses_nobody() {
    const N: usize = 600;
    const CONCURRENCY: usize = 8;
    let sink = SmtpSink::start();
    let mut d = start(
        &sink,
        "1",
        &[
            ("TIDINGS_DIGEST_CONCURRENCY", "8"),
            ("TIDINGS_DIGEST_LEASE_SECONDS", "5"),
            // Slow enough that the kill comes mid-run.
            ("TIDINGS_DIGEST_RATE_PER_SECOND", "150"),
        ],
    );
    let mut csv = String::from("email,cadence,status\n");
    for i in 0..N {
        csv.push_str(&format!("reader{i:05}@example.com,instant,confirmed\n"));
    }
    let file = d.dir.join("list.csv");
    std::fs::write(&file, csv).expect("write");
    let out = d.cli(&["subscriber", "import", file.to_str().expect("path")]);
    assert!(out.status.success(), "{}", stderr(&out));
    publish(&d, "news", "Breaking news", &["AI"]);
    wait_until("the instant run to be sending", 60, || {
        sink.messages().len() >= 100
    });
    // Killed while the sink holds back its `250`s: mid-run, with digests delivered that the
    // daemon cannot know were.
    sink.hold_replies();
    wait_until("a delivered digest not yet acknowledged", 60, || {
        sink.held() >= 1
    });
    let at_kill = sink.messages().len();
    assert!(at_kill < N, "the kill comes mid-run: {at_kill} of {N} sent");
    d.kill();
    sink.release();
    d.start_again();
    wait_until("every instant subscriber's digest", 120, || {
        received(&sink).len() >= N
    });
    assert!(d.stop().success());
    let counts = received(&sink);
    assert_eq!(counts.len(), N, "nobody is lost");
    let doubled: usize = counts.values().map(|c| c - 1).sum();
    assert!(
        doubled <= CONCURRENCY,
        "only digests in flight at the kill may arrive twice: {doubled}"
    );
    let repeats = crate::helpers::assert_one_message_id_per_recipient(&sink);
    assert_eq!(repeats, doubled);
    assert!(doubled >= 1, "the unacknowledged digests went again");
    assert_eq!(crate::helpers::unfinished_deliveries(&d), 0);
    let runs: i64 = d
        .db()
        .query_row("SELECT count(DISTINCT run_id) FROM deliveries", &[], |r| {
            r.get(0)
        })
        .expect("runs");
    assert_eq!(runs, 1, "one instant run, finished after the restart");
}

#[test]
fn every_instant_send_of_a_day_is_in_one_run_which_says_it_finished_once() {
    use crate::webhook_endpoints::{add_endpoint, ALLOW_PRIVATE};
    let receiver = crate::webhook_receiver::Receiver::start(crate::webhook_receiver::Rule::Accept);
    let sink = SmtpSink::start();
    let d = start(&sink, "1", &[ALLOW_PRIVATE]);
    add_endpoint(&d, &receiver.url, &["digest.run.finished"]);
    let reader = subscriber(&d, "now@example.com", &[], "instant");
    publish(&d, "one", "One", &["AI"]);
    sink.wait_for(1);
    wait_sent(&d, reader, 1);
    publish(&d, "two", "Two", &["AI"]);
    sink.wait_for(2);
    let rows = wait_sent(&d, reader, 2);
    assert_eq!(rows[0].0, rows[1].0, "both sends are in the day's run");
    let run = rows[0].0;
    let listed = d.api("GET", "/api/digests/runs", None).json();
    let runs = listed["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "{listed}");
    assert_eq!(runs[0]["instant"], true, "{listed}");
    assert_eq!(runs[0]["due"], 2, "{listed}");
    assert_eq!(runs[0]["sent"], 2, "{listed}");
    let finished = |d: &Daemon| -> i64 {
        d.db()
            .query_row(
                "SELECT count(*) FROM webhook_deliveries WHERE event_type = 'digest.run.finished'",
                &[],
                |r| r.get(0),
            )
            .expect("queue")
    };
    assert_eq!(finished(&d), 0, "not while its day goes on");
    // The console lists it once, as the day's instant run, and shows the reader's cadence.
    let password = "correct horse battery staple";
    crate::console_client::add_account(&d, "vic", "viewer", password);
    let mut vic = crate::console_client::Console::signed_in(&d, "vic", password);
    let list = vic.get("/admin/runs").text();
    assert_eq!(list.matches("<a href=\"/admin/runs/").count(), 1, "{list}");
    assert!(list.contains("instant, the day's"), "{list}");
    let page = vic.get("/admin/subscribers/now@example.com").text();
    assert!(page.contains(">instant</span>"), "{page}");

    // The day is over (the run is moved to yesterday): the next look closes it, once.
    d.db()
        .execute(
            "UPDATE digest_runs SET instant_day = instant_day - 1 WHERE id = ?1",
            &[&run],
        )
        .expect("yesterday");
    publish(&d, "three", "Three", &["AI"]);
    let hit = &receiver.wait_accepted(1, 30)[0];
    let body = hit.json();
    assert_eq!(body["data"]["run_id"], run, "{body}");
    assert_eq!(body["data"]["sent"], 2, "{body}");
    // Today's send goes into a run of its own, and the look that planned it (which closes the
    // days that are over first) did not announce yesterday's again.
    sink.wait_for(3);
    let rows = wait_sent(&d, reader, 3);
    assert_ne!(rows[2].0, run);
    assert_eq!(finished(&d), 1);
    let seen: HashSet<String> = receiver.hits().iter().map(|h| h.id.clone()).collect();
    assert_eq!(seen.len(), 1);
}

#[test]
fn instant_is_taken_by_the_form_the_preferences_the_api_csv_and_cli() {
    let sink = SmtpSink::start();
    let d = start(&sink, "600", &[]);
    d.publish(&crate::helpers::article(
        "one",
        "One",
        &["AI"],
        "2026-05-27T09:00:00Z",
    ));
    // The form offers it, and a reader who chose it is told so.
    assert!(d
        .get("/subscribe")
        .text()
        .contains("name=\"cadence\" value=\"instant\""));
    let r = d.post_form(
        "/subscribe",
        &[
            ("email", "form@example.com"),
            ("cadence", "instant"),
            ("time_zone", "UTC"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let confirmation = &sink.wait_for(1)[0];
    assert!(
        confirmation.text().contains("receive instant digests"),
        "{}",
        confirmation.text()
    );
    let confirm = confirmation.link(BASE, "/confirm/");
    assert_eq!(d.request("POST", &confirm, &[], Some(b"")).status, 200);
    let welcome = &sink.wait_for(2)[1];
    assert!(
        welcome.text().contains("You will get an instant digest"),
        "{}",
        welcome.text()
    );
    let prefs = welcome.link(BASE, "/preferences/");
    assert!(d.get(&prefs).text().contains("value=\"instant\" checked"));
    let bad = d.post_form(
        &prefs,
        &[
            ("cadence", "hourly"),
            ("time_zone", "UTC"),
            ("action", "save"),
        ],
    );
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("cadence:"), "{}", bad.text());
    let saved = d.post_form(
        &prefs,
        &[
            ("cadence", "weekly"),
            ("time_zone", "UTC"),
            ("action", "save"),
        ],
    );
    assert_eq!(saved.status, 200, "{}", saved.text());
    let saved = d.post_form(
        &prefs,
        &[
            ("cadence", "instant"),
            ("time_zone", "UTC"),
            ("action", "save"),
        ],
    );
    assert_eq!(saved.status, 200, "{}", saved.text());
    let get = |email: &str| {
        d.api("GET", &format!("/api/subscribers/{email}"), None)
            .json()
    };
    assert_eq!(get("form@example.com")["cadence"], "instant");

    // The API.
    let r = d.api(
        "POST",
        "/api/subscribers",
        Some(r#"{"email":"api@example.com","cadence":"instant","status":"confirmed"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(get("api@example.com")["cadence"], "instant");
    let r = d.api(
        "POST",
        "/api/subscribers",
        Some(r#"{"email":"bad@example.com","cadence":"hourly"}"#),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "cadence");
    assert!(
        r.text().contains("daily, weekly or instant"),
        "{}",
        r.text()
    );

    // The CLI.
    let out = d.cli(&[
        "subscriber",
        "add",
        "cli@example.com",
        "--cadence",
        "instant",
        "--confirmed",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(get("cli@example.com")["cadence"], "instant");
    let out = d.cli(&["subscriber", "add", "x@example.com", "--cadence", "hourly"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cadence:"), "{}", stderr(&out));

    // CSV in and out.
    let file = d.dir.join("list.csv");
    std::fs::write(
        &file,
        "email,cadence,status\ncsv@example.com,instant,confirmed\nno@example.com,hourly,confirmed\n",
    )
    .expect("write");
    let out = d.cli(&["subscriber", "import", file.to_str().expect("path")]);
    assert!(
        stderr(&out).contains("line 3: cadence:"),
        "{}",
        stderr(&out)
    );
    assert_eq!(get("csv@example.com")["cadence"], "instant");
    let export = stdout(&d.cli(&["subscriber", "export"]));
    assert!(
        export.contains("csv@example.com,,instant,UTC,confirmed,"),
        "{export}"
    );
    let list = stdout(&d.cli(&["subscriber", "list"]));
    assert!(
        list.contains("cli@example.com  confirmed  instant"),
        "{list}"
    );
}
