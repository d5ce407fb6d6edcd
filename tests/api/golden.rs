//! The feeds of a fixed catalog (2,000 articles over 200 tags, fixed ids and dates) against golden
//! files: every feed's bytes (by length and BLAKE3), its ETag and its `Last-Modified`, and the full
//! bytes of the site feeds and of one tag's feeds. The golden files were made by the code that
//! rendered every feed at start; however feeds come to be rendered, readers must get these bytes.
//!
//! `TIDINGS_WRITE_GOLDEN=1 cargo test --test api golden` writes them again (only for a change
//! that means to change what readers get).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::helpers::Daemon;

pub const ARTICLES: usize = 2_000;
pub const TAGS: usize = 200;
const FORMATS: [&str; 3] = ["feed.xml", "atom.xml", "feed.json"];
/// The tag whose feeds are kept whole beside the site's.
const WHOLE_TAG: &str = "topic-007";

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/feeds")
}

/// Tag `t`'s name: mostly plain, some with characters every format must escape.
pub fn tag_name(t: usize) -> String {
    match t % 50 {
        0 => format!("Topic {t:03} & <Co>"),
        25 => format!("Topic {t:03} \"quoted\""),
        _ => format!("Topic {t:03}"),
    }
}

/// The fixture: article `i` is published `i` hours after 2026-01-01, tagged with up to three of
/// the 200 tags; a few have an author, an update or markup to escape.
pub fn fixture_json() -> String {
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").expect("date");
    let articles: Vec<serde_json::Value> = (0..ARTICLES)
        .map(|i| {
            let published = start + chrono::Duration::hours(i as i64);
            let updated = published + chrono::Duration::minutes((i % 3) as i64 * 17);
            let tags: BTreeSet<usize> = [i % TAGS, (i * 7 + 3) % TAGS, (i * 13 + 5) % TAGS]
                .into_iter()
                .take(1 + i % 3)
                .collect();
            let mut a = serde_json::json!({
                "id": format!("urn:golden:{i}"),
                "slug": format!("golden-{i:04}"),
                "title": format!("Golden article {i} <about> \"things\" & more"),
                "url": format!("https://blog.example/articles/golden-{i:04}"),
                "summary": format!("Summary of article {i}: ünïcödé, 5 < 6 & \"quotes\"."),
                "content_html": format!(
                    "<p>Article <strong>{i}</strong> says <a href=\"https://example.org/{i}\">this</a> &amp; that.</p><ul><li>one</li><li>two</li></ul>"
                ),
                "published_at": published.to_rfc3339(),
                "updated_at": updated.to_rfc3339(),
                "tags": tags.into_iter().map(tag_name).collect::<Vec<_>>(),
            });
            if i % 7 == 0 {
                a["author"] = serde_json::json!(format!("Writer {} O'Brien", i % 5));
            }
            a
        })
        .collect();
    serde_json::to_string(&articles).expect("fixture JSON")
}

/// Every tag's slug in the fixture.
pub fn tag_slugs() -> Vec<String> {
    (0..TAGS)
        .map(|t| {
            let name = tag_name(t);
            let mut slug = String::new();
            for c in name.to_lowercase().chars() {
                if c.is_ascii_alphanumeric() {
                    slug.push(c);
                } else if !slug.ends_with('-') {
                    slug.push('-');
                }
            }
            slug.trim_matches('-').to_string()
        })
        .collect()
}

/// Every feed's path: the site's three, then each tag's three.
pub fn feed_paths() -> Vec<String> {
    let mut paths: Vec<String> = FORMATS.iter().map(|f| format!("/{f}")).collect();
    for slug in tag_slugs() {
        paths.extend(FORMATS.iter().map(|f| format!("/tags/{slug}/{f}")));
    }
    paths
}

/// A daemon on the fixture catalog, imported by the CLI while it was stopped.
pub fn fixture_daemon(extra: &[(&str, &str)]) -> Daemon {
    daemon_on(&fixture_json(), extra)
}

/// A daemon on the catalog `json` (a JSON array of articles), imported by the CLI while it was
/// stopped.
pub fn daemon_on(json: &str, extra: &[(&str, &str)]) -> Daemon {
    let mut d = Daemon::start_with(extra);
    d.stop();
    let file = d.dir.join("catalog.json");
    std::fs::write(&file, json).expect("write catalog");
    let out = d.cli(&["import", file.to_str().expect("path")]);
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.start_again();
    d
}

/// What the golden manifest says of one feed: its path, length, BLAKE3, ETag and Last-Modified.
fn manifest_line(path: &str, body: &[u8], etag: &str, last_modified: &str) -> String {
    format!(
        "{path}\t{}\t{}\t{etag}\t{last_modified}\n",
        body.len(),
        blake3::hash(body).to_hex()
    )
}

fn whole_file(path: &str) -> Option<String> {
    let name = match path.strip_prefix(&format!("/tags/{WHOLE_TAG}/")) {
        Some(format) => format!("tag-{format}"),
        None if path.matches('/').count() == 1 => format!("site-{}", &path[1..]),
        None => return None,
    };
    Some(name)
}

#[test]
fn every_feed_of_the_fixture_catalog_matches_its_golden_bytes_etag_and_last_modified() {
    let d = fixture_daemon(&[]);
    let mut manifest = String::new();
    let mut served = Vec::new();
    for path in feed_paths() {
        let r = d.get(&path);
        assert_eq!(r.status, 200, "{path}");
        let etag = r.header("etag").expect("ETag");
        let last_modified = r.header("last-modified").expect("Last-Modified");
        manifest.push_str(&manifest_line(&path, &r.body, &etag, &last_modified));
        served.push((path, r.body));
    }
    let dir = golden_dir();
    if std::env::var("TIDINGS_WRITE_GOLDEN").is_ok() {
        std::fs::write(dir.join("manifest.tsv"), &manifest).expect("write manifest");
        for (path, body) in &served {
            if let Some(name) = whole_file(path) {
                std::fs::write(dir.join(name), body).expect("write golden feed");
            }
        }
        return;
    }
    for (path, body) in &served {
        if let Some(name) = whole_file(path) {
            let golden = std::fs::read(dir.join(&name)).expect("golden feed");
            assert_eq!(
                String::from_utf8_lossy(body),
                String::from_utf8_lossy(&golden),
                "{path} differs from tests/golden/feeds/{name}"
            );
        }
    }
    let golden = std::fs::read_to_string(dir.join("manifest.tsv")).expect("golden manifest");
    let mut differ = String::new();
    for (got, want) in manifest.lines().zip(golden.lines()) {
        if got != want {
            let _ = writeln!(differ, "served: {got}\ngolden: {want}");
        }
    }
    assert!(
        differ.is_empty(),
        "feeds differ from the golden files:\n{differ}"
    );
    assert_eq!(
        manifest.lines().count(),
        golden.lines().count(),
        "the number of feeds"
    );
}
