//! The cache of rendered bytes: a feed (or the index page) kept as ready-to-send bytes with its
//! validators and a gzip copy, so serving it is a map lookup and a write. The site feeds and the
//! index page are always here; tag feeds are here while readers ask for them, within
//! `feeds.cache_bytes` (gzip copies included).

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use chrono::{DateTime, FixedOffset};
use http::HeaderValue;

/// One encoding of a rendered resource and its strong ETag.
#[derive(Debug, Clone)]
pub struct Variant {
    pub body: Bytes,
    pub etag: HeaderValue,
}

/// A rendered feed or page, with everything its response headers need.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub content_type: HeaderValue,
    pub identity: Variant,
    /// Filled in right after the identity bytes go live (compression stays off the publish path).
    pub gzip: Option<Variant>,
    pub last_modified: HeaderValue,
    /// `last_modified` as whole seconds since the epoch, for `If-Modified-Since`.
    pub last_modified_secs: u64,
}

impl Rendered {
    pub fn new(
        content_type: &'static str,
        body: Bytes,
        last_modified: DateTime<FixedOffset>,
    ) -> Self {
        let hash = blake3::hash(&body);
        let tag = &hash.to_hex()[..32];
        let secs = u64::try_from(last_modified.timestamp()).unwrap_or(0);
        let time = UNIX_EPOCH + Duration::from_secs(secs);
        Rendered {
            content_type: HeaderValue::from_static(content_type),
            identity: Variant {
                body,
                etag: header(&format!("\"{tag}\"")),
            },
            gzip: None,
            last_modified: header(&httpdate::fmt_http_date(time)),
            last_modified_secs: secs,
        }
    }

    /// The same resource with its gzip variant (ETag `"<identity hash>-gz"`: each encoding has its own).
    pub fn with_gzip(&self) -> Rendered {
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(self.identity.body.len() / 4),
            flate2::Compression::new(6),
        );
        let gz = encoder
            .write_all(&self.identity.body)
            .and_then(|_| encoder.finish());
        let mut out = self.clone();
        if let Ok(gz) = gz {
            let etag = self.identity.etag.to_str().unwrap_or("\"\"");
            out.gzip = Some(Variant {
                body: Bytes::from(gz),
                etag: header(&format!("{}-gz\"", &etag[..etag.len() - 1])),
            });
        }
        out
    }

    /// The memory it takes, as the cache counts it: both encodings and a little for the rest.
    pub fn weight(&self) -> u64 {
        let gzip = self.gzip.as_ref().map_or(0, |g| g.body.len());
        (self.identity.body.len() + gzip + 256) as u64
    }

    pub fn last_modified_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.last_modified_secs)
    }
}

fn header(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// Rendered resources by URL path (`/feed.xml`, `/tags/ai/atom.xml`, `/`): the site's own (the
/// site feeds and the index page) always, tag feeds within a budget of bytes.
pub struct FeedCache {
    /// The site feeds and the index page: never evicted.
    pinned: RwLock<HashMap<String, Arc<Rendered>>>,
    pinned_bytes: AtomicU64,
    /// Tag feeds, by path, weighed in bytes.
    tags: TagCache,
    capacity: u64,
    /// The last journal entry the publisher has begun to apply. A feed rendered on request from
    /// an older snapshot may miss a change the publisher will not render again (it re-renders
    /// only the feeds it finds in the cache), so it is served but not kept. The lock makes the
    /// check and the insertion one step against the publisher's mark.
    seen_change: Mutex<i64>,
}

type TagCache = quick_cache::sync::Cache<String, Arc<Rendered>, Weight>;

/// A tag feed's path in the cache.
pub type Guard<'a> = quick_cache::sync::PlaceholderGuard<
    'a,
    String,
    Arc<Rendered>,
    Weight,
    quick_cache::DefaultHashBuilder,
    quick_cache::sync::DefaultLifecycle<String, Arc<Rendered>>,
>;

#[derive(Clone)]
pub struct Weight;

impl quick_cache::Weighter<String, Arc<Rendered>> for Weight {
    fn weight(&self, key: &String, val: &Arc<Rendered>) -> u64 {
        val.weight() + key.len() as u64
    }
}

/// Whether `path` is a tag feed's (kept within the budget) rather than the site's own.
fn is_tag_path(path: &str) -> bool {
    path.starts_with("/tags/")
}

/// What asking the cache for a tag feed gives: the bytes, or the right to render them (others
/// asking meanwhile wait for this one).
pub enum Lookup<'a> {
    Hit(Arc<Rendered>),
    Render(Guard<'a>),
}

impl FeedCache {
    /// A cache of at most about `capacity` bytes (`feeds.cache_bytes`).
    pub fn new(capacity: u64) -> FeedCache {
        metrics::describe_gauge!(
            "tidings_feed_cache_bytes",
            metrics::Unit::Bytes,
            "rendered feeds held in memory (gzip copies included), at most feeds.cache_bytes"
        );
        FeedCache {
            pinned: RwLock::new(HashMap::new()),
            pinned_bytes: AtomicU64::new(0),
            tags: tag_cache(capacity),
            capacity,
            seen_change: Mutex::new(0),
        }
    }

    pub fn get(&self, path: &str) -> Option<Arc<Rendered>> {
        if is_tag_path(path) {
            return self.tags.get(path);
        }
        self.pinned
            .read()
            .ok()
            .and_then(|map| map.get(path).cloned())
    }

    /// A tag feed from the cache, or the guard of its rendering: one caller renders a missing feed
    /// while the others wait for it.
    pub async fn lookup(&self, path: &str) -> Lookup<'_> {
        match self.tags.get_value_or_guard_async(path).await {
            Ok(hit) => Lookup::Hit(hit),
            Err(guard) => Lookup::Render(guard),
        }
    }

    /// Keeps a tag feed rendered on request from a snapshot that included journal entry
    /// `through`, unless the publisher has since begun a later change; returns whether it was
    /// kept (dropping the guard lets a waiting request render it again).
    pub fn keep(&self, guard: Guard<'_>, rendered: Arc<Rendered>, through: i64) -> bool {
        let Ok(seen) = self.seen_change.lock() else {
            return false;
        };
        let kept = through >= *seen && guard.insert(rendered).is_ok();
        drop(seen);
        self.report();
        kept
    }

    /// The publisher marks the change it is about to apply (see `seen_change`).
    pub fn begin_change(&self, through: i64) {
        if let Ok(mut seen) = self.seen_change.lock() {
            *seen = (*seen).max(through);
        }
    }

    /// Puts `rendered` at `path`: the site's own always, a tag feed only if it is cached already
    /// (the publisher keeps current what readers ask for; the rest is rendered when asked).
    /// Returns whether the bytes differ from what was cached (true when nothing was).
    pub fn install(&self, path: &str, rendered: Rendered) -> bool {
        let changed;
        if is_tag_path(path) {
            let old = self.tags.peek(path);
            changed = old
                .as_ref()
                .is_none_or(|old| old.identity.etag != rendered.identity.etag);
            if old.is_some_and(|old| {
                old.identity.etag != rendered.identity.etag
                    || old.last_modified != rendered.last_modified
            }) {
                let _ = self
                    .tags
                    .replace(path.to_string(), Arc::new(rendered), true);
            }
        } else {
            let Ok(mut map) = self.pinned.write() else {
                return false;
            };
            let old = map.get(path);
            changed = old.is_none_or(|old| old.identity.etag != rendered.identity.etag);
            if changed || old.is_some_and(|old| old.last_modified != rendered.last_modified) {
                self.pin(&mut map, path, Arc::new(rendered));
            }
        }
        self.report();
        changed
    }

    /// Adds the gzip variant to `path` if its identity bytes are still `etag` (not superseded).
    pub fn install_gzip(&self, path: &str, etag: &HeaderValue, with_gzip: Rendered) {
        if is_tag_path(path) {
            if self
                .tags
                .peek(path)
                .is_some_and(|cur| cur.identity.etag == *etag)
            {
                let _ = self
                    .tags
                    .replace(path.to_string(), Arc::new(with_gzip), true);
            }
        } else if let Ok(mut map) = self.pinned.write() {
            if map.get(path).is_some_and(|cur| cur.identity.etag == *etag) {
                self.pin(&mut map, path, Arc::new(with_gzip));
            }
        }
        self.report();
    }

    fn pin(&self, map: &mut HashMap<String, Arc<Rendered>>, path: &str, rendered: Arc<Rendered>) {
        let added = rendered.weight();
        let removed = map
            .insert(path.to_string(), rendered)
            .map_or(0, |old| old.weight());
        let pinned = self.pinned_bytes.load(Ordering::Relaxed) + added - removed;
        self.pinned_bytes.store(pinned, Ordering::Relaxed);
        // The tag feeds get what the site's own leave of the budget.
        self.tags
            .set_capacity(self.capacity.saturating_sub(pinned).max(1));
    }

    /// The bytes held: the site's own and the tag feeds.
    pub fn bytes(&self) -> u64 {
        self.pinned_bytes.load(Ordering::Relaxed) + self.tags.weight()
    }

    /// How many feeds and pages are held.
    pub fn len(&self) -> usize {
        self.pinned.read().map(|m| m.len()).unwrap_or(0) + self.tags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn report(&self) {
        metrics::gauge!("tidings_feed_cache_bytes").set(self.bytes() as f64);
    }
}

/// Shards of a few MiB each: a shard's share of the budget bounds the largest feed it holds.
fn tag_cache(capacity: u64) -> TagCache {
    let shards = (capacity / (4 << 20)).clamp(1, 16) as usize;
    let options = quick_cache::OptionsBuilder::new()
        .estimated_items_capacity((capacity / (32 << 10)).clamp(16, 1 << 16) as usize)
        .weight_capacity(capacity.max(1))
        .shards(shards)
        .build();
    match options {
        Ok(options) => quick_cache::sync::Cache::with_options(
            options,
            Weight,
            quick_cache::DefaultHashBuilder::default(),
            quick_cache::sync::DefaultLifecycle::default(),
        ),
        Err(_) => quick_cache::sync::Cache::with_weighter(16, capacity.max(1), Weight),
    }
}
