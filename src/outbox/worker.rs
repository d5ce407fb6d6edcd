//! Sending the outbox: claim a row, mint its links and build the message, send, record. A
//! transient failure backs off (as digests do: about 1 s, 2 s, 4 s … at most 5 minutes) and is
//! tried again until the email expires; a permanent one is recorded. When the relay takes a
//! message again, the others waiting out a backoff go at once.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tokio_util::sync::CancellationToken;

use super::{Claimed, Template};
use crate::mail::Failure;
use crate::store::{instance_id, Db, Error};
use crate::subscribers::events::{self, Kind, NewEvent};
use crate::subscribers::flow::{FlowError, Links, Subscriptions};
use crate::subscribers::tokens::Purpose;
use crate::subscribers::{store, suppressions, Status, Subscriber};

/// What became of one claimed row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent(String),
    Retry(String),
    Failed(String),
    Dropped(String),
    /// Nothing was due.
    Idle,
    /// The claim lapsed before sending and another worker has the row: nothing was sent.
    Lost,
}

/// A claimed row, ready to build: or the reason it will not be sent.
enum Ready {
    Send(Box<Subscriber>, Links),
    Drop(String),
}

impl Subscriptions {
    /// Sends queued emails until `shutdown`; the one in flight is finished first, unless
    /// `deadline` comes near (then it is cut off before its final dot and tried again later).
    pub async fn run_outbox(
        self: Arc<Self>,
        shutdown: CancellationToken,
        deadline: crate::shutdown::Deadline,
    ) {
        let _ = self.stopping.set(deadline);
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            match self.send_next(None).await {
                Ok(Outcome::Idle) => {}
                Ok(_) => continue,
                Err(e) => tracing::error!(error = %e, "outbox: cannot read the queue"),
            }
            let wait = match self.read(|db| Ok(super::next_due(db)?)).await {
                Ok(Some(at)) => (at - Utc::now()).to_std().unwrap_or_default(),
                _ => std::time::Duration::from_secs(5),
            };
            // Rows another process queued (a CLI `subscriber add` whose relay was down) are
            // seen within 5 s.
            let wait = wait.min(std::time::Duration::from_secs(5));
            tokio::select! {
                _ = self.outbox_wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Claims and sends one due row (`only`: that row, if it is due).
    pub async fn send_next(self: &Arc<Self>, only: Option<i64>) -> Result<Outcome, FlowError> {
        let lease = Duration::seconds(i64::from(self.config.digest.lease_seconds));
        let confirm_ttl = Duration::hours(self.config.subscribers.confirm_ttl_hours as i64);
        let link_ttl = Duration::days(self.config.subscribers.link_ttl_days as i64);
        let this = self.clone();
        let claimed = self
            .write(move |tx| {
                let now = Utc::now();
                this.record_dropped(tx, now)?;
                let new_id = || this.mailer.new_message_id();
                let Some(job) = super::claim(tx, instance_id(), lease, only, &new_id)? else {
                    return Ok(None);
                };
                let ready = prepare(tx, &job, now, confirm_ttl, link_ttl)?;
                Ok(Some((job, ready)))
            })
            .await?;
        let Some((job, ready)) = claimed else {
            self.update_depth().await;
            return Ok(Outcome::Idle);
        };
        let outcome = match ready {
            Ready::Drop(why) => Outcome::Dropped(why),
            Ready::Send(subscriber, links) => self.deliver(&job, &subscriber, &links).await,
        };
        self.record(&job, &outcome).await?;
        self.update_depth().await;
        Ok(outcome)
    }

    async fn deliver(&self, job: &Claimed, subscriber: &Subscriber, links: &Links) -> Outcome {
        let email = match self
            .email(job.template.as_str(), subscriber, links, job.id)
            .await
        {
            Ok(e) => crate::mail::OutgoingEmail {
                message_id: Some(job.message_id.clone()),
                ..e
            },
            Err(e) => return Outcome::Failed(format!("cannot render the email: {e}")),
        };
        // The last check before the content goes: a worker paused past its lease must not send
        // what another has taken over (one paused after this check may still send it twice).
        let id = job.id;
        match self
            .read(move |db| Ok(super::still_held(db, id, instance_id())?))
            .await
        {
            Ok(true) => {}
            Ok(false) => return Outcome::Lost,
            Err(e) => return Outcome::Retry(format!("cannot check the claim: {e}")),
        }
        let cut_off = async {
            match self.stopping.get() {
                Some(d) => d.closing().await,
                None => std::future::pending().await,
            }
        };
        let sent = tokio::select! {
            sent = self.mailer.send(&email) => sent,
            _ = cut_off => {
                tracing::warn!(outbox = id, "stopping: email cut off before its final dot; sent after the next start");
                return Outcome::Retry("stopped before it was sent".into());
            }
        };
        match sent {
            Ok(id) => Outcome::Sent(id),
            Err(e) if e.failure == Failure::Transient => Outcome::Retry(e.message),
            Err(e) => Outcome::Failed(e.message),
        }
    }

    async fn record(&self, job: &Claimed, outcome: &Outcome) -> Result<(), FlowError> {
        let (id, subscriber, template) = (job.id, job.subscriber_id, job.template);
        let outcome_ = outcome.clone();
        let attempts = job.attempts + 1;
        let recorded = self
            .write(move |tx| {
                let now = Utc::now();
                let owner = instance_id();
                let held = match &outcome_ {
                    Outcome::Sent(message_id) => {
                        let held = super::sent(tx, id, owner, message_id, now)?;
                        super::hurry(tx, now)?;
                        held
                    }
                    Outcome::Retry(error) => {
                        super::retry(tx, id, owner, now + crate::digest::backoff(attempts), error)?
                    }
                    Outcome::Failed(error) => {
                        let held = super::finish(tx, id, owner, "failed", error, now)?;
                        if held {
                            note(tx, subscriber, id, Kind::Failed, error, template, now)?;
                        }
                        held
                    }
                    Outcome::Dropped(why) => {
                        let held = super::finish(tx, id, owner, "dropped", why, now)?;
                        if held {
                            note(tx, subscriber, id, Kind::Dropped, why, template, now)?;
                        }
                        held
                    }
                    Outcome::Idle | Outcome::Lost => false,
                };
                Ok(held)
            })
            .await?;
        if !recorded && *outcome != Outcome::Idle {
            tracing::warn!(
                outbox = id,
                "outbox: the claim lapsed while sending; another worker has the row"
            );
        }
        let template = template.as_str();
        match outcome {
            Outcome::Sent(message_id) => {
                self.metrics.emails_sent.increment(1);
                tracing::info!(template, outbox = id, %message_id, "email sent");
            }
            Outcome::Retry(error) => {
                tracing::warn!(template, outbox = id, attempts, %error, "email not sent; will retry")
            }
            Outcome::Failed(error) => {
                self.metrics.emails_failed.increment(1);
                tracing::warn!(template, outbox = id, %error, "email refused for good");
            }
            Outcome::Dropped(why) => {
                self.metrics.emails_failed.increment(1);
                tracing::info!(template, outbox = id, %why, "email dropped");
            }
            Outcome::Idle | Outcome::Lost => {}
        }
        Ok(())
    }

    /// Marks rows that expired unsent as dropped, each with an event.
    fn record_dropped(&self, db: &Db, now: DateTime<Utc>) -> Result<(), Error> {
        for gone in super::drop_expired(db, now)? {
            let (id, template) = (gone.id, gone.template);
            let why = match gone.last_error {
                Some(e) => format!("expired unsent; last error: {e}"),
                None => "expired unsent".to_string(),
            };
            note(
                db,
                gone.subscriber_id,
                id,
                Kind::Dropped,
                &why,
                template,
                now,
            )?;
            self.metrics.emails_failed.increment(1);
            tracing::warn!(template = template.as_str(), outbox = id, %why, "email dropped");
        }
        Ok(())
    }

    async fn update_depth(&self) {
        if let Ok(n) = self.read(|db| Ok(super::depth(db)?)).await {
            self.metrics.outbox_depth.set(n as f64);
        }
    }
}

/// In the claiming transaction: whether the email is still wanted, and its links.
fn prepare(
    conn: &Db,
    job: &Claimed,
    now: DateTime<Utc>,
    confirm_ttl: Duration,
    link_ttl: Duration,
) -> Result<Ready, Error> {
    let Some(subscriber) = store::get(conn, job.subscriber_id)? else {
        return Ok(Ready::Drop("the subscriber is gone".into()));
    };
    if let Some(s) = suppressions::find(conn, subscriber.email.as_str())? {
        return Ok(Ready::Drop(format!(
            "the address is suppressed ({})",
            s.reason.as_str()
        )));
    }
    let wanted = match job.template {
        Template::Confirmation => {
            matches!(subscriber.status, Status::Pending | Status::Unsubscribed)
        }
        Template::Welcome => subscriber.status == Status::Confirmed,
    };
    if !wanted {
        return Ok(Ready::Drop(format!(
            "the subscriber is {} now",
            subscriber.status.as_str()
        )));
    }
    let links = Links {
        confirm: match job.template {
            Template::Confirmation => Some(store::mint(
                conn,
                subscriber.id,
                Purpose::Confirm,
                now,
                confirm_ttl,
            )?),
            Template::Welcome => None,
        },
        preferences: store::mint(conn, subscriber.id, Purpose::Preferences, now, link_ttl)?,
        unsubscribe: store::mint(conn, subscriber.id, Purpose::Unsubscribe, now, link_ttl)?,
    };
    Ok(Ready::Send(Box::new(subscriber), links))
}

fn note(
    conn: &Db,
    subscriber: i64,
    outbox: i64,
    kind: Kind,
    detail: &str,
    template: Template,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let Some(s) = store::get(conn, subscriber)? else {
        return Ok(());
    };
    let mut event = NewEvent::new(s.email.as_str(), kind, "outbox")
        .subscriber(s.id)
        .detail(format!("{}: {detail}", template.as_str()));
    event.outbox_id = Some(outbox);
    events::record(conn, &event, now)?;
    Ok(())
}
