//! The history from now on: where each subscription came from, and which run's email an
//! unsubscribe came through, as the console will show them.

use crate::helpers::{article, stderr, Daemon, SmtpSink};
use tidings::digest::ledger::{self, RunState};
use tidings::subscribers::events;

const BASE: &str = "https://blog.example";

/// `kind/source` of each event about `email`, oldest first, as the API gives them.
fn history(d: &Daemon, email: &str) -> Vec<String> {
    let r = d.api("GET", &format!("/api/subscribers/{email}/events"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["kind"].as_str().unwrap_or(""),
                e["source"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// The last event about `email`, as the API gives it.
fn last_event(d: &Daemon, email: &str) -> serde_json::Value {
    let r = d.api("GET", &format!("/api/subscribers/{email}/events"), None);
    r.json()["events"]
        .as_array()
        .and_then(|a| a.last().cloned())
        .expect("an event")
}

fn confirmed(d: &Daemon, email: &str) {
    let body = serde_json::json!({ "email": email, "status": "confirmed" });
    let r = d.api("POST", "/api/subscribers", Some(&body.to_string()));
    assert_eq!(r.status, 201, "{}", r.text());
}

fn status_of(d: &Daemon, email: &str) -> String {
    let r = d.api("GET", &format!("/api/subscribers/{email}"), None);
    r.json()["status"].as_str().unwrap_or_default().to_string()
}

/// (delivery id, run id) of the one digest planned for `email`.
fn delivery_of(d: &Daemon, email: &str) -> (i64, i64) {
    d.db()
        .query_row(
            "SELECT d.id, d.run_id FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id \
             WHERE s.email = ?1",
            tidings::params![email],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("a delivery")
}

#[test]
fn subscribing_twice_is_two_events_each_with_its_source() {
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[]);
    d.publish(&article("one", "One", &["AI"], "2026-05-27T09:00:00Z"));
    // An admin adds them as pending; then they subscribe themselves on the form, and confirm.
    let r = d.api(
        "POST",
        "/api/subscribers",
        Some(r#"{"email":"twice@example.com"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = d.post_form(
        "/subscribe",
        &[
            ("email", "twice@example.com"),
            ("cadence", "daily"),
            ("time_zone", "UTC"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let confirm = sink.wait_for(1)[0].link(BASE, "/confirm/");
    let done = d.request("POST", &confirm, &[], Some(b""));
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(
        history(&d, "twice@example.com"),
        ["subscribed/api", "subscribed/form", "confirmed/link"]
    );

    // The CLI and a CSV import add confirmed subscribers: both events, with their source.
    let out = d.cli(&["subscriber", "add", "cli@example.com", "--confirmed"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let file = d.dir.join("list.csv");
    std::fs::write(&file, "email,status\ncsv@example.com,confirmed\n").expect("csv");
    let out = d.cli(&["subscriber", "import", file.to_str().expect("path")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        history(&d, "cli@example.com"),
        ["subscribed/cli", "confirmed/cli"]
    );
    assert_eq!(
        history(&d, "csv@example.com"),
        ["subscribed/csv", "confirmed/csv"]
    );
    // Importing it again changes nothing, and records nothing.
    let out = d.cli(&["subscriber", "import", file.to_str().expect("path")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(history(&d, "csv@example.com").len(), 2);
}

#[test]
fn an_unsubscribe_through_a_digests_links_counts_for_the_run_that_sent_it() {
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[]);
    d.publish(&article("old", "Old", &["AI"], "2020-01-01T00:00:00Z"));
    for who in ["page@example.com", "click@example.com", "kept@example.com"] {
        confirmed(&d, who);
    }
    d.publish(&article(
        "news",
        "News",
        &["AI"],
        &chrono::Utc::now().to_rfc3339(),
    ));
    let r = d.api("POST", "/api/digests/run", Some(r#"{"now": true}"#));
    assert_eq!(r.status, 200, "{}", r.text());
    let mails = sink.wait_for(3);
    let mail_to = |who: &str| {
        mails
            .iter()
            .find(|m| m.header("To").as_deref() == Some(who))
            .unwrap_or_else(|| panic!("no digest to {who}"))
    };

    // A link whose delivery id was altered is refused, and changes nothing.
    let path = mail_to("kept@example.com").unsubscribe_path(BASE);
    let token_at = path.rfind('/').expect("token") + 1;
    let mut forged = path.clone();
    let c = if &forged[token_at + 18..token_at + 19] == "A" {
        "B"
    } else {
        "A"
    };
    forged.replace_range(token_at + 18..token_at + 19, c);
    let one_click = |path: &str, body: &[u8]| {
        d.request(
            "POST",
            path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(body),
        )
    };
    assert_eq!(
        one_click(&forged, b"List-Unsubscribe=One-Click").status,
        404
    );
    assert_eq!(status_of(&d, "kept@example.com"), "confirmed");

    // The page's button (through the link in the text), and a mail client's one-click POST.
    let page = mail_to("page@example.com").link(BASE, "/unsubscribe/");
    assert_eq!(d.get(&page).status, 200);
    let r = one_click(&page, b"List-Unsubscribe=One-Click&via=page");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = one_click(
        &mail_to("click@example.com").unsubscribe_path(BASE),
        b"List-Unsubscribe=One-Click",
    );
    assert_eq!(r.status, 200, "{}", r.text());

    let (page_delivery, run) = delivery_of(&d, "page@example.com");
    let (click_delivery, _) = delivery_of(&d, "click@example.com");
    let event = last_event(&d, "page@example.com");
    assert_eq!(event["kind"], "unsubscribe");
    assert_eq!(event["source"], "link");
    assert_eq!(event["delivery_id"], page_delivery);
    let event = last_event(&d, "click@example.com");
    assert_eq!(event["source"], "one_click");
    assert_eq!(event["delivery_id"], click_delivery);

    // The run's counts, and one subscriber's timeline, as the console reads them.
    let (runs, timeline) = d
        .db()
        .read(|db| {
            Ok((
                ledger::runs(db, None, 30)?,
                events::timeline(db, "page@example.com")?,
            ))
        })
        .expect("read");
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (
            runs[0].id,
            runs[0].state,
            runs[0].due,
            runs[0].sent,
            runs[0].unsubscribed
        ),
        (run, RunState::Done, 3, 3, 2)
    );
    let seen: Vec<(&str, Option<&str>, Option<i64>)> = timeline
        .iter()
        .map(|e| (e.kind.as_str(), e.source.as_deref(), e.run_id))
        .collect();
    assert_eq!(
        seen,
        [
            ("subscribed", Some("api"), None),
            ("confirmed", Some("api"), None),
            ("digest_sent", None, Some(run)),
            ("unsubscribe", Some("link"), Some(run)),
        ]
    );
}

#[test]
fn a_link_sealed_without_a_delivery_still_unsubscribes_unattributed() {
    let d = Daemon::start();
    confirmed(&d, "old@example.com");
    let id: i64 = d
        .db()
        .query_row(
            "SELECT id FROM subscribers WHERE email = 'old@example.com'",
            &[],
            |r| r.get(0),
        )
        .expect("id");
    // A token as digests sealed them before they named their delivery.
    let key = d
        .db()
        .write(tidings::subscribers::store::link_key)
        .expect("key");
    let expires = (chrono::Utc::now() + chrono::Duration::days(30)).timestamp();
    let token = key.seal(
        id,
        "old@example.com",
        tidings::subscribers::tokens::Purpose::Unsubscribe,
        expires,
    );
    assert_eq!(token.as_str().len(), 43);
    let r = d.request(
        "POST",
        &format!("/unsubscribe/{}", token.as_str()),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(b"List-Unsubscribe=One-Click"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(status_of(&d, "old@example.com"), "unsubscribed");
    let event = last_event(&d, "old@example.com");
    assert_eq!(event["kind"], "unsubscribe");
    assert_eq!(event["source"], "one_click");
    assert!(event["delivery_id"].is_null(), "{event}");
}
