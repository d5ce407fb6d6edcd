//! Digests survive crashes and outages: nothing lost, nothing doubled (but what was in flight at a
//! kill), and one bad address fails alone.

use std::collections::HashMap;

use crate::helpers::{Daemon, SmtpSink};

fn import_subscribers(d: &Daemon, n: usize) {
    let mut csv = String::from("email,status\n");
    for i in 0..n {
        csv.push_str(&format!("reader{i:05}@example.com,confirmed\n"));
    }
    let file = d.dir.join("list.csv");
    std::fs::write(&file, csv).expect("write");
    let out = d.cli(&["subscriber", "import", file.to_str().expect("path")]);
    assert!(out.status.success(), "{}", crate::helpers::stderr(&out));
}

fn publish(d: &Daemon) {
    d.publish(
        &serde_json::json!({
            "slug": "news", "title": "News", "url": "https://blog.example/posts/news",
            "tags": ["AI"], "published_at": chrono::Utc::now().to_rfc3339(),
        })
        .to_string(),
    );
}

/// How many digests each recipient received.
fn received(sink: &SmtpSink) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for m in sink.messages() {
        *counts
            .entry(m.header("To").unwrap_or_default())
            .or_insert(0) += 1;
    }
    counts
}

fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

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
    let mut d = Daemon::start_mailing(&sink, &[("TIDINGS_DIGEST_CONCURRENCY", "8")]);
    import_subscribers(&d, N);
    publish(&d);
    let _run = start_run(&d);
    let mut kills = 0;
    for at in [150, 700, 1300] {
        wait_until("messages before a kill", 120, || {
            sink.messages().len() >= at
        });
        d.kill_and_restart(); // the restarted daemon resumes the ledger on start
        kills += 1;
    }
    wait_until("every subscriber's digest", 180, || {
        received(&sink).len() >= N
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let counts = received(&sink);
    assert_eq!(counts.len(), N, "nobody is skipped");
    let doubled: usize = counts.values().map(|c| c - 1).sum();
    assert!(
        doubled <= kills * CONCURRENCY,
        "only messages in flight at a kill may arrive twice: {doubled} extra"
    );
    assert!(counts.values().all(|c| *c <= 2));
    let status = d.stop();
    assert!(status.success());
    let conn = rusqlite::Connection::open(d.dir.join("tidings.db")).expect("db");
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity");
    assert_eq!(ok, "ok");
    let unfinished: i64 = conn
        .query_row(
            "SELECT count(*) FROM deliveries WHERE state != 'sent'",
            [],
            |r| r.get(0),
        )
        .expect("ledger");
    assert_eq!(unfinished, 0);
}

#[test]
fn an_smtp_outage_mid_run_delays_digests_but_loses_and_doubles_none() {
    const N: usize = 300;
    let mut sink = SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[("TIDINGS_DIGEST_MAX_ATTEMPTS", "8")]);
    import_subscribers(&d, N);
    publish(&d);
    let run = start_run(&d);
    wait_until("the run to start sending", 60, || {
        sink.messages().len() >= 20
    });
    sink.stop();
    std::thread::sleep(std::time::Duration::from_secs(2));
    sink.restart();
    run.join().expect("run");
    wait_until("every digest", 60, || received(&sink).len() >= N);
    let counts = received(&sink);
    assert_eq!(counts.len(), N);
    assert!(counts.values().all(|c| *c == 1), "none twice");
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
