//! The console's pages: what an admin sees and changes, through real HTTP with a session.

use crate::console_client::{add_account, field, Console};
use crate::helpers::{article, Daemon};

const PASSWORD: &str = "correct horse battery staple";

fn article_count(d: &Daemon) -> i64 {
    d.db()
        .query_row("SELECT count(*) FROM articles", &[], |r| r.get(0))
        .expect("count articles")
}

#[test]
fn an_editor_publishes_and_edits_an_article_and_the_feed_follows() {
    let d = Daemon::start();
    add_account(&d, "eve", "editor", PASSWORD);
    let mut eve = Console::signed_in(&d, "eve", PASSWORD);
    let form = eve.get("/admin/articles/new");
    assert_eq!(form.status, 200);
    let csrf = field(&form.text(), "csrf").expect("csrf");
    let created = eve.post(
        "/admin/articles/new",
        &[
            ("csrf", &csrf),
            ("title", "Quantum batteries"),
            ("url", "https://blog.example/posts/quantum-batteries"),
            ("summary", "Charging faster"),
            ("format", "markdown"),
            ("content", "Some **bold** claims."),
            ("tags", "Energy, Physics"),
            ("published_at", "2026-11-30T09:00:00Z"),
        ],
    );
    assert_eq!(created.status, 303, "{}", created.text());
    assert_eq!(
        created.header("location").as_deref(),
        Some("/admin/articles/quantum-batteries?saved=1")
    );
    let feed = d.wait_for("/feed.xml", |r| r.text().contains("Quantum batteries"));
    assert!(
        feed.text().contains("<strong>bold</strong>"),
        "Markdown became HTML"
    );
    let tag_feed = d.get("/tags/energy/feed.xml");
    assert!(tag_feed.text().contains("Quantum batteries"));

    let page = eve.get("/admin/articles/quantum-batteries");
    assert_eq!(
        field(&page.text(), "title").as_deref(),
        Some("Quantum batteries")
    );
    let edited = eve.post(
        "/admin/articles/quantum-batteries",
        &[
            ("csrf", &csrf),
            ("title", "Quantum batteries, revisited"),
            ("url", "https://blog.example/posts/quantum-batteries"),
            ("format", "html"),
            ("content", "<p>Updated body</p>"),
            ("tags", "Energy"),
            ("published_at", "2026-11-30T09:00:00Z"),
        ],
    );
    assert_eq!(edited.status, 303, "{}", edited.text());
    let feed = d.wait_for("/feed.xml", |r| {
        r.text().contains("Quantum batteries, revisited")
    });
    assert!(feed.text().contains("Updated body"));
    assert_eq!(article_count(&d), 1, "edited in place");

    let audit: Vec<(String, String, String)> = d
        .db()
        .query_map(
            "SELECT actor, via, action FROM audit_log WHERE target = 'quantum-batteries' ORDER BY id",
            &[],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("audit");
    assert_eq!(
        audit,
        vec![
            ("eve".into(), "console".into(), "article.add".into()),
            ("eve".into(), "console".into(), "article.update".into()),
        ]
    );

    let removed = eve.post(
        "/admin/articles/quantum-batteries/remove",
        &[("csrf", &csrf)],
    );
    assert_eq!(removed.status, 303);
    assert_eq!(article_count(&d), 0);
}

#[test]
fn bad_article_input_names_the_field_and_changes_nothing() {
    let d = Daemon::start();
    add_account(&d, "eve", "editor", PASSWORD);
    let mut eve = Console::signed_in(&d, "eve", PASSWORD);
    let csrf = eve.csrf();
    let r = eve.post(
        "/admin/articles/new",
        &[
            ("csrf", &csrf),
            ("title", "No URL"),
            ("url", "not a url"),
            ("content", "x"),
        ],
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("url:"), "{}", r.text());
    assert_eq!(
        field(&r.text(), "title").as_deref(),
        Some("No URL"),
        "the form keeps what was typed"
    );
    assert_eq!(article_count(&d), 0);
    // A new article cannot take an existing one's slug.
    d.publish(&article("taken", "Taken", &[], "2026-05-27T09:00:00Z"));
    let r = eve.post(
        "/admin/articles/new",
        &[
            ("csrf", &csrf),
            ("title", "Other"),
            ("slug", "taken"),
            ("url", "https://blog.example/o"),
        ],
    );
    assert_eq!(r.status, 409);
    let kept = d.api("GET", "/api/articles/taken", None).json();
    assert_eq!(kept["title"], "Taken");
}

#[test]
fn a_viewer_is_refused_every_article_change_and_nothing_changes() {
    let d = Daemon::start();
    d.publish(&article("kept", "Kept", &["news"], "2026-05-27T09:00:00Z"));
    let before = d.get("/feed.xml").body;
    add_account(&d, "vic", "viewer", PASSWORD);
    let mut vic = Console::signed_in(&d, "vic", PASSWORD);
    let csrf = vic.csrf();
    let page = vic.get("/admin/articles/kept");
    assert_eq!(page.status, 200, "a viewer may read");
    assert!(page.text().contains("disabled"), "read-only form");
    assert_eq!(vic.get("/admin/articles/new").status, 403);
    let attempts = [
        (
            "/admin/articles/new",
            vec![
                ("csrf", csrf.as_str()),
                ("title", "X"),
                ("url", "https://blog.example/x"),
            ],
        ),
        (
            "/admin/articles/kept",
            vec![
                ("csrf", csrf.as_str()),
                ("title", "Changed"),
                ("url", "https://blog.example/k"),
            ],
        ),
        ("/admin/articles/kept/remove", vec![("csrf", csrf.as_str())]),
    ];
    for (path, fields) in attempts {
        let r = vic.post(path, &fields);
        assert_eq!(r.status, 403, "{path}");
    }
    assert_eq!(article_count(&d), 1);
    assert_eq!(d.get("/feed.xml").body, before, "the feed did not change");
    let audited: i64 = d
        .db()
        .query_row(
            "SELECT count(*) FROM audit_log WHERE via = 'console'",
            &[],
            |r| r.get(0),
        )
        .expect("audit");
    assert_eq!(audited, 0);
}

#[test]
fn an_article_title_holding_markup_comes_out_escaped() {
    let d = Daemon::start();
    let title = "<script>alert('x')</script> & more";
    d.publish(&article(
        "xss",
        title,
        &["<b>tag</b>"],
        "2026-05-27T09:00:00Z",
    ));
    add_account(&d, "ann", "owner", PASSWORD);
    let mut ann = Console::signed_in(&d, "ann", PASSWORD);
    for path in [
        "/admin/articles",
        "/admin/articles/xss",
        "/admin/articles/xss/remove",
    ] {
        let page = ann.get(path).text();
        assert!(!page.contains("<script>alert"), "{path} holds raw markup");
        assert!(
            page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more"),
            "{path}: {page}"
        );
    }
}

#[test]
fn the_article_list_pages_by_key() {
    let d = Daemon::start();
    for i in 0..55 {
        d.publish(&article(
            &format!("a{i:02}"),
            &format!("Article {i:02}"),
            &[],
            &format!("2026-05-{:02}T09:00:00Z", 1 + i % 28),
        ));
    }
    add_account(&d, "ann", "owner", PASSWORD);
    let mut ann = Console::signed_in(&d, "ann", PASSWORD);
    let first = ann.get("/admin/articles").text();
    let next = first
        .split("/admin/articles?after=")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a link to older articles")
        .to_string();
    let second = ann.get(&format!("/admin/articles?after={next}")).text();
    let slugs = |html: &str| -> Vec<String> {
        html.split("<span class=\"muted\">")
            .skip(1)
            .filter_map(|s| s.split('<').next().map(str::to_string))
            .collect()
    };
    let (a, b) = (slugs(&first), slugs(&second));
    assert_eq!(a.len(), 50);
    assert_eq!(b.len(), 5);
    assert!(a.iter().all(|s| !b.contains(s)), "no row twice");
}

#[test]
fn settings_show_the_configuration_with_secrets_redacted_and_not_to_a_viewer() {
    let d = Daemon::start_with(&[("TIDINGS_MAIL_PASSWORD", "relay-secret-4d1f")]);
    add_account(&d, "ann", "owner", PASSWORD);
    add_account(&d, "vic", "viewer", PASSWORD);
    add_account(&d, "eve", "editor", PASSWORD);
    let mut vic = Console::signed_in(&d, "vic", PASSWORD);
    assert_eq!(vic.get("/admin/settings").status, 403);
    let mut eve = Console::signed_in(&d, "eve", PASSWORD);
    let page = eve.get("/admin/settings");
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(text.contains("<code>feeds.items</code>"));
    assert!(
        text.contains("<code>admin.token</code></td><td><code>[redacted]</code>"),
        "{text}"
    );
    assert!(!text.contains(crate::helpers::TOKEN) && !text.contains("relay-secret-4d1f"));
    assert!(
        !text.contains("API tokens"),
        "accounts and tokens are for owners"
    );
    let mut ann = Console::signed_in(&d, "ann", PASSWORD);
    let text = ann.get("/admin/settings").text();
    assert!(text.contains("API tokens") && text.contains("<td>vic</td><td>viewer</td>"));
}

#[test]
fn the_audit_page_lists_changes_with_their_author_escaped() {
    let d = Daemon::start();
    d.publish(&article("x", "X", &[], "2026-05-27T09:00:00Z"));
    let _ = d.api("DELETE", "/api/articles/x", None);
    add_account(&d, "vic", "viewer", PASSWORD);
    let _ = d.cli(&["suppression", "add", "a<b>@example.org"]);
    let mut vic = Console::signed_in(&d, "vic", PASSWORD);
    let page = vic.get("/admin/audit");
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(
        text.contains("<td>admin.token</td><td>api</td><td>DELETE /api/articles/x</td>"),
        "{text}"
    );
    assert!(text.contains("account.add"));
    assert!(!text.contains("a<b>@"));
}

#[test]
fn the_runs_pages_show_what_became_of_each_run_and_an_owner_pauses_one() {
    let sink = crate::helpers::SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[]);
    crate::helpers::import_subscribers(&d, 3);
    crate::helpers::publish(&d);
    let report = d
        .api("POST", "/api/digests/run", Some(r#"{"now": true}"#))
        .json();
    assert_eq!(report["sent"], 3, "{report}");
    let run = report["run_id"].as_i64().expect("a run id");
    add_account(&d, "ann", "owner", PASSWORD);
    add_account(&d, "vic", "viewer", PASSWORD);
    let mut vic = Console::signed_in(&d, "vic", PASSWORD);
    let list = vic.get("/admin/runs").text();
    assert!(
        list.contains(&format!("<a href=\"/admin/runs/{run}\">{run}</a>")),
        "{list}"
    );
    assert!(list.contains("<td class=\"num\">3</td>"));
    let page = vic.get(&format!("/admin/runs/{run}"));
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(
        text.contains("<span class=\"n\">3</span><span class=\"l\">sent</span>"),
        "{text}"
    );
    assert!(text.contains("<td>AI</td>"), "per-tag counts");
    assert!(!text.contains("Pause this run"), "no button for a viewer");
    assert_eq!(vic.get("/admin/runs/9999").status, 404);

    // A viewer cannot pause; an owner can pause and resume, and both are audited.
    let csrf = vic.csrf();
    let refused = vic.post(
        &format!("/admin/runs/{run}"),
        &[("csrf", &csrf), ("action", "pause")],
    );
    assert_eq!(refused.status, 403);
    let paused = |d: &Daemon| -> bool {
        d.db()
            .query_row(
                "SELECT paused_us IS NOT NULL FROM digest_runs WHERE id = ?1",
                &[&run],
                |r| r.get::<bool>(0),
            )
            .expect("run")
    };
    assert!(!paused(&d));
    let mut ann = Console::signed_in(&d, "ann", PASSWORD);
    let csrf = ann.csrf();
    assert_eq!(
        ann.post(
            &format!("/admin/runs/{run}"),
            &[("csrf", &csrf), ("action", "pause")]
        )
        .status,
        303
    );
    assert!(paused(&d));
    assert!(ann
        .get(&format!("/admin/runs/{run}"))
        .text()
        .contains("Paused: paused by ann in the console"));
    assert_eq!(
        ann.post(
            &format!("/admin/runs/{run}"),
            &[("csrf", &csrf), ("action", "resume")]
        )
        .status,
        303
    );
    assert!(!paused(&d));
    let actions: Vec<String> = d
        .db()
        .query_map(
            "SELECT action FROM audit_log WHERE actor = 'ann' ORDER BY id",
            &[],
            |r| r.get(0),
        )
        .expect("audit");
    assert_eq!(actions, vec!["run.pause", "run.resume"]);
}

#[test]
fn the_suppressions_and_outbox_pages_list_rows_escaped() {
    let d = Daemon::start();
    let add = d.api(
        "POST",
        "/api/suppressions",
        Some(r#"{"email": "spam@example.org", "note": "<script>alert(1)</script>"}"#),
    );
    assert_eq!(add.status, 201, "{}", add.text());
    let pending = d.api(
        "POST",
        "/api/subscribers",
        Some(r#"{"email": "new@example.org"}"#),
    );
    assert!(pending.status == 201, "{}", pending.text());
    add_account(&d, "vic", "viewer", PASSWORD);
    let mut vic = Console::signed_in(&d, "vic", PASSWORD);
    let page = vic.get("/admin/suppressions").text();
    assert!(
        page.contains("spam@example.org") && page.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
    );
    assert!(!page.contains("<script>alert"));
    let outbox = vic.get("/admin/outbox");
    assert_eq!(outbox.status, 200);
    assert_eq!(vic.get("/admin/suppressions?after=nonsense").status, 400);
}

#[test]
fn the_dashboard_shows_the_tiles_and_charts_with_their_numbers() {
    let sink = crate::helpers::SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[]);
    crate::helpers::import_subscribers(&d, 3);
    crate::helpers::publish(&d);
    let report = d
        .api("POST", "/api/digests/run", Some(r#"{"now": true}"#))
        .json();
    let run = report["run_id"].as_i64().expect("run");
    let _ = d.api(
        "POST",
        "/api/suppressions",
        Some(r#"{"email": "reader00001@example.com"}"#),
    );
    add_account(&d, "vic", "viewer", PASSWORD);
    let mut vic = Console::signed_in(&d, "vic", PASSWORD);
    let page = vic.get("/admin");
    assert_eq!(page.status, 200);
    let text = page.text();
    let tile = |n: &str, label: &str| {
        format!("<span class=\"n\">{n}</span><span class=\"l\">{label}</span>")
    };
    assert!(text.contains(&tile("2", "confirmed")), "{text}");
    assert!(text.contains(&tile("1", "unsubscribed")));
    assert!(text.contains(&tile("1", "suppressed")));
    assert!(text.contains(&format!("#{run}</span><span class=\"l\">last run")));
    assert_eq!(
        text.matches("<svg").count(),
        3,
        "subscribers, runs and audience charts"
    );
    let today = chrono::Utc::now().date_naive().to_string();
    assert!(
        text.contains(&format!("<td>{today}</td><td class=\"num\">2</td><td class=\"num\">3</td><td class=\"num\">0</td>")),
        "today: 2 confirmed at the end, 3 confirmations, no unsubscribe (a suppression is not one): {text}"
    );
    assert!(text.contains(&format!(
        "<td><a href=\"/admin/runs/{run}\">#{run}</a></td>"
    )));
    assert!(
        text.contains("<td class=\"num\">3</td><td class=\"num\">0</td>"),
        "3 sent, 0 failed"
    );
    assert_eq!(vic.get("/admin?days=365").status, 200);
    assert_eq!(vic.get("/admin?days=7").status, 400);
}

#[test]
fn the_audience_page_shows_each_readers_count_with_forged_ones_apart() {
    let mut d = Daemon::start();
    d.publish(&article("a", "A", &["news"], "2026-05-27T09:00:00Z"));
    let feedly = "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 134 subscribers; )";
    let forged = "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 99999999 subscribers; )";
    let odd = "Feedbin feed-id:<b>1</b> - 56 subscribers";
    for agent in [feedly, forged, odd] {
        assert_eq!(
            d.get_with("/feed.xml", &[("User-Agent", agent)]).status,
            200
        );
    }
    // The counts reach the database when the daemon stops, at the latest.
    d.stop();
    d.start_again();
    add_account(&d, "vic", "viewer", PASSWORD);
    let mut vic = Console::signed_in(&d, "vic", PASSWORD);
    let page = vic.get("/admin/audience");
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(text.contains("<code>/feed.xml</code>"), "{text}");
    assert!(text.contains("<td class=\"num\">134</td>"), "{text}");
    assert!(
        text.contains("99999999 <strong>suspect: not added</strong>"),
        "{text}"
    );
    assert!(!text.contains("<b>1</b>"));
    assert_eq!(vic.get("/admin/audience?days=0").status, 400);
    let dashboard = vic.get("/admin").text();
    assert!(dashboard.contains("<td>/feed.xml</td>"), "{dashboard}");
}
