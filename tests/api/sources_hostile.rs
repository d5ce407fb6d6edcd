//! A hostile feed server (`sources.timeout_seconds = 2`): tidings records each source's error,
//! and keeps serving its feeds and polling its other sources throughout.

use std::time::{Duration, Instant};

use crate::feed_server::{rss, Answer, FeedServer};
use crate::helpers::Daemon;
use crate::sources_client::source;

/// A gzip stream that inflates to 1 GiB of zeros (about 1 MB), made by Python's zlib.
fn gzip_bomb() -> Vec<u8> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import zlib,sys; c=zlib.compressobj(9, zlib.DEFLATED, 31); z=bytes(1<<20); \
             sys.stdout.buffer.write(b''.join(c.compress(z) for _ in range(1024)) + c.flush())",
        ])
        .output()
        .expect("python3");
    assert!(out.status.success() && out.stdout.len() < 2_000_000);
    out.stdout
}

fn billion_laughs() -> Vec<u8> {
    let mut s = String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE rss [\n<!ENTITY lol \"lol\">\n");
    s.push_str("<!ENTITY lol0 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n");
    for i in 1..10 {
        let prev = format!("&lol{};", i - 1);
        s.push_str(&format!("<!ENTITY lol{i} \"{}\">\n", prev.repeat(10)));
    }
    s.push_str(
        "]>\n<rss version=\"2.0\"><channel><title>&lol9;</title>\
         <item><title>&lol9;</title><link>http://evil.example/x</link><description>&lol9;</description></item>\
         </channel></rss>\n",
    );
    s.into_bytes()
}

/// `n` short items: 100,000 fit in about 7 MB.
fn many(n: usize) -> Vec<u8> {
    let mut s = String::with_capacity(n * 80);
    s.push_str("<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Many</title>");
    for i in 0..n {
        s.push_str(&format!(
            "<item><guid>{i}</guid><link>http://many.example/{i}</link><title>M{i}</title></item>"
        ));
    }
    s.push_str("</channel></rss>");
    s.into_bytes()
}

#[test]
fn a_hostile_server_gets_its_errors_recorded_while_tidings_serves_and_polls_the_rest() {
    let evil = FeedServer::start("127.0.0.2");
    let inside = FeedServer::start("127.0.0.1");
    let good = FeedServer::start("127.0.0.3");
    inside.set("/secret.xml", Answer::feed(rss(&[]), &[]));
    good.set(
        "/feed.xml",
        Answer::feed(
            rss(&[
                (
                    "g1",
                    "http://good.example/one",
                    "Good one",
                    "Mon, 07 Dec 2026 09:00:00 GMT",
                ),
                (
                    "g2",
                    "http://good.example/two",
                    "Good two",
                    "Mon, 07 Dec 2026 08:00:00 GMT",
                ),
            ]),
            &[],
        ),
    );
    evil.set("/laughs.xml", Answer::feed(billion_laughs(), &[]));
    let mut bomb = Answer::feed(gzip_bomb(), &[("Content-Encoding", "gzip")]);
    if let Answer::Full { headers, .. } = &mut bomb {
        headers.retain(|(k, _)| k != "Content-Type");
        headers.push(("Content-Type".into(), "application/rss+xml".into()));
    }
    evil.set("/bomb.xml", bomb);
    evil.set("/trickle.xml", Answer::Trickle(rss(&[]).into_bytes()));
    let mut huge = rss(&[]).into_bytes();
    huge.splice(0..0, b"<!-- ".iter().copied());
    huge.extend(std::iter::repeat_n(b'x', 50 * 1024 * 1024));
    evil.set("/50mb.xml", Answer::feed(huge, &[]));
    evil.set("/loop.xml", Answer::redirect(302, "/loop.xml"));
    evil.set(
        "/inward.xml",
        Answer::redirect(302, &inside.url("/secret.xml")),
    );
    evil.set(
        "/latin1.xml",
        Answer::feed(
            b"<?xml version=\"1.0\" encoding=\"utf-8\"?><rss version=\"2.0\"><channel><title>\xff\xfe\xfa</title><item><title>\xe9t\xe9</title><link>http://evil.example/u</link></item></channel></rss>".to_vec(),
            &[],
        ),
    );
    evil.set("/many.xml", Answer::feed(many(100_000), &[]));
    evil.set("/hang.xml", Answer::Hang);

    let d = Daemon::start_with(&[
        ("TIDINGS_SOURCES_ALLOW_PRIVATE", "127.0.0.2, 127.0.0.3"),
        ("TIDINGS_SOURCES_TIMEOUT_SECONDS", "2"),
        ("TIDINGS_SOURCES_MIN_INTERVAL_MINUTES", "600"),
    ]);
    d.publish(&crate::helpers::article(
        "local",
        "A local article",
        &["Local"],
        "2026-12-01T09:00:00Z",
    ));
    let cases: Vec<(&str, Option<&str>)> = vec![
        ("/laughs.xml", None),
        ("/bomb.xml", Some("larger than sources.max_bytes")),
        ("/trickle.xml", Some("no complete answer within 2 s")),
        ("/50mb.xml", Some("larger than sources.max_bytes")),
        ("/loop.xml", Some("more than 5 redirects")),
        ("/inward.xml", Some("not listed in sources.allow_private")),
        ("/latin1.xml", Some("not a feed")),
        ("/many.xml", None),
        ("/hang.xml", Some("no complete answer within 2 s")),
    ];
    let started = Instant::now();
    let mut ids = Vec::new();
    for (i, (path, _)) in cases.iter().enumerate() {
        let body = serde_json::json!({"url": evil.url(path), "name": format!("evil {i}")});
        let r = d.api("POST", "/api/sources", Some(&body.to_string()));
        assert_eq!(r.status, 201, "{path}: {}", r.text());
        ids.push(r.json()["id"].as_i64().unwrap());
    }
    let body = serde_json::json!({"url": good.url("/feed.xml"), "name": "good"});
    let r = d.api("POST", "/api/sources", Some(&body.to_string()));
    assert_eq!(r.status, 201, "{}", r.text());
    let good_id = r.json()["id"].as_i64().unwrap();

    // Throughout, the daemon answers its own feeds at once, and the good source is read.
    let mut slowest = Duration::ZERO;
    loop {
        let t = Instant::now();
        let feed = d.get("/feed.xml");
        slowest = slowest.max(t.elapsed());
        assert_eq!(feed.status, 200);
        let all_done = ids
            .iter()
            .chain([&good_id])
            .all(|id| !source(&d, *id)["last_fetch_us"].is_null());
        if all_done {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "not every source was polled: {}",
            d.api("GET", "/api/sources", None).text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(slowest < Duration::from_secs(1), "a feed took {slowest:?}");
    // The good source, added last, was read while the hanging and trickling ones still held
    // their connections: one host's stalls do not hold up the others.
    let good_at = source(&d, good_id)["last_fetch_us"].as_i64().unwrap();
    for stalled in [2, 8] {
        let s = source(&d, ids[stalled]);
        assert!(
            good_at < s["last_fetch_us"].as_i64().unwrap(),
            "the good source waited for {}: {s}",
            cases[stalled].0
        );
    }
    assert_eq!(source(&d, good_id)["entries"], 2);
    assert_eq!(source(&d, good_id)["last_error"], serde_json::Value::Null);

    for ((path, expected), id) in cases.iter().zip(&ids) {
        let s = source(&d, *id);
        match expected {
            Some(words) => {
                let error = s["last_error"].as_str().unwrap_or_default();
                assert!(error.contains(words), "{path}: {s}");
                assert_eq!(s["errors"], 1, "{path}: {s}");
                assert_eq!(s["state"], "new", "{path}: polling goes on: {s}");
                assert!(s["next_fetch_us"].as_i64() > s["last_fetch_us"].as_i64());
            }
            None => {
                // Read or refused, but bounded: no entity expanded, no more than 500 entries.
                assert!(s["entries"].as_i64().unwrap() <= 500, "{path}: {s}");
            }
        }
    }
    let laughs = source(&d, ids[0]);
    assert_eq!(
        laughs["entries"], 1,
        "read, its entities left as they were: {laughs}"
    );
    let many = source(&d, ids[7]);
    assert_eq!(many["entries"], 500, "sources.max_entries: {many}");
    let longest: i64 = d
        .db()
        .query_row(
            "SELECT COALESCE(MAX(LENGTH(title) + LENGTH(content_html) + LENGTH(summary)), 0) FROM articles",
            &[],
            |r| r.get(0),
        )
        .unwrap();
    assert!(longest < 100_000, "an entity was expanded: {longest} bytes");
    assert!(
        inside.requests().is_empty(),
        "a redirect reached 127.0.0.1: {:?}",
        inside.requests()
    );
}
