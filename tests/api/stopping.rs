//! Runs that are stopped, shared or started by the schedule: SIGTERM in the middle of a run (the
//! daemon's and the CLI's), a CLI run beside the daemon's, and a run the cron schedule starts.

use std::io::Read;
use std::process::Stdio;

use crate::helpers::{
    import_subscribers, publish, received, signal, tidings, wait_exit, wait_until, Daemon, SmtpSink,
};

/// Rows per ledger state.
fn ledger(d: &Daemon) -> std::collections::BTreeMap<String, i64> {
    d.db()
        .query_map(
            "SELECT state, count(*) FROM deliveries GROUP BY state",
            &[],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("ledger rows")
        .into_iter()
        .collect()
}

fn every_one_exactly_once(sink: &SmtpSink, n: usize) {
    let counts = received(sink);
    assert_eq!(counts.len(), n, "nobody is skipped");
    let doubled: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        doubled.is_empty(),
        "a graceful stop doubles nothing: {doubled:?}"
    );
}

/// SIGTERM while the daemon sends, in a run asked for over HTTP and in one of its own (the
/// catch-up run at start): the digests in flight are finished and recorded, it exits 0, nothing
/// is left claimed, and the next start sends the rest, each once.
#[test]
fn sigterm_mid_run_finishes_what_is_in_flight_and_the_next_start_sends_the_rest() {
    const N: usize = 600;
    for own_run in [false, true] {
        let sink = SmtpSink::start();
        let mut d = Daemon::start_mailing(
            &sink,
            &[
                ("TIDINGS_DIGEST_RATE_PER_SECOND", "200"),
                ("TIDINGS_DIGEST_CONCURRENCY", "4"),
                ("TIDINGS_DIGEST_SEND_HOUR", "0"),
            ],
        );
        import_subscribers(&d, N);
        publish(&d);
        let run = if own_run {
            // Everyone is due (send hour 0): the run the daemon starts on its own at start-up.
            assert!(d.stop().success());
            d.start_again();
            None
        } else {
            Some(crate::helpers::start_digest_run(&d))
        };
        wait_until("the run to be sending", 60, || sink.count() >= 100);
        let status = d.stop();
        assert_eq!(status.code(), Some(0), "{}", d.log());
        if let Some(run) = run {
            let _ = run.join();
        }
        let states = ledger(&d);
        assert_eq!(
            states.get("sending"),
            None,
            "no claim left behind: {states:?}"
        );
        let sent = states.get("sent").copied().unwrap_or(0) as usize;
        assert_eq!(
            sent,
            sink.count(),
            "every digest that went out is recorded as sent"
        );
        assert!(sent < N, "stopped mid-run: {states:?}");
        d.start_again(); // the daemon resumes the ledger on start
        wait_until("every subscriber's digest", 60, || sink.count() >= N);
        let report = d
            .api("POST", "/api/digests/run", Some(r#"{"now": true}"#))
            .json();
        assert_eq!(report["planned"], 0, "{report}");
        every_one_exactly_once(&sink, N);
    }
}

/// `tidings digest run` stops as the daemon does, on SIGTERM and on Ctrl-C (SIGINT): exit 0, the
/// in-flight digests recorded, the rest sent once by the next run.
#[test]
fn a_cli_run_stops_gracefully_on_sigterm_and_on_ctrl_c() {
    const N: usize = 500;
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let sink = SmtpSink::start();
        let d = Daemon::start_mailing(
            &sink,
            &[
                ("TIDINGS_DIGEST_RATE_PER_SECOND", "200"),
                ("TIDINGS_DIGEST_CONCURRENCY", "4"),
            ],
        );
        import_subscribers(&d, N);
        publish(&d);
        let mut cli = tidings(&d.dir, d.env())
            .args(["digest", "run", "--now"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn digest run");
        wait_until("the CLI run to be sending", 60, || sink.count() >= 100);
        signal(&cli, sig);
        let status = wait_exit(&mut cli, 30);
        let mut out = String::new();
        cli.stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut out)
            .expect("read stdout");
        assert_eq!(status.code(), Some(0), "signal {sig}: {status:?}\n{out}");
        assert!(out.contains("stopped on request"), "{out}");
        let states = ledger(&d);
        assert_eq!(states.get("sending"), None, "signal {sig}: {states:?}");
        assert_eq!(
            states.get("sent").copied().unwrap_or(0) as usize,
            sink.count(),
            "signal {sig}: every digest that went out is recorded"
        );
        assert!(sink.count() < N, "signal {sig}: stopped mid-run");
        let again = d.cli(&["digest", "run"]);
        assert!(again.status.success(), "{}", crate::helpers::stderr(&again));
        assert_eq!(sink.count(), N, "signal {sig}: the next run sends the rest");
        every_one_exactly_once(&sink, N);
    }
}

/// `tidings digest run` on the CLI while the daemon runs its own on the same database: the two
/// share the deliveries (claims are atomic) and nobody gets two.
#[test]
fn a_cli_run_beside_the_daemons_run_shares_the_work_and_sends_each_digest_once() {
    const N: usize = 800;
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(
        &sink,
        &[
            ("TIDINGS_DIGEST_RATE_PER_SECOND", "150"),
            ("TIDINGS_DIGEST_CONCURRENCY", "2"),
        ],
    );
    import_subscribers(&d, N);
    publish(&d);
    let run = crate::helpers::start_digest_run(&d);
    wait_until("the daemon's run to be sending", 60, || sink.count() >= 50);
    let cli = d.cli(&["digest", "run", "--now"]);
    assert!(cli.status.success(), "{}", crate::helpers::stderr(&cli));
    let printed = crate::helpers::stdout(&cli);
    let cli_sent: u64 = printed
        .split("; ")
        .nth(1)
        .and_then(|t| t.split(" sent").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{printed}"));
    let report = run.join().expect("run").expect("the daemon's report");
    let daemon_sent = report["sent"].as_u64().expect("sent");
    assert!(
        cli_sent > 0 && daemon_sent > 0,
        "both sent: cli {cli_sent}, daemon {daemon_sent}"
    );
    assert_eq!(cli_sent + daemon_sent, N as u64, "{printed} / {report}");
    every_one_exactly_once(&sink, N);
}

/// The daemon's own schedule starts runs: with `digest.schedule` firing a few seconds after the
/// test has set up (a subscriber and an article, both after the daemon's start-up run), the
/// subscriber gets the article without anyone asking for a run.
#[test]
fn the_cron_schedule_starts_runs_inside_the_daemon() {
    let sink = SmtpSink::start();
    // Every 3 s: a tick that comes while the test is still setting up (a slow start on a loaded
    // machine) finds nothing new, and one of the next sends the digest. Once sent, later ticks
    // find nothing new again, so exactly one digest is sent.
    let schedule = "*/3 * * * * *".to_string();
    let d = Daemon::start_mailing(
        &sink,
        &[
            ("TIDINGS_DIGEST_SCHEDULE", &schedule),
            ("TIDINGS_DIGEST_SEND_HOUR", "0"),
        ],
    );
    import_subscribers(&d, 1);
    publish(&d);
    let mail = &sink.wait_for_received(1, 20)[0];
    assert_eq!(mail.rcpt_to, vec!["reader00000@example.com".to_string()]);
    assert_eq!(
        mail.mail_from, "news@blog.example",
        "the envelope sender is the From address"
    );
    let runs: i64 = d
        .db()
        .query_row("SELECT count(*) FROM digest_runs", &[], |r| r.get(0))
        .expect("runs");
    assert!(runs >= 1, "the run is on record");
    // The ledger commits a moment after the server's 250.
    wait_until("the digest to be recorded as sent", 10, || {
        ledger(&d).get("sent") == Some(&1)
    });
}

/// A WebSub hub that always fails: the ping is retried with backoff (1 s, 5 s, then 30 s). With
/// `server.shutdown_seconds = 2`, a SIGTERM while the retry loop sleeps its 30 s still ends the
/// daemon within a few seconds, and cleanly.
#[test]
fn sigterm_ends_the_daemon_within_shutdown_seconds_while_a_websub_ping_waits_to_retry() {
    // A hub that answers every ping with a 500.
    let hub = std::net::TcpListener::bind("127.0.0.1:0").expect("hub");
    let hub_url = format!("http://{}/hub", hub.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in hub.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = std::io::Write::write_all(
                &mut stream,
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let mut d = Daemon::start_with(&[
        ("TIDINGS_FEEDS_WEBSUB_HUB", &hub_url),
        ("TIDINGS_SERVER_SHUTDOWN_SECONDS", "2"),
    ]);
    publish(&d);
    // The third attempt failed: the thread now sleeps 30 s before the fourth.
    let failed = |d: &Daemon| d.log().matches("WebSub hub notification failed").count();
    wait_until("the third failed ping", 30, || failed(&d) >= 3);
    let asked = std::time::Instant::now();
    let status = d.stop();
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}\n{}", d.log());
    assert!(
        took < std::time::Duration::from_secs(5),
        "stopped after {took:?}\n{}",
        d.log()
    );
    // The ping that waited is dropped; the ones queued behind it get one last try each.
    assert!(!d.log().contains("attempt=4"), "no retry after the stop");
    assert!(d
        .log()
        .contains("WebSub hub notification dropped: stopping"));
}

/// An SMTP server that takes every envelope and the start of each message's content, then
/// never answers it (a relay that hangs mid-message). Counts the messages whose DATA began.
fn hanging_relay() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("relay");
    let port = listener.local_addr().expect("addr").port();
    let started = std::sync::Arc::new(AtomicUsize::new(0));
    let count = started.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let count = count.clone();
            std::thread::spawn(move || {
                let mut out = stream.try_clone().expect("clone");
                let _ = out.write_all(b"220 hanging relay\r\n");
                let mut lines = BufReader::new(stream);
                let mut line = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 hanging relay\r\n",
                        "DATA" => {
                            let _ = out.write_all(b"354 go ahead\r\n");
                            count.fetch_add(1, Ordering::SeqCst);
                            // Read the content and never answer it.
                            while lines.read_line(&mut line).unwrap_or(0) > 0 {}
                            return;
                        }
                        "QUIT" => return,
                        _ => b"250 ok\r\n",
                    };
                    let _ = out.write_all(reply);
                }
            });
        }
    });
    (port, started)
}

/// A relay that hangs in the middle of the digests' content: SIGTERM with
/// `server.shutdown_seconds = 2` ends the daemon within a few seconds, nothing is recorded as
/// sent that the relay did not take, nothing is left claimed, and the next start sends every
/// digest, each once.
#[test]
fn a_relay_hanging_mid_message_does_not_hold_the_stop_and_the_next_start_sends_everything() {
    const N: usize = 6;
    let (port, started) = hanging_relay();
    let transport = format!("smtp://127.0.0.1:{port}");
    let mut d = Daemon::start_with(&[
        ("TIDINGS_MAIL_TRANSPORT", transport.as_str()),
        ("TIDINGS_MAIL_TLS", "none"),
        ("TIDINGS_MAIL_FROM", "Future Tech Blog <news@blog.example>"),
        ("TIDINGS_SERVER_SHUTDOWN_SECONDS", "2"),
        ("TIDINGS_DIGEST_CONCURRENCY", "2"),
    ]);
    import_subscribers(&d, N);
    publish(&d);
    let _run = crate::helpers::start_digest_run(&d);
    wait_until("digests in the middle of their content", 30, || {
        started.load(std::sync::atomic::Ordering::SeqCst) >= 2
    });
    let asked = std::time::Instant::now();
    let status = d.stop();
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}\n{}", d.log());
    assert!(
        took < std::time::Duration::from_secs(5),
        "stopped after {took:?}\n{}",
        d.log()
    );
    let states = ledger(&d);
    assert_eq!(
        states.get("sent"),
        None,
        "the relay took nothing: {states:?}"
    );
    assert_eq!(
        states.get("sending"),
        None,
        "nothing left claimed: {states:?}"
    );
    assert_eq!(states.get("pending"), Some(&(N as i64)), "{states:?}");
    // The next start, with a relay that works, sends every digest once.
    let sink = SmtpSink::start();
    for (k, v) in sink.env() {
        d.set_env(&k, &v);
    }
    d.start_again();
    wait_until("every digest after the restart", 60, || {
        received(&sink).len() >= N
    });
    assert!(d.stop().success());
    every_one_exactly_once(&sink, N);
}
