//! The site's index page (`GET /`): latest articles, every tag, and an autodiscovery
//! `<link rel="alternate">` for every feed. Rendered and cached like a feed.

use minijinja::value::Serde;
use minijinja::{context, Value};
use serde::Serialize;

use super::{feed_path, Format};
use crate::catalog::{Article, TagCount};
use crate::config::Config;

const TEMPLATE: &str = include_str!("index.html");

#[derive(Serialize)]
struct FeedLink {
    mime: &'static str,
    label: &'static str,
    url: String,
}

#[derive(Serialize)]
struct TagView<'a> {
    slug: &'a str,
    name: &'a str,
    articles: u64,
    feeds: Vec<FeedLink>,
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

pub fn render_index(config: &Config, tags: &[TagCount], newest: &[Article]) -> String {
    let mut env = crate::html::environment();
    if let Err(e) = env.add_template("index.html", TEMPLATE) {
        return format!("template error: {e}");
    }
    let tags: Vec<TagView> = tags
        .iter()
        .map(|t| TagView {
            slug: &t.slug,
            name: &t.name,
            articles: t.articles,
            feeds: links(config, Some(&t.slug)),
        })
        .collect();
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
        tags => Value::from(Serde(&tags)),
        articles => Value::from(Serde(&articles)),
    };
    env.get_template("index.html")
        .and_then(|t| t.render(ctx))
        .unwrap_or_else(|e| format!("template error: {e}"))
}
