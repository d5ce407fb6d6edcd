//! The work that follows a render once the new bytes are live, on a thread of its own so the next
//! publish never waits for it: gzip copies, the static mirror, the validators in the database,
//! WebSub pings.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use super::super::cache::{FeedCache, Rendered};
use super::super::store::{self as validators, Validator};
use super::super::{mirror, websub};
use crate::config::Config;
use crate::store::{Mode, Store};

/// One rendered feed (or the index page at `/`).
pub struct Item {
    pub path: String,
    /// The identity bytes (the finisher adds the gzip copy).
    pub rendered: Arc<Rendered>,
    /// Whether readers see new bytes: the feed is announced to the WebSub hub.
    pub changed: bool,
    /// Validators to record, when they differ from the database's.
    pub validator: Option<Validator>,
}

pub enum Work {
    Items(Vec<Item>),
    /// The pass over every tag feed after start is done: once what came before is written, say so.
    CaughtUp,
}

pub struct Finisher {
    config: Arc<Config>,
    cache: Arc<FeedCache>,
    store: Store,
    mirror: mirror::Mirror,
    websub: Option<websub::Notifier>,
    /// Feeds handed over and not yet written (see `State::backlog`).
    backlog: Arc<AtomicUsize>,
}

impl Finisher {
    pub fn new(
        config: Arc<Config>,
        cache: Arc<FeedCache>,
        store: Store,
        backlog: Arc<AtomicUsize>,
    ) -> Finisher {
        Finisher {
            backlog,
            mirror: mirror::Mirror::start(config.feeds.mirror_dir.clone()),
            websub: config.feeds.websub_hub.clone().map(websub::Notifier::start),
            config,
            cache,
            store,
        }
    }

    pub fn run(mut self, rx: mpsc::Receiver<Work>) {
        while let Ok(work) = rx.recv() {
            let mut items = Vec::new();
            let mut caught_up = false;
            let mut handed = 0;
            // Coalesce a burst of changes into one pass; a later render of a path wins.
            for work in std::iter::once(work).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
                match work {
                    Work::Items(more) => {
                        handed += more.len();
                        items.extend(more)
                    }
                    Work::CaughtUp => caught_up = true,
                }
            }
            let mut seen = std::collections::HashSet::new();
            let mut latest: Vec<Item> = items
                .into_iter()
                .rev()
                .filter(|i| seen.insert(i.path.clone()))
                .collect();
            latest.reverse();
            self.finish(latest);
            let backlog = self.backlog.clone();
            self.mirror.after_written(move || {
                backlog.fetch_sub(handed, Ordering::Relaxed);
            });
            if caught_up {
                self.mirror.after_written(|| {
                    metrics::gauge!("tidings_feed_mirror_catching_up").set(0.0);
                    tracing::info!("the static mirror and every feed's validators are up to date");
                });
            }
        }
        let Finisher { mirror, websub, .. } = self;
        mirror.finish();
        if let Some(w) = websub {
            w.finish();
        }
        tracing::debug!("feed finisher stopped");
    }

    /// Compresses, mirrors, records and announces these feeds.
    pub fn finish(&mut self, items: Vec<Item>) {
        let mut rows = Vec::new();
        for item in items {
            let held = self
                .cache
                .get(&item.path)
                .is_some_and(|c| c.identity.etag == item.rendered.identity.etag);
            if held {
                let with_gzip = item.rendered.with_gzip();
                let gzip = with_gzip.gzip.as_ref().map(|g| g.body.clone());
                self.mirror
                    .write(&item.path, item.rendered.identity.body.clone(), gzip);
                self.cache
                    .install_gzip(&item.path, &item.rendered.identity.etag, with_gzip);
            } else {
                // The mirror thread compresses it if its file does not hold these bytes yet.
                self.mirror
                    .write(&item.path, item.rendered.identity.body.clone(), None);
            }
            if let (Some(websub), true, false) = (&self.websub, item.changed, item.path == "/") {
                websub.publish(self.config.site_url(&item.path));
            }
            rows.extend(item.validator);
        }
        if !rows.is_empty() {
            let recorded = self
                .store
                .blocking(Mode::Write, |db| validators::record(db, &rows));
            if let Err(e) = recorded {
                tracing::warn!(error = %e, "cannot record the feeds' validators");
            }
        }
    }
}
