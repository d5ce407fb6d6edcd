//! `tidings import`: a JSON array of articles, a folder of Markdown files with front matter, or an
//! existing RSS/Atom/JSON feed (file or http URL). Every entry goes through `ArticleInput::parse`
//! and `Catalog::upsert`; bad entries are reported by position and the good ones imported.

use std::path::{Path, PathBuf};

use chrono::Utc;

use super::input::{json_error, ArticleInput, ArticleJson, InputError};
use super::{Catalog, CatalogError, Slug, Upserted};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot fetch {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("{path} is not a JSON array of articles: {message}")]
    Json { path: String, message: String },
    #[error("{path} is not an RSS, Atom or JSON feed: {message}")]
    Feed { path: String, message: String },
}

/// One entry of a source: where it was, a label for messages, and the article or what was wrong.
#[derive(Debug)]
pub struct Entry {
    pub position: usize,
    pub label: String,
    pub article: Result<ArticleInput, InputError>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// (position, label, problem)
    pub rejected: Vec<(usize, String, String)>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} new, {} updated, {} unchanged, {} rejected",
            self.created,
            self.updated,
            self.unchanged,
            self.rejected.len()
        )
    }
}

/// Reads every entry of `source` (a path or an http(s) URL).
pub fn read_source(source: &str) -> Result<Vec<Entry>, ImportError> {
    if source.starts_with("http://") || source.starts_with("https://") {
        let bytes = fetch(source)?;
        return feed_entries(source, &bytes);
    }
    let path = Path::new(source);
    if path.is_dir() {
        return markdown_entries(path);
    }
    let bytes = std::fs::read(path).map_err(|e| ImportError::Read {
        path: source.to_string(),
        source: e,
    })?;
    let start = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace() && **b != 0xEF && **b != 0xBB && **b != 0xBF);
    match start {
        Some(b'[') => json_entries(source, &bytes),
        _ => feed_entries(source, &bytes),
    }
}

/// Articles written per transaction by an import.
const IMPORT_BATCH: usize = 256;

/// Writes the entries through the catalog, calling `progress` after each.
pub async fn import_entries(
    catalog: &Catalog,
    entries: Vec<Entry>,
    mut progress: impl FnMut(),
) -> Result<Report, CatalogError> {
    let mut report = Report::default();
    // A source that carries one article twice (same slug) keeps the first: taking the last would
    // make every re-run flip the article between the two and move its `updated_at`.
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut batch: Vec<(usize, String, ArticleInput)> = Vec::with_capacity(IMPORT_BATCH);
    let mut entries = entries.into_iter().peekable();
    while let Some(entry) = entries.next() {
        let article = entry.article.and_then(|a| match seen.get(a.slug.as_str()) {
            Some(first) => Err(InputError::new(
                "slug",
                format!(
                    "'{}' is already entry {first} of this source",
                    a.slug.as_str()
                ),
            )),
            None => {
                seen.insert(a.slug.as_str().to_string(), entry.position);
                Ok(a)
            }
        });
        match article {
            Err(e) => {
                report
                    .rejected
                    .push((entry.position, entry.label, e.to_string()));
                progress();
            }
            Ok(article) => batch.push((entry.position, entry.label, article)),
        }
        if batch.len() >= IMPORT_BATCH || (entries.peek().is_none() && !batch.is_empty()) {
            let articles = std::mem::take(&mut batch);
            // One transaction per batch; an article the catalog refuses (its id belongs to
            // another) is reported and the others are still written.
            let outcomes = catalog
                .store()
                .write(move |db| {
                    let now = Utc::now();
                    articles
                        .into_iter()
                        .map(|(position, label, article)| {
                            match super::store::upsert(db, &article, now) {
                                Ok((outcome, _)) => Ok((position, label, Ok(outcome))),
                                Err(CatalogError::Input(e)) => Ok((position, label, Err(e))),
                                Err(e) => Err(e),
                            }
                        })
                        .collect::<Result<Vec<_>, CatalogError>>()
                })
                .await?;
            for (position, label, outcome) in outcomes {
                match outcome {
                    Ok(Upserted::Created) => report.created += 1,
                    Ok(Upserted::Updated) => report.updated += 1,
                    Ok(Upserted::Unchanged) => report.unchanged += 1,
                    Err(e) => report.rejected.push((position, label, e.to_string())),
                }
                progress();
            }
        }
    }
    report.rejected.sort_by_key(|(position, _, _)| *position);
    Ok(report)
}

pub fn json_entries(path: &str, bytes: &[u8]) -> Result<Vec<Entry>, ImportError> {
    let values: Vec<serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|e| ImportError::Json {
            path: path.to_string(),
            message: e.to_string(),
        })?;
    Ok(values
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            let label = value
                .get("slug")
                .or_else(|| value.get("title"))
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            let article = serde_path_to_error::deserialize::<_, ArticleJson>(value)
                .map_err(json_error)
                .and_then(ArticleInput::parse);
            Entry {
                position: i + 1,
                label,
                article,
            }
        })
        .collect())
}

fn markdown_entries(dir: &Path) -> Result<Vec<Entry>, ImportError> {
    let read_err = |e| ImportError::Read {
        path: dir.display().to_string(),
        source: e,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md" || x == "markdown"))
        .collect();
    files.sort();
    let mut entries = Vec::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        let label = file
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let article = match std::fs::read(file) {
            Err(e) => Err(InputError::new("file", e.to_string())),
            Ok(bytes) => markdown_article(file, &bytes),
        };
        entries.push(Entry {
            position: i + 1,
            label,
            article,
        });
    }
    Ok(entries)
}

/// A Markdown file: YAML front matter between `---` lines, in the JSON format's field names, then
/// the body. The slug defaults to the file name.
pub fn markdown_article(file: &Path, bytes: &[u8]) -> Result<ArticleInput, InputError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| InputError::new("file", format!("is not valid UTF-8 ({e})")))?;
    let text = text.trim_start_matches('\u{feff}');
    let (front, body) = split_front_matter(text).ok_or_else(|| {
        InputError::new(
            "front matter",
            "the file must start with a '---' line, then YAML, then '---'",
        )
    })?;
    let de = serde_yaml_ng::Deserializer::from_str(front);
    let mut raw: ArticleJson = serde_path_to_error::deserialize(de).map_err(json_error)?;
    if raw.slug.is_none() {
        raw.slug = file
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .and_then(|s| Slug::from_title(&s))
            .map(|s| s.as_str().to_string());
    }
    if raw.content_html.is_none() && raw.content_markdown.is_none() && !body.trim().is_empty() {
        raw.content_markdown = Some(body.to_string());
    }
    ArticleInput::parse(raw)
}

fn split_front_matter(text: &str) -> Option<(&str, &str)> {
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))?;
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            return Some((&rest[..offset], &rest[offset + line.len()..]));
        }
        offset += line.len();
    }
    None
}

fn fetch(url: &str) -> Result<Vec<u8>, ImportError> {
    let fail = |message: String| ImportError::Fetch {
        url: url.to_string(),
        message,
    };
    let mut response = ureq::get(url)
        .header("User-Agent", concat!("tidings/", env!("CARGO_PKG_VERSION")))
        .call()
        .map_err(|e| fail(e.to_string()))?;
    response
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| fail(e.to_string()))
}

/// Entries of an RSS, Atom or JSON feed, parsed with `feed-rs`. The entries' own ids are kept as
/// article ids, so readers that knew the old feed see no duplicates.
pub fn feed_entries(source: &str, bytes: &[u8]) -> Result<Vec<Entry>, ImportError> {
    let feed = feed_rs::parser::parse(bytes).map_err(|e| ImportError::Feed {
        path: source.to_string(),
        message: e.to_string(),
    })?;
    Ok(feed
        .entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let raw = feed_entry_json(entry);
            let label = raw.title.clone().unwrap_or_default();
            Entry {
                position: i + 1,
                label,
                article: ArticleInput::parse(raw),
            }
        })
        .collect())
}

fn feed_entry_json(entry: feed_rs::model::Entry) -> ArticleJson {
    let url = entry
        .links
        .iter()
        .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .or(entry.links.first())
        .map(|l| l.href.clone())
        .or_else(|| entry.id.starts_with("http").then(|| entry.id.clone()));
    let is_html = |t: &feed_rs::model::Text| t.content_type.to_string().starts_with("text/html");
    let summary = entry.summary.as_ref().map(|s| {
        if is_html(s) {
            html_to_text(&s.content)
        } else {
            s.content.clone()
        }
    });
    let content_html = entry
        .content
        .as_ref()
        .and_then(|c| c.body.clone())
        .or_else(|| {
            entry
                .summary
                .as_ref()
                .filter(|s| is_html(s))
                .map(|s| s.content.clone())
        });
    let slug = url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| {
            u.path_segments()
                .and_then(|mut s| s.rfind(|seg| !seg.is_empty()).map(str::to_string))
        })
        .map(|seg| {
            seg.trim_end_matches(".html")
                .trim_end_matches(".htm")
                .to_string()
        })
        .and_then(|seg| Slug::from_title(&seg))
        .or_else(|| {
            entry
                .title
                .as_ref()
                .and_then(|t| Slug::from_title(&t.content))
        })
        .map(|s| s.as_str().to_string());
    let published = entry.published.or(entry.updated);
    ArticleJson {
        id: Some(entry.id.clone()).filter(|id| !id.trim().is_empty()),
        slug,
        title: entry.title.map(|t| {
            if is_html(&t) {
                html_to_text(&t.content)
            } else {
                t.content
            }
        }),
        url,
        summary,
        content_html,
        content_markdown: None,
        author: entry.authors.first().and_then(|a| a.name.clone()),
        published_at: published.map(|d| d.to_rfc3339()),
        updated_at: entry.updated.or(published).map(|d| d.to_rfc3339()),
        tags: Some(
            entry
                .categories
                .into_iter()
                .map(|c| c.label.unwrap_or(c.term))
                .collect(),
        ),
        image: None,
        reading_time_minutes: None,
    }
}

/// Plain text of an HTML fragment (for summaries and titles that arrive as HTML).
fn html_to_text(html: &str) -> String {
    let cleaned = ammonia::Builder::empty().clean(html).to_string();
    cleaned
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
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
}
