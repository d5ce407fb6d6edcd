//! Hearing back, through the inbound SMTP listener: VERP return paths, bounces (DSNs with the
//! original quoted as message/rfc822, as text/rfc822-headers, or not at all), complaints (ARF),
//! auto-replies, mailto unsubscribes with valid and forged tokens, forged tags. The relay here
//! is the tests' sink; `postfix.rs` does the same through a real Postfix.

use crate::helpers::{import_subscribers, publish, smtp_deliver, stdout, Daemon, Mail, SmtpSink};

const RETURN_PATH: &str = "bounces@blog.example";

fn hearing(sink: &SmtpSink, extra: &[(&str, &str)]) -> Daemon {
    let mut env = vec![
        ("TIDINGS_MAIL_RETURN_PATH", RETURN_PATH),
        ("TIDINGS_MAIL_INBOUND_BIND", "127.0.0.1:0"),
    ];
    env.extend_from_slice(extra);
    let d = Daemon::start_mailing(sink, &env);
    assert!(d.inbound.is_some(), "serve printed `inbound on smtp://…`");
    d
}

/// Runs digests now for `n` imported readers; the envelope sender of each digest, by recipient.
fn digests(d: &Daemon, sink: &SmtpSink, n: usize) -> Vec<(String, String, Mail)> {
    import_subscribers(d, n);
    publish(d);
    let report = d
        .api("POST", "/api/digests/run", Some(r#"{"now": true}"#))
        .json();
    assert_eq!(report["sent"], n, "{report}");
    sink.received()
        .into_iter()
        .map(|r| {
            let to = r.rcpt_to[0].clone();
            let from = r.mail_from.clone();
            (to, from, Mail::from(r))
        })
        .collect()
}

fn dsn(action: &str, status: &str, original: &str) -> Vec<u8> {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example>\r\n\
         To: {RETURN_PATH}\r\nSubject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"BOUNDARY\"\r\n\r\n\
         --BOUNDARY\r\nContent-Type: text/plain\r\n\r\nThe mail system could not deliver it.\r\n\
         --BOUNDARY\r\nContent-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; mx.example\r\n\r\n\
         Final-Recipient: rfc822; someone-else@example.com\r\nAction: {action}\r\nStatus: {status}\r\n\
         Diagnostic-Code: smtp; 550 {status} mailbox unavailable\r\n\r\n\
         {original}--BOUNDARY--\r\n"
    )
    .into_bytes()
}

fn quoted_headers(message_id: &str) -> String {
    format!(
        "--BOUNDARY\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {message_id}\r\nSubject: digest\r\n\r\n"
    )
}

fn send(d: &Daemon, to: &str, message: &[u8]) {
    let replies = smtp_deliver(d.inbound.as_deref().expect("inbound"), "", &[to], message);
    assert_eq!(replies.rcpt, [250], "{to}");
    assert_eq!(replies.data, Some(250));
}

fn status_of(d: &Daemon, email: &str) -> String {
    let r = d.api("GET", &format!("/api/subscribers/{email}"), None);
    r.json()["status"].as_str().unwrap_or_default().to_string()
}

/// What happened to `email`'s mail, oldest first: their events after signing up (the sign-up's
/// own, `subscribed` and `confirmed`, are `history.rs`'s).
fn history(d: &Daemon, email: &str) -> Vec<String> {
    let r = d.api("GET", &format!("/api/subscribers/{email}/events"), None);
    r.json()["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| !matches!(e["kind"].as_str(), Some("subscribed" | "confirmed")))
                .map(|e| {
                    let mut s = format!(
                        "{}/{}",
                        e["kind"].as_str().unwrap_or(""),
                        e["source"].as_str().unwrap_or("")
                    );
                    if let Some(b) = e["bounce"].as_str() {
                        s.push_str(&format!("/{b}"));
                    }
                    s
                })
                .collect()
        })
        .unwrap_or_default()
}

fn suppressed(d: &Daemon) -> Vec<(String, String)> {
    let list = d.api("GET", "/api/suppressions", None).json();
    list["suppressions"]
        .as_array()
        .expect("list")
        .iter()
        .map(|s| {
            (
                s["email"].as_str().unwrap_or("").to_string(),
                s["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn the_return_path_names_each_delivery_and_every_message_has_a_feedback_id() {
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[("TIDINGS_MAIL_RETURN_PATH", RETURN_PATH)]);
    let sent = digests(&d, &sink, 3);
    let mut senders: Vec<&str> = sent.iter().map(|(_, f, _)| f.as_str()).collect();
    for (to, from, mail) in &sent {
        let local = from
            .strip_suffix("@blog.example")
            .expect("return-path domain");
        assert!(local.starts_with("bounces+b"), "{from}");
        assert!(local.len() <= 64, "{from}");
        assert!(
            local[8..]
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "{from}"
        );
        let feedback = mail.header("Feedback-ID").expect("Feedback-ID");
        assert!(
            feedback.ends_with(":digest:tidings:blog.example"),
            "{feedback}"
        );
        // No inbound listener and no mail.unsubscribe_mailto: nobody reads a mailto, so none
        // is advertised.
        let lu = mail.header("List-Unsubscribe").expect("List-Unsubscribe");
        assert!(!lu.contains("mailto:"), "{to}: {lu}");
    }
    senders.sort();
    senders.dedup();
    assert_eq!(senders.len(), 3, "one tag per delivery");

    // Off: the envelope sender is the From address, as before.
    let plain_sink = SmtpSink::start();
    let plain = Daemon::start_mailing(&plain_sink, &[]);
    for (_, from, mail) in digests(&plain, &plain_sink, 1) {
        assert_eq!(from, "news@blog.example");
        assert!(mail.header("Feedback-ID").is_some());
    }
}

#[test]
fn a_hard_bounce_by_tag_suppresses_and_no_later_digest_goes_out() {
    let sink = SmtpSink::start();
    let d = hearing(&sink, &[]);
    let sent = digests(&d, &sink, 2);
    let (victim, verp, _) = &sent[0];
    let (other, other_verp, _) = &sent[1];

    // A forged tag (one character changed) changes nothing.
    let mut forged: Vec<char> = other_verp.chars().collect();
    let at = other_verp.find('@').expect("@") - 3;
    forged[at] = if forged[at] == 'a' { 'c' } else { 'a' };
    let forged: String = forged.into_iter().collect();
    send(&d, &forged, &dsn("failed", "5.1.1", ""));
    assert_eq!(status_of(&d, other), "confirmed");
    assert!(history(&d, other).is_empty());

    // The real tag, the original not quoted at all: the tag decides.
    send(&d, verp, &dsn("failed", "5.1.1", ""));
    assert_eq!(status_of(&d, victim), "bounced");
    assert_eq!(history(&d, victim), ["bounce/dsn/hard", "suppressed/dsn"]);
    assert_eq!(
        suppressed(&d),
        [(victim.clone(), "hard_bounce".to_string())]
    );
    assert_eq!(d.metric("tidings_bounces_total{kind=\"hard\"}"), 1.0);
    assert_eq!(
        d.metric("tidings_inbound_messages_total{class=\"dsn\"}"),
        2.0
    );
    let show = stdout(&d.cli(&["subscriber", "show", victim]));
    assert!(show.contains("bounced"), "{show}");
    assert!(show.contains("bounce  via dsn  5.1.1"), "{show}");

    // The next run leaves them out.
    publish_second(&d);
    let report = d
        .api("POST", "/api/digests/run", Some(r#"{"now": true}"#))
        .json();
    assert_eq!(report["sent"], 1, "{report}");
    let last = sink.received().pop().expect("a digest");
    assert_eq!(last.rcpt_to, std::slice::from_ref(other));
}

fn publish_second(d: &Daemon) {
    crate::helpers::publish_article(d, "second");
}

#[test]
fn a_dsn_without_a_tag_matches_by_the_quoted_message_id_and_never_by_address() {
    let sink = SmtpSink::start();
    let d = hearing(&sink, &[]);
    let sent = digests(&d, &sink, 2);
    let (first, _, mail) = &sent[0];
    let message_id = mail.header("Message-ID").expect("Message-ID");
    // No tag (sent to the bare return path), the original's headers quoted.
    send(
        &d,
        RETURN_PATH,
        &dsn("failed", "5.2.1", &quoted_headers(&message_id)),
    );
    assert_eq!(status_of(&d, first), "bounced");
    // No tag, no quote: the DSN names the second reader as Final-Recipient, and is not taken
    // for it.
    let (second, _, _) = &sent[1];
    let naming = String::from_utf8_lossy(&dsn("failed", "5.1.1", ""))
        .replace("someone-else@example.com", second);
    send(&d, RETURN_PATH, naming.as_bytes());
    assert_eq!(status_of(&d, second), "confirmed");
    let outcome: String = d
        .db()
        .query_row(
            "SELECT outcome FROM inbound_messages ORDER BY id DESC LIMIT 1",
            &[],
            |r| r.get(0),
        )
        .expect("stored");
    assert!(outcome.contains("nothing matched"), "{outcome}");
}

#[test]
fn other_failures_count_towards_the_bounce_limit_and_delays_towards_the_soft_limit() {
    let sink = SmtpSink::start();
    let d = hearing(
        &sink,
        &[
            ("TIDINGS_MAIL_BOUNCE_LIMIT", "2"),
            ("TIDINGS_MAIL_SOFT_BOUNCE_LIMIT", "2"),
        ],
    );
    let sent = digests(&d, &sink, 2);
    let (a, a_verp, _) = &sent[0];
    let (b, b_verp, _) = &sent[1];
    // A 5.2.2 (mailbox full) counts once; the same DSN again does not count twice.
    send(&d, a_verp, &dsn("failed", "5.2.2", ""));
    send(&d, a_verp, &dsn("failed", "5.2.2", ""));
    assert_eq!(status_of(&d, a), "confirmed");
    assert_eq!(history(&d, a), ["bounce/dsn/other"]);
    // A delay is soft: not bounced, counted once per delivery.
    send(&d, b_verp, &dsn("delayed", "4.4.7", ""));
    send(&d, b_verp, &dsn("delayed", "4.4.7", ""));
    assert_eq!(status_of(&d, b), "confirmed");
    assert_eq!(history(&d, b), ["bounce/dsn/soft"]);
    // A 5.7.1 is policy: recorded, nobody suppressed.
    send(&d, b_verp, &dsn("failed", "5.7.1", ""));
    assert_eq!(status_of(&d, b), "confirmed");
    assert!(suppressed(&d).is_empty());

    // The second run's failures reach the limits.
    publish_second(&d);
    let report = d
        .api("POST", "/api/digests/run", Some(r#"{"now": true}"#))
        .json();
    assert_eq!(report["sent"], 2, "{report}");
    let latest = |who: &str| {
        sink.received()
            .into_iter()
            .rev()
            .find(|r| r.rcpt_to == [who.to_string()])
            .expect("second digest")
            .mail_from
    };
    send(&d, &latest(a), &dsn("failed", "5.2.2", ""));
    send(&d, &latest(b), &dsn("delayed", "4.4.7", ""));
    assert_eq!(status_of(&d, a), "bounced");
    assert_eq!(status_of(&d, b), "bounced");
    let mut got = suppressed(&d);
    got.sort();
    let mut want = vec![
        (a.clone(), "bounces".to_string()),
        (b.clone(), "soft_bounces".to_string()),
    ];
    want.sort();
    assert_eq!(got, want);
}

fn arf(message_id: &str) -> Vec<u8> {
    format!(
        "From: <feedback@fbl.example>\r\nTo: {RETURN_PATH}\r\nSubject: Abuse report\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"ARF\"\r\n\r\n\
         --ARF\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\
         --ARF\r\nContent-Type: message/feedback-report\r\n\r\n\
         Feedback-Type: abuse\r\nUser-Agent: SomeGenerator/1.0\r\nVersion: 1\r\n\
         Original-Rcpt-To: <innocent@example.com>\r\n\r\n\
         --ARF\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n\
         From: news@blog.example\r\nTo: innocent@example.com\r\nMessage-ID: {message_id}\r\nSubject: digest\r\n\r\nbody\r\n\
         --ARF--\r\n"
    )
    .into_bytes()
}

#[test]
fn a_complaint_unsubscribes_and_suppresses_and_an_auto_reply_changes_nothing() {
    let sink = SmtpSink::start();
    let d = hearing(&sink, &[]);
    let sent = digests(&d, &sink, 2);
    let (a, _, mail) = &sent[0];
    send(
        &d,
        RETURN_PATH,
        &arf(&mail.header("Message-ID").expect("id")),
    );
    assert_eq!(status_of(&d, a), "unsubscribed");
    assert_eq!(suppressed(&d), [(a.clone(), "complaint".to_string())]);
    assert_eq!(history(&d, a), ["complaint/arf", "suppressed/arf"]);
    assert_eq!(d.metric("tidings_complaints_total"), 1.0);

    let (b, b_verp, _) = &sent[1];
    let ooo = format!(
        "From: {b}\r\nTo: {b_verp}\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\nI am away until Monday.\r\n"
    );
    send(&d, b_verp, ooo.as_bytes());
    assert_eq!(status_of(&d, b), "confirmed");
    assert_eq!(history(&d, b), ["ignored/inbound"]);
    assert_eq!(
        d.metric("tidings_inbound_messages_total{class=\"auto_reply\"}"),
        1.0
    );
}

#[test]
fn a_mailto_unsubscribe_needs_its_own_valid_token() {
    let sink = SmtpSink::start();
    let d = hearing(&sink, &[]);
    let sent = digests(&d, &sink, 2);
    let mailto = |mail: &Mail| -> (String, String) {
        let lu = mail.header("List-Unsubscribe").expect("List-Unsubscribe");
        let uri = lu
            .split(',')
            .map(|p| p.trim().trim_matches(|c| c == '<' || c == '>'))
            .find(|u| u.starts_with("mailto:"))
            .unwrap_or_else(|| panic!("no mailto in {lu}"))
            .to_string();
        let (address, subject) = uri
            .trim_start_matches("mailto:")
            .split_once("?subject=")
            .expect("subject");
        (address.to_string(), subject.replace("%20", " "))
    };
    let (a, _, mail_a) = &sent[0];
    let (address, subject) = mailto(mail_a);
    assert!(address.starts_with("bounces+u"), "{address}");
    let token = address
        .trim_start_matches("bounces+")
        .trim_end_matches("@blog.example");
    assert_eq!(subject, format!("unsubscribe {token}"));
    // Not the https link's token.
    assert!(!mail_a
        .unsubscribe_path("https://blog.example")
        .contains(token));

    // Forged: From says it is them, the token is altered. Nothing changes.
    let mut bad: Vec<char> = address.chars().collect();
    bad[12] = if bad[12] == 'a' { 'c' } else { 'a' };
    let bad: String = bad.into_iter().collect();
    let forged = format!("From: {a}\r\nTo: {bad}\r\nSubject: unsubscribe\r\n\r\n\r\n");
    send(&d, &bad, forged.as_bytes());
    assert_eq!(status_of(&d, a), "confirmed");

    // As Outlook sends it: to the address, the subject as given.
    let real = format!("From: {a}\r\nTo: {address}\r\nSubject: {subject}\r\n\r\n\r\n");
    send(&d, &address, real.as_bytes());
    assert_eq!(status_of(&d, a), "unsubscribed");
    assert_eq!(history(&d, a), ["unsubscribe/mailto"]);
    assert_eq!(
        d.metric("tidings_unsubscribes_total{source=\"mailto\"}"),
        1.0
    );

    // A mail system that drops +tags: the bare address, the token in the subject.
    let (b, _, mail_b) = &sent[1];
    let (_, subject_b) = mailto(mail_b);
    let bare = format!("From: {b}\r\nTo: {RETURN_PATH}\r\nSubject: {subject_b}\r\n\r\n\r\n");
    send(&d, RETURN_PATH, bare.as_bytes());
    assert_eq!(status_of(&d, b), "unsubscribed");
}

#[test]
fn the_listener_takes_only_its_own_addresses_and_caps_the_size() {
    let sink = SmtpSink::start();
    let d = hearing(&sink, &[("TIDINGS_MAIL_INBOUND_MAX_MESSAGE_BYTES", "4096")]);
    let addr = d.inbound.clone().expect("inbound");
    let replies = smtp_deliver(
        &addr,
        "someone@example.com",
        &[
            "postmaster@blog.example",
            "victim@elsewhere.example",
            "bounces@blog.example.evil",
        ],
        b"Subject: relay me\r\n\r\nhi\r\n",
    );
    assert_eq!(replies.rcpt, [550, 550, 550]);
    assert_eq!(replies.data, None, "nothing accepted, nothing relayed");
    let big = format!(
        "Subject: big\r\n\r\n{}\r\n",
        "x".repeat(80).repeat(100).replace("xx", "x\r\n")
    );
    let replies = smtp_deliver(&addr, "", &[RETURN_PATH], big.as_bytes());
    assert_eq!(replies.data, Some(552));
    let stored: i64 = d
        .db()
        .query_row("SELECT count(*) FROM inbound_messages", &[], |r| r.get(0))
        .expect("count");
    assert_eq!(stored, 0);
    assert!(sink.received().is_empty(), "no backscatter");
}

#[test]
fn tidings_inbound_reads_a_message_from_a_pipe_and_exits_75_when_it_cannot_store_it() {
    let sink = SmtpSink::start();
    let d = hearing(&sink, &[]);
    let sent = digests(&d, &sink, 1);
    let (a, verp, _) = &sent[0];
    let file = d.dir.join("bounce.eml");
    let mut raw = format!("X-Original-To: {verp}\r\n").into_bytes();
    raw.extend_from_slice(&dsn("failed", "5.1.1", ""));
    std::fs::write(&file, raw).expect("write");
    let out = d.cli(&["inbound", file.to_str().expect("path")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::helpers::stderr(&out)
    );
    assert!(
        stdout(&out).contains("dsn: hard bounce"),
        "{}",
        stdout(&out)
    );
    assert_eq!(status_of(&d, a), "bounced");

    // The database cannot be opened: the MTA should keep the message and retry.
    let mut env = d.env().to_vec();
    env.retain(|(k, _)| k != "TIDINGS_DATABASE_PATH" && k != "TIDINGS_DATABASE_URL");
    env.push(if crate::helpers::on_postgres() {
        (
            "TIDINGS_DATABASE_URL".into(),
            "postgres://postgres@127.0.0.1:1/none?sslmode=disable".into(),
        )
    } else {
        (
            "TIDINGS_DATABASE_PATH".into(),
            "/proc/no-such-dir/tidings.db".into(),
        )
    });
    let out = crate::helpers::cli_in(&d.dir, &env, &["inbound", file.to_str().expect("path")]);
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        crate::helpers::stderr(&out)
    );
}

#[test]
fn an_inbound_listener_without_a_return_path_stops_the_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = crate::helpers::cli_in(
        dir.path(),
        &[
            (
                "TIDINGS_MAIL_INBOUND_BIND".to_string(),
                "127.0.0.1:0".to_string(),
            ),
            (
                "TIDINGS_DATABASE_PATH".to_string(),
                dir.path().join("t.db").display().to_string(),
            ),
        ],
        &["serve"],
    );
    assert!(!out.status.success());
    let err = crate::helpers::stderr(&out);
    assert!(
        err.contains("mail.return_path") && err.contains("mail.inbound.bind"),
        "{err}"
    );
}

#[test]
fn a_wave_of_policy_bounces_pauses_the_run_and_suppresses_nobody() {
    use crate::helpers::{stderr, tidings};
    // The twelfth reader's server defers: their digest is still waiting when the wave comes.
    let sink = SmtpSink::start_with(&["--defer", "reader00011@example.com"]);
    let d = hearing(&sink, &[("TIDINGS_DIGEST_MAX_ATTEMPTS", "50")]);
    import_subscribers(&d, 12);
    publish(&d);
    let run = tidings(&d.dir, d.env())
        .args(["digest", "run", "--now"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("digest run");
    let delivered = sink.wait_for_received(11, 30);
    for r in delivered.iter().take(10) {
        send(&d, &r.mail_from, &dsn("failed", "5.7.1", ""));
    }
    let out = run.wait_with_output().expect("run ends");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("11 sent"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let db = d.db();
    let (run_id, reason): (i64, String) = db
        .query_row(
            "SELECT id, paused_reason FROM digest_runs WHERE paused_us IS NOT NULL",
            &[],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the run is paused");
    assert!(
        reason.contains("10 recipients blocked by policy"),
        "{reason}"
    );
    let (state, next): (String, i64) = db
        .query_row(
            "SELECT d.state, d.next_attempt_us FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id \
             WHERE s.email = 'reader00011@example.com'",
            &[],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("delivery");
    assert_eq!(state, "pending", "held back, not given up");
    assert!(next > chrono::Utc::now().timestamp_micros() + 86_400_000_000 * 365);
    assert!(
        suppressed(&d).is_empty(),
        "nobody is suppressed for a blocked sender"
    );
    assert_eq!(status_of(&d, "reader00000@example.com"), "confirmed");
    assert_eq!(d.metric("tidings_digest_runs_paused_total"), 1.0);
    assert!(d.log().contains("digest run paused"), "raised in the log");

    // Once fixed, the admin resumes it: the held-back digest is due again.
    let resumed = d.cli(&["digest", "resume", &run_id.to_string()]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let next: i64 = d
        .db()
        .query_row(
            "SELECT d.next_attempt_us FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id \
             WHERE s.email = 'reader00011@example.com'",
            &[],
            |r| r.get(0),
        )
        .expect("delivery");
    assert!(next <= chrono::Utc::now().timestamp_micros());
    let again = d.cli(&["digest", "resume", &run_id.to_string()]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("is not paused"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn the_listener_caps_connections_per_client_and_line_length() {
    use std::io::{BufRead, BufReader, Write};
    let sink = SmtpSink::start();
    let d = hearing(
        &sink,
        &[("TIDINGS_MAIL_INBOUND_MAX_CONNECTIONS_PER_IP", "2")],
    );
    let addr = d.inbound.clone().expect("inbound");
    let greet = |s: &std::net::TcpStream| -> String {
        let mut line = String::new();
        BufReader::new(s.try_clone().expect("clone"))
            .read_line(&mut line)
            .expect("greeting");
        line
    };
    let held: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(&addr).expect("connect"))
        .collect();
    for s in &held {
        assert!(greet(s).starts_with("220"));
    }
    let third = std::net::TcpStream::connect(&addr).expect("connect");
    assert!(
        greet(&third).starts_with("421"),
        "a third connection from one address is turned away"
    );
    drop(held);
    drop(third);
    // Once they close, a new one is served; a line past the limit ends the session.
    crate::helpers::wait_until("a free slot", 10, || {
        let s = std::net::TcpStream::connect(&addr).expect("connect");
        greet(&s).starts_with("220")
    });
    let mut s = std::net::TcpStream::connect(&addr).expect("connect");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut line = String::new();
    r.read_line(&mut line).expect("greeting");
    s.write_all(format!("EHLO {}\r\n", "x".repeat(20_000)).as_bytes())
        .expect("write");
    // Most of the line is unread when the listener replies: its close must not reset the
    // connection before the reply is out.
    line.clear();
    r.read_line(&mut line).expect("reply");
    assert!(line.starts_with("500"), "{line}");
}

#[test]
fn a_single_email_the_relay_refuses_for_good_is_recorded() {
    let sink = SmtpSink::start_with(&["--reject", "nobody@example.com"]);
    let d = Daemon::start_mailing(&sink, &[]);
    let r = d.post_form(
        "/subscribe",
        &[
            ("email", "nobody@example.com"),
            ("cadence", "daily"),
            ("time_zone", "UTC"),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(d.settled_emails(), 0);
    let (state, error): (String, String) = d
        .db()
        .query_row("SELECT state, last_error FROM outbox", &[], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("row");
    assert_eq!(state, "failed");
    assert!(error.contains("550"), "{error}");
    assert_eq!(history(&d, "nobody@example.com"), ["failed/outbox"]);
    let queue = d.cli(&["mail", "queue"]);
    assert_eq!(stdout(&queue), "", "nothing waits");
}
