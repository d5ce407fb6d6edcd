//! Tag feeds that are not in memory. A conditional request can be answered from the validators
//! the database keeps for the feed, when they are current (rendered from the tag's present
//! version, by these settings and this code): a `304` without rendering. Otherwise the feed is rendered
//! from the catalog, once however many ask for it at the same moment and at most
//! `RENDERING_AT_ONCE` feeds at a time, and kept in the cache.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::cache::{FeedCache, Lookup, Rendered};
use super::render::{validators_only, Contents};
use super::{store, Format};
use crate::catalog::{store as catalog, CatalogError};
use crate::config::Config;
use crate::store::{Db, Store};

/// Tag feeds rendered on request at the same time, at most (each reads up to `feeds.items`
/// articles and holds their bytes while it renders).
const RENDERING_AT_ONCE: usize = 2;

/// The tag and format of a tag feed's path, `/tags/{slug}/{feed.xml|atom.xml|feed.json}`.
pub fn tag_feed(path: &str) -> Option<(&str, Format)> {
    let (slug, file) = path.strip_prefix("/tags/")?.split_once('/')?;
    if slug.is_empty() {
        return None;
    }
    let format = Format::ALL.into_iter().find(|f| f.file_name() == file)?;
    Some((slug, format))
}

pub struct OnDemand {
    store: Store,
    config: Arc<Config>,
    cache: Arc<FeedCache>,
    fingerprint: String,
    permits: Semaphore,
}

impl OnDemand {
    pub fn new(store: Store, config: Arc<Config>, cache: Arc<FeedCache>) -> OnDemand {
        metrics::describe_counter!(
            "tidings_feed_renders_total",
            "tag feeds rendered because a reader asked for one that was not in memory"
        );
        OnDemand {
            fingerprint: super::fingerprint(&config),
            store,
            config,
            cache,
            permits: Semaphore::new(RENDERING_AT_ONCE),
        }
    }

    /// The validators of a tag feed (no body) if the database holds current ones: enough to
    /// answer a conditional request without rendering.
    pub async fn validators(
        &self,
        slug: &str,
        format: Format,
    ) -> Result<Option<Rendered>, CatalogError> {
        let (slug, fingerprint) = (slug.to_string(), self.fingerprint.clone());
        let current = self
            .store
            .read(move |db| current(db, &slug, format, &fingerprint))
            .await?;
        Ok(current.map(|v| validators_only(&v, format)))
    }

    /// The tag feed at `path` (`slug` in `format`) from the cache, or rendered from the catalog
    /// and kept; `None` when there is no such tag.
    pub async fn get(
        &self,
        path: &str,
        slug: &str,
        format: Format,
    ) -> Result<Option<Arc<Rendered>>, CatalogError> {
        let guard = match self.cache.lookup(path).await {
            Lookup::Hit(rendered) => return Ok(Some(rendered)),
            Lookup::Render(guard) => guard,
        };
        let _permit = self.permits.acquire().await;
        let (config, slug) = (self.config.clone(), slug.to_string());
        let rendered = self
            .store
            .snapshot(move |db| -> Result<_, CatalogError> {
                let through = catalog::last_change(db)?;
                let Some(contents) = Contents::tag(db, &config, &slug)? else {
                    return Ok(None);
                };
                Ok(Some((
                    through,
                    contents.render(&config, format).with_gzip(),
                )))
            })
            .await?;
        let Some((through, rendered)) = rendered else {
            return Ok(None);
        };
        metrics::counter!("tidings_feed_renders_total").increment(1);
        let rendered = Arc::new(rendered);
        self.cache.keep(guard, rendered.clone(), through);
        Ok(Some(rendered))
    }
}

/// The validators of a tag's feed in `format` if they are current: rendered from the tag's
/// present version under `fingerprint`.
fn current(
    db: &Db,
    slug: &str,
    format: Format,
    fingerprint: &str,
) -> Result<Option<store::Validator>, CatalogError> {
    let Some((_, version)) = catalog::tag_versioned(db, slug)? else {
        return Ok(None);
    };
    Ok(store::get(db, slug, format)?
        .filter(|v| v.version == version && v.fingerprint == fingerprint))
}
