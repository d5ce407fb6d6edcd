//! The console's subscriber pages: search among many, paging, one subscriber's timeline and the
//! actions on it, bulk actions on everything a search matched.

use crate::console_client::{add_account, field, Console};
use crate::helpers::{import_subscribers, Daemon};

const PASSWORD: &str = "correct horse battery staple";

fn status_of(d: &Daemon, email: &str) -> Option<String> {
    d.db()
        .query_row(
            "SELECT status FROM subscribers WHERE email = ?1",
            &[&email],
            |r| r.get(0),
        )
        .ok()
}

fn addresses(html: &str) -> Vec<String> {
    html.split("<td><a href=\"/admin/subscribers/")
        .skip(1)
        .filter_map(|s| {
            s.split('>')
                .nth(1)
                .and_then(|s| s.split('<').next())
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn a_search_finds_any_part_of_the_address_counts_and_pages_by_key() {
    let d = Daemon::start();
    import_subscribers(&d, 10_050);
    add_account(&d, "vic", "viewer", PASSWORD);
    let mut vic = Console::signed_in(&d, "vic", PASSWORD);
    let page = vic.get("/admin/subscribers?q=r0421");
    assert_eq!(page.status, 200);
    let found = addresses(&page.text());
    assert_eq!(found.len(), 10, "{found:?}");
    assert!(found.iter().all(|a| a.starts_with("reader0421")));
    assert!(page
        .text()
        .contains("<p class=\"count\" role=\"status\">10 match</p>"));
    let one = vic.get("/admin/subscribers?q=04217%40EXAMPLE");
    assert_eq!(addresses(&one.text()), vec!["reader04217@example.com"]);
    assert!(one.text().contains(">1 match<"));
    // More than 10,000 matches: not counted past that.
    let many = vic.get("/admin/subscribers?q=example.com");
    assert!(
        many.text().contains("more than 10,000 match"),
        "{}",
        many.text()
    );
    let first = addresses(&many.text());
    assert_eq!(first.len(), 50);
    let next = many
        .text()
        .split("after=")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a next page")
        .to_string();
    // Someone subscribes between the pages: the next page neither repeats nor skips a row.
    let _ = d.api(
        "POST",
        "/api/subscribers",
        Some(r#"{"email": "newcomer@example.com"}"#),
    );
    let second = addresses(
        &vic.get(&format!("/admin/subscribers?q=example.com&after={next}"))
            .text(),
    );
    assert_eq!(second.len(), 50);
    assert!(second.iter().all(|a| !first.contains(a)));
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    let mut sorted = all.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(
        all, sorted,
        "newest first, continuing where the first page ended"
    );
    // Too short a query names the field.
    let short = vic.get("/admin/subscribers?q=ab");
    assert_eq!(short.status, 400);
    assert!(short.text().contains("q: needs at least 3 characters"));
    let filtered = vic.get("/admin/subscribers?q=r0421&status=pending");
    assert_eq!(addresses(&filtered.text()).len(), 0);
}

#[test]
fn a_bulk_action_shows_the_count_first_then_applies_to_what_matches() {
    let d = Daemon::start();
    import_subscribers(&d, 30);
    add_account(&d, "ann", "owner", PASSWORD);
    add_account(&d, "vic", "viewer", PASSWORD);
    let mut vic = Console::signed_in(&d, "vic", PASSWORD);
    let csrf = vic.csrf();
    let refused = vic.post(
        "/admin/subscribers/bulk",
        &[
            ("csrf", &csrf),
            ("q", "reader0001"),
            ("action", "unsubscribe"),
            ("confirmed", "yes"),
        ],
    );
    assert_eq!(refused.status, 403);
    assert_eq!(
        status_of(&d, "reader00011@example.com").as_deref(),
        Some("confirmed")
    );

    let mut ann = Console::signed_in(&d, "ann", PASSWORD);
    let csrf = ann.csrf();
    let confirm = ann.post(
        "/admin/subscribers/bulk",
        &[
            ("csrf", &csrf),
            ("q", "reader0001"),
            ("action", "unsubscribe"),
        ],
    );
    assert_eq!(confirm.status, 200);
    assert!(
        confirm
            .text()
            .contains("<strong>10</strong> subscribers match"),
        "{}",
        confirm.text()
    );
    assert_eq!(
        status_of(&d, "reader00011@example.com").as_deref(),
        Some("confirmed"),
        "not yet"
    );
    let done = ann.post(
        "/admin/subscribers/bulk",
        &[
            ("csrf", &csrf),
            ("q", "reader0001"),
            ("action", "unsubscribe"),
            ("confirmed", "yes"),
        ],
    );
    assert_eq!(done.status, 200, "{}", done.text());
    assert!(done.text().contains("10 subscribers changed"));
    for i in 10..20 {
        assert_eq!(
            status_of(&d, &format!("reader{i:05}@example.com")).as_deref(),
            Some("unsubscribed")
        );
    }
    assert_eq!(
        status_of(&d, "reader00020@example.com").as_deref(),
        Some("confirmed")
    );
    // The dashboard's confirmed line follows a bulk change, and a bulk delete.
    let today = chrono::Utc::now().date_naive().to_string();
    let confirmed_today = |c: &mut Console| {
        let page = c.get("/admin").text();
        page.split(&format!("<td>{today}</td><td class=\"num\">"))
            .nth(1)
            .and_then(|s| s.split('<').next())
            .and_then(|n| n.parse::<i64>().ok())
    };
    assert_eq!(confirmed_today(&mut ann), Some(20));
    let deleted = ann.post(
        "/admin/subscribers/bulk",
        &[
            ("csrf", &csrf),
            ("q", "reader0002"),
            ("action", "delete"),
            ("confirmed", "yes"),
        ],
    );
    assert!(
        deleted.text().contains("10 subscribers changed"),
        "{}",
        deleted.text()
    );
    assert_eq!(confirmed_today(&mut ann), Some(10));
    let audit: Vec<(String, String, String)> = d
        .db()
        .query_map(
            "SELECT actor, action, target FROM audit_log WHERE action LIKE 'subscribers.%' ORDER BY id",
            &[],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("audited");
    assert_eq!(
        audit,
        vec![
            (
                "ann".into(),
                "subscribers.unsubscribe".into(),
                "q=reader0001".into()
            ),
            (
                "ann".into(),
                "subscribers.delete".into(),
                "q=reader0002".into()
            ),
        ]
    );

    // The export is a CSV of everything matched, in the import's format.
    let csv = ann.post(
        "/admin/subscribers/bulk",
        &[
            ("csrf", &csrf),
            ("q", "reader0000"),
            ("action", "export"),
            ("confirmed", "yes"),
        ],
    );
    assert_eq!(csv.status, 200);
    assert!(csv
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/csv"));
    let text = csv.text();
    assert!(text.starts_with("email,"), "{text}");
    assert_eq!(text.lines().count(), 11, "a header and 10 rows: {text}");
    assert!(
        field(&vic.get("/admin/subscribers").text(), "action").is_none(),
        "no bulk form for a viewer"
    );
}

#[test]
fn one_subscribers_page_shows_their_timeline_and_an_owner_suppresses_and_lifts() {
    let d = Daemon::start();
    import_subscribers(&d, 2);
    add_account(&d, "ann", "owner", PASSWORD);
    let mut ann = Console::signed_in(&d, "ann", PASSWORD);
    let page = ann.get("/admin/subscribers/reader00001%40example.com");
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(text.contains("<h1>reader00001@example.com</h1>"));
    let timeline = text
        .split("<ol class=\"timeline\">")
        .nth(1)
        .unwrap_or_default();
    let subscribed = timeline
        .find("<strong>subscribed</strong> · via csv")
        .expect("subscribed first");
    let confirmed = timeline
        .find("<strong>confirmed</strong> · via csv")
        .expect("then confirmed");
    assert!(subscribed < confirmed);
    let csrf = field(&text, "csrf").expect("csrf");
    let suppressed = ann.post(
        "/admin/subscribers/reader00001%40example.com",
        &[("csrf", &csrf), ("action", "suppress")],
    );
    assert_eq!(suppressed.status, 303, "back to the page");
    let text = ann
        .get(&suppressed.header("location").expect("location"))
        .text();
    assert!(text.contains("Done: suppressed."));
    assert!(text.contains("<strong>suppressed</strong> · via admin"));
    assert!(
        text.contains("<strong>subscriber.suppress</strong> · via ann (console)"),
        "{text}"
    );
    assert_eq!(
        status_of(&d, "reader00001@example.com").as_deref(),
        Some("unsubscribed")
    );
    let lifted = ann.post(
        "/admin/subscribers/reader00001%40example.com",
        &[("csrf", &csrf), ("action", "lift")],
    );
    let text = ann
        .get(&lifted.header("location").expect("location"))
        .text();
    assert!(text.contains("Done: suppression lifted."));
    // The page says only what an action did, never text from the link.
    let spoofed = ann.get("/admin/subscribers/reader00001%40example.com?done=call+us+now");
    assert!(!spoofed.text().contains("call us now"));
    // Deleting asks first.
    let ask = ann.post(
        "/admin/subscribers/reader00000%40example.com",
        &[("csrf", &csrf), ("action", "delete")],
    );
    assert!(ask
        .text()
        .contains("Delete <strong>reader00000@example.com</strong>"));
    assert!(status_of(&d, "reader00000@example.com").is_some());
    let gone = ann.post(
        "/admin/subscribers/reader00000%40example.com",
        &[("csrf", &csrf), ("action", "delete"), ("confirmed", "yes")],
    );
    assert_eq!(gone.status, 303);
    assert!(status_of(&d, "reader00000@example.com").is_none());
    // The history outlives the row.
    let after = ann.get("/admin/subscribers/reader00000%40example.com");
    assert_eq!(after.status, 200);
    assert!(after.text().contains("subscriber.delete"));
}

#[test]
fn an_address_holding_markup_comes_out_escaped_on_every_page() {
    let d = Daemon::start();
    // Quoted local parts may hold `<`, `>` and `&` (RFC 5321), so such addresses are real.
    let quoted = "\"<script>alert(1)</script>\"@example.org";
    let r = d.api(
        "POST",
        "/api/subscribers",
        Some(&serde_json::json!({"email": quoted}).to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let suppressed = "\"o'neil&<b>x</b>\"@example.org";
    let r = d.api(
        "POST",
        "/api/suppressions",
        Some(&serde_json::json!({"email": suppressed}).to_string()),
    );
    assert!(r.status < 300, "{} {}", r.status, r.text());
    add_account(&d, "ann", "owner", PASSWORD);
    let mut ann = Console::signed_in(&d, "ann", PASSWORD);
    let subscriber_page = format!("/admin/subscribers/{}", urlencoding(quoted));
    let shown = [
        (
            "/admin/subscribers",
            "&lt;script&gt;alert(1)&lt;/script&gt;",
        ),
        (
            "/admin/subscribers?q=script",
            "&lt;script&gt;alert(1)&lt;/script&gt;",
        ),
        (
            subscriber_page.as_str(),
            "&lt;script&gt;alert(1)&lt;/script&gt;",
        ),
        ("/admin/suppressions", "&lt;b&gt;x&lt;/b&gt;"),
    ];
    for (path, escaped) in shown {
        let text = ann.get(path).text();
        assert!(text.contains(escaped), "{path} does not show {escaped}");
    }
    for path in [
        "/admin",
        "/admin/subscribers",
        "/admin/subscribers?q=script",
        "/admin/suppressions",
        "/admin/audit",
        "/admin/outbox",
        "/admin/subscribers/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        subscriber_page.as_str(),
    ] {
        let text = ann.get(path).text();
        assert!(!text.contains("<script>alert"), "{path} holds raw markup");
        assert!(!text.contains("<b>x</b>"), "{path} holds raw markup");
    }
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
