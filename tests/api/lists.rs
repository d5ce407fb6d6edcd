//! Lists that page: `/api/subscribers`, `/api/suppressions` and `/api/articles` take `limit` and
//! an opaque `after`, answer `next` while there is more, and never repeat or skip a row when
//! rows are added between pages; without them the answer is everything, as before.

use crate::helpers::{import_subscribers, Daemon};

/// Follows `next` from `first` to the end, calling `between` after the first page; the items
/// under `key`, each named by `name`.
fn every_page(d: &Daemon, first: &str, key: &str, name: &str, between: impl Fn()) -> Vec<String> {
    let mut seen = Vec::new();
    let mut path = first.to_string();
    let joiner = if first.contains('?') { '&' } else { '?' };
    let base = first.to_string();
    for page in 0.. {
        let r = d.api("GET", &path, None);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let json = r.json();
        let items = json[key].as_array().expect("items").clone();
        seen.extend(
            items
                .iter()
                .map(|i| i[name].as_str().expect(name).to_string()),
        );
        if page == 0 {
            between();
        }
        match json["next"].as_str() {
            Some(next) => {
                let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
                path = format!("{base}{joiner}after={next}");
            }
            None => break,
        }
    }
    seen
}

fn add_subscriber(d: &Daemon, email: &str) {
    let body = serde_json::json!({ "email": email, "status": "confirmed" }).to_string();
    assert_eq!(d.api("POST", "/api/subscribers", Some(&body)).status, 201);
}

#[test]
fn subscribers_page_by_key_without_repeats_or_gaps_while_others_are_added() {
    let d = Daemon::start();
    import_subscribers(&d, 25);
    // Newest first, as the pages give them.
    let all: Vec<String> = (0..25)
        .rev()
        .map(|i| format!("reader{i:05}@example.com"))
        .collect();
    let seen = every_page(
        &d,
        "/api/subscribers?limit=10",
        "subscribers",
        "email",
        || {
            for i in 0..3 {
                add_subscriber(&d, &format!("late{i}@example.org"));
            }
        },
    );
    assert_eq!(seen, all);
    // Without limit or after: every subscriber, oldest first, and the exact total.
    let everyone = d.api("GET", "/api/subscribers", None).json();
    assert_eq!(everyone["total"], 28);
    assert_eq!(everyone["subscribers"].as_array().map(Vec::len), Some(28));
    assert!(everyone.get("next").is_none());
    let first = d.api("GET", "/api/subscribers?limit=5", None).json();
    assert_eq!(first["total"], 28);
    assert!(first.get("total_capped").is_none());
}

#[test]
fn subscribers_are_found_by_part_of_the_address_status_and_tag() {
    let d = Daemon::start();
    d.publish(r#"{"title":"Tagged","url":"https://blog.example/t","tags":["AI"]}"#);
    import_subscribers(&d, 12);
    let body = r#"{"email":"ann.tagged@example.net","status":"confirmed","tags":["ai"]}"#;
    assert_eq!(d.api("POST", "/api/subscribers", Some(body)).status, 201);
    let body = r#"{"email":"waiting@example.net"}"#;
    assert_eq!(d.api("POST", "/api/subscribers", Some(body)).status, 201);
    let r = d.api("GET", "/api/subscribers?q=example.net", None).json();
    assert_eq!(r["total"], 2);
    let r = d
        .api("GET", "/api/subscribers?q=00011&limit=5", None)
        .json();
    assert_eq!(r["subscribers"][0]["email"], "reader00011@example.com");
    assert_eq!(r["total"], 1);
    let r = d.api("GET", "/api/subscribers?tag=ai", None).json();
    assert_eq!(r["total"], 1);
    assert_eq!(r["subscribers"][0]["email"], "ann.tagged@example.net");
    let r = d
        .api("GET", "/api/subscribers?q=example.net&status=pending", None)
        .json();
    assert_eq!(r["total"], 1);
    assert_eq!(r["subscribers"][0]["email"], "waiting@example.net");
    // Today's parameter alone still answers as before.
    let r = d.api("GET", "/api/subscribers?status=pending", None).json();
    assert_eq!(r["total"], 1);
    let r = d.api("GET", "/api/subscribers?q=ab", None);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "q");
}

#[test]
fn a_limit_over_1000_or_after_with_offset_is_400_naming_it() {
    let d = Daemon::start();
    for path in [
        "/api/subscribers?limit=1001",
        "/api/suppressions?limit=1001",
        "/api/articles?limit=1001",
        "/api/articles?limit=0",
    ] {
        let r = d.api("GET", path, None);
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.json()["field"], "limit", "{path}");
    }
    let r = d.api("GET", "/api/articles?after=1.1&offset=2", None);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "after");
    for path in [
        "/api/subscribers?after=me",
        "/api/suppressions?after=me",
        "/api/articles?after=me",
    ] {
        let r = d.api("GET", path, None);
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.json()["field"], "after", "{path}");
    }
}

#[test]
fn suppressions_and_articles_page_by_key_while_others_are_added() {
    let d = Daemon::start();
    for i in 0..7 {
        let body = format!(r#"{{"email":"gone{i}@example.org"}}"#);
        assert_eq!(d.api("POST", "/api/suppressions", Some(&body)).status, 201);
    }
    let seen = every_page(
        &d,
        "/api/suppressions?limit=3",
        "suppressions",
        "email",
        || {
            let body = r#"{"email":"later@example.org"}"#;
            assert_eq!(d.api("POST", "/api/suppressions", Some(body)).status, 201);
        },
    );
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 7, "{seen:?}");
    assert!(!seen.contains(&"later@example.org".to_string()));
    assert_eq!(d.api("GET", "/api/suppressions", None).json()["total"], 8);

    for i in 0..9 {
        d.publish(&format!(
            r#"{{"title":"Post {i}","url":"https://blog.example/{i}","tags":["AI"],"published_at":"2026-05-1{i}T09:00:00Z"}}"#
        ));
    }
    let newest_first: Vec<String> = (0..9).rev().map(|i| format!("post-{i}")).collect();
    let seen = every_page(&d, "/api/articles?limit=4", "articles", "slug", || {
        d.publish(r#"{"title":"Fresh","url":"https://blog.example/fresh","tags":["AI"]}"#);
    });
    assert_eq!(seen, newest_first);
    let seen = every_page(
        &d,
        "/api/articles?limit=4&tag=ai",
        "articles",
        "slug",
        || (),
    );
    assert_eq!(seen.len(), 10);
    let page = d.api("GET", "/api/articles?limit=2", None).json();
    assert_eq!(page["total"], 10);
    assert!(page["next"].is_string());
    // Without limit or after: as before (offset and limit default 100), no `next`.
    let all = d.api("GET", "/api/articles", None).json();
    assert_eq!(all["articles"].as_array().map(Vec::len), Some(10));
    assert!(all.get("next").is_none());
}

#[test]
fn past_10000_matches_the_total_is_capped_and_says_so() {
    let d = Daemon::start();
    import_subscribers(&d, 10_050);
    let r = d
        .api("GET", "/api/subscribers?q=example.com&limit=5", None)
        .json();
    assert_eq!(r["total"], 10_000);
    assert_eq!(r["total_capped"], true);
    assert_eq!(r["subscribers"].as_array().map(Vec::len), Some(5));
    let next = r["next"].as_str().expect("next").to_string();
    let r = d
        .api(
            "GET",
            &format!("/api/subscribers?limit=5&after={next}"),
            None,
        )
        .json();
    assert_eq!(r["total_capped"], true);
    // No filter and no cursor: the exact total.
    let r = d.api("GET", "/api/subscribers?limit=5", None).json();
    assert_eq!(r["total"], 10_050);
    assert!(r.get("total_capped").is_none());
}
