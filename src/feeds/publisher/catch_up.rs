//! After start, a few tags at a time between changes: every tag feed whose validators in the
//! database are not current (rendered from an older version of the tag, or by other settings or
//! code), or whose mirror file does not hold what they describe, is rendered again, mirrored and
//! recorded. Start itself renders only the site feeds and the index page.

use std::path::Path;
use std::sync::Arc;

use super::finisher::{Item, Work};
use super::State;
use crate::catalog::{store as catalog, CatalogError};
use crate::feeds::render::Contents;
use crate::feeds::store::{self as validators, Validator};
use crate::feeds::{feed_path, mirror, Format};
use crate::store::Mode;

/// Tags looked at per slice: a change waits at most for one slice.
const SLICE: usize = 8;

impl State {
    /// Looks at the next few tags; at the end, tells the finisher the pass is done.
    pub(super) fn catch_up_slice(&mut self) -> Result<(), CatalogError> {
        let Some(after) = self.catch_up.clone() else {
            return Ok(());
        };
        let store = self.store.clone();
        let (items, last) = store.blocking(Mode::Snapshot, |db| {
            let tags = catalog::tag_versions_after(db, &after, SLICE)?;
            let mut items = Vec::new();
            for (slug, version) in &tags {
                let recorded = validators::of_feed(db, slug)?;
                let needed: Vec<Format> = Format::ALL
                    .into_iter()
                    .filter(|&format| {
                        let current = recorded.iter().find(|v| {
                            v.format == format
                                && v.version == *version
                                && v.fingerprint == self.fingerprint
                        });
                        current.is_none_or(|v| {
                            !mirrored(&self.config.feeds.mirror_dir, slug, format, v)
                        })
                    })
                    .collect();
                if needed.is_empty() {
                    continue;
                }
                let Some(contents) = Contents::tag(db, &self.config, slug)? else {
                    continue;
                };
                for format in needed {
                    let rendered = contents.render(&self.config, format);
                    let validator = contents.validator(format, &rendered, &self.fingerprint);
                    let before = recorded.iter().find(|v| v.format == format);
                    items.push(Item {
                        path: contents.path(format),
                        rendered: Arc::new(rendered),
                        changed: before.is_none_or(|v| v.etag != validator.etag),
                        validator: before.is_none_or(|v| *v != validator).then_some(validator),
                    });
                }
            }
            Ok::<_, CatalogError>((items, (tags.len() == SLICE).then(|| tags.last().cloned())))
        })?;
        if !items.is_empty() {
            self.hand_over(items);
        }
        match last.flatten() {
            Some((slug, _)) => self.catch_up = Some(slug),
            None => {
                self.catch_up = None;
                let _ = self.finisher.send(Work::CaughtUp);
            }
        }
        Ok(())
    }
}

/// Whether the mirror holds the feed `v` describes: its length and hash, and its gzip copy.
fn mirrored(dir: &Path, slug: &str, format: Format, v: &Validator) -> bool {
    let file = mirror::file_for(dir, &feed_path(Some(slug), format));
    let Ok(meta) = std::fs::metadata(&file) else {
        return false;
    };
    if meta.len() != v.length as u64 || !mirror::gz_name(&file).exists() {
        return false;
    }
    let Ok(bytes) = std::fs::read(&file) else {
        return false;
    };
    let hash = blake3::hash(&bytes).to_hex();
    v.etag.trim_matches('"') == &hash[..32]
}
