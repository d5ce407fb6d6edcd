//! The site's index page (`GET /`): latest articles, every tag, and an autodiscovery
//! `<link rel="alternate">` for every feed. Rendered and cached like a feed.
//!
//! Each tag's parts of the page (its three `<link>`s and its list item) are kept rendered in
//! `TagParts`, so a publish renders again only the parts of the tags it touched: with 1,000 tags,
//! the template's loops over every tag took 10-13 ms of each publish (BENCHMARKS.md, "Feeds
//! rendered when asked"). The bytes are the template's (a test renders both ways).

use std::collections::{BTreeMap, HashMap};

use minijinja::value::Serde;
use minijinja::{context, Value};
use serde::Serialize;

use super::{feed_path, Format};
use crate::catalog::{Article, TagCount};
use crate::config::Config;
use crate::html::escape;

const TEMPLATE: &str = include_str!("index.html");

#[derive(Serialize)]
struct FeedLink {
    mime: &'static str,
    label: &'static str,
    url: String,
}

/// Every tag's parts of the index page, in the page's order (name with ASCII letters folded,
/// then slug, as `catalog::tags` orders them).
#[derive(Default)]
pub struct TagParts {
    parts: BTreeMap<(String, String), Part>,
    /// Each slug's key in `parts`.
    keys: HashMap<String, (String, String)>,
}

struct Part {
    /// Its three `<link rel="alternate">`, each after a line break.
    head: String,
    /// Its `<li>`, after a line break.
    item: String,
}

impl TagParts {
    /// Renders `tag`'s parts (a new tag, or a new name or count).
    pub fn set(&mut self, config: &Config, tag: &TagCount) {
        self.remove(&tag.slug);
        let key = (tag.name.to_ascii_lowercase(), tag.slug.clone());
        let feeds = links(config, Some(&tag.slug));
        let (title, name) = (escape(&config.site.title), escape(&tag.name));
        let mut head = String::new();
        let mut item = format!(
            "\n<li id=\"tag-{}\"><strong>{name}</strong> <span class=\"muted\">({})</span>\n",
            escape(&tag.slug),
            tag.articles
        );
        for feed in &feeds {
            let url = escape(&feed.url);
            head.push_str(&format!(
                "\n<link rel=\"alternate\" type=\"{}\" title=\"{title}: {name} ({})\" href=\"{url}\">",
                escape(feed.mime),
                escape(feed.label)
            ));
            item.push_str(&format!("<a href=\"{url}\">{}</a> ", escape(feed.label)));
        }
        item.push_str("</li>");
        self.keys.insert(tag.slug.clone(), key.clone());
        self.parts.insert(key, Part { head, item });
    }

    pub fn remove(&mut self, slug: &str) {
        if let Some(key) = self.keys.remove(slug) {
            self.parts.remove(&key);
        }
    }
}

#[derive(Serialize)]
struct ArticleView<'a> {
    title: &'a str,
    url: &'a str,
    summary: &'a str,
    date: String,
    reading_time_minutes: Option<u32>,
    tags: Vec<&'a str>,
}

fn links(config: &Config, tag: Option<&str>) -> Vec<FeedLink> {
    Format::ALL
        .iter()
        .map(|f| FeedLink {
            mime: f.mime(),
            label: f.label(),
            url: config.site_url(&feed_path(tag, *f)),
        })
        .collect()
}

pub fn render_index(config: &Config, tags: &TagParts, newest: &[Article]) -> String {
    let mut env = crate::html::environment();
    if let Err(e) = env.add_template("index.html", TEMPLATE) {
        return format!("template error: {e}");
    }
    let (mut tag_links, mut tag_items) = (String::new(), String::new());
    for part in tags.parts.values() {
        tag_links.push_str(&part.head);
        tag_items.push_str(&part.item);
    }
    let articles: Vec<ArticleView> = newest
        .iter()
        .map(|a| ArticleView {
            title: &a.title,
            url: &a.url,
            summary: &a.summary,
            date: a.published_at.format("%B %-d, %Y").to_string(),
            reading_time_minutes: a.reading_time_minutes,
            tags: a.tags.iter().map(|t| t.name.as_str()).collect(),
        })
        .collect();
    let ctx = context! {
        site => Value::from(Serde(&config.site)),
        site_feeds => Value::from(Serde(links(config, None))),
        tag_links => Value::from_safe_string(tag_links),
        tag_items => Value::from_safe_string(tag_items),
        articles => Value::from(Serde(&articles)),
    };
    env.get_template("index.html")
        .and_then(|t| t.render(ctx))
        .unwrap_or_else(|e| format!("template error: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loops the page's template had over every tag, and what `TagParts` makes instead.
    const LOOPS: &str = "<title>x</title>\n{%- for tag in tags %}{% for feed in tag.feeds %}
<link rel=\"alternate\" type=\"{{ feed.mime }}\" title=\"{{ site.title }}: {{ tag.name }} ({{ feed.label }})\" href=\"{{ feed.url }}\">
{%- endfor %}{% endfor %}
<ul class=\"tags\">
{%- for tag in tags %}
<li id=\"tag-{{ tag.slug }}\"><strong>{{ tag.name }}</strong> <span class=\"muted\">({{ tag.articles }})</span>
{% for feed in tag.feeds %}<a href=\"{{ feed.url }}\">{{ feed.label }}</a> {% endfor %}</li>
{%- endfor %}
</ul>";

    #[derive(Serialize)]
    struct TagView<'a> {
        slug: &'a str,
        name: &'a str,
        articles: u64,
        feeds: Vec<FeedLink>,
    }

    #[test]
    fn tag_parts_are_the_bytes_of_the_templates_loops_in_its_order() {
        let mut config = Config::default();
        config.site.title = "Tom's <Blog> & \"Co\"".into();
        let tags: Vec<TagCount> = [
            ("b-tag", "beta & <gamma>", 3),
            ("a-tag", "Alpha \"quoted\" 'x'", 12),
            ("c-tag", "alpha", 0),
            ("z", "Zed", 1),
        ]
        .iter()
        .map(|(slug, name, n)| TagCount {
            slug: slug.to_string(),
            name: name.to_string(),
            articles: *n,
        })
        .collect();
        let mut parts = TagParts::default();
        for t in &tags {
            parts.set(&config, t);
        }
        // A tag renamed and recounted, and one gone.
        parts.set(
            &config,
            &TagCount {
                slug: "z".into(),
                name: "Omega".into(),
                articles: 2,
            },
        );
        parts.set(
            &config,
            &TagCount {
                slug: "gone".into(),
                name: "Gone".into(),
                articles: 1,
            },
        );
        parts.remove("gone");
        let mut sorted = tags.clone();
        sorted[3].name = "Omega".into();
        sorted[3].articles = 2;
        sorted.sort_by(|a, b| {
            a.name
                .to_ascii_lowercase()
                .cmp(&b.name.to_ascii_lowercase())
                .then_with(|| a.slug.cmp(&b.slug))
        });
        let views: Vec<TagView> = sorted
            .iter()
            .map(|t| TagView {
                slug: &t.slug,
                name: &t.name,
                articles: t.articles,
                feeds: links(&config, Some(&t.slug)),
            })
            .collect();
        let looped = crate::html::environment()
            .render_named_str(
                "t.html",
                LOOPS,
                context! { site => Value::from(Serde(&config.site)), tags => Value::from(Serde(&views)) },
            )
            .expect("render");
        let (mut links_html, mut items) = (String::new(), String::new());
        for part in parts.parts.values() {
            links_html.push_str(&part.head);
            items.push_str(&part.item);
        }
        assert_eq!(
            format!("<title>x</title>{links_html}\n<ul class=\"tags\">{items}\n</ul>"),
            looped
        );
    }
}
