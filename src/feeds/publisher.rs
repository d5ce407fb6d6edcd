//! The publisher: follows the catalog's change journal and re-renders only the feeds a change
//! touched (the site feeds and the feeds of the article's tags), whoever made the change: the
//! daemon's own API, the CLI in another process, or another node (noticed by polling the journal,
//! and on PostgreSQL at once through `LISTEN tidings_catalog`). Each touched feed's new bytes go
//! to the cache if it holds that feed (the site feeds always), and to the `finisher`: mirror,
//! validators in the database, WebSub.
//! The index page is rendered with them, from the same read of the catalog, so `/` never shows an
//! older catalog than the feeds do.
//! At start only the site feeds and the index page are rendered; then, a few tags at a time
//! between changes, `catch_up` brings the mirror and the validators of every tag feed up to date.

mod catch_up;
mod finisher;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;

use super::cache::{FeedCache, Rendered};
use super::render::Contents;
use super::{feed_path, index, store, Format};
use crate::catalog::{store as catalog, Article, CatalogError};
use crate::config::Config;
use crate::store::{Db, Mode, Store};
use finisher::{Finisher, Item, Work};

/// How often the publisher reads the journal for changes made by other processes. On PostgreSQL
/// a notification wakes it at once; the poll is then only a safety net.
const POLL: Duration = Duration::from_millis(500);
const POLL_WITH_NOTIFY: Duration = Duration::from_secs(5);
/// The catch-up after start renders more only while fewer feeds than this wait to be written.
const CATCH_UP_BACKLOG: usize = 48;

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
    /// Renders the site feeds and the index page into `cache` (and the mirror) now, then starts
    /// the thread that keeps every feed current.
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
        let fingerprint = super::fingerprint(&config);
        let backlog = Arc::new(AtomicUsize::new(0));
        let mut finisher = Finisher::new(
            config.clone(),
            cache.clone(),
            store.clone(),
            backlog.clone(),
        );
        let (finish_tx, finish_rx) = mpsc::channel::<Work>();
        let mut state = State {
            store,
            config,
            cache,
            fingerprint,
            finisher: finish_tx,
            backlog,
            last_change: 0,
            tag_parts: index::TagParts::default(),
            catch_up: Some(String::new()),
        };
        let started = Instant::now();
        let items = state.start()?;
        // Before serving: the site feeds and the index page compressed, mirrored and recorded.
        let count = items.len();
        finisher.finish(items);
        tracing::info!(
            feeds = count,
            ms = started.elapsed().as_millis() as u64,
            "rendered the site feeds"
        );
        metrics::describe_gauge!(
            "tidings_feed_mirror_catching_up",
            "1 while the static mirror and the feeds' validators are being brought up to date after start"
        );
        metrics::gauge!("tidings_feed_mirror_catching_up").set(1.0);
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
    /// `super::fingerprint` of these settings: what validators are recorded under.
    fingerprint: String,
    /// Rendered feeds go here for gzip, mirror, validators, WebSub.
    finisher: mpsc::Sender<Work>,
    /// Feeds handed to the finisher and not yet written: the catch-up waits while there are
    /// many, so its renders never pile up in memory ahead of the disk.
    backlog: Arc<AtomicUsize>,
    last_change: i64,
    /// Every tag's parts of the index page, kept rendered tag by tag.
    tag_parts: index::TagParts,
    /// While the pass over every tag feed after start is under way: the last slug it did.
    catch_up: Option<String>,
}

impl State {
    fn run(mut self, rx: mpsc::Receiver<Message>, poll: Duration) {
        let mut last_prune = Instant::now();
        let mut last_read = Instant::now();
        loop {
            // While catching up, a slice of tags between messages (a change goes first), as fast
            // as the disk takes them.
            let wait = match self.catch_up {
                Some(_) if self.backlog.load(Ordering::Relaxed) < CATCH_UP_BACKLOG => {
                    Duration::ZERO
                }
                Some(_) => Duration::from_millis(10),
                None => poll,
            };
            let waiter = match rx.recv_timeout(wait) {
                Ok(Message::Refresh(done)) => Some(done),
                Ok(Message::Changed) => None,
                Err(RecvTimeoutError::Timeout)
                    if self.catch_up.is_some()
                        && self.backlog.load(Ordering::Relaxed) < CATCH_UP_BACKLOG =>
                {
                    if let Err(e) = self.catch_up_slice() {
                        tracing::error!(error = %e, "cannot bring the static mirror up to date; will retry");
                        std::thread::sleep(poll);
                    }
                    if last_read.elapsed() < poll {
                        continue;
                    }
                    None
                }
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            last_read = Instant::now();
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
        mut waiter: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Result<(), CatalogError> {
        let changes = self.store.blocking(Mode::Read, |db| {
            catalog::changes_since(db, self.last_change)
        })?;
        if changes.any {
            let started = Instant::now();
            // A tag feed rendered on request from an older snapshot is no longer kept.
            self.cache.begin_change(changes.last_id);
            // What readers are served from memory goes live first: the site feeds, the touched
            // tag feeds held in the cache and the index page. The touched tags that are not held
            // are read from the catalog by whoever asks for them now; they are rendered after,
            // for their mirror files and validators.
            let (held, rest): (BTreeSet<String>, BTreeSet<String>) =
                changes.tag_slugs.iter().cloned().partition(|slug| {
                    Format::ALL
                        .iter()
                        .any(|f| self.cache.get(&feed_path(Some(slug), *f)).is_some())
                });
            let store = self.store.clone();
            let feeds_started = Instant::now();
            let (mut items, newest) = store.blocking(Mode::Snapshot, |db| {
                self.rebuild_in_snapshot(db, &held, &changes.tag_slugs)
            })?;
            let feeds_us = feeds_started.elapsed().as_micros() as u64;
            self.last_change = self.last_change.max(changes.last_id);
            let index_started = Instant::now();
            items.push(self.render_index(&newest));
            let index_us = index_started.elapsed().as_micros() as u64;
            // The feeds and the index page are live: let the writer go on.
            if let Some(done) = waiter.take() {
                let _ = done.send(());
            }
            let live_ms = started.elapsed().as_millis() as u64;
            let live = items.len();
            self.hand_over(items);
            let items = store.blocking(Mode::Snapshot, |db| {
                let mut feeds = Vec::with_capacity(rest.len());
                for slug in &rest {
                    feeds.extend(Contents::tag(db, &self.config, slug)?);
                }
                let mut items = Vec::with_capacity(feeds.len() * 3);
                for chunk in feeds.chunks(16) {
                    self.render_feeds(db, chunk, false, &mut items)?;
                }
                Ok::<_, CatalogError>(items)
            })?;
            tracing::info!(
                feeds = live + items.len(),
                ms = live_ms,
                all_ms = started.elapsed().as_millis() as u64,
                feeds_us,
                index_us,
                "feeds updated"
            );
            self.hand_over(items);
        }
        // The identity bytes are live: let the writer go on.
        if let Some(done) = waiter {
            let _ = done.send(());
        }
        Ok(())
    }

    /// Gives rendered feeds to the finisher.
    fn hand_over(&self, items: Vec<Item>) {
        self.backlog.fetch_add(items.len(), Ordering::Relaxed);
        let _ = self.finisher.send(Work::Items(items));
    }

    /// At start: the site feeds and the index page, with every tag's count; the journal
    /// position and the tag list come from the same snapshot.
    fn start(&mut self) -> Result<Vec<Item>, CatalogError> {
        let store = self.store.clone();
        let (mut items, newest) = store.blocking(Mode::Snapshot, |db| {
            self.last_change = catalog::last_change(db)?;
            self.cache.begin_change(self.last_change);
            for tag in catalog::tags(db)? {
                self.tag_parts.set(&self.config, &tag);
            }
            self.rebuild_in_snapshot(db, &BTreeSet::new(), &BTreeSet::new())
        })?;
        items.push(self.render_index(&newest));
        Ok(items)
    }

    /// Renders the site feeds and these tags' feeds (with the counts of `counted` read again),
    /// all from one read of the catalog; what was rendered, for the finisher, and the newest
    /// articles for the index page.
    fn rebuild_in_snapshot(
        &mut self,
        db: &Db,
        tag_slugs: &BTreeSet<String>,
        counted: &BTreeSet<String>,
    ) -> Result<(Vec<Item>, Vec<Article>), CatalogError> {
        let version = catalog::last_change(db)?;
        let mut feeds = vec![Contents::site(db, &self.config, version)?];
        for slug in tag_slugs {
            if let Some(contents) = Contents::tag(db, &self.config, slug)? {
                feeds.push(contents);
            }
        }
        let mut items = Vec::with_capacity(feeds.len() * 3 + 1);
        // A few feeds at a time: their articles are in memory while they render.
        for chunk in feeds.chunks(16) {
            self.render_feeds(db, chunk, true, &mut items)?;
        }
        for slug in counted {
            match catalog::tag_count(db, slug)? {
                Some(t) => self.tag_parts.set(&self.config, &t),
                None => self.tag_parts.remove(slug),
            }
        }
        Ok((items, catalog::newest(db, None, 10, 0)?))
    }

    /// Renders the index page (the newest articles, every tag).
    fn render_index(&mut self, newest: &[Article]) -> Item {
        let html = index::render_index(&self.config, &self.tag_parts, newest);
        let updated = newest
            .iter()
            .map(|a| a.updated_at)
            .max()
            .unwrap_or(chrono::DateTime::UNIX_EPOCH.fixed_offset());
        let page = Rendered::new("text/html; charset=utf-8", Bytes::from(html), updated);
        let changed = self.cache.install("/", page.clone());
        Item {
            path: "/".to_string(),
            rendered: Arc::new(page),
            changed,
            validator: None,
        }
    }

    /// Renders these feeds in every format, on all cores, for the finisher; with `install`, puts
    /// them in the cache too (a tag feed only if it is there already).
    fn render_feeds(
        &mut self,
        db: &Db,
        feeds: &[Contents],
        install: bool,
        items: &mut Vec<Item>,
    ) -> Result<(), CatalogError> {
        let mut recorded = Vec::with_capacity(feeds.len());
        for contents in feeds {
            recorded.push(store::of_feed(db, contents.feed())?);
        }
        let jobs: Vec<(usize, Format)> = (0..feeds.len())
            .flat_map(|i| Format::ALL.iter().map(move |f| (i, *f)))
            .collect();
        let config = &self.config;
        let render = |&(i, format): &(usize, Format)| (i, format, feeds[i].render(config, format));
        let rendered = render_in_parallel(&jobs, render);
        for (i, format, r) in rendered {
            let contents = &feeds[i];
            let path = contents.path(format);
            let validator = contents.validator(format, &r, &self.fingerprint);
            let before = recorded[i].iter().find(|v| v.format == format);
            let in_cache = install && self.cache.get(&path).is_some();
            let cache_changed = install && self.cache.install(&path, r.clone());
            // Changed for readers: against the bytes held here, else against the last recorded.
            let changed = match (contents.tag.is_none() || in_cache, before) {
                (true, _) => cache_changed,
                (false, Some(v)) => v.etag != validator.etag || v.fingerprint != self.fingerprint,
                (false, None) => true,
            };
            let stale = before.is_none_or(|v| *v != validator);
            items.push(Item {
                path,
                rendered: Arc::new(r),
                changed,
                validator: stale.then_some(validator),
            });
        }
        Ok(())
    }
}

/// Runs `render` over `jobs` on up to 4 threads.
fn render_in_parallel<J: Sync, T: Send>(jobs: &[J], render: impl Fn(&J) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4);
    if jobs.len() <= 1 || threads == 1 {
        return jobs.iter().map(&render).collect();
    }
    let per_thread = jobs.len().div_ceil(threads).max(1);
    let render = &render;
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(per_thread)
            .map(|chunk| scope.spawn(move || chunk.iter().map(render).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}
