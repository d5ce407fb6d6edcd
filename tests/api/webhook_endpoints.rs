//! Outgoing webhooks (Standard Webhooks v1) to a real receiver on 127.0.0.1, every signature
//! checked with the `standardwebhooks` crate: each event type arrives once, retries keep one
//! subscriber's events in order, a `kill -9` loses nothing queued, `410` disables, a rotated
//! secret signs beside the new one, replay keeps the `webhook-id`, private addresses are refused,
//! and two nodes deliver each event once.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use serde_json::json;

use crate::helpers::{
    fresh_postgres_url, on_postgres, stderr, stdout, wait_until, Daemon, SmtpSink,
};
use crate::webhook_receiver::{Hit, Receiver, Rule};

const ALLOW_PRIVATE: (&str, &str) = ("TIDINGS_WEBHOOK_ENDPOINTS_ALLOW_PRIVATE", "true");

/// Adds an endpoint for `types` (none: all) through the API: its id and secret.
fn add_endpoint(d: &Daemon, url: &str, types: &[&str]) -> (i64, String) {
    let r = d.api(
        "POST",
        "/api/webhook-endpoints",
        Some(&json!({ "url": url, "event_types": types }).to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let body = r.json();
    let secret = body["secret"].as_str().expect("secret").to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (body["id"].as_i64().expect("id"), secret)
}

fn subscriber(d: &Daemon, email: &str, status: &str) {
    let r = d.api(
        "POST",
        "/api/subscribers",
        Some(&json!({ "email": email, "status": status }).to_string()),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text());
}

fn all_signed(hits: &[Hit], secret: &str) {
    for h in hits {
        assert!(
            h.signed_by(secret),
            "not signed by the endpoint's secret: {h:?}"
        );
    }
}

fn email_of(h: &Hit) -> String {
    h.json()["data"]["email"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn every_event_type_arrives_once_signed() {
    let receiver = Receiver::start(Rule::Accept);
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(
        &sink,
        &[
            ALLOW_PRIVATE,
            ("TIDINGS_WEBHOOKS_POSTMARK_USERNAME", "postmark"),
            ("TIDINGS_WEBHOOKS_POSTMARK_PASSWORD", "s3cret-hook-password"),
        ],
    );
    let (id, secret) = add_endpoint(&d, &receiver.url, &[]);
    // The secret is shown once: never in a read.
    let read = d.api("GET", &format!("/api/webhook-endpoints/{id}"), None);
    assert_eq!(read.status, 200);
    assert!(!read.text().contains(&secret) && read.json().get("secret").is_none());
    assert!(!d
        .api("GET", "/api/webhook-endpoints", None)
        .text()
        .contains(&secret));

    for email in ["ada@example.com", "bob@example.com", "cy@example.com"] {
        subscriber(&d, email, "confirmed"); // created, confirmed
    }
    // Articles: published, updated; a digest run to the three readers.
    crate::helpers::publish_article(&d, "first");
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let changed = crate::helpers::article("first", "A new title", &["ai"], &now);
    let r = d.api("PUT", "/api/articles/first", Some(&changed));
    assert_eq!(r.status, 200, "{}", r.text());
    let report = d.api("POST", "/api/digests/run", Some(r#"{"now": true}"#));
    assert_eq!(report.status, 200, "{}", report.text());
    subscriber(&d, "ada@example.com", "unsubscribed"); // unsubscribed (admin)
                                                       // A bounce and a complaint about the digests sent, through Postmark's webhook.
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(b"postmark:s3cret-hook-password")
    );
    let bounce = json!({
        "RecordType": "Bounce", "ID": 7, "Type": "HardBounce", "TypeCode": 1,
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483", "Email": "bob@example.com",
        "From": "news@blog.example", "BouncedAt": "2026-12-02T00:00:00Z", "Subject": "digest",
        "Details": "smtp;550 5.1.1 no such user"
    });
    let complaint = json!({
        "RecordType": "SpamComplaint", "ID": 42, "Type": "SpamComplaint", "TypeCode": 512,
        "MessageID": "00000000-0000-0000-0000-000000000000", "Email": "cy@example.com",
        "From": "news@blog.example", "BouncedAt": "2026-12-02T00:00:00Z", "Subject": "digest"
    });
    for body in [bounce, complaint] {
        let r = d.request(
            "POST",
            "/webhooks/postmark",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &basic),
            ],
            Some(body.to_string().as_bytes()),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = d.api("DELETE", "/api/subscribers/ada@example.com", None);
    assert!(r.status == 200 || r.status == 204, "{}", r.text());
    assert_eq!(d.api("DELETE", "/api/articles/first", None).status, 204);
    let ping = d.api("POST", &format!("/api/webhook-endpoints/{id}/ping"), None);
    assert_eq!(ping.status, 202, "{}", ping.text());

    let wanted = [
        "subscriber.created",
        "subscriber.confirmed",
        "subscriber.unsubscribed",
        "subscriber.bounced",
        "subscriber.complained",
        "subscriber.suppressed",
        "subscriber.deleted",
        "article.published",
        "article.updated",
        "article.removed",
        "digest.run.finished",
        "ping",
    ];
    let started = std::time::Instant::now();
    loop {
        let seen: HashSet<String> = receiver.hits().iter().map(Hit::event_type).collect();
        let missing: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|t| !seen.contains(*t))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 20,
            "never arrived: {missing:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Everything queued has gone: then count.
    wait_until("an empty queue", 20, || {
        d.db()
            .query_row(
                "SELECT count(*) FROM webhook_deliveries WHERE state <> 'delivered'",
                &[],
                |r| r.get::<i64>(0),
            )
            .expect("count")
            == 0
    });
    let hits = receiver.hits();
    all_signed(&hits, &secret);
    // Counted: every attempt delivered, and nothing waiting.
    let delivered = format!(
        "tidings_webhook_endpoint_deliveries_total{{outcome=\"delivered\"}} {}",
        hits.len()
    );
    wait_until("the metrics", 10, || {
        let text = d.get("/metrics").text();
        text.contains(&delivered) && text.contains("tidings_webhook_endpoint_queue_depth 0")
    });
    let ids: HashSet<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids.len(), hits.len(), "a webhook-id arrived twice");
    let mut per_type: HashMap<String, Vec<Hit>> = HashMap::new();
    for h in &hits {
        let body = h.json();
        assert!(
            body["timestamp"].is_string() && body["data"].is_object(),
            "{body}"
        );
        per_type.entry(h.event_type()).or_default().push(h.clone());
    }
    let emails = |t: &str| -> Vec<String> {
        let mut v: Vec<String> = per_type[t].iter().map(email_of).collect();
        v.sort();
        v
    };
    assert_eq!(
        emails("subscriber.created"),
        ["ada@example.com", "bob@example.com", "cy@example.com"]
    );
    assert_eq!(emails("subscriber.deleted"), ["ada@example.com"]);
    assert_eq!(emails("subscriber.bounced"), ["bob@example.com"]);
    assert_eq!(emails("subscriber.complained"), ["cy@example.com"]);
    let unsubscribed = &per_type["subscriber.unsubscribed"];
    assert!(
        unsubscribed
            .iter()
            .any(|h| email_of(h) == "ada@example.com" && h.json()["data"]["source"] == "admin"),
        "{unsubscribed:?}"
    );
    for t in [
        "article.published",
        "article.updated",
        "article.removed",
        "digest.run.finished",
        "ping",
    ] {
        assert_eq!(per_type[t].len(), 1, "{t}: {:?}", per_type[t]);
    }
    assert_eq!(
        per_type["article.updated"][0].json()["data"]["title"],
        "A new title"
    );
    let run = per_type["digest.run.finished"][0].json();
    assert_eq!(run["data"]["sent"], 3, "{run}");
    // The delivery log shows each attempt's status and latency.
    let log = d
        .api(
            "GET",
            &format!("/api/webhook-endpoints/{id}/deliveries?limit=1"),
            None,
        )
        .json();
    let last = &log["deliveries"][0];
    assert_eq!(last["state"], "delivered", "{log}");
    assert_eq!(last["log"][0]["status"], 204, "{log}");
    assert!(last["log"][0]["latency_ms"].as_f64().is_some(), "{log}");
}

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
fn endpoints_are_the_owners_reads_included_and_the_cli_manages_them() {
    let receiver = Receiver::start(Rule::Accept);
    let d = Daemon::start_with(&[ALLOW_PRIVATE]);
    let out = d.cli(&["token", "add", "reader", "--role", "viewer"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out).trim().lines().last().unwrap_or("").to_string();
    let as_viewer = |method: &str, path: &str| {
        d.request(
            method,
            path,
            &[("Authorization", &format!("Bearer {token}"))],
            None,
        )
        .status
    };
    assert_eq!(as_viewer("GET", "/api/articles"), 200);
    assert_eq!(as_viewer("GET", "/api/webhook-endpoints"), 403);
    assert_eq!(as_viewer("POST", "/api/webhook-endpoints"), 403);

    let out = d.cli(&[
        "webhook-endpoint",
        "add",
        &receiver.url,
        "--event",
        "ping",
        "--event",
        "subscriber.created",
    ]);
    assert!(
        !out.status.success(),
        "ping is not a type one subscribes to"
    );
    assert!(stderr(&out).contains("--event"), "{}", stderr(&out));
    let out = d.cli(&[
        "webhook-endpoint",
        "add",
        &receiver.url,
        "--event",
        "subscriber.created",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    let mut lines = printed.lines();
    let id = lines.next().expect("id").trim().to_string();
    let secret = lines.next().expect("secret").trim().to_string();
    assert!(secret.starts_with("whsec_"));
    let list = stdout(&d.cli(&["webhook-endpoint", "list"]));
    assert!(
        list.contains(&receiver.url) && !list.contains(&secret),
        "{list}"
    );
    let out = d.cli(&["webhook-endpoint", "rotate", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rotated = stdout(&out).trim().to_string();
    assert!(rotated.starts_with("whsec_") && rotated != secret);
    // The CLI's changes are audited, without the secret.
    let audit = d.db().query_map(
        "SELECT action, coalesce(detail, '') FROM audit_log ORDER BY id",
        &[],
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
    );
    let audit = audit.expect("audit");
    let actions: Vec<&str> = audit.iter().map(|(a, _)| a.as_str()).collect();
    assert!(
        actions.contains(&"webhook_endpoint.add") && actions.contains(&"webhook_endpoint.rotate"),
        "{actions:?}"
    );
    assert!(!format!("{audit:?}").contains("whsec_"));
    subscriber(&d, "eve@example.com", "confirmed");
    let hit = receiver.wait_accepted(1, 20).remove(0);
    assert_eq!(hit.event_type(), "subscriber.created");
    assert!(hit.signed_by(&rotated) && hit.signed_by(&secret));
    // PATCH changes what it is given, and names a bad field.
    let path = format!("/api/webhook-endpoints/{id}");
    let r = d.api("PATCH", &path, Some(r#"{"enabled": false}"#));
    assert_eq!(
        (r.status, r.json()["enabled"].clone()),
        (200, json!(false)),
        "{}",
        r.text()
    );
    let r = d.api("PATCH", &path, Some(r#"{"event_types": ["nope"]}"#));
    assert_eq!(
        (r.status, r.json()["field"].clone()),
        (400, json!("event_types"))
    );
    let r = d.api(
        "PATCH",
        &path,
        Some(r#"{"enabled": true, "event_types": []}"#),
    );
    assert_eq!(r.json()["enabled"], true, "{}", r.text());
    assert_eq!(r.json()["event_types"], json!([]));
    let out = d.cli(&["webhook-endpoint", "remove", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        d.api("GET", &format!("/api/webhook-endpoints/{id}"), None)
            .status,
        404
    );
    assert!(!d.log().contains(&secret), "a secret reached the log");
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
fn a_change_that_rolls_back_queues_nothing() {
    let receiver = Receiver::start(Rule::Accept);
    let d = Daemon::start_with(&[ALLOW_PRIVATE]);
    add_endpoint(&d, &receiver.url, &[]);
    let db = d.db();
    let email = tidings::subscribers::SubscriberEmail::parse("gone@example.com").expect("email");
    let prefs = tidings::subscribers::Preferences {
        tags: vec![],
        cadence: tidings::subscribers::Cadence::Daily,
        time_zone: tidings::subscribers::TimeZone(chrono_tz::UTC),
    };
    // A subscriber added, its events queued, and the transaction rolled back.
    let rolled_back: Result<(), tidings::store::Error> = db.write(|tx| {
        let now = chrono::Utc::now();
        let id = tidings::subscribers::store::insert(
            tx,
            &email,
            &prefs,
            tidings::subscribers::Status::Confirmed,
            now,
        )?;
        let e = tidings::subscribers::events::NewEvent::new(
            "gone@example.com",
            tidings::subscribers::events::Kind::Subscribed,
            "api",
        )
        .subscriber(id);
        tidings::subscribers::events::record(tx, &e, now)?;
        let queued: i64 =
            tx.query_row("SELECT count(*) FROM webhook_deliveries", &[], |r| r.get(0))?;
        assert_eq!(queued, 1, "queued in the transaction");
        Err(tidings::store::Error::NoRow)
    });
    assert!(rolled_back.is_err());
    let queued: i64 = db
        .query_row("SELECT count(*) FROM webhook_deliveries", &[], |r| r.get(0))
        .expect("count");
    assert_eq!(queued, 0);
    // What commits goes.
    subscriber(&d, "kept@example.com", "confirmed");
    let hits = receiver.wait_accepted(2, 20);
    assert!(hits.iter().all(|h| email_of(h) == "kept@example.com"));
}

#[test]
fn the_console_shows_endpoints_and_their_log_to_owners_only() {
    use crate::console_client::{add_account, field, Console};
    const PASSWORD: &str = "correct horse battery staple";
    let receiver = Receiver::start(Rule::Accept);
    let d = Daemon::start_with(&[ALLOW_PRIVATE]);
    let url = format!("{}?a=1&b=<2>", receiver.url);
    let (id, secret) = add_endpoint(&d, &url, &["subscriber.created"]);
    add_account(&d, "ann", "owner", PASSWORD);
    add_account(&d, "eve", "editor", PASSWORD);
    let mut eve = Console::signed_in(&d, "eve", PASSWORD);
    assert_eq!(eve.get("/admin/webhooks").status, 403);
    assert_eq!(eve.get(&format!("/admin/webhooks/{id}")).status, 403);
    let mut ann = Console::signed_in(&d, "ann", PASSWORD);
    let page = ann.get("/admin/webhooks");
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("?a=1&amp;b=%3C2%3E"), "{html}");
    assert!(!html.contains(&secret));
    // A ping from the endpoint's page: refused without the CSRF token, sent with it.
    let path = format!("/admin/webhooks/{id}");
    let form = ann.get(&path);
    let csrf = field(&form.text(), "csrf").expect("csrf");
    assert_ne!(ann.post(&path, &[("action", "ping")]).status, 303);
    assert!(receiver.hits().is_empty());
    let r = ann.post(&path, &[("csrf", &csrf), ("action", "ping")]);
    assert_eq!(r.status, 303, "{}", r.text());
    receiver.wait_accepted(1, 20);
    wait_until("the ping in the log", 10, || {
        let html = ann.get(&path).text();
        html.contains("ping") && html.contains("204") && html.contains("delivered")
    });
}

#[test]
fn a_secret_never_reaches_the_log_even_at_trace() {
    let receiver = Receiver::start(Rule::Accept);
    let d = Daemon::start_with(&[ALLOW_PRIVATE, ("RUST_LOG", "trace")]);
    let (id, old) = add_endpoint(&d, &receiver.url, &[]);
    let r = d.api("POST", &format!("/api/webhook-endpoints/{id}/rotate"), None);
    let new = r.json()["secret"].as_str().expect("secret").to_string();
    d.api("POST", &format!("/api/webhook-endpoints/{id}/ping"), None);
    subscriber(&d, "trace@example.com", "confirmed");
    receiver.wait_accepted(3, 20);
    let log = d.log();
    for secret in [&old, &new] {
        let key = secret.trim_start_matches("whsec_");
        assert!(!log.contains(key), "the log holds a webhook secret");
    }
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
