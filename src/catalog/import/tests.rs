use std::path::Path;

use super::*;

#[test]
fn json_file_reports_bad_entries_by_position() {
    let entries = json_entries(
        "x.json",
        br#"[{"title":"Good","url":"https://x.example/good"},{"title":"Bad","url":"https://x.example/bad","published_at":"soon"},{"url":"https://x.example/none"}]"#,
    )
    .expect("array");
    assert!(entries[0].article.is_ok());
    assert_eq!(entries[1].position, 2);
    assert_eq!(
        entries[1].article.as_ref().unwrap_err().field,
        "published_at"
    );
    assert_eq!(entries[2].article.as_ref().unwrap_err().field, "title");
}

#[test]
fn markdown_front_matter_and_body() {
    let a = markdown_article(
        Path::new("posts/hello-world.md"),
        b"---\ntitle: Hello World\nurl: https://x.example/hello\ntags: [AI, Open Science]\npublished_at: 2026-05-27T09:00:00Z\n---\n# Heading\n\nSome *text*.\n",
    )
    .expect("valid");
    assert_eq!(a.slug.as_str(), "hello-world");
    assert_eq!(a.tags[1].slug, "open-science");
    assert!(a.content_html.contains("<em>text</em>"));
    let e = markdown_article(Path::new("x.md"), b"no front matter").unwrap_err();
    assert_eq!(e.field, "front matter");
    let e = markdown_article(
        Path::new("x.md"),
        b"---\ntitle: T\nurl: https://x.example/\nfoo: 1\n---\n",
    )
    .unwrap_err();
    assert_eq!(e.field, "foo");
}

#[test]
fn rss_items_keep_their_guid() {
    let rss = br#"<?xml version="1.0"?><rss version="2.0"><channel><title>Old</title><link>https://old.example/</link><description>d</description>
<item><title>First &amp; best</title><link>https://old.example/posts/first-post.html</link><guid isPermaLink="false">old-guid-1</guid><pubDate>Wed, 27 May 2026 09:00:00 +0000</pubDate><category>AI</category><description>&lt;p&gt;Summary &amp;amp; more&lt;/p&gt;</description></item>
<item><title>No link</title></item>
</channel></rss>"#;
    let entries = feed_entries("old.xml", rss).expect("parses");
    let first = entries[0].article.as_ref().expect("valid");
    assert_eq!(first.id.as_deref(), Some("old-guid-1"));
    assert_eq!(first.slug.as_str(), "first-post");
    assert_eq!(first.title, "First & best");
    assert_eq!(first.tags[0].name, "AI");
    assert_eq!(entries[1].article.as_ref().unwrap_err().field, "url");
}
