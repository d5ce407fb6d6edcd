//! Feeds: one model (`FeedDoc`) per site or tag, written as RSS 2.0, Atom 1.0 and JSON Feed 1.1.
//! The site feeds are kept rendered in memory (`cache`), tag feeds while readers ask for them
//! (rendered on request by `on_demand` otherwise); the `publisher` re-renders what a change
//! touched, mirrors every feed to disk (`mirror`) and keeps each feed's validators in the
//! database (`store`), so a conditional request needs no rendering.

pub mod atom;
pub mod cache;
pub mod index;
pub mod json;
pub mod mirror;
pub mod on_demand;
pub mod publisher;
pub mod render;
pub mod rss;
pub mod store;
pub mod websub;

use chrono::{DateTime, FixedOffset};

use crate::catalog::{Article, Tag};
use crate::config::Config;

/// The three formats every feed is served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Rss,
    Atom,
    Json,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Rss, Format::Atom, Format::Json];

    pub fn file_name(self) -> &'static str {
        match self {
            Format::Rss => "feed.xml",
            Format::Atom => "atom.xml",
            Format::Json => "feed.json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Rss => "application/rss+xml; charset=utf-8",
            Format::Atom => "application/atom+xml; charset=utf-8",
            Format::Json => "application/feed+json; charset=utf-8",
        }
    }

    /// The MIME type without parameters, for `<link rel="alternate" type=…>`.
    pub fn mime(self) -> &'static str {
        match self {
            Format::Rss => "application/rss+xml",
            Format::Atom => "application/atom+xml",
            Format::Json => "application/feed+json",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Format::Rss => "RSS",
            Format::Atom => "Atom",
            Format::Json => "JSON Feed",
        }
    }
}

/// Bumped when a change of code changes the bytes of a feed rendered from the same catalog
/// (the golden files of `tests/api/golden.rs` tell): the validators kept in the database then
/// stop being current.
const RENDER_REVISION: u32 = 1;

/// What a feed's bytes depend on besides the catalog: the settings a feed shows and the code
/// that renders it. Validators recorded under another fingerprint are not trusted.
pub fn fingerprint(config: &Config) -> String {
    let shown = format!(
        "{}|{RENDER_REVISION}|{:?}|{}|{:?}",
        env!("CARGO_PKG_VERSION"),
        config.site,
        config.feeds.items,
        config.feeds.websub_hub
    );
    blake3::hash(shown.as_bytes()).to_hex()[..16].to_string()
}

/// The URL path of a feed: `/feed.xml`, or `/tags/{slug}/feed.xml` for a tag.
pub fn feed_path(tag_slug: Option<&str>, format: Format) -> String {
    match tag_slug {
        None => format!("/{}", format.file_name()),
        Some(slug) => format!("/tags/{slug}/{}", format.file_name()),
    }
}

/// Everything one feed shows, whatever its format.
pub struct FeedDoc<'a> {
    pub config: &'a Config,
    /// `None` for the site-wide feed.
    pub tag: Option<&'a Tag>,
    /// Newest first, at most `feeds.items`.
    pub articles: &'a [Article],
    /// When an article last left this feed; counts towards `updated`.
    pub last_removal: Option<DateTime<FixedOffset>>,
}

impl FeedDoc<'_> {
    pub fn title(&self) -> String {
        match self.tag {
            None => self.config.site.title.clone(),
            Some(tag) => format!("{}: {}", self.config.site.title, tag.name),
        }
    }

    pub fn description(&self) -> String {
        match self.tag {
            None => self.config.site.description.clone(),
            Some(tag) => format!("Articles tagged {} on {}", tag.name, self.config.site.title),
        }
    }

    pub fn self_url(&self, format: Format) -> String {
        self.config
            .site_url(&feed_path(self.tag.map(|t| t.slug.as_str()), format))
    }

    pub fn home_url(&self) -> String {
        self.config.site_url("/")
    }

    /// The newest `updated_at` in the feed, or the last removal if later; the Unix epoch for an
    /// empty feed that never lost an article (so an empty feed's bytes never change by themselves).
    pub fn updated(&self) -> DateTime<FixedOffset> {
        let newest = self.articles.iter().map(|a| a.updated_at).max();
        match (newest, self.last_removal) {
            (Some(a), Some(b)) => a.max(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => DateTime::UNIX_EPOCH.fixed_offset(),
        }
    }

    pub fn author_of<'b>(&'b self, article: &'b Article) -> &'b str {
        article
            .author
            .as_deref()
            .unwrap_or(self.config.site.author.as_str())
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Rss => rss::render_rss(self),
            Format::Atom => atom::render_atom(self),
            Format::Json => json::render_json(self),
        }
    }
}

/// The URL of a tag's page of feeds on the index (used as `<category domain>` / Atom `scheme`).
pub fn tag_scheme(config: &Config) -> String {
    config.site_url("/tags/")
}
