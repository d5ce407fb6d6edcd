//! WebSub as a subscriber, against a hub the test plays: tidings subscribes with a secret of
//! its own, answers only the verification it asked for, polls at once on a signed push (with the
//! regular poll at 1,440 minutes), ignores a push with a bad signature, renews its lease, and
//! unsubscribes when the source is removed.

use std::time::{Duration, Instant};

use crate::feed_server::{rss, Answer, FeedServer};
use crate::helpers::{wait_until, Daemon};
use crate::sources_client::source;

fn feed(blog: &FeedServer, items: &[(&str, &str, &str, &str)]) -> Answer {
    let links = format!(
        "<{}>; rel=\"hub\", <{}>; rel=\"self\"",
        blog.url("/hub"),
        blog.url("/feed.xml")
    );
    Answer::feed(rss(items), &[("Link", &links)])
}

fn sign(secret: &str, body: &[u8]) -> String {
    use aws_lc_rs::hmac;
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()), body);
    format!(
        "sha256={}",
        tag.as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

fn query(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

#[test]
fn a_hub_push_brings_the_entry_at_once_and_the_subscription_is_verified_renewed_and_ended() {
    let blog = FeedServer::start("127.0.0.2");
    blog.set("/hub", Answer::status(202, &[]));
    let first = [(
        "g1",
        "http://elsewhere.example/posts/one",
        "Entry one",
        "Mon, 07 Dec 2026 09:00:00 GMT",
    )];
    blog.set("/feed.xml", feed(&blog, &first));
    // The hub must reach the daemon: its site.base_url is its own address.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let base = format!("http://{bind}");
    let d = Daemon::start_with(&[
        ("TIDINGS_SOURCES_ALLOW_PRIVATE", "127.0.0.2"),
        ("TIDINGS_SOURCES_MIN_INTERVAL_MINUTES", "600"),
        ("TIDINGS_SOURCES_MAX_INTERVAL_MINUTES", "1440"),
        ("TIDINGS_SERVER_BIND", &bind),
        ("TIDINGS_SITE_BASE_URL", &base),
        ("RUST_LOG", "trace"),
    ]);
    let body = serde_json::json!({"url": blog.url("/feed.xml")}).to_string();
    let r = d.api("POST", "/api/sources", Some(&body));
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_i64().unwrap();

    wait_until("the subscription request", 20, || {
        !blog.requests_to("/hub").is_empty()
    });
    let asked = blog.requests_to("/hub")[0].form();
    assert_eq!(asked["hub.mode"], "subscribe");
    assert_eq!(asked["hub.topic"], blog.url("/feed.xml"));
    assert_eq!(asked["hub.callback"], format!("{base}/websub/{id}"));
    let secret = asked["hub.secret"].clone();
    assert_eq!(secret.len(), 64, "a random secret: {secret}");
    assert_eq!(source(&d, id)["websub_state"], "subscribing");
    assert!(!d.log().contains(&secret), "the hub secret reached the log");

    // Only the verification tidings asked for is answered.
    let path = format!("/websub/{id}");
    let wrong_topic = d.get(&format!(
        "{path}?{}",
        query(&[
            ("hub.mode", "subscribe"),
            ("hub.topic", "http://127.0.0.2:1/other.xml"),
            ("hub.challenge", "c1"),
        ])
    ));
    assert_eq!(wrong_topic.status, 404);
    let wrong_mode = d.get(&format!(
        "{path}?{}",
        query(&[
            ("hub.mode", "unsubscribe"),
            ("hub.topic", &blog.url("/feed.xml")),
            ("hub.challenge", "c2"),
        ])
    ));
    assert_eq!(wrong_mode.status, 404);
    assert_eq!(source(&d, id)["websub_state"], "subscribing");
    let verified = d.get(&format!(
        "{path}?{}",
        query(&[
            ("hub.mode", "subscribe"),
            ("hub.topic", &blog.url("/feed.xml")),
            ("hub.challenge", "the-challenge-42"),
            ("hub.lease_seconds", "4"),
        ])
    ));
    assert_eq!(verified.status, 200, "{}", d.log());
    assert_eq!(verified.text(), "the-challenge-42");
    let s = source(&d, id);
    assert_eq!(s["websub_state"], "active", "{s}");
    assert_eq!(
        s["interval_s"], 86_400,
        "the regular poll drops to the maximum"
    );
    let wait_us = s["next_fetch_us"].as_i64().unwrap() - s["last_fetch_us"].as_i64().unwrap();
    assert!(wait_us >= 86_400_000_000, "next poll in {wait_us} µs");

    // A new entry, pushed with a bad signature: nothing changes.
    let second = [
        (
            "g2",
            "http://elsewhere.example/posts/two",
            "Entry two",
            "Mon, 07 Dec 2026 10:00:00 GMT",
        ),
        first[0],
    ];
    blog.set("/feed.xml", feed(&blog, &second));
    let pushed = rss(&second).into_bytes();
    let before = source(&d, id);
    let bad = d.request(
        "POST",
        &path,
        &[
            ("Content-Type", "application/rss+xml"),
            ("X-Hub-Signature", &sign("not-the-secret", &pushed)),
        ],
        Some(&pushed),
    );
    assert_eq!(bad.status, 202, "answered 2xx all the same");
    let unsigned = d.request("POST", &path, &[], Some(&pushed));
    assert_eq!(unsigned.status, 202);
    let after = source(&d, id);
    assert_eq!(
        after["next_fetch_us"], before["next_fetch_us"],
        "a bad push moves no poll"
    );
    assert!(!d.get("/feed.xml").text().contains("Entry two"));

    // Signed with the secret: polled at once, from the blog (the pushed body is not content).
    let t = Instant::now();
    let good = d.request(
        "POST",
        &path,
        &[("X-Hub-Signature", &sign(&secret, b"anything"))],
        Some(b"anything"),
    );
    assert_eq!(good.status, 202);
    wait_until("the pushed entry in /feed.xml", 10, || {
        d.get("/feed.xml").text().contains("Entry two")
    });
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // The 4-second lease is renewed (halfway), with the same secret.
    wait_until("the renewal", 20, || blog.requests_to("/hub").len() >= 2);
    let renewal = blog.requests_to("/hub")[1].form();
    assert_eq!(renewal["hub.mode"], "subscribe");
    assert_eq!(renewal["hub.secret"], secret);

    // Removing the source unsubscribes; that verification is answered once.
    let r = d.api("DELETE", &format!("/api/sources/{id}"), None);
    assert_eq!(r.status, 204, "{}", r.text());
    let bye = blog
        .requests_to("/hub")
        .into_iter()
        .map(|r| r.form())
        .find(|f| f["hub.mode"] == "unsubscribe")
        .expect("an unsubscription request");
    assert_eq!(bye["hub.topic"], blog.url("/feed.xml"));
    let q = query(&[
        ("hub.mode", "unsubscribe"),
        ("hub.topic", &blog.url("/feed.xml")),
        ("hub.challenge", "bye"),
    ]);
    let answered = d.get(&format!("{path}?{q}"));
    assert_eq!(answered.status, 200);
    assert_eq!(answered.text(), "bye");
    assert_eq!(d.get(&format!("{path}?{q}")).status, 404);
    let late = d.request(
        "POST",
        &path,
        &[("X-Hub-Signature", &sign(&secret, b"x"))],
        Some(b"x"),
    );
    assert_eq!(late.status, 410, "a push for a removed source: gone");
    // Through subscribing, pushes, renewal and removal, the log (at trace) never held the secret.
    assert!(
        d.log().contains("TRACE") || d.log().contains("DEBUG"),
        "the log is verbose"
    );
    crate::secrets::assert_no_secret("the daemon's log", &d.log(), &[secret]);
}
