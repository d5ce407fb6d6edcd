//! Following blogs that live elsewhere: each source's feed is polled (conditional GET, a
//! schedule adapted to the feed, back-off on errors, at most `sources.per_host` fetches at once
//! per host) and its entries become catalog articles. `Sources` is the async face the CLI, the
//! API and the daemon's poller call.

pub mod apply;
pub mod entries;
pub mod fetch;
pub mod guard;
pub mod hub;
mod poller;
pub mod schedule;
pub mod store;
pub mod websub;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use chrono::Utc;
use tokio::sync::{Notify, Semaphore};

use crate::catalog::{Slug, Tag};
use crate::config::Config;
use crate::store::Store;
use crate::webhook_endpoints::client::Client;
pub use apply::Applied;
use fetch::{Ask, Fetched, Limits};
use guard::Allowed;
use schedule::{Bounds, Hints};
pub use store::Source;

/// Polls in flight at once on one node, whatever their hosts. 64 read 10,000 sources in the
/// same time as 256 on 2 cores, with less memory (each writes through a blocking thread of its
/// own: BENCHMARKS.md, "Followed blogs").
const IN_FLIGHT: usize = 64;
/// A claimed source is this node's to fetch until then (a node that died lets go by itself).
const LEASE: Duration = Duration::from_secs(600);
/// A time that never comes: the next poll of a gone source, a hub not to be asked again.
const NEVER: i64 = i64::MAX / 2;

/// Why a source could not be added, found or polled.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Bad input: the field and what is wrong.
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
    #[error("no source {0}")]
    NotFound(i64),
    #[error("a source with the URL {0} exists already")]
    Exists(String),
    /// Another fetch of the source is under way.
    #[error("source {0} is being fetched already")]
    Busy(i64),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

fn invalid(field: &str, problem: impl Into<String>) -> SourceError {
    SourceError::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

/// A source to follow.
#[derive(Debug, Clone, Default)]
pub struct AddSource {
    pub url: String,
    pub tags: Vec<String>,
    pub name: Option<String>,
}

/// How one poll went.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PollReport {
    /// The HTTP status (none when no answer came).
    pub status: Option<u16>,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// What the entries changed (none without a read feed).
    pub applied: Option<Applied>,
    /// When the next regular poll is, in microseconds since the epoch.
    pub next_fetch_us: i64,
}

/// Followed blogs: adding, reading, removing, polling.
pub struct Sources {
    store: Store,
    client: Client,
    allowed: Allowed,
    limits: Limits,
    bounds: Bounds,
    per_host: usize,
    max_entries: usize,
    max_age: chrono::Duration,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Hosts that answered `429`, until when (on this node).
    paused: Mutex<HashMap<String, i64>>,
    in_flight: Arc<Semaphore>,
    wake: Notify,
    /// `site.base_url`: WebSub callbacks are `<base>/websub/<id>`.
    base_url: String,
    /// Unsubscriptions this node asked for, awaiting the hub's verification: source id → topic.
    leaving: Mutex<HashMap<i64, String>>,
    /// Called after a poll wrote to the catalog (the daemon: the feed publisher's wake-up).
    on_change: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

impl Sources {
    pub fn new(config: &Config, store: Store) -> Result<Sources, String> {
        let s = &config.sources;
        Ok(Sources {
            store,
            // Private addresses are judged by `allowed` before any connection is made.
            client: Client::new(true)?,
            allowed: Allowed::parse(&s.allow_private)?,
            limits: Limits {
                timeout: Duration::from_secs(u64::from(s.timeout_seconds)),
                max_bytes: s.max_bytes,
                user_agent: format!(
                    "tidings/{} (+{})",
                    env!("CARGO_PKG_VERSION"),
                    config.site.base_url
                ),
            },
            bounds: Bounds {
                min: Duration::from_secs(u64::from(s.min_interval_minutes) * 60),
                max: Duration::from_secs(u64::from(s.max_interval_minutes) * 60),
            },
            per_host: s.per_host as usize,
            max_entries: s.max_entries as usize,
            max_age: chrono::Duration::days(i64::from(config.digest.max_age_days)),
            hosts: Mutex::new(HashMap::new()),
            paused: Mutex::new(HashMap::new()),
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT)),
            wake: Notify::new(),
            base_url: config.site.base_url.trim_end_matches('/').to_string(),
            leaving: Mutex::new(HashMap::new()),
            on_change: Mutex::new(None),
        })
    }

    /// What to call after a poll changed the catalog.
    pub fn on_change(&self, f: impl Fn() + Send + Sync + 'static) {
        *self
            .on_change
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Box::new(f));
    }

    /// Follows a feed: its URL checked (scheme, and every address its host resolves to), a
    /// name (the host's when none is given) and a slug for its articles. Polled at once.
    pub async fn add(&self, add: AddSource) -> Result<Source, SourceError> {
        let url = Allowed::url(&add.url).map_err(|e| invalid("url", e.0))?;
        self.allowed
            .resolve(&url)
            .await
            .map_err(|e| invalid("url", e.0))?;
        let mut tags = Vec::new();
        for raw in &add.tags {
            let tag = Tag::parse(raw).map_err(|e| invalid("tags", e))?;
            if !tags
                .iter()
                .any(|t: &String| t.eq_ignore_ascii_case(&tag.name))
            {
                tags.push(tag.name);
            }
        }
        let name = match add.name.as_deref().map(str::trim) {
            Some("") => return Err(invalid("name", "must not be empty")),
            Some(n) if n.chars().count() > 200 => {
                return Err(invalid("name", "must be at most 200 characters"))
            }
            Some(n) if n.chars().any(char::is_control) => {
                return Err(invalid("name", "must not contain control characters"))
            }
            Some(n) => n.to_string(),
            None => url.host_str().unwrap_or("source").to_string(),
        };
        let base = Slug::from_title(&name)
            .map(|s| s.as_str().chars().take(40).collect::<String>())
            .map(|s| s.trim_end_matches('-').to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "source".into());
        let url_text = url.to_string();
        let interval_s = self.bounds.max.as_secs() as i64;
        let id = self
            .store
            .write(move |db| {
                let mut n = 1;
                let slug = loop {
                    let candidate = match n {
                        1 => base.clone(),
                        _ => format!("{base}-{n}"),
                    };
                    if !store::slug_taken(db, &candidate)? {
                        break candidate;
                    }
                    n += 1;
                };
                store::insert(
                    db,
                    &store::NewSource {
                        url: &url_text,
                        slug: &slug,
                        name: &name,
                        tags: &tags,
                        interval_s,
                        now_us: Utc::now().timestamp_micros(),
                    },
                )?
                .ok_or(SourceError::Exists(url_text.clone()))
            })
            .await?;
        self.wake.notify_one();
        self.get(id).await
    }

    pub async fn get(&self, id: i64) -> Result<Source, SourceError> {
        self.store
            .read(move |db| store::get(db, id))
            .await?
            .ok_or(SourceError::NotFound(id))
    }

    pub async fn list(&self) -> Result<Vec<Source>, SourceError> {
        Ok(self.store.read(store::list).await?)
    }

    /// Stops following a source (and unsubscribes from its hub). Its articles stay.
    pub async fn remove(&self, id: i64) -> Result<Source, SourceError> {
        let source = self.get(id).await?;
        let hub = self.store.read(move |db| store::hub_of(db, id)).await?;
        if !self.store.write(move |db| store::delete(db, id)).await? {
            return Err(SourceError::NotFound(id));
        }
        if let Some(hub) = hub {
            self.unsubscribe(id, hub).await;
        }
        Ok(source)
    }

    /// Polls one source now, whenever it is due (also a gone one: a `200` brings it back).
    pub async fn poll_now(&self, id: i64) -> Result<PollReport, SourceError> {
        self.get(id).await?;
        let now_us = Utc::now().timestamp_micros();
        let until = now_us + LEASE.as_micros() as i64;
        if !self
            .store
            .write(move |db| store::claim(db, id, now_us, until, true))
            .await?
        {
            return Err(SourceError::Busy(id));
        }
        self.poll_claimed(id).await
    }

    /// Asks for a poll of `id` as soon as the poller can (a WebSub push).
    pub async fn poll_soon(&self, id: i64) -> Result<bool, SourceError> {
        let now = Utc::now().timestamp_micros();
        let moved = self
            .store
            .write(move |db| store::poll_at(db, id, now))
            .await?;
        self.wake.notify_one();
        Ok(moved)
    }

    /// One poll of a source this node holds: fetch, read, write, and the next time.
    async fn poll_claimed(&self, id: i64) -> Result<PollReport, SourceError> {
        let source = self.get(id).await?;
        let url = Allowed::url(&source.url).map_err(|e| invalid("url", e.0))?;
        let host = url.host_str().unwrap_or_default().to_string();
        let host_slot = self.host_slot(&host);
        let fetched = {
            let _host = host_slot.acquire().await;
            // A host that asked to be left alone (429) is, for all its sources, until then.
            let paused = self.paused_until(&host);
            if let Some(until_us) = paused.filter(|u| *u > Utc::now().timestamp_micros()) {
                self.store
                    .write(move |db| store::postpone(db, id, until_us))
                    .await?;
                return Ok(PollReport {
                    status: None,
                    error: Some(format!("{host} asked to be left alone (429); not fetched")),
                    applied: None,
                    next_fetch_us: until_us,
                });
            }
            let ask = Ask {
                etag: source.etag.clone(),
                last_modified: source.last_modified.clone(),
            };
            fetch::fetch(&self.client, &self.allowed, &url, &ask, &self.limits).await
        };
        let now = Utc::now();
        if let Ok(f) = &fetched {
            if f.status == 429 {
                let wait = f
                    .retry_after
                    .unwrap_or(self.bounds.min)
                    .min(schedule::HINT_CAP);
                self.pause(&host, at(now, wait));
            }
        }
        let (outcome, applied) = match fetched {
            Err(e) => (self.failed(&source, now, None, e.to_string(), None), None),
            Ok(f) => self.answered(&source, f, now).await?,
        };
        let report = PollReport {
            status: outcome.status.map(|s| s as u16),
            error: outcome.error.clone(),
            applied: applied.clone(),
            next_fetch_us: outcome.next_fetch_us,
        };
        let wrote = applied.as_ref().is_some_and(|a| a.added + a.updated > 0);
        let hub_named = matches!(&outcome.hub, Some((Some(_), _)));
        self.store
            .write(move |db| store::finish(db, id, &outcome))
            .await?;
        let now_us = Utc::now().timestamp_micros();
        if hub_named
            && source.websub_state == "none"
            && source.websub_renew_us.is_none_or(|at| at <= now_us)
        {
            self.subscribe(id).await;
        }
        if wrote {
            if let Some(f) = self
                .on_change
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
            {
                f();
            }
        }
        metrics::counter!("tidings_source_polls_total", "result" => poll_result(&report))
            .increment(1);
        Ok(report)
    }

    /// The outcome of an answer: read and written for a `200`, nothing for a `304`, the end
    /// for a `410`, a failure for anything else.
    async fn answered(
        &self,
        source: &Source,
        f: Fetched,
        now: chrono::DateTime<Utc>,
    ) -> Result<(store::Outcome, Option<Applied>), SourceError> {
        let hints = Hints {
            ttl_minutes: None,
            max_age: f.max_age,
            expires: f.expires,
            retry_after: f.retry_after,
        };
        let status = i64::from(f.status);
        let moved = self.moved(source, &f);
        match f.status {
            200 => {
                let base = f.url.to_string();
                let max_entries = self.max_entries;
                let body = f.body;
                let read =
                    tokio::task::spawn_blocking(move || entries::read(&body, &base, max_entries))
                        .await
                        .unwrap_or_else(|e| Err(format!("the feed reader failed: {e}")));
                let feed = match read {
                    Ok(feed) => feed,
                    Err(e) => {
                        let mut o = self.failed(
                            source,
                            now,
                            Some(status),
                            format!("not a feed: {e}"),
                            None,
                        );
                        (o.moved, o.new_url) = moved;
                        return Ok((o, None));
                    }
                };
                let hints = Hints {
                    ttl_minutes: feed.ttl_minutes,
                    ..hints
                };
                let dates: Vec<_> = feed.entries.iter().filter_map(|e| e.published).collect();
                let interval = match source.websub_state.as_str() {
                    "active" => self.bounds.max,
                    _ => schedule::regular(&dates, self.bounds),
                };
                let wait = interval.max(hints.wait(SystemTime::now()));
                let identity_link = match (&feed.repeated_guid, source.identity.as_str()) {
                    (Some(g), "guid") => Some(format!(
                        "the feed gave the guid '{}' to entries with different links: entries are known by their links",
                        g.chars().take(200).collect::<String>()
                    )),
                    _ => None,
                };
                let hub = feed.hub.clone().or(f.hub.clone());
                let topic = feed.self_link.clone().or(f.self_link.clone());
                let (src, max_age) = (source.clone(), self.max_age);
                let applied = self
                    .store
                    .write(move |db| apply::apply(db, &src, &feed, now, max_age))
                    .await?;
                let (moved, new_url) = moved;
                let error = (!applied.rejected.is_empty()).then(|| {
                    format!(
                        "{} entries refused; the first: {}",
                        applied.rejected.len(),
                        applied.rejected[0]
                    )
                });
                Ok((
                    store::Outcome {
                        at_us: now.timestamp_micros(),
                        status: Some(status),
                        error,
                        success: true,
                        validators: Some((f.etag, f.last_modified)),
                        interval_s: Some(interval.as_secs() as i64),
                        next_fetch_us: at(now, wait),
                        moved,
                        new_url,
                        identity_link,
                        seeded: true,
                        hub: Some((hub, topic)),
                        ..store::Outcome::default()
                    },
                    Some(applied),
                ))
            }
            304 => {
                let interval = Duration::from_secs(source.interval_s.max(0) as u64);
                let wait = interval.max(hints.wait(SystemTime::now()));
                let (moved, new_url) = moved;
                Ok((
                    store::Outcome {
                        at_us: now.timestamp_micros(),
                        status: Some(status),
                        success: true,
                        next_fetch_us: at(now, wait),
                        moved,
                        new_url,
                        ..store::Outcome::default()
                    },
                    None,
                ))
            }
            410 => Ok((
                store::Outcome {
                    at_us: now.timestamp_micros(),
                    status: Some(status),
                    error: Some("the server says the feed is gone (410): no more polls".into()),
                    gone: true,
                    next_fetch_us: NEVER,
                    ..store::Outcome::default()
                },
                None,
            )),
            other => {
                let mut o = self.failed(
                    source,
                    now,
                    Some(status),
                    format!("the server answered {other}"),
                    hints.retry_after,
                );
                (o.moved, o.new_url) = moved;
                Ok((o, None))
            }
        }
    }

    /// A failed poll: the next one backs off (never sooner than a `Retry-After`).
    fn failed(
        &self,
        source: &Source,
        now: chrono::DateTime<Utc>,
        status: Option<i64>,
        error: String,
        retry_after: Option<Duration>,
    ) -> store::Outcome {
        let errors = source.errors.max(0) as u32 + 1;
        let wait = schedule::backoff(errors, self.bounds, rand::random::<f64>())
            .max(retry_after.unwrap_or_default().min(schedule::HINT_CAP));
        store::Outcome {
            at_us: now.timestamp_micros(),
            status,
            error: Some(error),
            next_fetch_us: at(now, wait),
            ..store::Outcome::default()
        }
    }

    /// Where permanent redirects led this time, on how many polls in a row; and the URL to
    /// use from now on once three polls in a row have seen the same move.
    fn moved(&self, source: &Source, f: &Fetched) -> (Option<(String, i64)>, Option<String>) {
        match &f.moved {
            Some(to) if to.as_str() != source.url => {
                let seen = match source.moved_to.as_deref() {
                    Some(before) if before == to.as_str() => source.moved_seen + 1,
                    _ => 1,
                };
                if seen >= 3 {
                    (None, Some(to.to_string()))
                } else {
                    (Some((to.to_string(), seen)), None)
                }
            }
            _ => (None, None),
        }
    }

    fn paused_until(&self, host: &str) -> Option<i64> {
        self.paused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&host.to_ascii_lowercase())
            .copied()
    }

    fn pause(&self, host: &str, until_us: i64) {
        let mut paused = self.paused.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Utc::now().timestamp_micros();
        paused.retain(|_, until| *until > now);
        paused.insert(host.to_ascii_lowercase(), until_us);
    }

    fn host_slot(&self, host: &str) -> Arc<Semaphore> {
        self.hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(host.to_ascii_lowercase())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
            .clone()
    }
}

fn at(now: chrono::DateTime<Utc>, wait: Duration) -> i64 {
    now.timestamp_micros()
        .saturating_add(wait.as_micros().min(i64::MAX as u128) as i64)
}

fn poll_result(report: &PollReport) -> &'static str {
    match (report.status, &report.error) {
        (Some(304), _) => "not_modified",
        (Some(200), None) => "read",
        (Some(410), _) => "gone",
        (None, _) => "no_answer",
        _ => "failed",
    }
}
