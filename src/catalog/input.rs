//! The JSON article format and its parsing into an `ArticleInput`: every ingest path (API, CLI,
//! import) goes through `ArticleInput::parse`, so they all accept and reject the same things.

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;
use url::Url;

use super::{Slug, Tag};

/// Bad input: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InputError {
    pub field: String,
    pub problem: String,
}

impl InputError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        InputError {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// An article as written in JSON (API bodies, import files) or Markdown front matter.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ArticleInput)]
pub struct ArticleJson {
    /// A stable id (an imported feed's GUID); minted when absent. Immutable afterwards.
    #[schema(max_length = 500, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    pub id: Option<String>,
    /// Made from the title when absent.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^\s*[A-Za-z0-9_~-][A-Za-z0-9._~-]*\s*$"
    )]
    pub slug: Option<String>,
    #[schema(
        required = true,
        nullable = false,
        max_length = 1000,
        pattern = r"[^\s\x00-\x1f\x7f-\x9f]"
    )]
    pub title: Option<String>,
    /// An absolute http(s) URL.
    #[schema(
        required = true,
        nullable = false,
        format = "uri",
        pattern = r"^https?://[^/?#@]"
    )]
    pub url: Option<String>,
    pub summary: Option<String>,
    /// HTML, cleaned on the way in; not with `content_markdown`.
    pub content_html: Option<String>,
    /// Markdown, made HTML on the way in; not with `content_html`.
    pub content_markdown: Option<String>,
    pub author: Option<String>,
    /// RFC 3339 with a time zone; now when absent.
    #[schema(format = DateTime)]
    pub published_at: Option<String>,
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
    /// Tag names (1 to 100 characters each).
    #[schema(value_type = Option<Vec<TagName>>)]
    pub tags: Option<Vec<String>>,
    /// An absolute http(s) URL.
    #[schema(format = "uri", pattern = r"^https?://[^/?#@]")]
    pub image: Option<String>,
    #[schema(maximum = 10000)]
    pub reading_time_minutes: Option<u32>,
}

/// A tag's name as an article gives it (the document's name for its rule: at most 100
/// characters, not only white space).
pub struct TagName;

impl utoipa::PartialSchema for TagName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(100))
            .pattern(Some(r"[^\s\x00-\x1f\x7f-\x9f]"))
            .into()
    }
}

impl utoipa::ToSchema for TagName {}

/// A checked article, ready to be written to the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct ArticleInput {
    /// Set when the source already had a stable id (an imported feed's GUID); otherwise minted on insert.
    pub id: Option<String>,
    pub slug: Slug,
    pub title: String,
    pub url: String,
    pub summary: String,
    pub content_html: String,
    pub author: Option<String>,
    /// `None`: now for a new article, unchanged for an existing one.
    pub published_at: Option<DateTime<FixedOffset>>,
    pub updated_at: Option<DateTime<FixedOffset>>,
    pub tags: Vec<Tag>,
    pub image: Option<String>,
    pub reading_time_minutes: Option<u32>,
    /// Never new for a digest, when it enters the catalog (a followed blog's back catalogue);
    /// in the feeds like any other. An update leaves it as it was.
    pub quiet: bool,
}

impl ArticleJson {
    /// Reads one article from a JSON body, naming the field on any error.
    pub fn from_json(bytes: &[u8]) -> Result<ArticleJson, InputError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| InputError::new("body", format!("is not valid UTF-8 ({e})")))?;
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut de).map_err(json_error)
    }
}

/// Turns a serde error into one that names the field.
pub fn json_error<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> InputError {
    let path = e.path().to_string();
    let message = e.inner().to_string();
    let field = if path == "." || path.is_empty() {
        // serde reports unknown and missing fields at the parent; the name is in backticks.
        message
            .split('`')
            .nth(1)
            .map(str::to_string)
            .unwrap_or_else(|| "body".to_string())
    } else {
        path
    };
    InputError::new(field, message)
}

const MAX_TITLE: usize = 1000;
const MAX_TEXT: usize = 1024 * 1024;

impl ArticleInput {
    pub fn parse(raw: ArticleJson) -> Result<ArticleInput, InputError> {
        let title = raw
            .title
            .as_deref()
            .map(one_line)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| InputError::new("title", "is required"))?;
        if title.chars().count() > MAX_TITLE {
            return Err(InputError::new(
                "title",
                format!("is longer than {MAX_TITLE} characters"),
            ));
        }
        let url = match raw.url.as_deref().map(str::trim) {
            None | Some("") => return Err(InputError::new("url", "is required")),
            Some(u) => absolute_url("url", u)?,
        };
        let slug = match raw.slug.as_deref() {
            Some(s) => Slug::parse(s).map_err(|p| InputError::new("slug", p))?,
            None => Slug::from_title(&title).unwrap_or_else(|| Slug::from_title_hash(&title)),
        };
        let id = match raw.id.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(id) if id.chars().count() > 500 || id.chars().any(char::is_control) => {
                return Err(InputError::new(
                    "id",
                    "must be at most 500 characters with no control characters",
                ))
            }
            Some(id) => Some(id.to_string()),
        };
        let content_html = match (raw.content_html, raw.content_markdown) {
            (Some(_), Some(_)) => {
                return Err(InputError::new(
                    "content_markdown",
                    "give content_html or content_markdown, not both",
                ))
            }
            (Some(html), None) => sanitize_html(&html),
            (None, Some(md)) => markdown_to_html(&md),
            (None, None) => String::new(),
        };
        if content_html.len() > MAX_TEXT {
            return Err(InputError::new("content_html", "is larger than 1 MiB"));
        }
        let summary = raw.summary.as_deref().map(clean_text).unwrap_or_default();
        let summary = summary.trim().to_string();
        let author = raw
            .author
            .as_deref()
            .map(one_line)
            .filter(|a| !a.is_empty());
        let published_at = raw
            .published_at
            .as_deref()
            .map(|d| parse_time("published_at", d))
            .transpose()?;
        let updated_at = raw
            .updated_at
            .as_deref()
            .map(|d| parse_time("updated_at", d))
            .transpose()?;
        let mut tags: Vec<Tag> = Vec::new();
        for (i, name) in raw.tags.unwrap_or_default().iter().enumerate() {
            let tag = Tag::parse(name).map_err(|p| InputError::new(format!("tags[{i}]"), p))?;
            if !tags.iter().any(|t| t.slug == tag.slug) {
                tags.push(tag);
            }
        }
        let image = match raw.image.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) => Some(absolute_url("image", u)?),
        };
        if let Some(m) = raw.reading_time_minutes {
            if m > 10_000 {
                return Err(InputError::new(
                    "reading_time_minutes",
                    "must be at most 10000",
                ));
            }
        }
        Ok(ArticleInput {
            id,
            slug,
            title,
            url,
            summary,
            content_html,
            author,
            published_at,
            updated_at,
            tags,
            image,
            reading_time_minutes: raw.reading_time_minutes,
            quiet: false,
        })
    }
}

fn absolute_url(field: &str, raw: &str) -> Result<String, InputError> {
    match Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(u.to_string()),
        _ => Err(InputError::new(
            field,
            format!("'{}' is not an absolute http(s) URL", shorten(raw)),
        )),
    }
}

fn parse_time(field: &str, raw: &str) -> Result<DateTime<FixedOffset>, InputError> {
    DateTime::parse_from_rfc3339(raw.trim()).map_err(|_| {
        InputError::new(
            field,
            format!(
                "'{}' is not an RFC 3339 date-time with a time zone (e.g. 2026-05-27T09:00:00+02:00)",
                shorten(raw)
            ),
        )
    })
}

fn shorten(s: &str) -> String {
    let cut: String = s.chars().take(80).collect();
    if cut.len() < s.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// Drops characters XML 1.0 cannot carry (C0 controls other than tab and newlines, U+FFFE/U+FFFF),
/// so every feed stays well-formed whatever was pasted in.
pub fn clean_text(s: &str) -> String {
    s.chars()
        .filter(|&c| {
            (!c.is_control() || matches!(c, '\t' | '\n' | '\r'))
                && !matches!(c, '\u{FFFE}' | '\u{FFFF}')
        })
        .collect()
}

/// Text that must stay on one line (titles, names): cleaned, whitespace runs collapsed to a space.
pub fn one_line(s: &str) -> String {
    clean_text(s)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn sanitize_html(html: &str) -> String {
    settle(ammonia::clean(&clean_text(html)))
}

/// Cleaned HTML that cleaning again would not change. One pass is not always a fixed point:
/// badly nested formatting (`<em><strong>` runs that Markdown makes of stray `*`) is rebuilt
/// by the HTML parser, and the rebuilt tree parses differently again. Storing the settled form
/// means an article sent back as it was stored counts as unchanged.
fn settle(mut html: String) -> String {
    for _ in 0..4 {
        let again = ammonia::clean(&html);
        if again == html {
            break;
        }
        html = again;
    }
    html
}

pub fn markdown_to_html(md: &str) -> String {
    let md = clean_text(md);
    let parser = pulldown_cmark::Parser::new_ext(&md, pulldown_cmark::Options::all());
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, parser);
    settle(ammonia::clean(&html))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> Result<ArticleInput, InputError> {
        ArticleInput::parse(ArticleJson::from_json(s.as_bytes())?)
    }

    #[test]
    fn only_title_and_url_are_required() {
        let a = json(r#"{"title":"Open Science & You","url":"https://blog.example/a"}"#)
            .expect("valid");
        assert_eq!(a.slug.as_str(), "open-science-you");
        assert!(a.tags.is_empty());
        assert!(a.published_at.is_none());
    }

    #[test]
    fn errors_name_the_field() {
        let field = |s: &str| json(s).unwrap_err().field;
        assert_eq!(field(r#"{"url":"https://x.example/"}"#), "title");
        assert_eq!(field(r#"{"title":"t"}"#), "url");
        assert_eq!(field(r#"{"title":"t","url":"/relative"}"#), "url");
        assert_eq!(
            field(r#"{"title":"t","url":"https://x.example/","published_at":"yesterday"}"#),
            "published_at"
        );
        assert_eq!(
            field(r#"{"title":"t","url":"https://x.example/","colour":"red"}"#),
            "colour"
        );
        assert_eq!(
            field(r#"{"title":"t","url":"https://x.example/","slug":"a/b"}"#),
            "slug"
        );
        assert_eq!(
            field(r#"{"title":"t","url":"https://x.example/","tags":[1]}"#),
            "tags[0]"
        );
        assert_eq!(
            field(r#"{"title":"t","url":"https://x.example/","tags":["   "]}"#),
            "tags[0]"
        );
        assert_eq!(
            ArticleJson::from_json(b"{\"title\":\"\xff\"}")
                .unwrap_err()
                .field,
            "body"
        );
    }

    #[test]
    fn dates_keep_their_zone() {
        let a = json(
            r#"{"title":"t","url":"https://x.example/","published_at":"2026-05-27T09:00:00+02:00"}"#,
        )
        .expect("valid");
        assert_eq!(
            a.published_at.expect("set").to_rfc3339(),
            "2026-05-27T09:00:00+02:00"
        );
    }

    #[test]
    fn content_is_sanitised_and_markdown_rendered() {
        let a = json(
            r#"{"title":"t","url":"https://x.example/","content_html":"<p onclick=\"x()\">hi<script>evil()</script></p>"}"#,
        )
        .expect("valid");
        assert_eq!(a.content_html, "<p>hi</p>");
        let a = json(
            r##"{"title":"t","url":"https://x.example/","content_markdown":"# Hello\n\n*world*"}"##,
        )
        .expect("valid");
        assert!(
            a.content_html.contains("<h1>Hello</h1>"),
            "{}",
            a.content_html
        );
        assert!(a.content_html.contains("<em>world</em>"));
    }

    #[test]
    fn control_characters_are_dropped() {
        let a = json("{\"title\":\"a\\u0001b\\u000bc\\nd\",\"url\":\"https://x.example/\"}")
            .expect("valid");
        assert_eq!(a.title, "abc d");
    }
}
