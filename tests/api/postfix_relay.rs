//! Through a real Postfix as the relay (`tests/support/postfix.rs`): a digest Postfix cannot
//! deliver comes back as Postfix's own DSN to the VERP address, routed to tidings' listener; a
//! delay comes back as a delay notice; complaints, auto-replies and mailto unsubscribes reach
//! the listener through Postfix. The daemon runs on its default `mail.tls` (auto) against
//! Postfix's STARTTLS with a self-signed certificate, as a relay on this machine is set up.
//! `#[ignore]` in a plain `cargo test` (Postfix and root needed); `.ci/run` runs them.

use crate::helpers::{publish, publish_article, smtp_deliver, wait_until, Daemon, SmtpSink};
use crate::postfix::{free_port, Postfix};

const RETURN_PATH: &str = "bounces@blog.example";

/// A daemon relaying through a Postfix that delivers `ok.example` to `sink`, bounces
/// `gone.example` (5.1.1), defers `delay.example` (4.4.1), and routes `blog.example` (the return
/// path) to the daemon's inbound listener.
fn relay(sink: &SmtpSink) -> (Daemon, Postfix) {
    let port = free_port();
    let transport = format!("smtp://127.0.0.1:{port}");
    let d = Daemon::start_with(&[
        ("TIDINGS_MAIL_TRANSPORT", transport.as_str()),
        ("TIDINGS_MAIL_FROM", "Future Tech Blog <news@blog.example>"),
        ("TIDINGS_MAIL_RETURN_PATH", RETURN_PATH),
        ("TIDINGS_MAIL_INBOUND_BIND", "127.0.0.1:0"),
    ]);
    let inbound = d.inbound.clone().expect("inbound listener");
    let inbound_port = inbound.rsplit(':').next().expect("port").to_string();
    let pf = Postfix::start(
        port,
        &[
            ("ok.example", format!("smtp:[127.0.0.1]:{}", sink.port)),
            ("gone.example", "error:5.1.1 mailbox unavailable".into()),
            ("delay.example", "retry:4.4.1 try again later".into()),
            ("blog.example", format!("smtp:[127.0.0.1]:{inbound_port}")),
        ],
    );
    (d, pf)
}

fn add(d: &Daemon, email: &str) {
    let r = d.api(
        "POST",
        "/api/subscribers",
        Some(&format!(r#"{{"email":"{email}","status":"confirmed"}}"#)),
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

fn status_of(d: &Daemon, email: &str) -> String {
    let r = d.api("GET", &format!("/api/subscribers/{email}"), None);
    r.json()["status"].as_str().unwrap_or_default().to_string()
}

fn inbound_count(d: &Daemon) -> i64 {
    d.db()
        .query_row("SELECT count(*) FROM inbound_messages", &[], |r| r.get(0))
        .expect("count")
}

fn run_now(d: &Daemon) -> serde_json::Value {
    d.api("POST", "/api/digests/run", Some(r#"{"now": true}"#))
        .json()
}

#[test]
#[ignore = "needs Debian's postfix and root (bash .ci/run installs and runs it)"]
fn a_digest_postfix_cannot_deliver_comes_back_and_the_subscriber_gets_no_more() {
    let sink = SmtpSink::start();
    let (d, pf) = relay(&sink);
    add(&d, "reader@ok.example");
    add(&d, "gone@gone.example");
    publish(&d);
    let report = run_now(&d);
    // Postfix took both: the failure is only known when its DSN comes back.
    assert_eq!(report["sent"], 2, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    wait_until("the DSN to mark the subscriber bounced", 30, || {
        status_of(&d, "gone@gone.example") == "bounced"
    });
    let history = d
        .api("GET", "/api/subscribers/gone@gone.example/events", None)
        .json();
    // After the sign-up's own events, the bounce.
    assert_eq!(history["events"][1]["kind"], "confirmed", "{history}");
    assert_eq!(history["events"][2]["kind"], "bounce", "{history}");
    assert_eq!(history["events"][2]["bounce"], "hard", "{history}");
    assert_eq!(history["events"][2]["source"], "dsn", "{history}");
    let suppressions = d.api("GET", "/api/suppressions", None).json();
    assert_eq!(
        suppressions["suppressions"][0]["email"],
        "gone@gone.example"
    );
    let log = pf.log();
    assert!(
        log.contains("sender non-delivery notification"),
        "Postfix wrote the DSN itself:\n{log}"
    );
    // The one that was delivered went through Postfix, over its STARTTLS, on the defaults.
    sink.wait_for_received(1, 20);

    publish_article(&d, "later");
    let report = run_now(&d);
    assert_eq!(report["sent"], 1, "{report}");
    let planned: i64 = d
        .db()
        .query_row(
            "SELECT count(*) FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id \
             WHERE s.email = 'gone@gone.example'",
            &[],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(planned, 1, "no later digest was planned for them");
    sink.wait_for_received(2, 20);
    assert!(sink
        .received()
        .iter()
        .all(|m| m.rcpt_to == ["reader@ok.example".to_string()]));
}

#[test]
#[ignore = "needs Debian's postfix and root (bash .ci/run installs and runs it)"]
fn a_delay_notice_from_postfix_is_a_soft_bounce() {
    let sink = SmtpSink::start();
    let (d, pf) = relay(&sink);
    add(&d, "slow@delay.example");
    publish(&d);
    assert_eq!(run_now(&d)["sent"], 1);
    let soft = || -> i64 {
        d.db()
            .query_row(
                "SELECT count(*) FROM events WHERE kind = 'bounce' AND bounce = 'soft'",
                &[],
                |r| r.get(0),
            )
            .unwrap_or(0)
    };
    wait_until("Postfix's delay notice", 30, || soft() >= 1);
    assert_eq!(status_of(&d, "slow@delay.example"), "confirmed");
    assert!(
        pf.log().contains("sender delay notification"),
        "{}",
        pf.log()
    );
}

#[test]
#[ignore = "needs Debian's postfix and root (bash .ci/run installs and runs it)"]
fn complaints_auto_replies_and_mailto_unsubscribes_arrive_through_postfix() {
    let sink = SmtpSink::start();
    let (d, _pf) = relay(&sink);
    for who in [
        "a@ok.example",
        "b@ok.example",
        "c@ok.example",
        "e@ok.example",
    ] {
        add(&d, who);
    }
    publish(&d);
    assert_eq!(run_now(&d)["sent"], 4);
    let mails = sink.wait_for(4);
    let of = |who: &str| {
        mails
            .iter()
            .find(|m| m.header("To").as_deref() == Some(who))
            .unwrap_or_else(|| panic!("no digest for {who}"))
    };
    let relay = format!("127.0.0.1:{}", _pf.port);
    let mut expected = 0;
    let mut through_postfix = |from: &str, to: &str, message: String| {
        let replies = smtp_deliver(&relay, from, &[to], message.as_bytes());
        assert_eq!(replies.rcpt, [250], "Postfix took it for {to}");
        assert_eq!(replies.data, Some(250));
        expected += 1;
        wait_until("Postfix to hand it to the listener", 30, || {
            inbound_count(&d) >= expected
        });
    };

    // An ARF complaint about a's digest, from a feedback loop, quoting the original.
    let id = of("a@ok.example").header("Message-ID").expect("id");
    through_postfix(
        "fbl@isp.example",
        RETURN_PATH,
        format!(
            "From: fbl@isp.example\r\nTo: {RETURN_PATH}\r\nSubject: FBL\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=feedback-report; boundary=\"A\"\r\n\r\n\
             --A\r\nContent-Type: text/plain\r\n\r\nComplaint.\r\n\
             --A\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nVersion: 1\r\n\r\n\
             --A\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: {id}\r\nSubject: digest\r\n\r\nx\r\n--A--\r\n"
        ),
    );
    assert_eq!(status_of(&d, "a@ok.example"), "unsubscribed");

    // An out-of-office reply to b's return path: ignored.
    let b_path = sink
        .received()
        .into_iter()
        .find(|r| r.rcpt_to == ["b@ok.example".to_string()])
        .expect("b")
        .mail_from;
    through_postfix(
        "b@ok.example",
        &b_path,
        "From: b@ok.example\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\nAway.\r\n"
            .into(),
    );
    assert_eq!(status_of(&d, "b@ok.example"), "confirmed");

    // A mailto unsubscribe for c, with its token; one for e with a forged token.
    let mailto = |who: &str| -> String {
        let lu = of(who)
            .header("List-Unsubscribe")
            .expect("List-Unsubscribe");
        lu.split(',')
            .map(|p| p.trim().trim_matches(|c| c == '<' || c == '>'))
            .find_map(|u| u.strip_prefix("mailto:"))
            .and_then(|u| u.split('?').next())
            .expect("mailto")
            .to_string()
    };
    let c = mailto("c@ok.example");
    through_postfix(
        "c@ok.example",
        &c,
        format!("From: c@ok.example\r\nTo: {c}\r\nSubject: unsubscribe\r\n\r\n\r\n"),
    );
    assert_eq!(status_of(&d, "c@ok.example"), "unsubscribed");
    let e = mailto("e@ok.example");
    // The last characters of the token are its MAC.
    let m = e.find('@').expect("@") - 2;
    let forged = format!(
        "{}{}{}",
        &e[..m],
        if &e[m..m + 1] == "a" { "c" } else { "a" },
        &e[m + 1..]
    );
    through_postfix(
        "e@ok.example",
        &forged,
        format!("From: e@ok.example\r\nTo: {forged}\r\nSubject: unsubscribe\r\n\r\n\r\n"),
    );
    assert_eq!(status_of(&d, "e@ok.example"), "confirmed");

    // A bounce for e with a forged return-path tag: nothing changes.
    let e_path = sink
        .received()
        .into_iter()
        .find(|r| r.rcpt_to == ["e@ok.example".to_string()])
        .expect("e")
        .mail_from;
    let at = e_path.find('@').expect("@") - 2;
    let forged_path = format!(
        "{}{}{}",
        &e_path[..at],
        if &e_path[at..at + 1] == "a" { "c" } else { "a" },
        &e_path[at + 1..]
    );
    through_postfix(
        "",
        &forged_path,
        "From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
             --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n\
             Final-Recipient: rfc822; e@ok.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--B--\r\n"
        .into(),
    );
    assert_eq!(status_of(&d, "e@ok.example"), "confirmed");
    let outcomes: Vec<String> = d
        .db()
        .query_map(
            "SELECT class || ': ' || outcome FROM inbound_messages ORDER BY id",
            &[],
            |r| r.get(0),
        )
        .expect("rows");
    assert_eq!(outcomes.len(), 5, "{outcomes:#?}");
    assert!(
        outcomes[0].starts_with("complaint: complaint (abuse)"),
        "{outcomes:#?}"
    );
    assert!(
        outcomes[1].starts_with("auto_reply: auto_reply: ignored"),
        "{outcomes:#?}"
    );
    assert!(
        outcomes[2].contains("unsubscribed (mailto)"),
        "{outcomes:#?}"
    );
    assert!(outcomes[3].contains("forged or expired"), "{outcomes:#?}");
    assert!(outcomes[4].contains("forged or expired"), "{outcomes:#?}");
}
