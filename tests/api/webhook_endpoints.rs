//! Outgoing webhooks (Standard Webhooks v1) to a real receiver on 127.0.0.1, every signature
//! checked with the `standardwebhooks` crate: each event type arrives once, signed; a change that
//! rolls back queues nothing; endpoints are the owners' (API, CLI, console); secrets stay out of
//! the log. How deliveries behave is in `webhook_delivery.rs`.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use serde_json::json;

use crate::helpers::{stderr, stdout, wait_until, Daemon, SmtpSink};
use crate::webhook_receiver::{Hit, Receiver, Rule};

pub(crate) const ALLOW_PRIVATE: (&str, &str) = ("TIDINGS_WEBHOOK_ENDPOINTS_ALLOW_PRIVATE", "true");

/// Adds an endpoint for `types` (none: all) through the API: its id and secret.
pub(crate) fn add_endpoint(d: &Daemon, url: &str, types: &[&str]) -> (i64, String) {
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

pub(crate) fn subscriber(d: &Daemon, email: &str, status: &str) {
    let r = d.api(
        "POST",
        "/api/subscribers",
        Some(&json!({ "email": email, "status": status }).to_string()),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text());
}

pub(crate) fn all_signed(hits: &[Hit], secret: &str) {
    for h in hits {
        assert!(
            h.signed_by(secret),
            "not signed by the endpoint's secret: {h:?}"
        );
    }
}

pub(crate) fn email_of(h: &Hit) -> String {
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
    assert_eq!(as_viewer("GET", "/api/webhook-endpoints/1"), 403);
    assert_eq!(as_viewer("POST", "/api/webhook-endpoints"), 403);
    // An editor, who may change articles, may not read the endpoints either.
    let out = d.cli(&["token", "add", "writer", "--role", "editor"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let editor = stdout(&out).trim().lines().last().unwrap_or("").to_string();
    let as_editor = |method: &str, path: &str| {
        d.request(
            method,
            path,
            &[("Authorization", &format!("Bearer {editor}"))],
            None,
        )
    };
    assert_eq!(as_editor("GET", "/api/articles").status, 200);
    let refused = as_editor("GET", "/api/webhook-endpoints");
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(refused.text().contains("owner"), "{}", refused.text());
    assert_eq!(
        as_editor("GET", "/api/webhook-endpoints/1/deliveries").status,
        403
    );

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
    assert!(
        d.log().contains("TRACE") || d.log().contains("DEBUG"),
        "the log is verbose"
    );
    let secrets: Vec<String> = [&old, &new]
        .iter()
        .flat_map(|s| [s.to_string(), s.trim_start_matches("whsec_").to_string()])
        .collect();
    crate::secrets::assert_no_secret("the daemon's log", &d.log(), &secrets);
}
