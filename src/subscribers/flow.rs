//! The subscriber flows: subscribe (double opt-in), confirm, preferences, unsubscribe. Each state
//! change is one transaction; emails go out afterwards, off the request's path.

use std::sync::Arc;

use chrono::{Duration, Utc};
use minijinja::context;

use super::events::{self, Kind, NewEvent};
use super::store::{self, TokenProblem};
use super::suppressions;
use super::tokens::{Purpose, Token};
use super::{Preferences, Status, Subscriber, SubscriberEmail};
use crate::catalog::InputError;
use crate::config::Config;
use crate::mail::templates::Templates;
use crate::mail::{Mailer, OutgoingEmail};
use crate::outbox::{self, Template};
use crate::store::{Db, Store};

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("token: {0:?}")]
    Token(TokenProblem),
    #[error("database error: {0}")]
    Db(#[from] crate::store::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Everything the flows need: the database, the mailer and the templates.
pub struct Subscriptions {
    pub config: Arc<Config>,
    pub store: Store,
    pub mailer: Arc<Mailer>,
    pub templates: Arc<Templates>,
    pub metrics: crate::metrics::Metrics,
    /// Wakes the outbox worker when a flow has queued an email.
    pub outbox_wake: tokio::sync::Notify,
    /// The daemon's stop deadline, once its outbox worker runs: a send still going near it is
    /// cut off and retried after the next start.
    pub stopping: std::sync::OnceLock<crate::shutdown::Deadline>,
}

/// Checks chosen tag slugs against the catalog's tags; the field is named `tags`.
pub fn check_tags(db: &Db, tags: &[String]) -> Result<Vec<String>, FlowError> {
    let known = store::known_tags(db)?;
    let mut out: Vec<String> = Vec::new();
    for tag in tags.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        if !known.iter().any(|(slug, _)| slug == tag) {
            return Err(InputError::new(
                "tags",
                format!(
                    "'{}' is not a tag of this site",
                    tag.chars().take(60).collect::<String>()
                ),
            )
            .into());
        }
        if !out.iter().any(|t| t == tag) {
            out.push(tag.to_string());
        }
    }
    out.sort();
    Ok(out)
}

impl Subscriptions {
    pub fn new(
        config: Arc<Config>,
        store: Store,
        mailer: Arc<Mailer>,
        templates: Arc<Templates>,
    ) -> Subscriptions {
        Subscriptions {
            config,
            store,
            mailer,
            templates,
            metrics: crate::metrics::Metrics::new(),
            outbox_wake: tokio::sync::Notify::new(),
            stopping: std::sync::OnceLock::new(),
        }
    }

    /// `f` in one transaction.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db) -> Result<T, FlowError> + Send + 'static,
    ) -> Result<T, FlowError> {
        self.store.write(f).await
    }

    /// `f` without a transaction (reads).
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db) -> Result<T, FlowError> + Send + 'static,
    ) -> Result<T, FlowError> {
        self.store.read(f).await
    }

    fn link_ttl(&self) -> Duration {
        Duration::days(self.config.subscribers.link_ttl_days as i64)
    }

    /// A subscribe request. The caller answers the same page whatever happens here; a
    /// confirmation email is queued only for a new, pending or unsubscribed address that is not
    /// suppressed.
    pub async fn subscribe(
        self: &Arc<Self>,
        email: SubscriberEmail,
        prefs: Preferences,
    ) -> Result<(), FlowError> {
        let confirm_ttl = Duration::hours(self.config.subscribers.confirm_ttl_hours as i64);
        let queued = self
            .write(move |tx| {
                // Two nodes taking the same address at once take turns.
                tx.lock(&format!("subscriber {}", email.as_str().to_lowercase()))?;
                let prefs = Preferences {
                    tags: check_tags(tx, &prefs.tags)?,
                    ..prefs
                };
                if suppressions::find(tx, email.as_str())?.is_some() {
                    return Ok(false);
                }
                let now = Utc::now();
                let id = match store::find(tx, &email)? {
                    None => store::insert(tx, &email, &prefs, Status::Pending, now)?,
                    Some(s) if matches!(s.status, Status::Pending | Status::Unsubscribed) => {
                        store::set_preferences(tx, s.id, &prefs)?;
                        s.id
                    }
                    // Confirmed or bounced: nothing to confirm, and nothing is changed.
                    Some(_) => return Ok(false),
                };
                let asked = NewEvent::new(email.as_str(), Kind::Subscribed, "form").subscriber(id);
                events::record(tx, &asked, now)?;
                outbox::enqueue(tx, id, Template::Confirmation, now, now + confirm_ttl)?;
                Ok(true)
            })
            .await?;
        if queued {
            self.queued();
        }
        Ok(())
    }

    /// An email was queued: counted before the answer goes out, so a test (or an admin) can
    /// tell "not sent yet" from "never going to be sent"; the worker is woken.
    fn queued(&self) {
        self.metrics.emails_queued.increment(1);
        self.outbox_wake.notify_one();
    }

    /// The subscriber a token belongs to, without changing anything (for GET pages).
    pub async fn check(&self, token: Token, purpose: Purpose) -> Result<Subscriber, FlowError> {
        self.read(move |db| {
            store::check(db, &token, purpose, Utc::now())?
                .map(|r| r.subscriber)
                .map_err(FlowError::Token)
        })
        .await
    }

    /// Confirms with a single-use confirm token; queues the welcome email the first time.
    pub async fn confirm(self: &Arc<Self>, token: Token) -> Result<(Subscriber, Token), FlowError> {
        let link_ttl = self.link_ttl();
        let (subscriber, preferences, welcome) = self
            .write(move |tx| {
                let now = Utc::now();
                let redeemed =
                    store::check(tx, &token, Purpose::Confirm, now)?.map_err(FlowError::Token)?;
                if !store::use_up(tx, &redeemed.hash, now)? {
                    return Err(FlowError::Token(TokenProblem::Used));
                }
                let id = redeemed.subscriber.id;
                // A suppressed address is not confirmed by an old link either.
                if suppressions::find(tx, redeemed.subscriber.email.as_str())?.is_some() {
                    return Err(FlowError::Token(TokenProblem::Unknown));
                }
                if redeemed.subscriber.status != Status::Confirmed {
                    store::set_status(tx, id, Status::Confirmed, now)?;
                    let email = redeemed.subscriber.email.as_str();
                    let confirmed = NewEvent::new(email, Kind::Confirmed, "link").subscriber(id);
                    events::record(tx, &confirmed, now)?;
                }
                let welcome = store::claim_welcome(tx, id, now)?;
                if welcome {
                    outbox::enqueue(tx, id, Template::Welcome, now, now + outbox::WELCOME_TTL)?;
                }
                let preferences = store::mint(tx, id, Purpose::Preferences, now, link_ttl)?;
                let subscriber =
                    store::get(tx, id)?.ok_or(FlowError::Token(TokenProblem::Unknown))?;
                Ok((subscriber, preferences, welcome))
            })
            .await?;
        if welcome {
            self.queued();
        }
        Ok((subscriber, preferences))
    }

    /// Saves new preferences with a preferences token.
    pub async fn save_preferences(
        &self,
        token: Token,
        prefs: Preferences,
    ) -> Result<Subscriber, FlowError> {
        self.write(move |tx| {
            let redeemed = store::check(tx, &token, Purpose::Preferences, Utc::now())?
                .map_err(FlowError::Token)?;
            let prefs = Preferences {
                tags: check_tags(tx, &prefs.tags)?,
                ..prefs
            };
            store::set_preferences(tx, redeemed.subscriber.id, &prefs)?;
            let subscriber = store::get(tx, redeemed.subscriber.id)?
                .ok_or(FlowError::Token(TokenProblem::Unknown))?;
            Ok(subscriber)
        })
        .await
    }

    /// Unsubscribes at once with an unsubscribe (or preferences) token. Repeating it is harmless;
    /// the first time is recorded as an event from `source` (`link`, `one_click`, `mailto`), with
    /// the digest delivery the token names, if it names one.
    pub async fn unsubscribe(
        &self,
        token: Token,
        purpose: Purpose,
        source: &'static str,
    ) -> Result<Subscriber, FlowError> {
        let (subscriber, changed) = self
            .write(move |tx| {
                let now = Utc::now();
                let redeemed = store::check(tx, &token, purpose, now)?.map_err(FlowError::Token)?;
                let changed = unsubscribe_in(
                    tx,
                    &redeemed.subscriber,
                    source,
                    None,
                    redeemed.delivery,
                    now,
                )?;
                let subscriber = store::get(tx, redeemed.subscriber.id)?
                    .ok_or(FlowError::Token(TokenProblem::Unknown))?;
                Ok((subscriber, changed))
            })
            .await?;
        if changed {
            crate::metrics::unsubscribed(source);
        }
        Ok(subscriber)
    }

    /// Queues a confirmation email (for a subscriber an admin added as pending); the row's id.
    pub async fn queue_confirmation(
        &self,
        subscriber: &Subscriber,
    ) -> Result<Option<i64>, FlowError> {
        let confirm_ttl = Duration::hours(self.config.subscribers.confirm_ttl_hours as i64);
        let id = subscriber.id;
        let queued = self
            .write(move |tx| {
                let now = Utc::now();
                let queued =
                    outbox::enqueue(tx, id, Template::Confirmation, now, now + confirm_ttl)?;
                Ok(queued)
            })
            .await?;
        if queued.is_some() {
            self.queued();
        }
        Ok(queued)
    }

    /// Renders `template` for `subscriber` with `links`, as outbox row `outbox_id`.
    pub(crate) async fn email(
        &self,
        template: &str,
        subscriber: &Subscriber,
        links: &Links,
        outbox_id: i64,
    ) -> Result<OutgoingEmail, String> {
        let chosen = subscriber.preferences.tags.clone();
        let names = self
            .read(move |db| {
                let known = store::known_tags(db)?;
                Ok(chosen
                    .iter()
                    .map(|slug| {
                        known
                            .iter()
                            .find(|(s, _)| s == slug)
                            .map(|(_, n)| n.clone())
                            .unwrap_or_else(|| slug.clone())
                    })
                    .collect::<Vec<String>>())
            })
            .await
            .map_err(|e| e.to_string())?;
        let config = &self.config;
        let url =
            |path: &str, token: &Token| config.site_url(&format!("/{path}/{}", token.as_str()));
        let unsubscribe_url = url("unsubscribe", &links.unsubscribe);
        let ctx = context! {
            site => &config.site.title,
            site_url => &config.site_url("/"),
            email => subscriber.email.as_str(),
            confirm_url => &links.confirm.as_ref().map(|t| url("confirm", t)).unwrap_or_default(),
            preferences_url => &url("preferences", &links.preferences),
            unsubscribe_url => &unsubscribe_url,
            expires_hours => config.subscribers.confirm_ttl_hours,
            tags => names,
            cadence => subscriber.preferences.cadence.as_str(),
        };
        let subject_source = match template {
            "confirmation" => &config.mail.confirm_subject,
            _ => &config.mail.welcome_subject,
        };
        let subject = self.templates.render_line(subject_source, ctx.clone())?;
        let body = self.templates.render(template, ctx)?;
        Ok(OutgoingEmail {
            to: subscriber.email.address().clone(),
            subject,
            text: body.text,
            html: body.html,
            unsubscribe_url,
            subscriber: subscriber.id,
            delivery: crate::mail::Delivery::Single { id: outbox_id },
            message_id: None,
        })
    }
}

/// Unsubscribes `s` inside the caller's transaction, recording where it came from (and the
/// digest delivery whose link or report it was, when known); `false` if they already were
/// unsubscribed (or bounced), and nothing changes then.
pub(crate) fn unsubscribe_in(
    db: &Db,
    s: &Subscriber,
    source: &str,
    inbound_id: Option<i64>,
    delivery_id: Option<i64>,
    now: chrono::DateTime<Utc>,
) -> Result<bool, crate::store::Error> {
    if matches!(s.status, Status::Unsubscribed | Status::Bounced) {
        return Ok(false);
    }
    store::set_status(db, s.id, Status::Unsubscribed, now)?;
    let mut event = NewEvent::new(s.email.as_str(), Kind::Unsubscribe, source)
        .subscriber(s.id)
        .delivery(delivery_id);
    event.inbound_id = inbound_id;
    events::record(db, &event, now)?;
    Ok(true)
}

/// Unsubscribes those of `ids` who are pending or confirmed, as `unsubscribe_in` does each one
/// (in the caller's transaction, one event each from `source`); the ids it changed.
pub(crate) fn unsubscribe_many_in(
    db: &Db,
    ids: &[i64],
    source: &str,
    now: chrono::DateTime<Utc>,
) -> Result<Vec<i64>, crate::store::Error> {
    let moved = store::stop_many(db, ids, Status::Unsubscribed, false, now)?;
    let recorded: Vec<NewEvent<'_>> = moved
        .iter()
        .map(|(id, email)| NewEvent::new(email, Kind::Unsubscribe, source).subscriber(*id))
        .collect();
    events::record_many(db, &recorded, now)?;
    Ok(moved.into_iter().map(|(id, _)| id).collect())
}

/// The links one email carries.
pub(crate) struct Links {
    pub confirm: Option<Token>,
    pub preferences: Token,
    pub unsubscribe: Token,
}
