//! Digests survive crashes and outages: nothing lost, nothing doubled (but what was in flight at a
//! kill), and one bad address fails alone.

use crate::helpers::{
    import_subscribers, publish, publish_article, received, wait_until, Daemon, SmtpSink,
};

fn start_run(d: &Daemon) -> std::thread::JoinHandle<()> {
    let base = d.base.clone();
    std::thread::spawn(move || {
        // The daemon may be killed under this request; its answer does not matter.
        let _ = ureq::post(format!("{base}/api/digests/run"))
            .header(
                "Authorization",
                &format!("Bearer {}", crate::helpers::TOKEN),
            )
            .send(r#"{"now": true}"#);
    })
}

#[test]
fn killed_at_several_points_every_subscriber_ends_with_one_digest() {
    const N: usize = 2000;
    const CONCURRENCY: usize = 8;
    let sink = SmtpSink::start();
    // A killed process's claims are taken over once their lease lapses: a short one here.
    let mut d = Daemon::start_mailing(
        &sink,
        &[
            ("TIDINGS_DIGEST_CONCURRENCY", "8"),
            ("TIDINGS_DIGEST_LEASE_SECONDS", "5"),
        ],
    );
    import_subscribers(&d, N);
    publish(&d);
    let _run = start_run(&d);
    let mut kills = 0;
    let mut held_at_kill = 0;
    for at in [150, 700, 1300] {
        wait_until("messages before a kill", 120, || {
            sink.messages().len() >= at
        });
        if kills == 0 {
            // The first kill comes while the sink holds back its `250`s: those digests were
            // delivered, but the daemon cannot know, so they surely go again after the restart.
            sink.hold_replies();
            wait_until("a delivered digest not yet acknowledged", 60, || {
                sink.held() >= 1
            });
            held_at_kill = sink.held();
            d.kill();
            sink.release();
            d.start_again();
        } else {
            d.kill_and_restart(); // the restarted daemon resumes the ledger on start
        }
        kills += 1;
    }
    wait_until("every subscriber's digest", 180, || {
        received(&sink).len() >= N
    });
    // Stopped cleanly, the daemon has finished and recorded everything it started: what the
    // sink holds now is all that was sent.
    let status = d.stop();
    assert!(status.success());
    let counts = received(&sink);
    assert_eq!(counts.len(), N, "nobody is skipped");
    let doubled: usize = counts.values().map(|c| c - 1).sum();
    assert!(
        doubled <= kills * CONCURRENCY,
        "only messages in flight at a kill may arrive twice: {doubled} extra"
    );
    assert!(counts.values().all(|c| *c <= 2));
    // Each copy sent again carries the first copy's Message-ID, so a mailbox that
    // de-duplicates on it shows one message.
    let repeats = crate::helpers::assert_one_message_id_per_recipient(&sink);
    assert_eq!(repeats, doubled);
    assert!(
        doubled >= held_at_kill && held_at_kill >= 1,
        "each digest unacknowledged at the kill went again: {doubled} of {held_at_kill}"
    );
    eprintln!("{doubled} digests arrived twice, each with its first copy's Message-ID");
    if !crate::helpers::on_postgres() {
        let conn = rusqlite::Connection::open(d.dir.join("tidings.db")).expect("db");
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity");
        assert_eq!(ok, "ok");
    }
    assert_eq!(crate::helpers::unfinished_deliveries(&d), 0);
}

#[test]
fn an_smtp_outage_mid_run_delays_digests_but_loses_and_doubles_none() {
    const N: usize = 300;
    // A server that goes away (connections refused), and one that stumbles (421 to every RCPT).
    for stumbling in [false, true] {
        let mut sink = SmtpSink::start();
        // Rate-limited, so the outage surely comes mid-run.
        let d = Daemon::start_mailing(
            &sink,
            &[
                ("TIDINGS_DIGEST_MAX_ATTEMPTS", "8"),
                ("TIDINGS_DIGEST_RATE_PER_SECOND", "100"),
            ],
        );
        import_subscribers(&d, N);
        publish(&d);
        let run = start_run(&d);
        wait_until("the run to start sending", 60, || sink.count() >= 20);
        if stumbling {
            sink.pause();
        } else {
            sink.stop();
        }
        // The outage is felt: sends fail and are scheduled for a retry.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while d.metric("tidings_digests_retried_total") == 0.0 {
            assert!(
                std::time::Instant::now() < deadline,
                "no retries during the outage (stumbling: {stumbling})\n{}",
                d.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if stumbling {
            sink.resume();
        } else {
            sink.restart();
        }
        run.join().expect("run");
        wait_until("every digest", 60, || received(&sink).len() >= N);
        let counts = received(&sink);
        assert_eq!(counts.len(), N, "stumbling: {stumbling}");
        assert!(
            counts.values().all(|c| *c == 1),
            "none twice (stumbling: {stumbling})"
        );
    }
}

/// The same over both ways of talking to a server: with PIPELINING (the refused RCPT's reply is
/// read along with the others, and the connection goes on) and without.
#[test]
fn a_5xx_for_one_address_marks_only_that_one_failed() {
    for sink_args in [&[][..], &["--no-pipelining", "1"][..]] {
        refused_one_of_three(sink_args);
    }
}

fn refused_one_of_three(sink_args: &[&str]) {
    let mut args = vec!["--reject", "reader00001@example.com"];
    args.extend_from_slice(sink_args);
    let sink = SmtpSink::start_with(&args);
    let d = Daemon::start_mailing(&sink, &[("TIDINGS_MAIL_BOUNCE_LIMIT", "1")]);
    import_subscribers(&d, 3);
    publish(&d);
    let r = d.api("POST", "/api/digests/run", Some(r#"{"now": true}"#));
    let report = r.json();
    assert_eq!(report["sent"], 2, "{report}");
    assert_eq!(report["failed"], 1, "{report}");
    let counts = received(&sink);
    assert_eq!(counts.get("reader00000@example.com"), Some(&1));
    assert_eq!(counts.get("reader00002@example.com"), Some(&1));
    assert_eq!(counts.get("reader00001@example.com"), None);
    let bad = d
        .api("GET", "/api/subscribers/reader00001@example.com", None)
        .json();
    assert_eq!(
        bad["status"], "bounced",
        "one permanent failure with mail.bounce_limit = 1"
    );
    let good = d
        .api("GET", "/api/subscribers/reader00000@example.com", None)
        .json();
    assert_eq!(good["status"], "confirmed");
    let pipelined = sink.pipelined();
    assert_eq!(pipelined.len(), 3, "one MAIL per digest");
    assert!(
        pipelined.iter().all(|p| *p == sink_args.is_empty()),
        "MAIL, RCPT and DATA grouped exactly when the server offers PIPELINING: {pipelined:?}"
    );
}

/// A 4xx is transient: retried with a growing wait (about 1 s, then 2 s), and after
/// `digest.max_attempts` attempts recorded as failed, without bouncing the subscriber.
#[test]
fn a_4xx_is_retried_with_backoff_and_given_up_after_max_attempts() {
    let sink = SmtpSink::start_with(&["--defer", "reader00001@example.com"]);
    let d = Daemon::start_mailing(&sink, &[("TIDINGS_DIGEST_MAX_ATTEMPTS", "3")]);
    import_subscribers(&d, 3);
    publish(&d);
    let report = d
        .api("POST", "/api/digests/run", Some(r#"{"now": true}"#))
        .json();
    assert_eq!(report["sent"], 2, "{report}");
    assert_eq!(report["failed"], 1, "{report}");
    assert_eq!(report["retried"], 2, "{report}");
    let attempts = sink.rcpt_attempts("reader00001@example.com");
    assert_eq!(
        attempts.iter().map(|(code, _)| *code).collect::<Vec<_>>(),
        vec![451, 451, 451],
        "exactly digest.max_attempts tries"
    );
    let waits: Vec<f64> = attempts
        .windows(2)
        .map(|w| (w[1].1 - w[0].1).as_secs_f64())
        .collect();
    assert!(
        waits[0] >= 0.7 && waits[1] >= 1.4 && waits[1] > waits[0],
        "backoff grows from about 1 s: {waits:?}"
    );
    assert_eq!(received(&sink).get("reader00001@example.com"), None);
    let (state, tries, error): (String, i64, String) = d
        .db()
        .query_row(
            "SELECT d.state, d.attempts, d.last_error FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE s.email = 'reader00001@example.com'",
            &[],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("ledger row");
    assert_eq!((state.as_str(), tries), ("failed", 3), "{error}");
    assert!(error.contains("451"), "{error}");
    let status = d
        .api("GET", "/api/subscribers/reader00001@example.com", None)
        .json();
    assert_eq!(status["status"], "confirmed", "a 4xx never bounces");
}

/// With `mail.bounce_limit = 2`, one refusal does not bounce a subscriber; a delivery that
/// succeeds resets the count; two refusals in a row do.
#[test]
fn bounce_limit_counts_refusals_in_a_row_and_a_success_resets_it() {
    let sink = SmtpSink::start_with(&["--reject", "reader00001@example.com"]);
    let d = Daemon::start_mailing(&sink, &[("TIDINGS_MAIL_BOUNCE_LIMIT", "2")]);
    import_subscribers(&d, 2);
    let status = || {
        d.api("GET", "/api/subscribers/reader00001@example.com", None)
            .json()["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let bounces = || -> i64 {
        d.db()
            .query_row(
                "SELECT bounces FROM subscribers WHERE email = 'reader00001@example.com'",
                &[],
                |r| r.get(0),
            )
            .expect("subscriber")
    };
    let run = |slug: &str| {
        publish_article(&d, slug);
        d.api("POST", "/api/digests/run", Some(r#"{"now": true}"#))
            .json()
    };
    let r = run("one");
    assert_eq!(
        (r["sent"].as_u64(), r["failed"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );
    assert_eq!((status(), bounces()), ("confirmed".to_string(), 1));
    sink.set_reject(&[]);
    assert_eq!(run("two")["sent"], 2);
    assert_eq!(
        (status(), bounces()),
        ("confirmed".to_string(), 0),
        "a success resets the count"
    );
    sink.set_reject(&["reader00001@example.com"]);
    run("three");
    assert_eq!(
        (status(), bounces()),
        ("confirmed".to_string(), 1),
        "one refusal after a success is not two in a row"
    );
    run("four");
    assert_eq!((status(), bounces()), ("bounced".to_string(), 2));
    let r = run("five");
    assert_eq!(r["planned"], 1, "a bounced subscriber is not planned: {r}");
    let codes: Vec<u16> = sink
        .rcpt_attempts("reader00001@example.com")
        .iter()
        .map(|(code, _)| *code)
        .collect();
    assert_eq!(
        codes,
        vec![550, 250, 550, 550],
        "nothing tried after the bounce"
    );
}

/// A claim whose lease is close to running out is handed back and claimed afresh rather than
/// sent (another process may already have taken it over): with a 5-second lease and a rate
/// limit, the deliveries queued behind the first ones lapse while they wait.
#[test]
fn a_process_paused_past_its_lease_does_not_send_what_another_took_over() {
    const N: usize = 300;
    const CONCURRENCY: usize = 2;
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(
        &sink,
        &[
            ("TIDINGS_DIGEST_LEASE_SECONDS", "5"),
            ("TIDINGS_DIGEST_RATE_PER_SECOND", "30"),
            ("TIDINGS_DIGEST_CONCURRENCY", "2"),
        ],
    );
    import_subscribers(&d, N);
    publish(&d);
    let run = start_run(&d);
    wait_until("the run under way", 60, || sink.messages().len() >= 20);
    // Paused while the sink holds back a `250`: that digest was delivered, but its claim lapses
    // unrecorded, so the other process surely sends it again.
    sink.hold_replies();
    wait_until("a delivered digest not yet acknowledged", 60, || {
        sink.held() >= 1
    });
    crate::helpers::pause_outside_transactions(&d);
    let held = sink.held();
    sink.release();
    // Another process (another instance id) resumes the run: it waits for the paused one's
    // claims to lapse (5 s), takes them over and sends everything that is left.
    let out = d.cli(&["digest", "run", "--now"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after_takeover = received(&sink);
    assert_eq!(after_takeover.len(), N, "the other process sent the rest");
    // The paused daemon wakes: its claims are another's now, and it sends none of them.
    d.signal(libc::SIGCONT);
    run.join().expect("run request");
    let counts = received(&sink);
    assert_eq!(counts.len(), N);
    let doubled: usize = counts.values().map(|c| c - 1).sum();
    assert!(
        doubled <= CONCURRENCY,
        "at most the digest each paused connection had started may go twice: {doubled} extra"
    );
    // A delivery taken over keeps its Message-ID: a copy the paused process still sent and the
    // new owner's copy are the same message to a mailbox.
    assert_eq!(
        crate::helpers::assert_one_message_id_per_recipient(&sink),
        doubled
    );
    assert!(
        doubled >= 1 && held >= 1,
        "the unacknowledged digest went again: {doubled} extra, {held} held"
    );
    assert_eq!(crate::helpers::unfinished_deliveries(&d), 0);
}
