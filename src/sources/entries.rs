//! A fetched feed read into entries, each with what it is known by: its guid, its link, and a
//! hash of its title and content. Pure: no I/O.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::catalog::import::source::feed_entry_json;
use crate::catalog::ArticleJson;

/// One entry of a feed, as the catalog would take it (id and slug left to the source).
#[derive(Debug, Clone)]
pub struct FeedEntry {
    pub guid: Option<String>,
    pub link: Option<String>,
    pub hash: String,
    /// The entry's own slug (from its link or title), before the source's prefix.
    pub slug: Option<String>,
    pub published: Option<DateTime<Utc>>,
    pub article: ArticleJson,
}

/// A feed, read.
#[derive(Debug, Clone, Default)]
pub struct ReadFeed {
    pub title: Option<String>,
    pub entries: Vec<FeedEntry>,
    /// RSS `<ttl>`, in minutes.
    pub ttl_minutes: Option<u32>,
    /// `<link rel="hub">` and `<link rel="self">`.
    pub hub: Option<String>,
    pub self_link: Option<String>,
    /// One guid given to entries with different links: the guid is no identity here.
    pub repeated_guid: Option<String>,
    /// Entries past `max_entries`, not read.
    pub skipped: usize,
}

/// Reads `bytes` (RSS, Atom or JSON Feed) from `base` into at most `max_entries` entries.
pub fn read(bytes: &[u8], base: &str, max_entries: usize) -> Result<ReadFeed, String> {
    // feed-rs makes up an id for an entry without one; an empty one says "none".
    let parser = feed_rs::parser::Builder::new()
        .base_uri(Some(base))
        .id_generator(|_, _, _| String::new())
        .build();
    let feed = parser.parse(bytes).map_err(|e| e.to_string())?;
    let mut out = ReadFeed {
        title: feed.title.as_ref().map(|t| t.content.trim().to_string()),
        ttl_minutes: feed.ttl,
        ..ReadFeed::default()
    };
    for link in &feed.links {
        match link.rel.as_deref() {
            Some("hub") if out.hub.is_none() => out.hub = Some(link.href.clone()),
            Some("self") if out.self_link.is_none() => out.self_link = Some(link.href.clone()),
            _ => {}
        }
    }
    out.skipped = feed.entries.len().saturating_sub(max_entries);
    for entry in feed.entries.into_iter().take(max_entries) {
        let published = entry.published.or(entry.updated);
        let article = feed_entry_json(entry);
        let guid = article
            .id
            .clone()
            .map(|g| g.trim().to_string())
            .filter(|g| !g.is_empty());
        let link = article.url.clone().filter(|l| !l.trim().is_empty());
        let hash = blake3::hash(
            format!(
                "{}\n{}\n{}",
                article.title.as_deref().unwrap_or_default(),
                article.summary.as_deref().unwrap_or_default(),
                article.content_html.as_deref().unwrap_or_default()
            )
            .as_bytes(),
        )
        .to_hex()[..32]
            .to_string();
        out.entries.push(FeedEntry {
            guid,
            link,
            hash,
            slug: article.slug.clone(),
            published,
            article,
        });
    }
    out.repeated_guid = repeated_guid(&out.entries);
    Ok(out)
}

/// A guid that entries with different links share, if any.
fn repeated_guid(entries: &[FeedEntry]) -> Option<String> {
    let mut links: HashMap<&str, &str> = HashMap::new();
    for e in entries {
        let (Some(guid), Some(link)) = (e.guid.as_deref(), e.link.as_deref()) else {
            continue;
        };
        match links.insert(guid, link) {
            Some(other) if other != link => return Some(guid.to_string()),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rss(items: &[(&str, &str, &str)]) -> Vec<u8> {
        let mut s = String::from(
            "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Blog</title><link>http://b.example/</link><ttl>90</ttl>",
        );
        for (guid, link, title) in items {
            s.push_str("<item>");
            if !guid.is_empty() {
                s.push_str(&format!("<guid>{guid}</guid>"));
            }
            s.push_str(&format!(
                "<link>{link}</link><title>{title}</title><pubDate>Mon, 07 Dec 2026 10:00:00 GMT</pubDate></item>"
            ));
        }
        s.push_str("</channel></rss>");
        s.into_bytes()
    }

    #[test]
    fn guid_link_hash_and_ttl() {
        let feed = read(
            &rss(&[
                ("g1", "http://b.example/one", "One"),
                ("", "http://b.example/two", "Two"),
            ]),
            "http://b.example/feed",
            500,
        )
        .unwrap();
        assert_eq!(feed.ttl_minutes, Some(90));
        assert_eq!(feed.entries[0].guid.as_deref(), Some("g1"));
        assert_eq!(feed.entries[1].guid, None, "no made-up id");
        assert_eq!(
            feed.entries[1].link.as_deref(),
            Some("http://b.example/two")
        );
        assert_eq!(feed.entries[1].slug.as_deref(), Some("two"));
        assert_ne!(feed.entries[0].hash, feed.entries[1].hash);
        assert_eq!(feed.repeated_guid, None);
    }

    #[test]
    fn a_guid_on_two_links_is_seen() {
        let feed = read(
            &rss(&[
                ("same", "http://b.example/one", "One"),
                ("same", "http://b.example/two", "Two"),
            ]),
            "http://b.example/feed",
            500,
        )
        .unwrap();
        assert_eq!(feed.repeated_guid.as_deref(), Some("same"));
    }

    #[test]
    fn at_most_max_entries() {
        let feed = read(
            &rss(&[
                ("a", "http://b.example/a", "A"),
                ("b", "http://b.example/b", "B"),
                ("c", "http://b.example/c", "C"),
            ]),
            "http://b.example/feed",
            2,
        )
        .unwrap();
        assert_eq!(feed.entries.len(), 2);
        assert_eq!(feed.skipped, 1);
    }

    #[test]
    fn entities_are_not_expanded() {
        let bomb = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]>
<rss version="2.0"><channel><title>&lol2;</title><item><title>&lol2;</title><link>http://b.example/x</link></item></channel></rss>"#;
        if let Ok(feed) = read(bomb, "http://b.example/feed", 500) {
            let title = feed.entries[0].article.title.clone().unwrap_or_default();
            assert!(!title.contains("lollol"), "{title}");
        }
    }
}
