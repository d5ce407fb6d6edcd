//! Two daemons on one PostgreSQL: what one node does, the other sees, and a digest run shared by
//! both goes out once per subscriber even when one of them dies or stalls mid-run.

use std::time::{Duration, Instant};

use crate::helpers::{
    fresh_postgres_url, pause_outside_transactions, publish_article, received, start_digest_run,
    unfinished_deliveries, wait_until, Daemon, SmtpSink,
};

fn import_on(d: &Daemon, n: usize) {
    crate::helpers::import_subscribers(d, n);
}

fn runs(d: &Daemon) -> i64 {
    d.db()
        .query_row("SELECT count(*) FROM digest_runs", &[], |r| r.get(0))
        .expect("runs")
}

#[test]
#[ignore = "needs PostgreSQL (TIDINGS_TEST_POSTGRES_URL); .ci/run sets it"]
fn a_publish_on_one_node_is_served_by_the_other_within_a_second() {
    let url = fresh_postgres_url();
    let sink = SmtpSink::start();
    let a = Daemon::start_node(&url, &sink, &[]);
    let b = Daemon::start_node(&url, &sink, &[]);
    for slug in ["one", "two", "three"] {
        publish_article(&a, slug);
        let published = Instant::now();
        loop {
            if b.get("/feed.xml").text().contains(&format!("Title {slug}"))
                && b.get("/tags/ai/feed.json")
                    .text()
                    .contains(&format!("Title {slug}"))
            {
                break;
            }
            assert!(
                published.elapsed() < Duration::from_secs(1),
                "node B did not serve '{slug}' within 1 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Both nodes serve the same bytes (and so the same ETags).
    for path in [
        "/feed.xml",
        "/atom.xml",
        "/feed.json",
        "/tags/ai/feed.xml",
        "/",
    ] {
        let (ra, rb) = (a.get(path), b.get(path));
        assert_eq!(ra.body, rb.body, "{path}");
        assert_eq!(ra.header("etag"), rb.header("etag"), "{path}");
    }
}

#[test]
#[ignore = "needs PostgreSQL (TIDINGS_TEST_POSTGRES_URL); .ci/run sets it"]
fn subscribe_on_one_node_and_confirm_on_the_other() {
    let url = fresh_postgres_url();
    let sink = SmtpSink::start();
    let a = Daemon::start_node(&url, &sink, &[]);
    let b = Daemon::start_node(&url, &sink, &[]);
    let r = a.post_form(
        "/subscribe",
        &[
            ("email", "reader@example.com"),
            ("cadence", "daily"),
            ("time_zone", "UTC"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let mails = sink.wait_for(1);
    let path = mails[0].link("https://blog.example", "/confirm/");
    let r = b.request("POST", &path, &[], Some(b""));
    assert_eq!(r.status, 200, "{}", r.text());
    let status = b
        .api("GET", "/api/subscribers/reader@example.com", None)
        .json();
    assert_eq!(status["status"], "confirmed", "{status}");
    // One confirmation and one welcome, each sent by one of the two outbox workers.
    // The sink has a message a moment before its worker records it as sent.
    sink.wait_for(2);
    wait_until("both outbox rows recorded as sent", 10, || {
        let sent: i64 = a
            .db()
            .query_row(
                "SELECT count(*) FROM outbox WHERE state = 'sent'",
                &[],
                |r| r.get(0),
            )
            .expect("outbox");
        sent == 2
    });
    assert_eq!(sink.messages().len(), 2);
}

#[test]
#[ignore = "needs PostgreSQL (TIDINGS_TEST_POSTGRES_URL); .ci/run sets it"]
fn a_run_started_on_both_nodes_survives_one_killed_and_sends_each_digest_once() {
    const N: usize = 5000;
    const CONCURRENCY: usize = 4;
    let url = fresh_postgres_url();
    let sink = SmtpSink::start();
    let env = [
        ("TIDINGS_DIGEST_LEASE_SECONDS", "5"),
        ("TIDINGS_DIGEST_CONCURRENCY", "4"),
    ];
    let mut a = Daemon::start_node(&url, &sink, &env);
    let mut b = Daemon::start_node(&url, &sink, &env);
    import_on(&a, N);
    publish_article(&a, "news");
    let (run_a, run_b) = (start_digest_run(&a), start_digest_run(&b));
    wait_until("digests before the kill", 120, || {
        sink.messages().len() >= N / 4
    });
    a.kill();
    let _ = run_a.join();
    // B finishes its part, then takes over A's claims once their lease lapses.
    let report = run_b.join().expect("run on B").expect("B's report");
    wait_until("every subscriber's digest", 120, || {
        received(&sink).len() >= N
    });
    assert_eq!(b.stop().code(), Some(0));
    let counts = received(&sink);
    assert_eq!(counts.len(), N, "nobody is skipped: {report}");
    let doubled: usize = counts.values().map(|c| c - 1).sum();
    assert!(
        doubled <= CONCURRENCY,
        "only digests in flight on the killed node may go twice: {doubled} extra"
    );
    // B's copies of what A had in flight repeat A's Message-IDs.
    assert_eq!(
        crate::helpers::assert_one_message_id_per_recipient(&sink),
        doubled
    );
    b.start_again();
    assert_eq!(unfinished_deliveries(&b), 0);
    assert_eq!(runs(&b), 1, "one run planned, not two");
}

#[test]
#[ignore = "needs PostgreSQL (TIDINGS_TEST_POSTGRES_URL); .ci/run sets it"]
fn both_schedules_firing_at_once_plan_one_run() {
    const N: usize = 200;
    let url = fresh_postgres_url();
    let sink = SmtpSink::start();
    // A schedule that fires every second: the two nodes' ticks meet.
    let env = [("TIDINGS_DIGEST_SCHEDULE", "* * * * * *")];
    let setup = Daemon::start_node(&url, &sink, &[("TIDINGS_DIGEST_SCHEDULE", "0 0 0 1 1 *")]);
    import_on(&setup, N);
    publish_article(&setup, "news");
    let mut setup = setup;
    setup.stop();
    let a = Daemon::start_node(&url, &sink, &env);
    let b = Daemon::start_node(&url, &sink, &env);
    wait_until("every subscriber's digest", 60, || {
        received(&sink).len() >= N
    });
    wait_until("the ledger settled", 30, || unfinished_deliveries(&a) == 0);
    let counts = received(&sink);
    assert!(counts.values().all(|c| *c == 1), "none twice");
    assert_eq!(runs(&b), 1, "one run planned, not two");
}

#[test]
#[ignore = "needs PostgreSQL (TIDINGS_TEST_POSTGRES_URL); .ci/run sets it"]
fn a_node_paused_past_its_lease_does_not_send_what_the_other_took_over() {
    const N: usize = 300;
    const CONCURRENCY: usize = 2;
    let url = fresh_postgres_url();
    let sink = SmtpSink::start();
    let env = [
        ("TIDINGS_DIGEST_LEASE_SECONDS", "5"),
        ("TIDINGS_DIGEST_RATE_PER_SECOND", "30"),
        ("TIDINGS_DIGEST_CONCURRENCY", "2"),
    ];
    let a = Daemon::start_node(&url, &sink, &env);
    let b = Daemon::start_node(&url, &sink, &[("TIDINGS_DIGEST_LEASE_SECONDS", "5")]);
    import_on(&a, N);
    publish_article(&a, "news");
    let run_a = start_digest_run(&a);
    wait_until("the run under way", 60, || sink.messages().len() >= 20);
    pause_outside_transactions(&a);
    // Node B's run waits for A's claims to lapse, takes them over and sends the rest.
    let report = start_digest_run(&b)
        .join()
        .expect("run on B")
        .expect("B's report");
    assert_eq!(received(&sink).len(), N, "{report}");
    a.signal(libc::SIGCONT);
    let _ = run_a.join();
    let counts = received(&sink);
    assert_eq!(counts.len(), N);
    let doubled: usize = counts.values().map(|c| c - 1).sum();
    assert!(
        doubled <= CONCURRENCY,
        "at most one digest per paused connection may go twice: {doubled} extra"
    );
    assert_eq!(unfinished_deliveries(&b), 0);
}

/// A subscriber import of more rows than PostgreSQL's lock table holds (64 per connection by
/// default) is one transaction that takes no lock per row.
#[test]
#[ignore = "needs PostgreSQL (TIDINGS_TEST_POSTGRES_URL); .ci/run sets it"]
fn a_large_subscriber_import_fits_in_one_transaction() {
    const N: usize = 25_000;
    let url = fresh_postgres_url();
    let sink = SmtpSink::start();
    let d = Daemon::start_node(&url, &sink, &[]);
    import_on(&d, N);
    let n: i64 = d
        .db()
        .query_row("SELECT count(*) FROM subscribers", &[], |r| r.get(0))
        .expect("count");
    assert_eq!(n, N as i64);
}
