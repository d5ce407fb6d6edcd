//! The publisher: follows the catalog's change journal and re-renders only the feeds a change
//! touched (the site feeds and the feeds of the article's tags), whoever made the change: the
//! daemon's own API, the CLI in another process, or another node (noticed by polling the journal,
//! and on PostgreSQL at once through `LISTEN tidings_catalog`).
//! The index page is rendered with them, from the same read of the catalog, so `/` never shows an
//! older catalog than the feeds do.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;

use super::cache::{FeedCache, Rendered};
use super::{feed_path, index, mirror, websub, FeedDoc, Format};
use crate::catalog::{store as catalog, CatalogError, Tag, TagCount};
use crate::config::Config;
use crate::store::{Db, Mode, Store};

/// How often the publisher reads the journal for changes made by other processes. On PostgreSQL
/// a notification wakes it at once; the poll is then only a safety net.
const POLL: Duration = Duration::from_millis(500);
const POLL_WITH_NOTIFY: Duration = Duration::from_secs(5);

enum Message {
    Refresh(tokio::sync::oneshot::Sender<()>),
    /// Another node (or this one) changed the catalog, or the notification connection came back
    /// and notifications may have been lost: read the journal.
    Changed,
}

/// A handle to the publisher thread; dropping every handle stops it.
#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::Sender<Message>,
}

impl Publisher {
    /// Renders every feed into `cache` (and the mirror) now, then starts the thread that keeps them
    /// current.
    pub fn start(
        config: Arc<Config>,
        store: Store,
        cache: Arc<FeedCache>,
    ) -> anyhow::Result<(Publisher, Threads)> {
        let poll = if store.is_postgres() {
            POLL_WITH_NOTIFY
        } else {
            POLL
        };
        let mut finisher = Finisher {
            config: config.clone(),
            cache: cache.clone(),
            mirror: mirror::Mirror::start(config.feeds.mirror_dir.clone()),
            websub: config.feeds.websub_hub.clone().map(websub::Notifier::start),
        };
        let (finish_tx, finish_rx) = mpsc::channel::<Vec<String>>();
        let mut state = State {
            store,
            config,
            cache,
            finisher: finish_tx,
            last_change: 0,
            tag_counts: BTreeMap::new(),
        };
        let started = Instant::now();
        let (count, changed) = state.rebuild_all()?;
        // At start, compress and mirror everything before serving.
        finisher.finish(changed)?;
        tracing::info!(
            feeds = count,
            ms = started.elapsed().as_millis() as u64,
            "rendered every feed"
        );
        let finishing = std::thread::Builder::new()
            .name("feed-finisher".into())
            .spawn(move || finisher.run(finish_rx))
            .map_err(|e| anyhow::anyhow!("cannot start a feed thread: {e}"))?;
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("publisher".into())
            .spawn(move || state.run(rx, poll))
            .map_err(|e| anyhow::anyhow!("cannot start a feed thread: {e}"))?;
        Ok((
            Publisher { tx },
            Threads {
                publisher: handle,
                finisher: finishing,
            },
        ))
    }

    /// Brings the served feeds up to date with the catalog; returns once the new bytes are live.
    pub async fn refresh(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.tx.send(Message::Refresh(done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// Asks for a read of the journal without waiting for it (a notification from another node).
    pub fn changed(&self) {
        let _ = self.tx.send(Message::Changed);
    }
}

/// The publisher's threads: once every `Publisher` handle is gone, `join` waits for the last
/// feeds to be rendered, compressed, mirrored and announced.
pub struct Threads {
    publisher: JoinHandle<()>,
    finisher: JoinHandle<()>,
}

impl Threads {
    pub fn join(self) {
        let _ = self.publisher.join();
        // The publisher's end closed the finisher's queue: it finishes what is left, then
        // stops the mirror and WebSub threads and waits for them.
        let _ = self.finisher.join();
    }
}

struct State {
    config: Arc<Config>,
    cache: Arc<FeedCache>,
    store: Store,
    /// Paths whose identity bytes changed go here for gzip, mirror, WebSub and the index page.
    finisher: mpsc::Sender<Vec<String>>,
    last_change: i64,
    /// Every tag with its article count, for the index page; kept current tag by tag.
    tag_counts: BTreeMap<String, TagCount>,
}

/// The work that follows a change once the new bytes are live, on a thread of its own so the next
/// publish never waits for it: gzip copies, the static mirror, WebSub pings.
struct Finisher {
    config: Arc<Config>,
    cache: Arc<FeedCache>,
    mirror: mirror::Mirror,
    websub: Option<websub::Notifier>,
}

impl State {
    fn run(mut self, rx: mpsc::Receiver<Message>, poll: Duration) {
        let mut last_prune = Instant::now();
        loop {
            let waiter = match rx.recv_timeout(poll) {
                Ok(Message::Refresh(done)) => Some(done),
                Ok(Message::Changed) | Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if let Err(e) = self.follow_journal(waiter) {
                tracing::error!(error = %e, "cannot refresh feeds; will retry");
            }
            if last_prune.elapsed() > Duration::from_secs(3600) {
                last_prune = Instant::now();
                let pruned = self
                    .store
                    .blocking(Mode::Write, |db| catalog::prune_journal(db, Utc::now()));
                if let Err(e) = pruned {
                    tracing::warn!(error = %e, "cannot prune the change journal");
                }
            }
        }
        tracing::debug!("publisher stopped");
    }

    fn follow_journal(
        &mut self,
        waiter: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Result<(), CatalogError> {
        let changes = self.store.blocking(Mode::Read, |db| {
            catalog::changes_since(db, self.last_change)
        })?;
        if changes.any {
            let started = Instant::now();
            let (count, changed) = self.rebuild(&changes.tag_slugs, Some(changes.last_id))?;
            tracing::info!(
                feeds = count,
                ms = started.elapsed().as_millis() as u64,
                "feeds updated"
            );
            let _ = self.finisher.send(changed);
        }
        // The identity bytes are live: let the writer go on.
        if let Some(done) = waiter {
            let _ = done.send(());
        }
        Ok(())
    }

    /// Renders the site feeds, these tags' feeds and the index page, all from one read of the
    /// catalog; returns how many feeds, and the paths whose bytes changed.
    /// Every feed, at start: the journal position and the tag list come from the same snapshot.
    fn rebuild_all(&mut self) -> Result<(usize, Vec<String>), CatalogError> {
        let store = self.store.clone();
        store.blocking(Mode::Snapshot, |db| {
            self.last_change = catalog::last_change(db)?;
            let all: BTreeSet<String> = catalog::tags(db)?.into_iter().map(|t| t.slug).collect();
            self.rebuild_in_snapshot(db, &all)
        })
    }

    /// These feeds, from one read transaction, so every feed and the index page see the same
    /// catalog; `through` is the journal entry they include.
    fn rebuild(
        &mut self,
        tag_slugs: &BTreeSet<String>,
        through: Option<i64>,
    ) -> Result<(usize, Vec<String>), CatalogError> {
        let store = self.store.clone();
        let built = store.blocking(Mode::Snapshot, |db| self.rebuild_in_snapshot(db, tag_slugs))?;
        if let Some(id) = through {
            self.last_change = self.last_change.max(id);
        }
        Ok(built)
    }

    fn rebuild_in_snapshot(
        &mut self,
        db: &Db,
        tag_slugs: &BTreeSet<String>,
    ) -> Result<(usize, Vec<String>), CatalogError> {
        let mut groups: Vec<Option<Tag>> = vec![None];
        for slug in tag_slugs {
            if let Some(tag) = catalog::tag(db, slug)? {
                groups.push(Some(tag));
            }
        }
        let mut changed: Vec<String> = Vec::new();
        let mut count = 0;
        // A few feeds at a time: their articles are in memory while they render.
        for chunk in groups.chunks(16) {
            count += self.render_feeds(db, chunk, &mut changed)?;
        }
        for slug in tag_slugs {
            match catalog::tag_count(db, slug)? {
                Some(t) => self.tag_counts.insert(slug.clone(), t),
                None => self.tag_counts.remove(slug),
            };
        }
        if self.render_index(db)? {
            changed.push("/".to_string());
        }
        Ok((count, changed))
    }

    /// Renders the index page (latest articles, every tag); whether its bytes changed.
    fn render_index(&mut self, db: &Db) -> Result<bool, CatalogError> {
        let mut tags: Vec<TagCount> = self.tag_counts.values().cloned().collect();
        // As `catalog::tags` orders them.
        tags.sort_by(|a, b| {
            a.name
                .to_ascii_lowercase()
                .cmp(&b.name.to_ascii_lowercase())
                .then_with(|| a.slug.cmp(&b.slug))
        });
        let newest = catalog::newest(db, None, 10, 0)?;
        let html = index::render_index(&self.config, &tags, &newest);
        let updated = newest
            .iter()
            .map(|a| a.updated_at)
            .max()
            .unwrap_or(chrono::DateTime::UNIX_EPOCH.fixed_offset());
        let page = Rendered::new("text/html; charset=utf-8", Bytes::from(html), updated);
        Ok(self.cache.install("/", page))
    }
}

/// One feed's contents, read from the catalog, ready to render in every format.
struct Group<'a> {
    tag: Option<&'a Tag>,
    articles: Vec<crate::catalog::Article>,
    last_removal: Option<chrono::DateTime<chrono::FixedOffset>>,
}

impl State {
    /// Renders these feeds in every format, on all cores, and installs the ones whose bytes changed.
    fn render_feeds(
        &mut self,
        db: &Db,
        tags: &[Option<Tag>],
        changed: &mut Vec<String>,
    ) -> Result<usize, CatalogError> {
        let mut groups = Vec::with_capacity(tags.len());
        for tag in tags {
            let slug = tag.as_ref().map(|t| t.slug.as_str());
            groups.push(Group {
                tag: tag.as_ref(),
                articles: catalog::newest(db, slug, self.config.feeds.items, 0)?,
                last_removal: catalog::last_removal(db, slug.unwrap_or(""))?,
            });
        }
        let jobs: Vec<(&Group, Format)> = groups
            .iter()
            .flat_map(|g| Format::ALL.iter().map(move |f| (g, *f)))
            .collect();
        let config = &self.config;
        let render = |(g, format): &(&Group, Format)| {
            let doc = FeedDoc {
                config,
                tag: g.tag,
                articles: &g.articles,
                last_removal: g.last_removal,
            };
            let path = feed_path(g.tag.map(|t| t.slug.as_str()), *format);
            let body = Bytes::from(doc.render(*format));
            (
                path,
                Rendered::new(format.content_type(), body, doc.updated()),
            )
        };
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 4);
        let per_thread = jobs.len().div_ceil(threads).max(1);
        let rendered: Vec<(String, Rendered)> = std::thread::scope(|scope| {
            let handles: Vec<_> = jobs
                .chunks(per_thread)
                .map(|chunk| scope.spawn(move || chunk.iter().map(render).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let count = rendered.len();
        for (path, r) in rendered {
            if self.cache.install(&path, r) {
                changed.push(path);
            }
        }
        Ok(count)
    }
}

impl Finisher {
    fn run(mut self, rx: mpsc::Receiver<Vec<String>>) {
        while let Ok(mut paths) = rx.recv() {
            // Coalesce a burst of changes into one pass.
            while let Ok(more) = rx.try_recv() {
                paths.extend(more);
            }
            paths.sort();
            paths.dedup();
            if let Err(e) = self.finish(paths) {
                tracing::error!(error = %e, "cannot finish feed updates (index page)");
            }
        }
        let Finisher { mirror, websub, .. } = self;
        mirror.finish();
        if let Some(w) = websub {
            w.finish();
        }
        tracing::debug!("feed finisher stopped");
    }

    /// Compresses, mirrors and announces the feeds (and the index page) that changed.
    fn finish(&mut self, paths: Vec<String>) -> Result<(), CatalogError> {
        for path in &paths {
            let Some(current) = self.cache.get(path) else {
                continue;
            };
            let with_gzip = current.with_gzip();
            self.mirror.write(path, &with_gzip);
            self.cache
                .install_gzip(path, &current.identity.etag, with_gzip);
            if let (Some(websub), false) = (&self.websub, path == "/") {
                websub.publish(self.config.site_url(path));
            }
        }
        Ok(())
    }
}
