//! The console's Sources pages: each followed blog's state, last and next fetch, last error and
//! entries, polled from a feed server the test runs on 127.0.0.2 (the one address the daemon is
//! allowed to reach there); an editor follows, polls and removes one, a viewer only looks.

use crate::console_client::{add_account, field, Console};
use crate::feed_server::{rss, Answer, FeedServer};
use crate::helpers::Daemon;
use crate::sources_client::{first_poll, source};

const PASSWORD: &str = "correct horse battery staple";
const ALLOW: (&str, &str) = ("TIDINGS_SOURCES_ALLOW_PRIVATE", "127.0.0.2");
/// Polls come from the test, not from the daemon's schedule.
const SLOW: (&str, &str) = ("TIDINGS_SOURCES_MIN_INTERVAL_MINUTES", "600");

/// `h` hours before the test binary started: the same date every time a feed is made.
fn hours_ago(h: i64) -> String {
    static START: std::sync::OnceLock<chrono::DateTime<chrono::Utc>> = std::sync::OnceLock::new();
    (*START.get_or_init(chrono::Utc::now) - chrono::Duration::hours(h)).to_rfc2822()
}

/// An RSS feed of `n` entries, `/posts/<i>`.
fn feed(n: usize) -> String {
    let items: Vec<(String, String, String, String)> = (0..n)
        .map(|i| {
            (
                format!("guid-{i}"),
                format!("http://elsewhere.example/posts/{i}"),
                format!("Entry {i}"),
                hours_ago(i as i64 + 1),
            )
        })
        .collect();
    let refs: Vec<(&str, &str, &str, &str)> = items
        .iter()
        .map(|(a, b, c, d)| (a.as_str(), b.as_str(), c.as_str(), d.as_str()))
        .collect();
    rss(&refs)
}

/// Follows `url` through the API and waits for its first poll.
fn follow(d: &Daemon, url: &str, name: &str) -> i64 {
    crate::sources_client::follow(d, serde_json::json!({ "url": url, "name": name }))
}

fn count(d: &Daemon, sql: &str) -> i64 {
    d.db().query_row(sql, &[], |r| r.get(0)).expect(sql)
}

/// (actor, action, target) of every source action in the audit log.
fn audited(d: &Daemon) -> Vec<(String, String, String)> {
    d.db()
        .query_map(
            "SELECT actor, action, target FROM audit_log WHERE action LIKE 'source.%' ORDER BY id",
            &[],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("audit")
}

fn daemon() -> Daemon {
    let d = Daemon::start_with(&[ALLOW, SLOW]);
    add_account(&d, "eve", "editor", PASSWORD);
    add_account(&d, "vic", "viewer", PASSWORD);
    d
}

#[test]
fn the_sources_page_shows_each_source_as_its_polls_left_it() {
    let blog = FeedServer::start("127.0.0.2");
    blog.set("/feed.xml", Answer::feed(feed(3), &[("ETag", "\"v1\"")]));
    let d = daemon();
    let mut vic = Console::signed_in(&d, "vic", PASSWORD);
    let empty = vic.get("/admin/sources");
    assert_eq!(empty.status, 200, "{}", d.log());
    assert!(
        empty.text().contains("No sources yet. To follow a blog")
            && empty.text().contains("tidings source add URL"),
        "{}",
        empty.text()
    );

    let mut eve = Console::signed_in(&d, "eve", PASSWORD);
    let page = eve.get("/admin/sources");
    assert!(
        page.text()
            .contains(r#"<form method="post" action="/admin/sources">"#),
        "an editor gets the form"
    );
    let csrf = field(&page.text(), "csrf").expect("csrf");
    let url = blog.url("/feed.xml");
    let added = eve.post(
        "/admin/sources",
        &[
            ("csrf", &csrf),
            ("url", &url),
            ("tags", "Friends, Reading"),
            ("name", "Elsewhere blog"),
        ],
    );
    assert_eq!(added.status, 303, "{}", added.text());
    let id = count(&d, "SELECT MAX(id) FROM sources");
    assert_eq!(
        added.header("location"),
        Some(format!("/admin/sources/{id}?done=added"))
    );
    let s = first_poll(&d, id);
    assert_eq!(s["entries"], 3, "{s}");

    let list = vic.get("/admin/sources");
    assert_eq!(list.status, 200);
    let html = list.text();
    for expected in [
        format!(r#"<a href="/admin/sources/{id}">Elsewhere blog</a>"#),
        format!(r#"<a href="{url}" rel="noopener noreferrer" class="muted">{url}</a>"#),
        "tags: Friends, Reading".to_string(),
        "<td>active</td>".to_string(),
        r#"<td class="num">3</td>"#.to_string(),
        "just now</time>".to_string(),
        "status 200".to_string(),
        "<td>no hub</td>".to_string(),
        r#"<a href="/admin/sources" aria-current="page">Sources</a>"#.to_string(),
    ] {
        assert!(html.contains(&expected), "no {expected} in\n{html}");
    }
    let next = html
        .split("<time datetime=")
        .nth(2)
        .expect("the next fetch's time");
    let hours: i64 = next
        .split(">in ")
        .nth(1)
        .and_then(|rest| rest.split(" h<").next())
        .and_then(|h| h.parse().ok())
        .unwrap_or_else(|| panic!("the next fetch in hours: {next}"));
    assert!((10..=24).contains(&hours), "polled again in {hours} h");
    assert!(
        !html.contains(r#"action="/admin/sources""#) && !html.contains("Follow</button>"),
        "a viewer gets no form: {html}"
    );

    let one = vic.get(&format!("/admin/sources/{id}"));
    assert_eq!(one.status, 200);
    let html = one.text();
    for expected in [
        "<h1>Elsewhere blog</h1>",
        "<dt>ETag</dt><dd><code>&quot;v1&quot;</code></dd>",
        "<dt>Entries</dt><dd>3</dd>",
        "<dt>Last status</dt><dd>200</dd>",
        "<dt>Failures in a row</dt><dd>0</dd>",
        "<dt>Identity</dt><dd>guid</dd>",
        "<dt>First read</dt><dd><time",
        "<dt>Tags</dt><dd>Friends, Reading</dd>",
    ] {
        assert!(html.contains(expected), "no {expected} in\n{html}");
    }
    assert!(!html.contains("Poll now") && !html.contains("Remove"));
    assert_eq!(vic.get("/admin/sources/999").status, 404);
    assert_eq!(vic.get("/admin/sources/nope").status, 404);
    assert_eq!(
        audited(&d),
        [("eve".into(), "source.add".into(), url.clone())]
    );
}

#[test]
fn an_editor_polls_now_sees_the_outcome_and_removes_after_confirming() {
    let blog = FeedServer::start("127.0.0.2");
    blog.set("/feed.xml", Answer::feed(feed(2), &[("ETag", "\"v1\"")]));
    let d = daemon();
    let id = follow(&d, &blog.url("/feed.xml"), "Elsewhere");
    let mut eve = Console::signed_in(&d, "eve", PASSWORD);
    let page = eve.get(&format!("/admin/sources/{id}"));
    assert!(page.text().contains("Poll now"));
    let csrf = field(&page.text(), "csrf").expect("csrf");

    let polled = eve.post(&format!("/admin/sources/{id}/poll"), &[("csrf", &csrf)]);
    assert_eq!(polled.status, 303, "{}", polled.text());
    let shown = eve.get(&polled.header("location").expect("location"));
    assert!(
        shown.text().contains("Done: Polled: not modified (304)"),
        "{}",
        shown.text()
    );

    blog.set("/feed.xml", Answer::feed(feed(3), &[("ETag", "\"v2\"")]));
    let polled = eve.post(&format!("/admin/sources/{id}/poll"), &[("csrf", &csrf)]);
    let shown = eve.get(&polled.header("location").expect("location"));
    let html = shown.text();
    assert!(
        html.contains("Done: Polled: 200, 1 new, 0 updated, 2 unchanged"),
        "{html}"
    );
    assert!(html.contains("<dt>Entries</dt><dd>3</dd>"), "{html}");
    assert_eq!(count(&d, "SELECT COUNT(*) FROM articles"), 3);

    let confirm = eve.get(&format!("/admin/sources/{id}/remove"));
    assert_eq!(confirm.status, 200);
    assert!(
        confirm
            .text()
            .contains("The 3 entries it brought stay in the catalog"),
        "{}",
        confirm.text()
    );
    assert_eq!(source(&d, id)["id"], id, "asking changes nothing");
    let removed = eve.post(&format!("/admin/sources/{id}/remove"), &[("csrf", &csrf)]);
    assert_eq!(removed.status, 303, "{}", removed.text());
    let location = removed.header("location").expect("location");
    assert_eq!(location, format!("/admin/sources?removed={id}"));
    assert_eq!(
        d.api("GET", &format!("/api/sources/{id}"), None).status,
        404
    );
    assert_eq!(
        count(&d, "SELECT COUNT(*) FROM articles"),
        3,
        "its articles stay"
    );
    let list = eve.get(&location);
    assert!(
        list.text().contains(&format!(
            "Source {id} was removed; the articles it brought stay"
        )),
        "{}",
        list.text()
    );
    assert_eq!(eve.get(&format!("/admin/sources/{id}")).status, 404);
    let target = format!("source {id}");
    assert_eq!(
        audited(&d),
        [
            ("eve".into(), "source.poll".into(), target.clone()),
            ("eve".into(), "source.poll".into(), target.clone()),
            ("eve".into(), "source.remove".into(), target),
        ]
    );
}

#[test]
fn a_hostile_name_and_error_are_escaped_and_a_long_error_is_shortened_in_the_list() {
    let blog = FeedServer::start("127.0.0.2");
    let hostile_guid = format!("<img src=x onerror=alert(1)>{}", "y".repeat(300));
    let escaped = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    // Two entries share a guid across links; one has a hostile guid and no link (refused).
    let body = format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>T</title>\
         <link>http://elsewhere.example/</link><description>D</description>\
         <item><guid isPermaLink=\"false\">{g}</guid><link>http://elsewhere.example/a</link><title>A</title></item>\
         <item><guid isPermaLink=\"false\">{g}</guid><link>http://elsewhere.example/b</link><title>B</title></item>\
         <item><guid isPermaLink=\"false\">{h}</guid><title>No link</title></item></channel></rss>",
        g = escaped("<script>alert('guid')</script>"),
        h = escaped(&hostile_guid),
    );
    blog.set("/feed.xml", Answer::feed(body, &[]));
    let d = daemon();
    let id = follow(
        &d,
        &blog.url("/feed.xml"),
        "<script>alert(\"name\")</script>",
    );
    let s = source(&d, id);
    let error = s["last_error"].as_str().expect("an error").to_string();
    assert!(error.contains("<img src=x onerror"), "{s}");

    let mut vic = Console::signed_in(&d, "vic", PASSWORD);
    let list = vic.get("/admin/sources").text();
    assert!(
        !list.contains("<script>alert") && !list.contains("<img src=x"),
        "{list}"
    );
    assert!(
        list.contains("&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt;"),
        "{list}"
    );
    assert!(
        list.contains(&format!(r#"title="{}""#, crate_escape(&error))),
        "the whole error in the title: {list}"
    );
    let short = list
        .split(r#"<span class="error" title=""#)
        .nth(1)
        .and_then(|rest| rest.split("\">").nth(1))
        .and_then(|rest| rest.split("</span>").next())
        .expect("the error cell");
    assert!(short.ends_with('…'), "{short}");
    assert!(short.chars().count() < 200, "{short}");

    let one = vic.get(&format!("/admin/sources/{id}")).text();
    assert!(
        !one.contains("<script>alert") && !one.contains("<img src=x"),
        "{one}"
    );
    assert!(
        one.contains(&crate_escape(&error)),
        "the whole error: {one}"
    );
    assert!(
        one.contains("&lt;script&gt;alert(&#39;guid&#39;)&lt;/script&gt;"),
        "the identity note, escaped: {one}"
    );
}

/// HTML escaping as the console does it.
fn crate_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[test]
fn a_bad_source_is_refused_on_the_form_naming_the_field_and_nothing_is_added() {
    let blog = FeedServer::start("127.0.0.2");
    blog.set("/feed.xml", Answer::feed(feed(1), &[]));
    let d = daemon();
    let mut eve = Console::signed_in(&d, "eve", PASSWORD);
    let csrf = eve.csrf();
    let long_tag = "t".repeat(101);
    for (url, tags, field_name, status) in [
        ("ftp://blog.example/feed.xml", "Friends", "url", 400),
        ("http://127.0.0.1:9/feed.xml", "", "url", 400),
        ("not a url", "", "url", 400),
        (&blog.url("/feed.xml")[..], &long_tag[..], "tags", 400),
    ] {
        let r = eve.post(
            "/admin/sources",
            &[
                ("csrf", &csrf),
                ("url", url),
                ("tags", tags),
                ("name", "Mine"),
            ],
        );
        assert_eq!(r.status, status, "{url}: {}", r.text());
        let html = r.text();
        assert!(
            html.contains(&format!(
                r#"<p class="error" id="{field_name}-error">{field_name}: "#
            )),
            "{url}: the error next to the field: {html}"
        );
        assert!(
            html.contains(&format!(r#"id="{field_name}" name="{field_name}""#))
                && html.contains(r#"aria-invalid="true""#),
            "{html}"
        );
        assert_eq!(
            field(&html, "name").as_deref(),
            Some("Mine"),
            "kept as typed"
        );
        assert_eq!(count(&d, "SELECT COUNT(*) FROM sources"), 0, "{url}");
    }
    // The same URL twice: the second is refused on the url field.
    let id = follow(&d, &blog.url("/feed.xml"), "First");
    let again = eve.post(
        "/admin/sources",
        &[("csrf", &csrf), ("url", &blog.url("/feed.xml"))],
    );
    assert_eq!(again.status, 409, "{}", again.text());
    assert!(again
        .text()
        .contains(r#"id="url-error">url: a source with the URL"#));
    assert_eq!(count(&d, "SELECT COUNT(*) FROM sources"), 1);
    assert_eq!(source(&d, id)["name"], "First");
    assert!(audited(&d).is_empty(), "{:?}", audited(&d));
}

#[test]
fn a_viewer_is_refused_every_source_action_and_nothing_changes() {
    let blog = FeedServer::start("127.0.0.2");
    blog.set("/feed.xml", Answer::feed(feed(2), &[]));
    let d = daemon();
    let id = follow(&d, &blog.url("/feed.xml"), "Elsewhere");
    let before = source(&d, id);
    let fetches = blog.requests_to("/feed.xml").len();
    let mut vic = Console::signed_in(&d, "vic", PASSWORD);
    let csrf = vic.csrf();
    let other = blog.url("/other.xml");
    for (path, fields) in [
        ("/admin/sources".to_string(), vec![("url", other.as_str())]),
        (format!("/admin/sources/{id}/poll"), vec![]),
        (format!("/admin/sources/{id}/remove"), vec![]),
    ] {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(fields);
        let r = vic.post(&path, &form);
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(r.text().contains("Your role is viewer"), "{}", r.text());
    }
    assert_eq!(vic.get(&format!("/admin/sources/{id}/remove")).status, 403);
    let signed_out = Console::new(&d).get(&format!("/admin/sources/{id}"));
    assert_eq!(signed_out.status, 303, "no session: to the sign-in form");
    assert_eq!(source(&d, id), before, "not polled, not removed");
    assert_eq!(blog.requests_to("/feed.xml").len(), fetches);
    assert_eq!(count(&d, "SELECT COUNT(*) FROM sources"), 1);
    assert!(audited(&d).is_empty());
}

#[test]
fn a_source_action_without_this_sessions_csrf_token_changes_nothing() {
    let blog = FeedServer::start("127.0.0.2");
    blog.set("/feed.xml", Answer::feed(feed(2), &[]));
    let d = daemon();
    let id = follow(&d, &blog.url("/feed.xml"), "Elsewhere");
    let before = source(&d, id);
    let mut vic = Console::signed_in(&d, "vic", PASSWORD);
    let others_token = vic.csrf();
    let mut eve = Console::signed_in(&d, "eve", PASSWORD);
    let other = blog.url("/other.xml");
    for token in [None, Some(""), Some(others_token.as_str())] {
        for (path, extra) in [
            ("/admin/sources".to_string(), Some(("url", other.as_str()))),
            (format!("/admin/sources/{id}/poll"), None),
            (format!("/admin/sources/{id}/remove"), None),
        ] {
            let mut form: Vec<(&str, &str)> = token.map(|t| ("csrf", t)).into_iter().collect();
            form.extend(extra);
            let r = eve.post(&path, &form);
            assert_eq!(r.status, 403, "{path} with {token:?}: {}", r.text());
            assert!(r.text().contains("Form expired"), "{}", r.text());
        }
    }
    assert_eq!(source(&d, id), before, "not polled, not removed");
    assert_eq!(count(&d, "SELECT COUNT(*) FROM sources"), 1);
    assert!(audited(&d).is_empty());
}
