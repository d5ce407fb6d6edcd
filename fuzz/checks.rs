//! What must hold for each parser of outside input, whatever the bytes: used by the fuzz targets
//! (`fuzz_targets/*.rs`) and by `tests/fuzz_corpus.rs`, which replays the committed corpus in a
//! plain `cargo test`. Besides "no panic": a rejected input changes nothing, an accepted one
//! round-trips.
#![allow(dead_code)]

use std::cell::RefCell;
use std::path::Path;

use tidings::catalog::{ArticleInput, ArticleJson, Catalog, Upserted};
use tidings::store::{Mode, Store};

/// A scratch catalog (and database) per thread, emptied before each input.
struct Scratch {
    _dir: tempfile::TempDir,
    catalog: Catalog,
    store: Store,
    runtime: tokio::runtime::Runtime,
    config: tidings::config::Config,
}

impl Scratch {
    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
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
            let store = Store::open_sqlite(&path, 1).expect("db");
            Scratch {
                _dir: dir,
                catalog: Catalog::new(store.clone()),
                store,
                runtime: tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime"),
                config: tidings::config::Config::default(),
            }
        });
        scratch
            .store
            .blocking(Mode::Write, |db| {
                db.execute_batch(
                    "DELETE FROM subscribers; DELETE FROM article_tags; DELETE FROM articles;",
                )
            })
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
fn catalog_state(scratch: &Scratch) -> Vec<String> {
    scratch
        .store
        .blocking(Mode::Read, |db| {
            tidings::catalog::store::newest(db, None, 10_000, 0)
        })
        .expect("newest")
        .iter()
        .map(|a| serde_json::to_string(&a.view()).expect("json"))
        .collect()
}

/// An accepted article is stored; written back out in the JSON format (what the API answers)
/// and read again, it is the same article: upserting it changes nothing.
fn upsert_round_trips(scratch: &mut Scratch, input: &ArticleInput) {
    let before = catalog_state(scratch);
    let stored = match scratch.block_on(scratch.catalog.upsert(input.clone(), now())) {
        Ok((_, article)) => article,
        Err(_) => {
            assert_eq!(
                catalog_state(scratch),
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
        .block_on(scratch.catalog.upsert(again.clone(), now()))
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
            let before = catalog_state(s);
            let first = s
                .block_on(import_entries(&s.catalog, entries.into(), || {}))
                .expect("import");
            if first.created + first.updated + first.unchanged == 0 {
                assert_eq!(
                    catalog_state(s),
                    before,
                    "a rejected import changed the catalog"
                );
                return;
            }
            let after = catalog_state(s);
            let second = s
                .block_on(import_entries(&s.catalog, again.into(), || {}))
                .expect("re-import");
            assert_eq!(
                (second.created, second.updated),
                (0, 0),
                "importing the same feed twice changed something: first {first}, then {second}"
            );
            assert_eq!(catalog_state(s), after);
        });
    }
}

fn subscribers_csv(store: &Store) -> Vec<u8> {
    let mut out = Vec::new();
    store
        .blocking(Mode::Read, |db| {
            tidings::subscribers::csv::export(db, &mut out)
        })
        .expect("export");
    out
}

fn import_csv(
    s: &Scratch,
    data: &[u8],
) -> Result<tidings::subscribers::csv::Report, tidings::subscribers::flow::FlowError> {
    s.store.blocking(Mode::Write, |db| {
        tidings::subscribers::csv::import(db, &s.config, data)
    })
}

/// A CSV list of subscribers: rows that are all rejected change nothing; an accepted import,
/// exported and imported again, changes nothing.
pub fn subscriber_csv(data: &[u8]) {
    with_scratch(|s| {
        let before = subscribers_csv(&s.store);
        let report = match import_csv(s, data) {
            Ok(r) => r,
            Err(_) => {
                assert_eq!(
                    subscribers_csv(&s.store),
                    before,
                    "a refused file changed the list"
                );
                return;
            }
        };
        if report.created + report.updated == 0 {
            assert_eq!(
                subscribers_csv(&s.store),
                before,
                "rejected rows changed the list"
            );
            return;
        }
        let exported = subscribers_csv(&s.store);
        let again = import_csv(s, &exported).expect("the export imports");
        assert!(
            again.rejected.is_empty() && again.created + again.updated == 0,
            "the export does not import back unchanged: {again}\n{}",
            String::from_utf8_lossy(&exported)
        );
        assert_eq!(subscribers_csv(&s.store), exported);
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
    // One resource for every input (compressing it each time would dominate the run).
    static RENDERED: std::sync::OnceLock<tidings::feeds::cache::Rendered> =
        std::sync::OnceLock::new();
    let rendered = RENDERED.get_or_init(|| {
        tidings::feeds::cache::Rendered::new(
            "application/rss+xml; charset=utf-8",
            bytes::Bytes::from_static(b"<rss version=\"2.0\"><channel/></rss>"),
            chrono::DateTime::parse_from_rfc3339("2026-05-27T09:00:00Z").expect("time"),
        )
        .with_gzip()
    });
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
    let response = respond(&headers, rendered, &cache_control);
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
    // The three checks below compare with the RFC 9110 rules, written out independently.
    // Accept-Encoding (RFC 9110 §12.5.3): an explicit `gzip` entry decides; otherwise `*` does;
    // `q=0` means "not acceptable". Judged only where the header is well-formed.
    if let Some(expected) = gzip_acceptable(&headers) {
        assert_eq!(
            accepts_gzip(&headers),
            expected,
            "Accept-Encoding {:?}",
            headers.get_all(ACCEPT_ENCODING).iter().collect::<Vec<_>>()
        );
    }
    // If-None-Match (RFC 9110 §13.1.2): `*`, or any listed entity-tag weakly equal to ours.
    if let Some(v) = headers.get(IF_NONE_MATCH) {
        for ours in [&rendered.identity.etag, &etag_of(b"\"fuzz\"")] {
            if let Some(expected) = if_none_match_hits(v.as_bytes(), ours.as_bytes()) {
                assert_eq!(
                    etag_matches(v, ours),
                    expected,
                    "If-None-Match {v:?}, ETag {ours:?}"
                );
            }
        }
    }
    // If-Modified-Since counts only without If-None-Match (RFC 9110 §13.1.3); then a date at or
    // after Last-Modified, in any of the three HTTP date formats, is a 304, an earlier one a 200.
    if headers.get(IF_NONE_MATCH).is_none() {
        let since = headers
            .get(IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        let expected = match since {
            Some(since) if since >= rendered.last_modified_time() => StatusCode::NOT_MODIFIED,
            _ => StatusCode::OK,
        };
        assert_eq!(response.status(), expected, "If-Modified-Since {since:?}");
        if let Some(since) = since {
            let secs = since
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            for text in http_date_formats(secs) {
                let mut h = HeaderMap::new();
                h.insert(
                    IF_MODIFIED_SINCE,
                    HeaderValue::from_str(&text).expect("date"),
                );
                assert_eq!(
                    respond(&h, rendered, &cache_control).status(),
                    expected,
                    "If-Modified-Since {text:?}"
                );
            }
        }
    }
    // Without If-None-Match, an If-Modified-Since at or after Last-Modified is a 304.
    let mut fresh = HeaderMap::new();
    fresh.insert(IF_MODIFIED_SINCE, rendered.last_modified.clone());
    assert_eq!(
        respond(&fresh, rendered, &cache_control).status(),
        StatusCode::NOT_MODIFIED
    );
}

fn etag_of(s: &[u8]) -> http::HeaderValue {
    http::HeaderValue::from_bytes(s).expect("etag")
}

/// RFC 9110's `Accept-Encoding = #( codings [ weight ] )`, `weight = OWS ";" OWS "q=" qvalue`:
/// whether gzip is acceptable, or `None` where a value is not of that form (or lists gzip, `*`
/// or x-gzip twice or more), which the server may read as it likes.
fn gzip_acceptable(headers: &http::HeaderMap) -> Option<bool> {
    let mut gzip: Option<bool> = None;
    let mut star: Option<bool> = None;
    for value in headers.get_all(http::header::ACCEPT_ENCODING) {
        let text = value.to_str().ok()?;
        for element in text.split(',') {
            let element = element.trim_matches([' ', '\t']);
            if element.is_empty() {
                continue;
            }
            let (name, weight) = match element.split_once(';') {
                None => (element, None),
                Some((n, w)) => (n.trim_end_matches([' ', '\t']), Some(w)),
            };
            let token = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            };
            if !token(name) {
                return None;
            }
            let positive = match weight {
                None => true,
                Some(w) => {
                    let w = w.trim_start_matches([' ', '\t']);
                    let q = w.strip_prefix("q=").or_else(|| w.strip_prefix("Q="))?;
                    let (int, frac) = q.split_once('.').unwrap_or((q, ""));
                    let frac_ok = frac.len() <= 3 && frac.bytes().all(|b| b.is_ascii_digit());
                    match int {
                        "0" if frac_ok && (q.len() == 1 || q.contains('.')) => {
                            frac.bytes().any(|b| b != b'0')
                        }
                        "1" if frac_ok && frac.bytes().all(|b| b == b'0') => true,
                        _ => return None,
                    }
                }
            };
            let slot = if name.eq_ignore_ascii_case("gzip") {
                &mut gzip
            } else if name == "*" {
                &mut star
            } else if name.eq_ignore_ascii_case("x-gzip") {
                return None;
            } else {
                continue;
            };
            if slot.replace(positive).is_some() {
                return None;
            }
        }
    }
    Some(gzip.or(star).unwrap_or(false))
}

/// RFC 9110's `If-None-Match = "*" / #entity-tag` against `ours` (a strong tag with no comma,
/// as the server makes them): `None` where the value is not of that form or not visible ASCII.
fn if_none_match_hits(value: &[u8], ours: &[u8]) -> Option<bool> {
    if !value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return None;
    }
    let ows = |s: &[u8]| -> usize { s.iter().take_while(|&&b| b == b' ' || b == b'\t').count() };
    let trimmed = {
        let start = ows(value);
        let end = value.len()
            - value
                .iter()
                .rev()
                .take_while(|&&b| b == b' ' || b == b'\t')
                .count();
        &value[start.min(end)..end]
    };
    if trimmed == b"*" {
        return Some(true);
    }
    let mut rest = trimmed;
    let mut hit = false;
    loop {
        rest = &rest[ows(rest)..];
        if let Some(r) = rest.strip_prefix(b",") {
            rest = r;
            continue;
        }
        if rest.is_empty() {
            return Some(hit);
        }
        let body = rest.strip_prefix(b"W/").unwrap_or(rest);
        let body = body.strip_prefix(b"\"")?;
        let close = body.iter().position(|&b| b == b'"')?;
        if !body[..close]
            .iter()
            .all(|&b| b == 0x21 || (0x23..0x7f).contains(&b))
        {
            return None;
        }
        hit |= ours.len() == close + 2 && ours[1..close + 1] == body[..close];
        rest = &body[close + 1..];
        rest = &rest[ows(rest)..];
        match rest.first() {
            None => return Some(hit),
            Some(b',') => rest = &rest[1..],
            Some(_) => return None,
        }
    }
}

/// The same instant in IMF-fixdate, RFC 850 and asctime form, for the years where RFC 850's
/// two-digit year is unambiguous to httpdate (1970-2069).
fn http_date_formats(secs: u64) -> Vec<String> {
    let Some(t) = i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
    else {
        return Vec::new();
    };
    let mut out = vec![t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()];
    if (1970..2070).contains(&chrono::Datelike::year(&t)) {
        out.push(t.format("%A, %d-%b-%y %H:%M:%S GMT").to_string());
        out.push(t.format("%a %b %e %H:%M:%S %Y").to_string());
    }
    out
}
