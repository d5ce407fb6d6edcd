//! Reading an import's source. A JSON array is checked whole first (a streaming pass that only
//! parses, so a broken file changes nothing), then read one element at a time; a Markdown folder
//! is listed, then read one file at a time. A feed is read whole.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::de::{Deserializer as _, IgnoredAny, SeqAccess, Visitor};

use super::{Entries, Entry, ImportError};
use crate::catalog::input::{json_error, ArticleInput, ArticleJson, InputError};
use crate::catalog::Slug;

/// The entries of `source` (a path or an http(s) URL), read as the import goes.
pub fn read_source(source: &str) -> Result<Entries, ImportError> {
    if source.starts_with("http://") || source.starts_with("https://") {
        let bytes = fetch(source)?;
        return feed_entries(source, &bytes).map(Entries::from);
    }
    let path = Path::new(source);
    if path.is_dir() {
        return markdown_entries(path);
    }
    let read_err = |e| ImportError::Read {
        path: source.to_string(),
        source: e,
    };
    let mut file = File::open(path).map_err(read_err)?;
    // What the file starts with, past whitespace and a byte order mark, tells JSON from a feed.
    let mut head = Vec::new();
    let starts_array = loop {
        let mut chunk = [0u8; 8192];
        let n = file.read(&mut chunk).map_err(read_err)?;
        head.extend_from_slice(&chunk[..n]);
        let start = chunk[..n]
            .iter()
            .find(|b| !b.is_ascii_whitespace() && **b != 0xEF && **b != 0xBB && **b != 0xBF);
        match start {
            Some(b) => break *b == b'[',
            None if n == 0 => break false,
            None => continue,
        }
    };
    if starts_array {
        return json_file_entries(source);
    }
    file.read_to_end(&mut head).map_err(read_err)?;
    feed_entries(source, &head).map(Entries::from)
}

/// A JSON array of articles held in memory (the built-in sample).
pub fn json_entries(path: &str, bytes: &[u8]) -> Result<Vec<Entry>, ImportError> {
    let mut entries = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.deserialize_seq(EachElement(|value| {
        entries.push(json_entry(entries.len() + 1, value));
        true
    }))
    .and_then(|()| de.end())
    .map_err(|e| json_failure(path, e))?;
    Ok(entries)
}

/// A JSON array file, streamed: one pass checks that it is JSON and counts the elements, a
/// second (on the reader thread) parses them one at a time.
fn json_file_entries(path: &str) -> Result<Entries, ImportError> {
    let open = || {
        File::open(path)
            .map(|f| BufReader::with_capacity(1 << 16, f))
            .map_err(|e| ImportError::Read {
                path: path.to_string(),
                source: e,
            })
    };
    let mut de = serde_json::Deserializer::from_reader(open()?);
    let total = de
        .deserialize_seq(CountElements)
        .and_then(|n| de.end().map(|()| n))
        .map_err(|e| json_failure(path, e))?;
    let reader = open()?;
    let name = path.to_string();
    Entries::streamed(path, total, move |emit| {
        let mut de = serde_json::Deserializer::from_reader(reader);
        let mut position = 0;
        let mut listening = true;
        let read = de.deserialize_seq(EachElement(|value| {
            position += 1;
            listening = emit(json_entry(position, value));
            listening
        }));
        match read {
            // Stopping early leaves the rest of the array unread: not an error.
            Err(_) if !listening => Ok(()),
            // The file changed since the first pass.
            Err(e) => Err(json_failure(&name, e)),
            Ok(()) => Ok(()),
        }
    })
}

fn json_failure(path: &str, e: serde_json::Error) -> ImportError {
    ImportError::Json {
        path: path.to_string(),
        message: e.to_string(),
    }
}

/// One element of a JSON array: its label (slug, else title) and the article or what was wrong.
fn json_entry(position: usize, value: serde_json::Value) -> Entry {
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
        position,
        label,
        article,
    }
}

/// Counts a JSON array's elements without keeping them.
struct CountElements;

impl<'de> Visitor<'de> for CountElements {
    type Value = usize;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(n)
    }
}

/// Hands a JSON array's elements, one at a time, to a function; stops when it answers false.
struct EachElement<F>(F);

impl<'de, F: FnMut(serde_json::Value) -> bool> Visitor<'de> for EachElement<F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while let Some(value) = seq.next_element::<serde_json::Value>()? {
            if !(self.0)(value) {
                return Err(serde::de::Error::custom("the import stopped"));
            }
        }
        Ok(())
    }
}

/// A folder of Markdown files, in file name order, read one file at a time.
fn markdown_entries(dir: &Path) -> Result<Entries, ImportError> {
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
    Entries::streamed(&dir.display().to_string(), files.len(), move |emit| {
        for (i, file) in files.iter().enumerate() {
            let label = file
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let article = match std::fs::read(file) {
                Err(e) => Err(InputError::new("file", e.to_string())),
                Ok(bytes) => markdown_article(file, &bytes),
            };
            let entry = Entry {
                position: i + 1,
                label,
                article,
            };
            if !emit(entry) {
                break;
            }
        }
        Ok(())
    })
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

pub(crate) fn feed_entry_json(entry: feed_rs::model::Entry) -> ArticleJson {
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
