//! What must hold for each parser of outside input, whatever the bytes: used by the fuzz targets
//! (`fuzz_targets/*.rs`) and by `tests/fuzz_corpus.rs`, which replays the committed corpus in a
//! plain `cargo test`. Besides "no panic": a rejected input changes nothing, an accepted one
//! round-trips.
#![allow(dead_code)]

use std::cell::RefCell;
use std::path::Path;

use tidings::catalog::{ArticleInput, ArticleJson, Catalog, Upserted};

/// A scratch catalog (and database) per thread, emptied before each input.
struct Scratch {
    _dir: tempfile::TempDir,
    catalog: Catalog,
    conn: rusqlite::Connection,
    config: tidings::config::Config,
}

thread_local! {
    static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
}

fn with_scratch<T>(f: impl FnOnce(&mut Scratch) -> T) -> T {
    SCRATCH.with(|cell| {
        let mut slot = cell.borrow_mut();
        let scratch = slot.get_or_insert_with(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("fuzz.db");
            let catalog = Catalog::open(&path).expect("catalog");
            let conn = tidings::db::open(&path).expect("db");
            Scratch {
                _dir: dir,
                catalog,
                conn,
                config: tidings::config::Config::default(),
            }
        });
        scratch
            .conn
            .execute_batch(
                "DELETE FROM subscribers; DELETE FROM article_tags; DELETE FROM articles;",
            )
            .expect("reset");
        f(scratch)
    })
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-06-01T12:00:00Z")
        .expect("time")
        .with_timezone(&chrono::Utc)
}

/// Everything the catalog holds, as the API would show it, for "changed nothing" checks.
fn catalog_state(catalog: &Catalog) -> Vec<String> {
    catalog
        .newest(None, 10_000, 0)
        .expect("newest")
        .iter()
        .map(|a| serde_json::to_string(&a.view()).expect("json"))
        .collect()
}

/// An accepted article is stored; written back out in the JSON format (what the API answers)
/// and read again, it is the same article: upserting it changes nothing.
fn upsert_round_trips(scratch: &mut Scratch, input: &ArticleInput) {
    let before = catalog_state(&scratch.catalog);
    let stored = match scratch.catalog.upsert(input, now()) {
        Ok((_, article)) => article,
        Err(_) => {
            assert_eq!(
                catalog_state(&scratch.catalog),
                before,
                "a rejected article changed the catalog"
            );
            return;
        }
    };
    let mut json = serde_json::to_value(stored.view()).expect("view");
    if let Some(o) = json.as_object_mut() {
        // Fields the answer adds to the input format.
        o.remove("added_at");
        o.remove("tag_slugs");
    }
    let bytes = serde_json::to_vec(&json).expect("json");
    let again = ArticleJson::from_json(&bytes)
        .and_then(ArticleInput::parse)
        .unwrap_or_else(|e| panic!("a stored article does not read back ({e}): {json}"));
    let (outcome, second) = scratch
        .catalog
        .upsert(&again, now())
        .expect("upsert the round trip");
    assert_eq!(
        outcome,
        Upserted::Unchanged,
        "the article written back out is not the same:\nfirst:  {}\nsecond: {}\ninput: {input:?}\nagain: {again:?}",
        serde_json::to_string(&stored.view()).unwrap_or_default(),
        serde_json::to_string(&second.view()).unwrap_or_default(),
    );
}

/// The JSON article format (API bodies, JSON import files).
pub fn article_json(data: &[u8]) {
    let Ok(input) = ArticleJson::from_json(data).and_then(ArticleInput::parse) else {
        return;
    };
    with_scratch(|s| upsert_round_trips(s, &input));
}

/// A Markdown file with YAML front matter.
pub fn markdown_front_matter(data: &[u8]) {
    let Ok(input) = tidings::catalog::import::markdown_article(Path::new("post.md"), data) else {
        return;
    };
    with_scratch(|s| upsert_round_trips(s, &input));
}

/// RSS, Atom or JSON Feed bytes, and JSON import files: a rejected file changes nothing, and
/// importing the same entries twice is safe (the second time changes nothing).
pub fn feed_import(data: &[u8]) {
    use tidings::catalog::import::{feed_entries, import_entries, json_entries};
    let parsed = [
        feed_entries("fuzz.xml", data),
        json_entries("fuzz.json", data),
    ];
    for entries in parsed.into_iter().flatten() {
        with_scratch(|s| {
            let again: Vec<_> = entries
                .iter()
                .map(|e| tidings::catalog::import::Entry {
                    position: e.position,
                    label: e.label.clone(),
                    article: e.article.clone(),
                })
                .collect();
            let before = catalog_state(&s.catalog);
            let first = import_entries(&mut s.catalog, entries, || {}).expect("import");
            if first.created + first.updated + first.unchanged == 0 {
                assert_eq!(
                    catalog_state(&s.catalog),
                    before,
                    "a rejected import changed the catalog"
                );
                return;
            }
            let after = catalog_state(&s.catalog);
            let second = import_entries(&mut s.catalog, again, || {}).expect("re-import");
            assert_eq!(
                (second.created, second.updated),
                (0, 0),
                "importing the same feed twice changed something: first {first}, then {second}"
            );
            assert_eq!(catalog_state(&s.catalog), after);
        });
    }
}

fn subscribers_csv(conn: &rusqlite::Connection) -> Vec<u8> {
    let mut out = Vec::new();
    tidings::subscribers::csv::export(conn, &mut out).expect("export");
    out
}

/// A CSV list of subscribers: rows that are all rejected change nothing; an accepted import,
/// exported and imported again, changes nothing.
pub fn subscriber_csv(data: &[u8]) {
    with_scratch(|s| {
        let before = subscribers_csv(&s.conn);
        let report = match tidings::subscribers::csv::import(&mut s.conn, &s.config, data) {
            Ok(r) => r,
            Err(_) => {
                assert_eq!(
                    subscribers_csv(&s.conn),
                    before,
                    "a refused file changed the list"
                );
                return;
            }
        };
        if report.created + report.updated == 0 {
            assert_eq!(
                subscribers_csv(&s.conn),
                before,
                "rejected rows changed the list"
            );
            return;
        }
        let exported = subscribers_csv(&s.conn);
        let again = tidings::subscribers::csv::import(&mut s.conn, &s.config, &exported)
            .expect("the export imports");
        assert!(
            again.rejected.is_empty() && again.created + again.updated == 0,
            "the export does not import back unchanged: {again}\n{}",
            String::from_utf8_lossy(&exported)
        );
        assert_eq!(subscribers_csv(&s.conn), exported);
    });
}

/// The subscribe and preference forms' body: whatever is sent, parsing does not panic; an
/// accepted email and preferences are valid by construction (they parse again from their text).
pub fn form_body(data: &[u8]) {
    use tidings::subscribers::{Cadence, SubscriberEmail, TimeZone};
    use tidings::web::pages::Form;
    let form = Form::parse(data);
    // Encoding the fields again gives the same fields.
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.0.iter())
        .finish();
    assert_eq!(
        Form::parse(encoded.as_bytes()).0,
        form.0,
        "fields do not round-trip"
    );
    if let Some(raw) = form.get("email") {
        if let Ok(email) = SubscriberEmail::parse(raw) {
            let text = email.to_string();
            assert!(!text.chars().any(char::is_control), "{text:?}");
            let again = SubscriberEmail::parse(&text).expect("an accepted email parses again");
            assert_eq!(again.to_string(), text);
        }
    }
    let config = tidings::config::Config::default();
    if let Ok(p) = form.preferences(&config) {
        assert_eq!(Cadence::parse(p.cadence.as_str()).ok(), Some(p.cadence));
        assert_eq!(
            TimeZone::parse(p.time_zone.name())
                .map(|z| z.name().to_string())
                .ok(),
            Some(p.time_zone.name().to_string())
        );
    }
}

/// `If-None-Match`, `If-Modified-Since` and `Accept-Encoding`: any values give a 200 with the
/// right variant or a 304 with no body; a resource's own ETag (and `*`, and its weak form)
/// matches it.
pub fn conditional_headers(data: &[u8]) {
    use http::header::{ACCEPT_ENCODING, IF_MODIFIED_SINCE, IF_NONE_MATCH};
    use http::{HeaderMap, HeaderValue, StatusCode};
    use tidings::web::conditional::{accepts_gzip, etag_matches, respond};
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let inm = parts.next().unwrap_or_default();
    let ims = parts.next().unwrap_or_default();
    let ae = parts.next().unwrap_or_default();
    let rendered = tidings::feeds::cache::Rendered::new(
        "application/rss+xml; charset=utf-8",
        bytes::Bytes::from_static(b"<rss version=\"2.0\"><channel/></rss>"),
        chrono::DateTime::parse_from_rfc3339("2026-05-27T09:00:00Z").expect("time"),
    )
    .with_gzip();
    let etag = rendered.identity.etag.clone();
    assert!(etag_matches(&etag, &etag));
    assert!(etag_matches(&HeaderValue::from_static("*"), &etag));
    let weak =
        HeaderValue::from_str(&format!("W/{}", etag.to_str().expect("ascii"))).expect("weak");
    assert!(etag_matches(&weak, &etag), "weak comparison");
    let mut headers = HeaderMap::new();
    for (name, value) in [
        (IF_NONE_MATCH, inm),
        (IF_MODIFIED_SINCE, ims),
        (ACCEPT_ENCODING, ae),
    ] {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            if !value.is_empty() {
                headers.insert(name, v);
            }
        }
    }
    let cache_control = HeaderValue::from_static("public, max-age=300");
    let response = respond(&headers, &rendered, &cache_control);
    match response.status() {
        StatusCode::NOT_MODIFIED => {
            let len = http::header::CONTENT_LENGTH;
            assert!(response.headers().get(len).is_none(), "a 304 has no body");
        }
        StatusCode::OK => {
            let gz = accepts_gzip(&headers);
            let encoding = response.headers().get(http::header::CONTENT_ENCODING);
            assert_eq!(encoding.is_some(), gz, "gzip exactly when accepted");
            let expected = if gz {
                rendered.gzip.as_ref().expect("gzip").etag.clone()
            } else {
                rendered.identity.etag.clone()
            };
            assert_eq!(response.headers().get(http::header::ETAG), Some(&expected));
        }
        other => panic!("unexpected status {other}"),
    }
    // Without If-None-Match, an If-Modified-Since at or after Last-Modified is a 304.
    let mut fresh = HeaderMap::new();
    fresh.insert(IF_MODIFIED_SINCE, rendered.last_modified.clone());
    assert_eq!(
        respond(&fresh, &rendered, &cache_control).status(),
        StatusCode::NOT_MODIFIED
    );
}
