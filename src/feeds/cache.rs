//! The cache of rendered bytes: each feed (and the index page) kept as ready-to-send bytes with
//! its validators and a gzip copy, so serving a feed is a map lookup and a write.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, RwLock};
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

    pub fn last_modified_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.last_modified_secs)
    }
}

fn header(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// Rendered resources by URL path (`/feed.xml`, `/tags/ai/atom.xml`, `/`).
#[derive(Default)]
pub struct FeedCache {
    entries: RwLock<HashMap<String, Arc<Rendered>>>,
}

impl FeedCache {
    pub fn get(&self, path: &str) -> Option<Arc<Rendered>> {
        self.entries
            .read()
            .ok()
            .and_then(|map| map.get(path).cloned())
    }

    /// Puts `rendered` at `path`; returns whether the bytes differ from what was there.
    pub fn install(&self, path: &str, rendered: Rendered) -> bool {
        let Ok(mut map) = self.entries.write() else {
            return false;
        };
        let changed = map
            .get(path)
            .is_none_or(|old| old.identity.etag != rendered.identity.etag);
        if changed
            || map
                .get(path)
                .is_some_and(|old| old.last_modified != rendered.last_modified)
        {
            map.insert(path.to_string(), Arc::new(rendered));
        }
        changed
    }

    /// Adds the gzip variant to `path` if its identity bytes are still `etag` (not superseded).
    pub fn install_gzip(&self, path: &str, etag: &HeaderValue, with_gzip: Rendered) {
        if let Ok(mut map) = self.entries.write() {
            if map.get(path).is_some_and(|cur| cur.identity.etag == *etag) {
                map.insert(path.to_string(), Arc::new(with_gzip));
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
