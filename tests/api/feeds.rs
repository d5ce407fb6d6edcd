//! Feeds as a feed reader sees them: bytes, headers, conditional requests, per-tag contents.

use std::io::Read;

use crate::helpers::{article, parse_feed, titles, Daemon};

const FORMATS: [&str; 3] = ["feed.xml", "atom.xml", "feed.json"];

fn json_titles(bytes: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).expect("JSON feed parses");
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["title"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn feed_titles(path: &str, bytes: &[u8]) -> Vec<String> {
    if path.ends_with(".json") {
        json_titles(bytes)
    } else {
        titles(bytes)
    }
}

fn seed(d: &Daemon) {
    d.publish(&article(
        "older",
        "Older post",
        &["AI"],
        "2026-05-26T09:00:00Z",
    ));
    d.publish(&article(
        "newest",
        "Newest post",
        &["Open Science", "AI"],
        "2026-05-27T09:00:00+02:00",
    ));
    d.publish(&article(
        "middle",
        "Middle post",
        &[],
        "2026-05-27T05:00:00Z",
    ));
}

#[test]
fn site_feeds_list_every_article_newest_first_in_all_three_formats() {
    let d = Daemon::start();
    seed(&d);
    for f in FORMATS {
        let path = format!("/{f}");
        let r = d.get(&path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(
            feed_titles(&path, &r.body),
            ["Newest post", "Middle post", "Older post"],
            "{path}"
        );
    }
}

#[test]
fn feeds_have_their_content_types_and_caching_headers() {
    let d = Daemon::start_with(&[("TIDINGS_FEEDS_MAX_AGE", "120")]);
    seed(&d);
    for (f, ct) in [
        ("feed.xml", "application/rss+xml; charset=utf-8"),
        ("atom.xml", "application/atom+xml; charset=utf-8"),
        ("feed.json", "application/feed+json; charset=utf-8"),
    ] {
        for path in [format!("/{f}"), format!("/tags/ai/{f}")] {
            let r = d.get(&path);
            assert_eq!(r.header("content-type").as_deref(), Some(ct), "{path}");
            let etag = r.header("etag").expect("etag");
            assert!(
                etag.starts_with('"') && etag.ends_with('"'),
                "strong etag: {etag}"
            );
            assert_eq!(
                r.header("cache-control").as_deref(),
                Some("public, max-age=120")
            );
            assert_eq!(r.header("vary").as_deref(), Some("Accept-Encoding"));
            assert!(r.header("last-modified").is_some());
        }
    }
}

#[test]
fn last_modified_is_the_newest_updated_at_in_the_feed() {
    let d = Daemon::start();
    seed(&d);
    // "newest" was published 09:00+02:00 = 07:00 UTC, "middle" 05:00 UTC, "older" the day before.
    assert_eq!(
        d.get("/feed.xml").header("last-modified").as_deref(),
        Some("Wed, 27 May 2026 07:00:00 GMT")
    );
    assert_eq!(
        d.get("/tags/ai/feed.xml")
            .header("last-modified")
            .as_deref(),
        Some("Wed, 27 May 2026 07:00:00 GMT")
    );
}

#[test]
fn unchanged_feed_answers_304_to_if_none_match() {
    let d = Daemon::start();
    seed(&d);
    for f in FORMATS {
        let path = format!("/tags/ai/{f}");
        let first = d.get(&path);
        let etag = first.header("etag").expect("etag");
        let again = d.get_with(&path, &[("If-None-Match", &etag)]);
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), Some(etag.clone()));
        let other = d.get_with(&path, &[("If-None-Match", "\"something-else\"")]);
        assert_eq!(other.status, 200);
        assert_eq!(other.body, first.body);
    }
}

#[test]
fn if_modified_since_not_older_answers_304_and_older_gets_the_feed() {
    let d = Daemon::start();
    seed(&d);
    let first = d.get("/feed.xml");
    let lm = first.header("last-modified").expect("last-modified");
    assert_eq!(
        d.get_with("/feed.xml", &[("If-Modified-Since", &lm)])
            .status,
        304
    );
    assert_eq!(
        d.get_with(
            "/feed.xml",
            &[("If-Modified-Since", "Thu, 26 Nov 2099 00:00:00 GMT")]
        )
        .status,
        304
    );
    let older = d.get_with(
        "/feed.xml",
        &[("If-Modified-Since", "Tue, 26 May 2026 00:00:00 GMT")],
    );
    assert_eq!(older.status, 200);
    assert_eq!(older.body, first.body);
    // If-None-Match wins over If-Modified-Since.
    let r = d.get_with(
        "/feed.xml",
        &[("If-None-Match", "\"stale\""), ("If-Modified-Since", &lm)],
    );
    assert_eq!(r.status, 200);
}

#[test]
fn publishing_changes_the_etag_and_the_old_one_gets_the_new_feed() {
    let d = Daemon::start();
    seed(&d);
    let before = d.get("/feed.xml");
    let old = before.header("etag").expect("etag");
    d.publish(&article(
        "fresh",
        "Fresh post",
        &["AI"],
        "2026-05-28T09:00:00Z",
    ));
    let after = d.get_with("/feed.xml", &[("If-None-Match", &old)]);
    assert_eq!(
        after.status, 200,
        "the API answers once the new bytes are live"
    );
    assert_ne!(after.header("etag"), Some(old));
    assert_eq!(titles(&after.body)[0], "Fresh post");
}

#[test]
fn gzip_is_served_to_clients_that_ask_with_its_own_etag() {
    let d = Daemon::start();
    seed(&d);
    let plain = d.get("/atom.xml");
    assert!(plain.header("content-encoding").is_none());
    // The gzip copy follows the identity bytes within moments of a change.
    let gz = d.wait_for_with("/atom.xml", &[("Accept-Encoding", "gzip, br")], |r| {
        r.header("content-encoding").is_some()
    });
    assert_eq!(gz.header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(gz.header("vary").as_deref(), Some("Accept-Encoding"));
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_end(&mut unzipped)
        .expect("valid gzip");
    assert_eq!(unzipped, plain.body);
    let gz_etag = gz.header("etag").expect("etag");
    assert_ne!(Some(gz_etag.clone()), plain.header("etag"));
    assert_eq!(
        d.get_with(
            "/atom.xml",
            &[("Accept-Encoding", "gzip"), ("If-None-Match", &gz_etag)]
        )
        .status,
        304
    );
    let refused = d.get_with("/atom.xml", &[("Accept-Encoding", "gzip;q=0")]);
    assert!(refused.header("content-encoding").is_none());
}

#[test]
fn per_tag_feeds_contain_exactly_that_tags_articles() {
    let d = Daemon::start();
    seed(&d);
    for f in FORMATS {
        let ai = d.get(&format!("/tags/ai/{f}"));
        assert_eq!(
            feed_titles(f, &ai.body),
            ["Newest post", "Older post"],
            "{f}"
        );
        let open = d.get(&format!("/tags/open-science/{f}"));
        assert_eq!(feed_titles(f, &open.body), ["Newest post"], "{f}");
    }
    let atom = parse_feed(&d.get("/tags/open-science/atom.xml").body);
    assert_eq!(
        atom.title.expect("title").content,
        "Future Tech Blog: Open Science"
    );
}

#[test]
fn unknown_tag_is_404_with_a_plain_message() {
    let d = Daemon::start();
    seed(&d);
    let r = d.get("/tags/no-such-tag/feed.xml");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("no-such-tag"), "{}", r.text());
    assert!(d.get("/nothing-here").status == 404);
}

#[test]
fn head_answers_like_get_without_a_body() {
    let d = Daemon::start();
    seed(&d);
    for path in ["/feed.xml", "/tags/ai/atom.xml", "/", "/healthz"] {
        let get = d.get(path);
        let head = d.request("HEAD", path, &[], None);
        assert_eq!(head.status, 200, "{path}");
        assert!(head.body.is_empty(), "{path}");
        assert_eq!(head.header("etag"), get.header("etag"), "{path}");
        assert_eq!(
            head.header("content-type"),
            get.header("content-type"),
            "{path}"
        );
        if path != "/healthz" {
            assert_eq!(
                head.header("content-length"),
                Some(get.body.len().to_string()),
                "{path}"
            );
        }
    }
}

/// A write returns once `/` shows it, as the feeds do: right after each publish, `GET /`, `HEAD /`
/// and the site feed describe the same catalog.
#[test]
fn the_index_page_shows_a_publish_as_soon_as_the_feeds_do() {
    let d = Daemon::start();
    for i in 0..8 {
        let title = format!("Fresh article {i}");
        d.publish(&article(
            &format!("fresh-{i}"),
            &title,
            &[&format!("Tag {i}")],
            &format!("2026-06-0{}T09:00:00Z", i + 1),
        ));
        let get = d.get("/");
        let head = d.request("HEAD", "/", &[], None);
        let feed = d.get("/feed.xml");
        assert!(get.text().contains(&title), "{title} not on / yet");
        assert!(
            get.text().contains(&format!("/tags/tag-{i}/feed.xml")),
            "tag {i} not on / yet"
        );
        assert_eq!(head.header("etag"), get.header("etag"), "after {title}");
        assert_eq!(titles(&feed.body)[0], title);
    }
}

#[test]
fn index_page_has_autodiscovery_links_for_every_feed_and_each_tag() {
    let d = Daemon::start();
    seed(&d);
    // The index is rendered with the feeds: a publish has returned, so it shows.
    let r = d.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    let html = r.text();
    for path in [
        "/feed.xml",
        "/atom.xml",
        "/feed.json",
        "/tags/ai/feed.xml",
        "/tags/ai/atom.xml",
        "/tags/ai/feed.json",
        "/tags/open-science/feed.xml",
    ] {
        let href = format!("href=\"https://blog.example{path}\"");
        assert!(
            html.lines()
                .any(|l| l.contains("<link rel=\"alternate\"") && l.contains(&href)),
            "no autodiscovery link for {path}"
        );
    }
    assert!(html.contains("type=\"application/atom+xml\""));
    assert!(html.contains("Open Science"));
}

#[test]
fn ids_stay_stable_across_edits_and_restarts() {
    let mut d = Daemon::start();
    let created = d.publish(&article(
        "stable",
        "First title",
        &["AI"],
        "2026-05-27T09:00:00Z",
    ));
    let id = created["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("urn:uuid:"), "{id}");
    let edited = d.api(
        "PUT",
        "/api/articles/stable",
        Some(&article(
            "stable",
            "Edited title",
            &["AI", "Ethics"],
            "2026-05-27T09:00:00Z",
        )),
    );
    assert_eq!(edited.status, 200, "{}", edited.text());
    let rss = d.get("/feed.xml").text();
    assert!(
        rss.contains(&format!("<guid isPermaLink=\"false\">{id}</guid>")),
        "{rss}"
    );
    assert!(rss.contains("Edited title"));
    d.restart();
    let feed = parse_feed(&d.get("/atom.xml").body);
    assert_eq!(feed.entries.len(), 1);
    assert_eq!(feed.entries[0].id, id);
    let json: serde_json::Value =
        serde_json::from_slice(&d.get("/tags/ethics/feed.json").body).expect("json");
    assert_eq!(json["items"][0]["id"], id.as_str());
}

#[test]
fn rss_items_carry_guid_categories_dates_and_full_content() {
    let d = Daemon::start();
    d.publish(
        &serde_json::json!({
            "slug": "full", "title": "Full", "url": "https://blog.example/posts/full",
            "summary": "Short summary", "content_markdown": "# Heading\n\nFull *body*",
            "published_at": "2026-05-27T09:00:00+02:00", "tags": ["Open Science", "AI"],
            "author": "Ada", "reading_time_minutes": 6
        })
        .to_string(),
    );
    let rss = d.get("/feed.xml").text();
    assert!(rss.contains("<atom:link href=\"https://blog.example/feed.xml\" rel=\"self\" type=\"application/rss+xml\"/>"), "{rss}");
    assert!(rss.contains("<category>Open Science</category><category>AI</category>"));
    assert!(
        rss.contains("<pubDate>Wed, 27 May 2026 09:00:00 +0200</pubDate>"),
        "{rss}"
    );
    assert!(
        rss.contains("<content:encoded><![CDATA[<h1>Heading</h1>"),
        "{rss}"
    );
    assert!(rss.contains("<dc:creator>Ada</dc:creator>"));
    let atom = d.get("/atom.xml").text();
    assert!(
        atom.contains("<published>2026-05-27T09:00:00+02:00</published>"),
        "{atom}"
    );
    assert!(atom.contains("<content type=\"html\">"), "{atom}");
    assert!(atom.contains("rel=\"alternate\""));
    assert!(atom.contains("<category term=\"open-science\""));
    let json: serde_json::Value = serde_json::from_slice(&d.get("/feed.json").body).expect("json");
    assert_eq!(json["version"], "https://jsonfeed.org/version/1.1");
    assert_eq!(json["feed_url"], "https://blog.example/feed.json");
    assert_eq!(
        json["items"][0]["date_published"],
        "2026-05-27T09:00:00+02:00"
    );
    assert_eq!(json["items"][0]["tags"][0], "Open Science");
}

#[test]
fn awkward_text_survives_in_every_format() {
    let d = Daemon::start();
    let title = "Ampersand & <angle> ]]> 🚀 שלום مرحبا";
    d.publish(
        &serde_json::json!({
            "slug": "awkward", "title": format!("{title}\u{0001}"),
            "url": "https://blog.example/posts/awkward",
            "summary": "a ]]> b & c < d \u{0008}",
            "content_html": "<p>x ]]> y &amp; z &lt; 🚀 مرحبا</p><script>alert(1)</script>",
            "tags": ["Open Science"]
        })
        .to_string(),
    );
    for path in [
        "/feed.xml",
        "/atom.xml",
        "/tags/open-science/feed.xml",
        "/tags/open-science/atom.xml",
    ] {
        let feed = parse_feed(&d.get(path).body);
        let entry = &feed.entries[0];
        assert_eq!(
            entry.title.as_ref().expect("title").content,
            title,
            "{path}"
        );
        let body = d.get(path).text();
        assert!(!body.contains("<script>"), "{path}");
        assert!(
            !body.contains('\u{0001}') && !body.contains('\u{0008}'),
            "{path}"
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&d.get("/feed.json").body).expect("json");
    assert_eq!(json["items"][0]["title"], title);
    assert!(json["items"][0]["content_html"]
        .as_str()
        .expect("html")
        .contains("]]&gt; y &amp; z &lt; 🚀 مرحبا"));
    let rss = parse_feed(&d.get("/feed.xml").body);
    let summary = rss.entries[0].summary.as_ref().expect("description");
    assert_eq!(summary.content, "a ]]> b & c < d");
}

#[test]
fn an_article_without_tags_is_only_in_the_site_feeds() {
    let d = Daemon::start();
    d.publish(&article(
        "tagged",
        "Tagged",
        &["AI"],
        "2026-05-26T09:00:00Z",
    ));
    d.publish(&article(
        "untagged",
        "Untagged",
        &[],
        "2026-05-27T09:00:00Z",
    ));
    assert_eq!(titles(&d.get("/feed.xml").body), ["Untagged", "Tagged"]);
    assert_eq!(titles(&d.get("/tags/ai/feed.xml").body), ["Tagged"]);
}

#[test]
fn removing_an_article_drops_it_and_moves_last_modified_forward() {
    let d = Daemon::start();
    seed(&d);
    let before = d.get("/tags/ai/feed.xml");
    let lm = before.header("last-modified").expect("lm");
    let r = d.api("DELETE", "/api/articles/newest", None);
    assert_eq!(r.status, 204);
    let after = d.get_with("/tags/ai/feed.xml", &[("If-Modified-Since", &lm)]);
    assert_eq!(
        after.status, 200,
        "a reader polling with If-Modified-Since sees the removal"
    );
    assert_eq!(titles(&after.body), ["Older post"]);
    // A tag whose last article is gone still answers, with an empty feed.
    let open = d.get("/tags/open-science/atom.xml");
    assert_eq!(open.status, 200);
    assert!(parse_feed(&open.body).entries.is_empty());
}

#[test]
fn feeds_carry_only_the_latest_feeds_items_articles() {
    let d = Daemon::start_with(&[("TIDINGS_FEEDS_ITEMS", "2")]);
    seed(&d);
    assert_eq!(
        titles(&d.get("/feed.xml").body),
        ["Newest post", "Middle post"]
    );
}

#[test]
fn static_mirror_holds_the_served_bytes() {
    let d = Daemon::start();
    seed(&d);
    for path in [
        "/feed.xml",
        "/atom.xml",
        "/feed.json",
        "/tags/ai/feed.xml",
        "/tags/open-science/feed.json",
    ] {
        let served = d.get(path).body;
        let file = d.mirror().join(path.trim_start_matches('/'));
        let gz_file = format!("{}.gz", file.display());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if std::fs::read(&file).ok().as_deref() == Some(&served[..]) {
                // Once the plain file is current, the gzip copy for nginx gzip_static is too.
                let gz = std::fs::read(&gz_file).expect("gzip copy");
                let mut unzipped = Vec::new();
                flate2::read::GzDecoder::new(&gz[..])
                    .read_to_end(&mut unzipped)
                    .expect("gzip");
                assert!(unzipped == served, "{gz_file} is stale");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} never matched the served bytes",
                file.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    // Readable by a web server running as another user (nginx's www-data).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.mirror().join("feed.xml"))
            .expect("mirror file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
    }
    // No temp files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(d.mirror())
        .expect("mirror")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn websub_hub_is_linked_and_pinged_for_each_changed_feed() {
    let hub = std::net::TcpListener::bind("127.0.0.1:0").expect("hub");
    let hub_url = format!("http://{}/hub", hub.local_addr().expect("addr"));
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for stream in hub.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = vec![0u8; 8192];
            let mut got = Vec::new();
            // Read headers and the small form body.
            loop {
                let n = std::io::Read::read(&mut stream, &mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        let _ = tx.send(body.to_string());
                        break;
                    }
                }
            }
            let _ = std::io::Write::write_all(
                &mut stream,
                b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let d = Daemon::start_with(&[("TIDINGS_FEEDS_WEBSUB_HUB", &hub_url)]);
    assert!(d
        .get("/feed.xml")
        .text()
        .contains(&format!("<atom:link href=\"{hub_url}\" rel=\"hub\"/>")));
    assert!(d
        .get("/atom.xml")
        .text()
        .contains(&format!("href=\"{hub_url}\" rel=\"hub\"")));
    d.publish(&article(
        "pinged",
        "Pinged",
        &["AI"],
        "2026-05-27T09:00:00Z",
    ));
    let mut pinged = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while pinged.len() < 6 && std::time::Instant::now() < deadline {
        if let Ok(body) = rx.recv_timeout(std::time::Duration::from_millis(500)) {
            assert!(body.contains("hub.mode=publish"), "{body}");
            pinged.insert(body);
        }
    }
    for path in [
        "%2Ffeed.xml",
        "%2Fatom.xml",
        "%2Ffeed.json",
        "%2Ftags%2Fai%2Ffeed.xml",
        "%2Ftags%2Fai%2Fatom.xml",
        "%2Ftags%2Fai%2Ffeed.json",
    ] {
        assert!(
            pinged
                .iter()
                .any(|b| b.contains(&format!("hub.url=https%3A%2F%2Fblog.example{path}"))),
            "no ping for {path}: {pinged:?}"
        );
    }
}

#[test]
fn ten_thousand_articles_serve_the_newest_fifty() {
    let d = Daemon::start();
    let articles: Vec<serde_json::Value> = (0..10_000)
        .map(|i| {
            serde_json::json!({
                "slug": format!("post-{i:05}"),
                "title": format!("Post {i:05}"),
                "url": format!("https://blog.example/posts/{i}"),
                "published_at": minute(i),
                "tags": [format!("Tag {}", i % 100)],
            })
        })
        .collect();
    let file = d.dir.join("big.json");
    std::fs::write(&file, serde_json::to_vec(&articles).expect("json")).expect("write");
    let out = d.cli(&["import", file.to_str().expect("path")]);
    assert!(out.status.success(), "{}", crate::helpers::stderr(&out));
    let r = d.wait_for("/feed.xml", |r| {
        titles(&r.body).first().map(String::as_str) == Some("Post 09999")
    });
    let t = titles(&r.body);
    assert_eq!(t.len(), 50);
    assert_eq!(t[49], "Post 09950");
    // The import runs in another process; the daemon follows it until the last commit.
    let tag = titles(
        &d.wait_for("/tags/tag-99/feed.xml", |r| {
            r.status == 200 && titles(&r.body).first().map(String::as_str) == Some("Post 09999")
        })
        .body,
    );
    assert_eq!(tag.len(), 50);
    assert_eq!(tag[0], "Post 09999");
    assert_eq!(tag[1], "Post 09899");
}

/// A distinct, increasing RFC 3339 time for article `i` (one minute apart).
fn minute(i: usize) -> String {
    let t = chrono::DateTime::from_timestamp(1_600_000_000 + (i as i64) * 60, 0).expect("time");
    t.to_rfc3339()
}
