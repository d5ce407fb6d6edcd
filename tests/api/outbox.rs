//! The outbox: a confirmation or welcome email is stored before the answer goes out, and
//! reaches the reader once, through relay outages, restarts and `kill -9`; one that waits past
//! its expiry is dropped on record.

use std::collections::HashMap;

use crate::helpers::{stdout, wait_until, Daemon, SmtpSink};

fn subscribe(d: &Daemon, email: &str) {
    let r = d.post_form(
        "/subscribe",
        &[("email", email), ("cadence", "daily"), ("time_zone", "UTC")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

fn outbox_count(d: &Daemon, sql_where: &str) -> i64 {
    d.db()
        .query_row(
            &format!("SELECT count(*) FROM outbox WHERE {sql_where}"),
            &[],
            |r| r.get(0),
        )
        .expect("count the outbox")
}

/// How many messages each envelope recipient got.
fn per_recipient(sink: &SmtpSink) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for m in sink.received() {
        for to in m.rcpt_to {
            *counts.entry(to).or_insert(0) += 1;
        }
    }
    counts
}

const MANY: [(&str, &str); 1] = [("TIDINGS_SUBSCRIBERS_IP_RATE_PER_MINUTE", "1000")];

#[test]
fn twenty_people_subscribe_while_the_relay_is_down_and_each_gets_one_confirmation() {
    let mut sink = SmtpSink::start();
    sink.stop();
    let d = Daemon::start_mailing(&sink, &MANY);
    let people: Vec<String> = (0..20)
        .map(|i| format!("reader{i:02}@example.com"))
        .collect();
    for p in &people {
        subscribe(&d, p);
    }
    // Every one is on record before its answer went out.
    assert_eq!(d.metric("tidings_emails_queued_total"), 20.0);
    assert_eq!(outbox_count(&d, "state IN ('queued', 'sending')"), 20);
    wait_until("every email tried once", 20, || {
        outbox_count(&d, "state = 'queued' AND attempts >= 1") == 20
    });
    // The admin sees what waits and why.
    let queue = d.cli(&["mail", "queue"]);
    assert!(queue.status.success());
    let listing = stdout(&queue);
    assert_eq!(listing.lines().count(), 20, "{listing}");
    for p in &people {
        let line = listing
            .lines()
            .find(|l| l.contains(p.as_str()))
            .unwrap_or_else(|| panic!("{p} not in the queue:\n{listing}"));
        assert!(
            line.contains("confirmation") && line.contains("failed"),
            "{line}"
        );
    }
    assert_eq!(d.metric("tidings_outbox_depth"), 20.0);
    assert!(sink.received().is_empty());

    sink.restart();
    sink.wait_for_received(20, 60);
    wait_until("the outbox to empty", 30, || {
        outbox_count(&d, "state = 'sent'") == 20
    });
    let got = per_recipient(&sink);
    assert_eq!(got.len(), 20, "{got:?}");
    assert!(got.values().all(|&n| n == 1), "{got:?}");
    assert_eq!(d.settled_emails(), 20);
    assert_eq!(d.metric("tidings_outbox_depth"), 0.0);
    let empty = d.cli(&["mail", "queue"]);
    assert_eq!(stdout(&empty), "");
}

#[test]
fn kill_9_with_mail_queued_loses_none_of_it() {
    let mut sink = SmtpSink::start();
    sink.stop();
    let mut d = Daemon::start_mailing(
        &sink,
        &[
            MANY[0],
            // A claim a killed daemon held is taken over after this.
            ("TIDINGS_DIGEST_LEASE_SECONDS", "5"),
        ],
    );
    let people: Vec<String> = (0..8).map(|i| format!("kept{i}@example.com")).collect();
    for p in &people {
        subscribe(&d, p);
    }
    d.kill_and_restart();
    assert_eq!(outbox_count(&d, "state IN ('queued', 'sending')"), 8);
    sink.restart();
    sink.wait_for_received(8, 60);
    wait_until("every email sent", 30, || {
        outbox_count(&d, "state = 'sent'") == 8
    });
    let got = per_recipient(&sink);
    assert_eq!(got.len(), 8, "{got:?}");
    assert!(got.values().all(|&n| n == 1), "{got:?}");
}

#[test]
fn a_confirmation_queued_past_its_ttl_is_dropped_on_record() {
    let sink = SmtpSink::start();
    // A zero TTL: the confirmation is past it before the worker sees it.
    let d = Daemon::start_mailing(&sink, &[("TIDINGS_SUBSCRIBERS_CONFIRM_TTL_HOURS", "0")]);
    subscribe(&d, "late@example.com");
    assert_eq!(d.settled_emails(), 0);
    assert_eq!(d.metric("tidings_emails_failed_total"), 1.0);
    assert_eq!(outbox_count(&d, "state = 'dropped'"), 1);
    assert!(sink.received().is_empty());
    let show = d.cli(&["subscriber", "show", "late@example.com"]);
    assert!(show.status.success());
    let text = stdout(&show);
    assert!(text.contains("pending"), "{text}");
    assert!(
        text.contains("dropped  via outbox  confirmation: expired unsent"),
        "{text}"
    );
}

#[test]
fn the_welcome_email_goes_through_the_outbox_once() {
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[]);
    subscribe(&d, "new@example.com");
    let path = sink.wait_for(1)[0].link("https://blog.example", "/confirm/");
    for _ in 0..2 {
        d.request("POST", &path, &[], Some(b""));
    }
    sink.wait_for_received(2, 10);
    assert_eq!(d.settled_emails(), 2);
    let templates: Vec<String> = d
        .db()
        .query_map(
            "SELECT template || ':' || state FROM outbox ORDER BY id",
            &[],
            |r| r.get(0),
        )
        .expect("rows");
    assert_eq!(templates, ["confirmation:sent", "welcome:sent"]);
    // The outbox keeps no token and no message: only what to send.
    let columns: Vec<String> = d
        .db()
        .query_map(
            if crate::helpers::on_postgres() {
                "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'outbox'"
            } else {
                "SELECT name FROM pragma_table_info('outbox')"
            },
            &[],
            |r| r.get(0),
        )
        .expect("rows");
    assert!(
        !columns.iter().any(|c| c.contains("token") || c == "body"),
        "{columns:?}"
    );
}
