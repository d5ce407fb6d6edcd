//! Delivering outgoing webhooks to a real receiver on 127.0.0.1: retries keep one subscriber's
//! events in order, a `kill -9` loses nothing queued, `410` and a long failure disable, a rotated
//! secret signs beside the new one, replay keeps the `webhook-id`, private addresses are refused,
//! two nodes deliver each event once, and finished deliveries go after `keep_days`.

use std::collections::HashSet;

use serde_json::json;

use crate::helpers::{fresh_postgres_url, on_postgres, wait_until, Daemon, SmtpSink};
use crate::webhook_endpoints::{add_endpoint, all_signed, email_of, subscriber, ALLOW_PRIVATE};
use crate::webhook_receiver::{Hit, Receiver, Rule};

#[test]
fn refused_attempts_are_retried_and_each_subscriber_stays_in_order() {
    let receiver = Receiver::start(Rule::RefuseFirst(3));
    let d = Daemon::start_with(&[
        ALLOW_PRIVATE,
        ("TIDINGS_WEBHOOK_ENDPOINTS_RETRY_SCHEDULE", "1s,1s,2s,4s"),
    ]);
    let (_, secret) = add_endpoint(&d, &receiver.url, &[]);
    let readers = ["one@example.com", "two@example.com", "three@example.com"];
    for email in readers {
        subscriber(&d, email, "confirmed");
        subscriber(&d, email, "unsubscribed");
    }
    // Three events each (created, confirmed, unsubscribed), each refused three times.
    let accepted = receiver.wait_accepted(9, 90);
    all_signed(&accepted, &secret);
    for email in readers {
        let order: Vec<String> = accepted
            .iter()
            .filter(|h| email_of(h) == email)
            .map(Hit::event_type)
            .collect();
        assert_eq!(
            order,
            [
                "subscriber.created",
                "subscriber.confirmed",
                "subscriber.unsubscribed"
            ],
            "{email}"
        );
    }
    let hits = receiver.hits();
    for h in &accepted {
        let attempts: Vec<&Hit> = hits.iter().filter(|x| x.id == h.id).collect();
        assert_eq!(
            attempts.len(),
            4,
            "same webhook-id on every attempt: {}",
            h.id
        );
        // A later event waited while an earlier one was retried: none of a reader's attempts
        // at a later event came before the earlier one was accepted.
        let email = email_of(h);
        let earlier_accepted = accepted
            .iter()
            .filter(|x| email_of(x) == email)
            .take_while(|x| x.id != h.id)
            .map(|x| x.at)
            .max();
        if let Some(at) = earlier_accepted {
            assert!(attempts.iter().all(|a| a.at >= at), "{email} out of order");
        }
    }
}

#[test]
fn a_kill_9_loses_no_queued_event() {
    let receiver = Receiver::start(Rule::Always(503, None));
    let mut d = Daemon::start_with(&[
        ALLOW_PRIVATE,
        (
            "TIDINGS_WEBHOOK_ENDPOINTS_RETRY_SCHEDULE",
            "0s,1s,1s,1s,1s,1s,1s,1s,1s,1s",
        ),
        // What the killed process held is taken over when its lease (timeout + 10 s) lapses.
        ("TIDINGS_WEBHOOK_ENDPOINTS_TIMEOUT_SECONDS", "2"),
    ]);
    add_endpoint(&d, &receiver.url, &["subscriber.created"]);
    crate::helpers::import_subscribers(&d, 300);
    receiver.wait_hits(1, 20);
    d.kill();
    receiver.set_rule(Rule::Accept);
    d.start_again();
    wait_until("every reader's event", 60, || {
        let got: HashSet<String> = receiver
            .hits()
            .iter()
            .filter(|h| h.answered == 204)
            .map(email_of)
            .collect();
        got.len() == 300
    });
}

#[test]
fn a_410_disables_the_endpoint() {
    let receiver = Receiver::start(Rule::Always(410, None));
    let d = Daemon::start_with(&[ALLOW_PRIVATE]);
    let (id, _) = add_endpoint(&d, &receiver.url, &[]);
    assert_eq!(
        d.api("POST", &format!("/api/webhook-endpoints/{id}/ping"), None)
            .status,
        202
    );
    let read = d.wait_for_with(
        &format!("/api/webhook-endpoints/{id}"),
        &[(
            "Authorization",
            &format!("Bearer {}", crate::helpers::TOKEN),
        )],
        |r| r.json()["enabled"] == false,
    );
    assert!(
        read.json()["disabled_reason"]
            .as_str()
            .unwrap_or("")
            .contains("410"),
        "{}",
        read.text()
    );
    // Nothing more goes to it: one attempt, and the delivery is failed.
    let log = d
        .api(
            "GET",
            &format!("/api/webhook-endpoints/{id}/deliveries"),
            None,
        )
        .json();
    assert_eq!(log["deliveries"][0]["state"], "failed", "{log}");
    assert_eq!(receiver.hits().len(), 1);
    let audit: i64 = d
        .db()
        .query_row(
            "SELECT count(*) FROM audit_log WHERE action = 'webhook_endpoint.disable'",
            &[],
            |r| r.get(0),
        )
        .expect("audit");
    assert_eq!(audit, 1);
}

#[test]
fn a_rotated_secret_signs_with_both() {
    let receiver = Receiver::start(Rule::Accept);
    let d = Daemon::start_with(&[ALLOW_PRIVATE]);
    let (id, old) = add_endpoint(&d, &receiver.url, &[]);
    let r = d.api("POST", &format!("/api/webhook-endpoints/{id}/rotate"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let new = r.json()["secret"].as_str().expect("secret").to_string();
    assert!(new.starts_with("whsec_") && new != old);
    assert!(r.json()["previous_secret_valid_until"].is_string());
    d.api("POST", &format!("/api/webhook-endpoints/{id}/ping"), None);
    let hit = receiver.wait_accepted(1, 20).remove(0);
    assert!(hit.signed_by(&old) && hit.signed_by(&new), "{hit:?}");
    assert_eq!(hit.signature.split(' ').count(), 2, "{}", hit.signature);
    assert!(!hit.signed_by("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"));
}

#[test]
fn replay_sends_again_with_the_same_webhook_id() {
    let receiver = Receiver::start(Rule::Accept);
    let d = Daemon::start_with(&[ALLOW_PRIVATE]);
    let (id, secret) = add_endpoint(&d, &receiver.url, &[]);
    let ping = d
        .api("POST", &format!("/api/webhook-endpoints/{id}/ping"), None)
        .json();
    let delivery = ping["id"].as_i64().expect("delivery id");
    let first = receiver.wait_accepted(1, 20).remove(0);
    // One delivery again.
    wait_until("the ping recorded", 10, || {
        d.api(
            "GET",
            &format!("/api/webhook-endpoints/{id}/deliveries"),
            None,
        )
        .json()["deliveries"][0]["state"]
            == "delivered"
    });
    let r = d.api(
        "POST",
        &format!("/api/webhook-endpoints/{id}/deliveries/{delivery}/replay"),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let again = receiver.wait_accepted(2, 20);
    assert_eq!(again[1].id, first.id);
    assert_eq!(again[1].body, first.body);
    all_signed(&again, &secret);
    // A time range again.
    wait_until("the replay recorded", 10, || {
        d.api(
            "GET",
            &format!("/api/webhook-endpoints/{id}/deliveries"),
            None,
        )
        .json()["deliveries"][0]["state"]
            == "delivered"
    });
    let range = json!({ "since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z" });
    let r = d.api(
        "POST",
        &format!("/api/webhook-endpoints/{id}/replay"),
        Some(&range.to_string()),
    );
    assert_eq!(r.json()["replayed"], 1, "{}", r.text());
    assert_eq!(receiver.wait_accepted(3, 20)[2].id, first.id);
    // Bad input names its field.
    let r = d.api(
        "POST",
        &format!("/api/webhook-endpoints/{id}/replay"),
        Some(r#"{"since": "yesterday", "until": "2100-01-01T00:00:00Z"}"#),
    );
    assert_eq!((r.status, r.json()["field"].clone()), (400, json!("since")));
    // Each attempt is in the delivery's log.
    wait_until("three attempts in the log", 10, || {
        let log = d
            .api(
                "GET",
                &format!("/api/webhook-endpoints/{id}/deliveries"),
                None,
            )
            .json();
        log["deliveries"][0]["log"].as_array().map(Vec::len) == Some(3)
            && log["deliveries"][0]["state"] == "delivered"
    });
}

#[test]
fn a_private_address_is_refused_unless_allowed() {
    let mut d = Daemon::start();
    for url in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00:ec2::254]/",
        "http://10.0.0.1/",
        "http://localhost:8080/",
        "http://no-such-host.invalid/hook",
        "ftp://example.com/",
    ] {
        let r = d.api(
            "POST",
            "/api/webhook-endpoints",
            Some(&json!({ "url": url }).to_string()),
        );
        assert_eq!(r.status, 400, "{url}: {}", r.text());
        assert_eq!(r.json()["field"], "url", "{url}");
    }
    let r = d.api(
        "POST",
        "/api/webhook-endpoints",
        Some(r#"{"url": "http://127.0.0.1:9/", "event_types": ["subscriber.nope"]}"#),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        d.api("GET", "/api/webhook-endpoints", None).json()["endpoints"],
        json!([])
    );

    // Allowed when made, refused again at delivery once it is not.
    let receiver = Receiver::start(Rule::Accept);
    d.stop();
    d.set_env(ALLOW_PRIVATE.0, ALLOW_PRIVATE.1);
    d.start_again();
    let (id, _) = add_endpoint(&d, &receiver.url, &[]);
    d.stop();
    d.set_env(ALLOW_PRIVATE.0, "false");
    d.start_again();
    d.api("POST", &format!("/api/webhook-endpoints/{id}/ping"), None);
    let log = d.wait_for_with(
        &format!("/api/webhook-endpoints/{id}/deliveries"),
        &[(
            "Authorization",
            &format!("Bearer {}", crate::helpers::TOKEN),
        )],
        |r| r.json()["deliveries"][0]["attempts"] == 1,
    );
    let error = log.json()["deliveries"][0]["log"][0]["response"].clone();
    assert!(error.as_str().unwrap_or("").contains("loopback"), "{error}");
    assert!(receiver.hits().is_empty());
}

#[test]
#[ignore = "needs PostgreSQL (TIDINGS_TEST_POSTGRES_URL); .ci/run sets it"]
fn two_nodes_deliver_each_event_once() {
    if !on_postgres() {
        return;
    }
    let url = fresh_postgres_url();
    let sink = SmtpSink::start();
    let receiver = Receiver::start(Rule::Accept);
    let a = Daemon::start_node(&url, &sink, &[ALLOW_PRIVATE]);
    let b = Daemon::start_node(&url, &sink, &[ALLOW_PRIVATE]);
    add_endpoint(&a, &receiver.url, &[]);
    crate::helpers::import_subscribers(&a, 400);
    // created and confirmed for each.
    receiver.wait_accepted(800, 60);
    wait_until("an empty queue", 20, || {
        a.db()
            .query_row(
                "SELECT count(*) FROM webhook_deliveries WHERE state <> 'delivered'",
                &[],
                |r| r.get::<i64>(0),
            )
            .expect("count")
            == 0
    });
    let hits = receiver.hits();
    let ids: HashSet<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(hits.len(), 800, "an event was delivered twice");
    assert_eq!(ids.len(), 800);
    let owners: i64 = a
        .db()
        .query_row("SELECT count(*) FROM webhook_attempts", &[], |r| r.get(0))
        .expect("attempts");
    assert_eq!(owners, 800);
    drop(b);
}

#[test]
fn an_endpoint_failing_too_long_is_disabled_with_an_audit_entry() {
    let receiver = Receiver::start(Rule::Always(500, None));
    let d = Daemon::start_with(&[
        ALLOW_PRIVATE,
        ("TIDINGS_WEBHOOK_ENDPOINTS_RETRY_SCHEDULE", "0s"),
        ("TIDINGS_WEBHOOK_ENDPOINTS_DISABLE_AFTER_HOURS", "120"),
    ]);
    let (id, _) = add_endpoint(&d, &receiver.url, &[]);
    let path = format!("/api/webhook-endpoints/{id}");
    d.api("POST", &format!("{path}/ping"), None);
    let auth = [("Authorization", format!("Bearer {}", crate::helpers::TOKEN))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let read = d.wait_for_with(&path, &auth, |r| r.json()["failing_since"].is_string());
    assert_eq!(read.json()["enabled"], true, "one failure is not enough");
    // Failing since 121 hours ago, as far as the database knows; the next failure disables it.
    let long_ago = chrono::Utc::now().timestamp_micros() - 121 * 3_600_000_000;
    d.db()
        .execute(
            "UPDATE webhook_endpoints SET failing_since_us = ?1",
            &[&long_ago],
        )
        .expect("backdate");
    d.api("POST", &format!("{path}/ping"), None);
    let read = d.wait_for_with(&path, &auth, |r| r.json()["enabled"] == false);
    assert!(
        read.json()["disabled_reason"]
            .as_str()
            .unwrap_or("")
            .contains("120 hours"),
        "{}",
        read.text()
    );
    let audit = d
        .db()
        .query_map(
            "SELECT actor, action, coalesce(detail, '') FROM audit_log WHERE action = 'webhook_endpoint.disable'",
            &[],
            |r| Ok((r.get::<String>(0)?, r.get::<String>(2)?)),
        )
        .expect("audit");
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(audit[0].1.contains("disable_after_hours"), "{audit:?}");
}

#[test]
fn a_retry_after_is_honoured() {
    let receiver = Receiver::start(Rule::Always(503, Some(3)));
    let d = Daemon::start_with(&[
        ALLOW_PRIVATE,
        ("TIDINGS_WEBHOOK_ENDPOINTS_RETRY_SCHEDULE", "0s,1s"),
    ]);
    let (id, _) = add_endpoint(&d, &receiver.url, &[]);
    d.api("POST", &format!("/api/webhook-endpoints/{id}/ping"), None);
    let hits = receiver.wait_hits(2, 20);
    let gap = hits[1].at - hits[0].at;
    assert!(
        gap >= std::time::Duration::from_millis(2900),
        "the second attempt came {gap:?} after the first, not the 3 s asked"
    );
    assert_eq!(hits[0].id, hits[1].id);
}

#[test]
fn a_redirect_is_a_failure_and_not_followed() {
    let receiver = Receiver::start(Rule::Always(302, None));
    let d = Daemon::start_with(&[
        ALLOW_PRIVATE,
        ("TIDINGS_WEBHOOK_ENDPOINTS_RETRY_SCHEDULE", "0s"),
    ]);
    let (id, _) = add_endpoint(&d, &receiver.url, &[]);
    d.api("POST", &format!("/api/webhook-endpoints/{id}/ping"), None);
    wait_until("the delivery failed", 20, || {
        let log = d
            .api(
                "GET",
                &format!("/api/webhook-endpoints/{id}/deliveries"),
                None,
            )
            .json();
        log["deliveries"][0]["state"] == "failed" && log["deliveries"][0]["last_status"] == 302
    });
    assert_eq!(receiver.hits().len(), 1);
}

#[test]
fn finished_deliveries_and_their_log_are_pruned_after_keep_days() {
    let receiver = Receiver::start(Rule::Accept);
    let mut d = Daemon::start_with(&[ALLOW_PRIVATE]);
    let (id, _) = add_endpoint(&d, &receiver.url, &[]);
    let ping = |d: &Daemon| {
        let r = d.api("POST", &format!("/api/webhook-endpoints/{id}/ping"), None);
        r.json()["id"].as_i64().expect("delivery id")
    };
    let (old, recent) = (ping(&d), ping(&d));
    receiver.wait_accepted(2, 20);
    let count = |d: &Daemon, sql: &str, delivery: i64| -> i64 {
        d.db()
            .query_row(sql, &[&delivery], |r| r.get(0))
            .expect("count")
    };
    let deliveries =
        "SELECT count(*) FROM webhook_deliveries WHERE id = ?1 AND state = 'delivered'";
    let attempts = "SELECT count(*) FROM webhook_attempts WHERE delivery_id = ?1";
    wait_until("both deliveries recorded", 20, || {
        [old, recent]
            .iter()
            .all(|&x| count(&d, deliveries, x) == 1 && count(&d, attempts, x) == 1)
    });
    // As far as the database knows, one finished 31 days ago, the other 29 (keep_days: 30).
    let day = 86_400_000_000_i64;
    let now = chrono::Utc::now().timestamp_micros();
    for (delivery, days) in [(old, 31), (recent, 29)] {
        let then = now - days * day;
        let db = d.db();
        db.execute(
            "UPDATE webhook_deliveries SET created_us = ?1, finished_us = ?1 WHERE id = ?2",
            &[&then, &delivery],
        )
        .expect("backdate the delivery");
        db.execute(
            "UPDATE webhook_attempts SET at_us = ?1 WHERE delivery_id = ?2",
            &[&then, &delivery],
        )
        .expect("backdate its attempt");
    }
    // The housekeeping runs at start, then hourly.
    d.restart();
    wait_until("the old delivery pruned", 20, || {
        count(&d, deliveries, old) == 0
    });
    assert_eq!(count(&d, attempts, old), 0, "its attempt went with it");
    assert_eq!(
        (count(&d, deliveries, recent), count(&d, attempts, recent)),
        (1, 1),
        "one of 29 days stays"
    );
    let log = d
        .api(
            "GET",
            &format!("/api/webhook-endpoints/{id}/deliveries"),
            None,
        )
        .json();
    let ids: Vec<i64> = log["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .filter_map(|x| x["id"].as_i64())
        .collect();
    assert_eq!(ids, [recent], "{log}");
}
