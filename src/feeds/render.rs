//! One feed read from the catalog and rendered: the same for the publisher (a change), a request
//! for a feed that is not in memory, and the pass that brings the mirror up to date.

use bytes::Bytes;
use chrono::{DateTime, FixedOffset};

use super::cache::Rendered;
use super::store::Validator;
use super::{feed_path, FeedDoc, Format};
use crate::catalog::{store as catalog, Article, CatalogError, Tag};
use crate::config::Config;
use crate::store::Db;

/// What one feed shows, read in one transaction: ready to render in every format.
pub struct Contents {
    /// `None` for the site feeds.
    pub tag: Option<Tag>,
    /// The tag's version (the site's: the last journal entry) these contents are from.
    pub version: i64,
    pub articles: Vec<Article>,
    pub last_removal: Option<DateTime<FixedOffset>>,
}

impl Contents {
    /// The site feeds' contents (`version`: the last journal entry of the same snapshot).
    pub fn site(db: &Db, config: &Config, version: i64) -> Result<Contents, CatalogError> {
        Ok(Contents {
            tag: None,
            version,
            articles: catalog::newest(db, None, config.feeds.items, 0)?,
            last_removal: catalog::last_removal(db, "")?,
        })
    }

    /// A tag's feed contents; `None` when there is no such tag.
    pub fn tag(db: &Db, config: &Config, slug: &str) -> Result<Option<Contents>, CatalogError> {
        let Some((tag, version)) = catalog::tag_versioned(db, slug)? else {
            return Ok(None);
        };
        Ok(Some(Contents {
            articles: catalog::newest(db, Some(slug), config.feeds.items, 0)?,
            last_removal: catalog::last_removal(db, slug)?,
            tag: Some(tag),
            version,
        }))
    }

    /// `""` for the site, else the tag's slug (as `feed_validators.feed`).
    pub fn feed(&self) -> &str {
        self.tag.as_ref().map_or("", |t| t.slug.as_str())
    }

    pub fn path(&self, format: Format) -> String {
        feed_path(self.tag.as_ref().map(|t| t.slug.as_str()), format)
    }

    /// The identity bytes in `format`, with their validators.
    pub fn render(&self, config: &Config, format: Format) -> Rendered {
        let doc = FeedDoc {
            config,
            tag: self.tag.as_ref(),
            articles: &self.articles,
            last_removal: self.last_removal,
        };
        let body = Bytes::from(doc.render(format));
        Rendered::new(format.content_type(), body, doc.updated())
    }

    /// What the database keeps of `rendered`, this feed's bytes in `format`.
    pub fn validator(&self, format: Format, rendered: &Rendered, fingerprint: &str) -> Validator {
        Validator {
            feed: self.feed().to_string(),
            format,
            version: self.version,
            fingerprint: fingerprint.to_string(),
            etag: rendered.identity.etag.to_str().unwrap_or("").to_string(),
            last_modified_s: rendered.last_modified_secs as i64,
            length: rendered.identity.body.len() as i64,
        }
    }
}

/// A feed as its validators describe it, with no body: enough to answer a conditional request
/// (the gzip variant's tag is the identity's with `-gz`, as `Rendered::with_gzip` makes it).
pub fn validators_only(v: &Validator, format: Format) -> Rendered {
    let mut r = Rendered::new(
        format.content_type(),
        Bytes::new(),
        DateTime::from_timestamp(v.last_modified_s, 0)
            .unwrap_or_default()
            .fixed_offset(),
    );
    let header = |s: &str| http::HeaderValue::from_str(s).ok();
    if let Some(etag) = header(&v.etag) {
        r.identity.etag = etag;
    }
    let gz = v
        .etag
        .strip_suffix('"')
        .and_then(|e| header(&format!("{e}-gz\"")));
    r.gzip = gz.map(|etag| super::cache::Variant {
        body: Bytes::new(),
        etag,
    });
    r
}
