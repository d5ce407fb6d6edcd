//! The admin API: publishing, editing and removing articles, and what it refuses.

use crate::helpers::{article, titles, Daemon, TOKEN};

#[test]
fn api_without_the_token_is_401_and_writes_nothing() {
    let d = Daemon::start();
    let body = article("a", "A", &[], "2026-05-27T09:00:00Z");
    for auth in [None, Some("Bearer wrong-token-wrong-token"), Some(TOKEN)] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
        let r = d.request("POST", "/api/articles", &headers, Some(body.as_bytes()));
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(
            r.header("www-authenticate").as_deref(),
            Some("Bearer realm=\"tidings\"")
        );
        assert_eq!(
            r.header("connection").as_deref(),
            Some("close"),
            "the body was not read: the connection is not reused"
        );
    }
    let get = d.request("GET", "/api/articles", &[], None);
    assert_eq!(get.status, 401);
    assert_eq!(get.header("connection"), None, "no body: kept alive");
    assert_eq!(d.api("GET", "/api/articles", None).json()["total"], 0);
}

#[test]
fn api_without_a_configured_token_is_503_and_says_how_to_set_one() {
    let d = Daemon::start_with(&[("TIDINGS_ADMIN_TOKEN", "")]);
    let r = d.api("GET", "/api/articles", None);
    assert_eq!(r.status, 503);
    let msg = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(
        msg.contains("TIDINGS_ADMIN_TOKEN") && msg.contains("admin.token"),
        "{msg}"
    );
    let post = d.api(
        "POST",
        "/api/articles",
        Some(&article("a", "A", &[], "2026-05-27T09:00:00Z")),
    );
    assert_eq!(post.status, 503);
    assert_eq!(
        post.header("connection").as_deref(),
        Some("close"),
        "the body was not read: the connection is not reused"
    );
}

#[test]
fn a_published_article_is_in_the_feeds_when_the_api_answers() {
    let d = Daemon::start();
    let r = d.api(
        "POST",
        "/api/articles",
        Some(&article("hello", "Hello", &["AI"], "2026-05-27T09:00:00Z")),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("location").as_deref(), Some("/api/articles/hello"));
    let body = r.json();
    assert_eq!(body["status"], "created");
    assert_eq!(body["article"]["tag_slugs"][0], "ai");
    assert_eq!(titles(&d.get("/feed.xml").body), ["Hello"]);
    assert_eq!(titles(&d.get("/tags/ai/atom.xml").body), ["Hello"]);
}

#[test]
fn only_title_and_url_are_required() {
    let d = Daemon::start();
    let r = d.api(
        "POST",
        "/api/articles",
        Some(r#"{"title":"Open Science & You","url":"https://blog.example/x"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let a = r.json()["article"].clone();
    assert_eq!(a["slug"], "open-science-you");
    assert!(a["published_at"].as_str().is_some());
}

#[test]
fn posting_the_same_article_again_changes_nothing() {
    let d = Daemon::start();
    let body = article("same", "Same", &["AI"], "2026-05-27T09:00:00Z");
    let first = d.publish(&body);
    let etag = d.get("/feed.xml").header("etag");
    let r = d.api("POST", "/api/articles", Some(&body));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "unchanged");
    assert_eq!(r.json()["article"], first);
    assert_eq!(d.get("/feed.xml").header("etag"), etag);
}

#[test]
fn editing_keeps_the_id_and_moves_updated_at() {
    let d = Daemon::start();
    let first = d.publish(&article("edit", "Before", &["AI"], "2026-05-27T09:00:00Z"));
    let r = d.api(
        "PUT",
        "/api/articles/edit",
        Some(&article("edit", "After", &["AI"], "2026-05-27T09:00:00Z")),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let after = r.json()["article"].clone();
    assert_eq!(after["id"], first["id"]);
    assert_eq!(after["published_at"], first["published_at"]);
    assert!(after["updated_at"].as_str() > first["updated_at"].as_str());
    let atom = d.get("/atom.xml").text();
    assert!(atom.contains("After"));
}

#[test]
fn put_creates_an_article_at_a_new_slug() {
    let d = Daemon::start();
    let r = d.api(
        "PUT",
        "/api/articles/brand-new",
        Some(r#"{"title":"Brand new","url":"https://blog.example/b"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["article"]["slug"], "brand-new");
}

#[test]
fn delete_removes_and_a_second_delete_is_404() {
    let d = Daemon::start();
    d.publish(&article("gone", "Gone", &["AI"], "2026-05-27T09:00:00Z"));
    assert_eq!(d.api("DELETE", "/api/articles/gone", None).status, 204);
    assert!(titles(&d.get("/feed.xml").body).is_empty());
    let again = d.api("DELETE", "/api/articles/gone", None);
    assert_eq!(again.status, 404);
    assert_eq!(again.json()["field"], "slug");
}

#[test]
fn list_and_get_answer_with_the_article_format() {
    let d = Daemon::start();
    d.publish(&article("one", "One", &["AI"], "2026-05-26T09:00:00Z"));
    d.publish(&article("two", "Two", &["Ethics"], "2026-05-27T09:00:00Z"));
    let all = d.api("GET", "/api/articles", None).json();
    assert_eq!(all["total"], 2);
    assert_eq!(all["articles"][0]["slug"], "two");
    let ai = d.api("GET", "/api/articles?tag=ai", None).json();
    assert_eq!(ai["articles"].as_array().map(Vec::len), Some(1));
    let one = d.api("GET", "/api/articles/one", None);
    assert_eq!(one.json()["tags"][0], "AI");
    assert_eq!(d.api("GET", "/api/articles/none", None).status, 404);
}

/// Every kind of bad input: 400, an error naming the field, and nothing written.
#[test]
fn bad_input_is_400_naming_the_field_and_writes_nothing() {
    let d = Daemon::start();
    d.publish(&article("keep", "Keep", &["AI"], "2026-05-27T09:00:00Z"));
    let etag = d.get("/feed.xml").header("etag");
    let big = format!(
        r#"{{"title":"Big","url":"https://blog.example/big","content_html":"{}"}}"#,
        "x".repeat(1024 * 1024 + 10)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("missing title", br#"{"url":"https://blog.example/x"}"#.to_vec(), "title"),
        ("missing url", br#"{"title":"x"}"#.to_vec(), "url"),
        (
            "unparseable date",
            br#"{"title":"x","url":"https://blog.example/x","published_at":"27/05/2026"}"#.to_vec(),
            "published_at",
        ),
        (
            "date without zone",
            br#"{"title":"x","url":"https://blog.example/x","updated_at":"2026-05-27T09:00:00"}"#.to_vec(),
            "updated_at",
        ),
        (
            "unknown field",
            br#"{"title":"x","url":"https://blog.example/x","colour":"red"}"#.to_vec(),
            "colour",
        ),
        ("oversize body", big.into_bytes(), "body"),
        (
            "invalid UTF-8",
            b"{\"title\":\"\xff\xfe\",\"url\":\"https://blog.example/x\"}".to_vec(),
            "body",
        ),
        (
            "slug with a slash",
            br#"{"title":"x","url":"https://blog.example/x","slug":"a/b"}"#.to_vec(),
            "slug",
        ),
        (
            "wrong type",
            br#"{"title":"x","url":"https://blog.example/x","tags":"AI"}"#.to_vec(),
            "tags",
        ),
        ("not JSON", b"title=x".to_vec(), "body"),
        (
            "both contents",
            br#"{"title":"x","url":"https://blog.example/x","content_html":"a","content_markdown":"b"}"#
                .to_vec(),
            "content_markdown",
        ),
        (
            "id of another article",
            format!(
                r#"{{"title":"x","url":"https://blog.example/x","id":"{}"}}"#,
                d.api("GET", "/api/articles/keep", None).json()["id"]
                    .as_str()
                    .unwrap_or_default()
            )
            .into_bytes(),
            "id",
        ),
    ];
    let auth = format!("Bearer {TOKEN}");
    for (what, body, field) in cases {
        let r = d.request(
            "POST",
            "/api/articles",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            Some(&body),
        );
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        let json = r.json();
        assert_eq!(json["field"], field, "{what}: {json}");
        assert!(
            json["error"]
                .as_str()
                .unwrap_or_default()
                .starts_with(field),
            "{what}: {json}"
        );
    }
    let r = d.api(
        "PUT",
        "/api/articles/keep",
        Some(&article("other", "Other", &[], "2026-05-27T09:00:00Z")),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "slug");
    assert_eq!(d.api("GET", "/api/articles", None).json()["total"], 1);
    assert_eq!(d.get("/feed.xml").header("etag"), etag);
}
