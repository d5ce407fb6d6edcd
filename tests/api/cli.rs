//! The command line, against the same database a running daemon serves.

use crate::helpers::{parse_feed, stderr, stdout, titles, Daemon};

#[test]
fn article_add_list_remove_reach_the_running_daemons_feeds() {
    let d = Daemon::start();
    let content = d.dir.join("post.md");
    std::fs::write(&content, "# Hello\n\nFrom the *command line*.").expect("write");
    let out = d.cli(&[
        "article",
        "add",
        "--title",
        "From the CLI",
        "--url",
        "https://blog.example/cli",
        "--tag",
        "AI",
        "--tag",
        "Open Science",
        "--summary",
        "Made by hand",
        "--content-file",
        content.to_str().expect("path"),
        "--published",
        "2026-05-27T09:00:00Z",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("added from-the-cli (urn:uuid:"),
        "{}",
        stdout(&out)
    );
    let r = d.wait_for("/tags/open-science/feed.xml", |r| {
        r.status == 200 && titles(&r.body) == ["From the CLI"]
    });
    assert!(r.text().contains("<em>command line</em>"));

    let list = d.cli(&["article", "list"]);
    assert!(list.status.success());
    assert!(
        stdout(&list).contains("from-the-cli  From the CLI  [AI, Open Science]"),
        "{}",
        stdout(&list)
    );

    let out = d.cli(&["article", "remove", "from-the-cli"]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.wait_for("/feed.xml", |r| titles(&r.body).is_empty());
    let again = d.cli(&["article", "remove", "from-the-cli"]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("no article with slug 'from-the-cli'"));
}

#[test]
fn article_add_with_bad_input_exits_non_zero_naming_the_flag_and_writes_nothing() {
    let d = Daemon::start();
    for (args, flag) in [
        (vec!["--title", "x", "--url", "not a url"], "--url"),
        (
            vec![
                "--title",
                "x",
                "--url",
                "https://blog.example/x",
                "--published",
                "tomorrow",
            ],
            "--published",
        ),
        (
            vec![
                "--title",
                "x",
                "--url",
                "https://blog.example/x",
                "--slug",
                "a/b",
            ],
            "--slug",
        ),
        (
            vec!["--title", "  ", "--url", "https://blog.example/x"],
            "--title",
        ),
    ] {
        let mut all = vec!["article", "add"];
        all.extend(args);
        let out = d.cli(&all);
        assert!(!out.status.success(), "{all:?}");
        assert!(stderr(&out).contains(flag), "{all:?}: {}", stderr(&out));
    }
    let list = d.api("GET", "/api/articles", None).json();
    assert_eq!(list["total"], 0);
}

#[test]
fn importing_json_keeps_the_good_entries_reports_bad_ones_and_is_safe_to_rerun() {
    let d = Daemon::start();
    let file = d.dir.join("articles.json");
    std::fs::write(
        &file,
        r#"[
          {"title":"Good one","url":"https://blog.example/1","tags":["AI"],"published_at":"2026-05-27T09:00:00Z"},
          {"title":"Bad date","url":"https://blog.example/2","published_at":"someday"},
          {"title":"Good two","url":"https://blog.example/3","published_at":"2026-05-26T09:00:00Z"},
          {"url":"https://blog.example/4"}
        ]"#,
    )
    .expect("write");
    let path = file.to_str().expect("path");
    let out = d.cli(&["import", path]);
    assert!(
        !out.status.success(),
        "bad entries make the exit code non-zero"
    );
    let err = stderr(&out);
    assert!(err.contains("entry 2 (Bad date): published_at:"), "{err}");
    assert!(err.contains("entry 4 (): title: is required"), "{err}");
    assert!(
        stdout(&out).contains("2 new, 0 updated, 0 unchanged, 2 rejected"),
        "{}",
        stdout(&out)
    );
    d.wait_for("/feed.xml", |r| titles(&r.body) == ["Good one", "Good two"]);
    let etag = d.get("/feed.xml").header("etag");
    let journal = || -> i64 {
        d.db()
            .query_row("SELECT count(*) FROM catalog_changes", &[], |r| r.get(0))
            .expect("journal")
    };
    let before = journal();
    let again = d.cli(&["import", path]);
    assert!(
        stdout(&again).contains("0 new, 0 updated, 2 unchanged, 2 rejected"),
        "{}",
        stdout(&again)
    );
    assert_eq!(
        journal(),
        before,
        "a re-import records no change for the feeds to follow"
    );
    assert_eq!(d.get("/feed.xml").header("etag"), etag);
}

#[test]
fn importing_a_folder_of_markdown_with_front_matter() {
    let d = Daemon::start();
    let dir = d.dir.join("posts");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(
        dir.join("hello-world.md"),
        "---\ntitle: Hello World\nurl: https://blog.example/hello-world\ntags: [AI, Open Science]\npublished_at: 2026-05-27T09:00:00Z\nreading_time_minutes: 4\n---\nSome *Markdown*.\n",
    )
    .expect("write");
    std::fs::write(dir.join("broken.md"), "no front matter here").expect("write");
    let out = d.cli(&["import", dir.to_str().expect("path")]);
    assert!(stderr(&out).contains("broken.md"), "{}", stderr(&out));
    assert!(stdout(&out).contains("1 new"), "{}", stdout(&out));
    let r = d.wait_for("/tags/open-science/atom.xml", |r| r.status == 200);
    let feed = parse_feed(&r.body);
    assert_eq!(
        feed.entries[0].title.as_ref().map(|t| t.content.as_str()),
        Some("Hello World")
    );
    let a = d.api("GET", "/api/articles/hello-world", None).json();
    assert!(a["content_html"]
        .as_str()
        .unwrap_or_default()
        .contains("<em>Markdown</em>"));
}

#[test]
fn importing_another_blogs_feed_over_http_keeps_its_ids() {
    let source = Daemon::start();
    source.publish(&crate::helpers::article(
        "moved",
        "Moved post",
        &["AI"],
        "2026-05-20T09:00:00Z",
    ));
    let old_id = source.api("GET", "/api/articles/moved", None).json()["id"]
        .as_str()
        .expect("id")
        .to_string();
    let d = Daemon::start();
    for feed in ["/atom.xml", "/feed.xml"] {
        let url = format!("{}{feed}", source.base);
        let out = d.cli(&["import", &url]);
        assert!(out.status.success(), "{feed}: {}", stderr(&out));
    }
    let r = d.wait_for("/tags/ai/feed.xml", |r| r.status == 200);
    let feed = parse_feed(&r.body);
    assert_eq!(
        feed.entries.len(),
        1,
        "the second import updates, not duplicates"
    );
    assert_eq!(feed.entries[0].id, old_id);
}

#[test]
fn importing_a_feed_file_with_bad_entries_imports_the_good_ones() {
    let d = Daemon::start();
    let file = d.dir.join("old.xml");
    std::fs::write(
        &file,
        r#"<?xml version="1.0"?><rss version="2.0"><channel><title>Old</title><link>https://old.example/</link><description>d</description>
<item><title>Kept</title><link>https://old.example/posts/kept</link><guid>https://old.example/posts/kept</guid><pubDate>Wed, 27 May 2026 09:00:00 +0000</pubDate></item>
<item><guid>no-title-no-link</guid></item>
</channel></rss>"#,
    )
    .expect("write");
    let out = d.cli(&["import", file.to_str().expect("path")]);
    assert!(stderr(&out).contains("entry 2"), "{}", stderr(&out));
    assert!(stdout(&out).contains("1 new"), "{}", stdout(&out));
    d.wait_for("/feed.xml", |r| titles(&r.body) == ["Kept"]);
}

#[test]
fn backup_copies_the_database_while_the_daemon_runs() {
    let d = Daemon::start();
    d.publish(&crate::helpers::article(
        "saved",
        "Saved",
        &["AI"],
        "2026-05-27T09:00:00Z",
    ));
    let copy = d.dir.join("backup.db");
    let out = d.cli(&["backup", copy.to_str().expect("path")]);
    if crate::helpers::on_postgres() {
        // PostgreSQL has its own tools: the command says so and writes nothing.
        assert!(!out.status.success());
        assert!(stderr(&out).contains("pg_dump"), "{}", stderr(&out));
        assert!(!copy.exists());
        return;
    }
    assert!(out.status.success(), "{}", stderr(&out));
    let conn = rusqlite::Connection::open(&copy).expect("open backup");
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM articles WHERE slug = 'saved'",
            [],
            |r| r.get(0),
        )
        .expect("query");
    assert_eq!(n, 1);
}

/// `n` articles as a JSON array, one per line; `bad` positions (1-based) have a date that is not one.
fn json_articles(n: usize, bad: &[usize]) -> String {
    let lines: Vec<String> = (1..=n)
        .map(|i| {
            let date = if bad.contains(&i) {
                "someday".to_string()
            } else {
                format!("2026-05-{:02}T09:00:00Z", 1 + i % 28)
            };
            format!(
                r#"{{"slug":"post-{i}","title":"Post {i}","url":"https://blog.example/{i}","tags":["Topic {}"],"published_at":"{date}","content_html":"<p>Text of post {i}.</p>"}}"#,
                i % 7
            )
        })
        .collect();
    format!("[\n{}\n]\n", lines.join(",\n"))
}

fn article_count(d: &Daemon) -> i64 {
    d.db()
        .query_row("SELECT count(*) FROM articles", &[], |r| r.get(0))
        .expect("count")
}

#[test]
fn a_big_json_array_is_imported_past_its_bad_entries_with_their_positions() {
    let d = Daemon::start();
    let before = article_count(&d);
    // Many batches and more than the reader runs ahead; a duplicate slug near the end.
    let mut json = json_articles(3000, &[2, 1500]);
    json = json.replace(r#"{"slug":"post-2999","#, r#"{"slug":"post-17","#);
    let file = d.dir.join("big.json");
    std::fs::write(&file, json).expect("write");
    let out = d.cli(&["import", file.to_str().expect("path")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("entry ")).collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].starts_with("entry 2 (post-2): published_at:"),
        "{err}"
    );
    assert!(
        lines[1].starts_with("entry 1500 (post-1500): published_at:"),
        "{err}"
    );
    assert!(
        lines[2].starts_with("entry 2999 (post-17): slug: 'post-17' is already entry 17"),
        "{err}"
    );
    assert!(
        stdout(&out).contains("2997 new, 0 updated, 0 unchanged, 3 rejected"),
        "{}",
        stdout(&out)
    );
    assert_eq!(article_count(&d), before + 2997);
    let last = d.api("GET", "/api/articles/post-3000", None).json();
    assert_eq!(last["title"], "Post 3000");
    assert_eq!(last["tags"][0], "Topic 4");
    assert_eq!(d.api("GET", "/api/articles/post-1500", None).status, 404);
}

#[test]
fn a_json_file_cut_short_changes_nothing_and_says_where() {
    let d = Daemon::start();
    let before = article_count(&d);
    let json = json_articles(1000, &[]);
    // Cut in the middle of entry 900: the first 899 are fine, but the file is not JSON.
    let cut = json.find(r#"{"slug":"post-900","#).expect("entry 900") + 40;
    let file = d.dir.join("cut.json");
    std::fs::write(&file, &json[..cut]).expect("write");
    let out = d.cli(&["import", file.to_str().expect("path")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(
            "cut.json is not a JSON array of articles: EOF while parsing a string at line 901"
        ),
        "{err}"
    );
    assert_eq!(article_count(&d), before, "nothing was imported");
    // Not JSON at all past a good start: the same.
    std::fs::write(
        &file,
        format!("{}, oops]", &json[..json.rfind('}').expect("}") + 1]),
    )
    .expect("write");
    let out = d.cli(&["import", file.to_str().expect("path")]);
    assert!(
        stderr(&out).contains("expected value at line 1001"),
        "{}",
        stderr(&out)
    );
    assert_eq!(article_count(&d), before);
}
