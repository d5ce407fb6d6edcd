//! JSON Feed 1.1 writer (serde).

use serde::Serialize;

use super::{FeedDoc, Format};
use crate::catalog::rfc3339;

#[derive(Serialize)]
struct JsonFeed<'a> {
    version: &'static str,
    title: String,
    home_page_url: String,
    feed_url: String,
    description: String,
    language: &'a str,
    authors: [Author<'a>; 1],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hubs: Vec<Hub<'a>>,
    items: Vec<Item<'a>>,
}

#[derive(Serialize)]
struct Author<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Hub<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'a str,
}

#[derive(Serialize)]
struct Item<'a> {
    id: &'a str,
    url: &'a str,
    title: &'a str,
    content_html: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    summary: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    date_published: String,
    date_modified: String,
    authors: [Author<'a>; 1],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<&'a str>,
}

pub fn render_json(doc: &FeedDoc<'_>) -> String {
    let feed = JsonFeed {
        version: "https://jsonfeed.org/version/1.1",
        title: doc.title(),
        home_page_url: doc.home_url(),
        feed_url: doc.self_url(Format::Json),
        description: doc.description(),
        language: &doc.config.site.language,
        authors: [Author {
            name: &doc.config.site.author,
        }],
        hubs: doc
            .config
            .feeds
            .websub_hub
            .iter()
            .map(|url| Hub {
                kind: "WebSub",
                url,
            })
            .collect(),
        items: doc
            .articles
            .iter()
            .map(|a| Item {
                id: &a.id,
                url: &a.url,
                title: &a.title,
                content_html: &a.content_html,
                summary: &a.summary,
                image: a.image.as_deref(),
                date_published: rfc3339(&a.published_at),
                date_modified: rfc3339(&a.updated_at),
                authors: [Author {
                    name: doc.author_of(a),
                }],
                tags: a.tags.iter().map(|t| t.name.as_str()).collect(),
            })
            .collect(),
    };
    serde_json::to_string(&feed).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
