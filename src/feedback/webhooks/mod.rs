//! Provider webhooks (SES through SNS, Postmark, Mailgun, SendGrid): each provider's module
//! authenticates a request and reads it into `Event`s; `record` applies them with the same rules
//! as mail that comes back, in one transaction, after a replay check kept in the database.

pub mod mailgun;
pub mod postmark;
pub mod sendgrid;
pub mod ses;

use crate::params;
use crate::store::{Db, Error};
use chrono::{DateTime, Duration, Utc};

type Result<T, E = Error> = std::result::Result<T, E>;

use super::apply::{self, Rules, Whose};
use super::report::Bounce;
use crate::subscribers::events::{self, Kind};
use crate::subscribers::store;

/// The configured providers and what they need to apply events.
pub struct Webhooks {
    pub ses: Option<ses::Ses>,
    pub postmark: Option<postmark::Postmark>,
    pub mailgun: Option<mailgun::Mailgun>,
    pub sendgrid: Option<sendgrid::Sendgrid>,
    pub rules: Rules,
    pub store: crate::store::Store,
}

impl Webhooks {
    /// The providers `config` sets up; an unusable key stops the start, naming the key.
    pub fn from_config(
        config: &crate::config::Config,
        rules: Rules,
        store: crate::store::Store,
    ) -> anyhow::Result<Webhooks> {
        let w = &config.webhooks;
        let ses = match &w.ses.topic_arn {
            None => None,
            Some(arn) => {
                let local = match &w.ses.signing_cert {
                    None => None,
                    Some(path) => {
                        let pem = std::fs::read(path).map_err(|e| {
                            anyhow::anyhow!(
                                "config key webhooks.ses.signing_cert: cannot read {}: {e}",
                                path.display()
                            )
                        })?;
                        Some(ses::certificate_key(&pem).map_err(|e| {
                            anyhow::anyhow!(
                                "config key webhooks.ses.signing_cert: {}: {e}",
                                path.display()
                            )
                        })?)
                    }
                };
                Some(ses::Ses::new(arn.clone(), local))
            }
        };
        let postmark = match (&w.postmark.username, &w.postmark.password) {
            (Some(u), Some(p)) => Some(postmark::Postmark::new(u, p.expose())),
            _ => None,
        };
        let mailgun = w
            .mailgun
            .signing_key
            .as_ref()
            .map(|k| mailgun::Mailgun::new(k.expose()));
        let sendgrid = match &w.sendgrid.public_key {
            None => None,
            Some(k) => Some(
                sendgrid::Sendgrid::new(k)
                    .map_err(|e| anyhow::anyhow!("config key webhooks.sendgrid.public_key: {e}"))?,
            ),
        };
        Ok(Webhooks {
            ses,
            postmark,
            mailgun,
            sendgrid,
            rules,
            store,
        })
    }

    /// Whether `provider` is configured (an unconfigured one answers `404`).
    pub fn configured(&self, provider: &str) -> bool {
        match provider {
            "ses" => self.ses.is_some(),
            "postmark" => self.postmark.is_some(),
            "mailgun" => self.mailgun.is_some(),
            "sendgrid" => self.sendgrid.is_some(),
            _ => false,
        }
    }

    /// Authenticates, reads and applies one request (blocking: it may fetch from SNS and it
    /// writes the database). The outcomes, one per event.
    pub fn handle(
        &self,
        provider: &str,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<Vec<String>, Refusal> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let now = Utc::now();
        let (name, events): (&'static str, Vec<Event>) = match provider {
            "ses" => {
                let ses = self.ses.as_ref().ok_or_else(not_configured)?;
                match ses.read(body)? {
                    ses::Sns::Confirm(url) => {
                        ses::confirm(&url)?;
                        return Ok(vec!["SNS subscription confirmed".into()]);
                    }
                    ses::Sns::Other(kind) => return Ok(vec![format!("{kind}: nothing to do")]),
                    ses::Sns::Notification(events) => ("ses", events),
                }
            }
            "postmark" => {
                let p = self.postmark.as_ref().ok_or_else(not_configured)?;
                p.authenticate(header("authorization"))?;
                ("postmark", postmark::events(body)?)
            }
            "mailgun" => {
                let m = self.mailgun.as_ref().ok_or_else(not_configured)?;
                ("mailgun", m.read(body, now.timestamp())?)
            }
            "sendgrid" => {
                let s = self.sendgrid.as_ref().ok_or_else(not_configured)?;
                let events = s.read(
                    header("x-twilio-email-event-webhook-signature"),
                    header("x-twilio-email-event-webhook-timestamp"),
                    body,
                    now.timestamp(),
                )?;
                ("sendgrid", events)
            }
            _ => return Err(not_configured()),
        };
        self.store
            .blocking(crate::store::Mode::Write, |db| {
                record(db, &self.rules, name, body, &events, now)
            })
            .map_err(|e| Refusal::Unavailable(format!("cannot store the events: {e}")))
    }
}

fn not_configured() -> Refusal {
    Refusal::NotConfigured
}

/// Why a request changed nothing, as its HTTP status says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `401`: the signature, the credentials or the timestamp do not check out.
    Unauthorized(String),
    /// `403`: authentic, but not for us (another SNS topic).
    Forbidden(String),
    /// `400`: not the provider's format.
    Malformed(String),
    /// `502`: a fetch the provider's protocol needs (the SNS certificate, `SubscribeURL`) failed.
    Upstream(String),
    /// `404`: this provider is not configured.
    NotConfigured,
    /// `503`: the database could not take it; the provider retries.
    Unavailable(String),
}

/// What an event says about a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Bounce(Bounce),
    Complaint,
    Unsubscribe,
    /// Delivered, opened, dropped by the provider itself…: on record, nothing changes.
    Ignore,
}

/// One event from a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The provider's id for it (SNS `MessageId`, Postmark `ID`, Mailgun token, SendGrid
    /// `sg_event_id`): seen before, it is a replay and changes nothing.
    pub replay_id: String,
    pub what: What,
    /// Our Message-ID, without angle brackets, when the provider passes it on.
    pub message_id: Option<String>,
    pub recipient: Option<String>,
    pub detail: String,
}

/// How far back an event is matched to a delivery by its recipient.
const RECIPIENT_DAYS: i64 = 30;

/// Applies `events` from `provider` (stored raw as one inbound message), in the caller's
/// transaction; one outcome per event.
pub fn record(
    db: &Db,
    rules: &Rules,
    provider: &'static str,
    raw: &[u8],
    events: &[Event],
    now: DateTime<Utc>,
) -> Result<Vec<String>> {
    let source = format!("webhook:{provider}");
    let inbound: i64 = db.query_row(
        "INSERT INTO inbound_messages (received_us, mail_from, rcpt_to, class, outcome, size, raw) \
         VALUES (?1, NULL, ?2, 'webhook', '', ?3, ?4) RETURNING id",
        params![now.timestamp_micros(), source, raw.len() as i64, raw],
        |r| r.get(0),
    )?;
    let mut outcomes = Vec::new();
    for e in events {
        let fresh = db.execute(
            "INSERT INTO webhook_seen (provider, id, seen_us) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            params![provider, e.replay_id, now.timestamp_micros()],
        )? == 1;
        let outcome = if !fresh {
            format!("{}: seen before (a replay): nothing changed", e.replay_id)
        } else {
            apply_one(db, rules, &source, e, inbound, now)?
        };
        outcomes.push(outcome);
    }
    db.execute(
        "UPDATE inbound_messages SET outcome = ?2 WHERE id = ?1",
        params![inbound, outcomes.join("; ")],
    )?;
    metrics::counter!("tidings_inbound_messages_total", "class" => "webhook").increment(1);
    Ok(outcomes)
}

fn apply_one(
    db: &Db,
    rules: &Rules,
    source: &str,
    e: &Event,
    inbound: i64,
    now: DateTime<Utc>,
) -> Result<String> {
    let Some(who) = whose(db, e, now)? else {
        return Ok("names no message or recipient of ours: ignored".into());
    };
    let Some(s) = store::get(db, who.subscriber)? else {
        return Ok("the subscriber is gone: nothing changed".into());
    };
    match e.what {
        What::Bounce(kind) => apply::bounced(
            db,
            rules,
            &s,
            kind,
            source,
            &e.detail,
            who,
            Some(inbound),
            now,
        ),
        What::Complaint => apply::complained(db, &s, source, &e.detail, who, Some(inbound), now),
        What::Unsubscribe => {
            if crate::subscribers::flow::unsubscribe_in(
                db,
                &s,
                source,
                Some(inbound),
                who.delivery,
                now,
            )? {
                crate::metrics::unsubscribed("webhook");
                Ok(format!("{} unsubscribed ({source})", s.email))
            } else {
                Ok(format!("{} was already {}", s.email, s.status.as_str()))
            }
        }
        What::Ignore => {
            let ev = apply::event(&s, Kind::Ignored, source, who, Some(inbound))
                .detail(e.detail.clone());
            events::record(db, &ev, now)?;
            Ok(format!("{}: ignored", e.detail))
        }
    }
}

/// By our Message-ID; failing that, by the recipient among our deliveries of the last 30 days.
fn whose(db: &Db, e: &Event, now: DateTime<Utc>) -> Result<Option<Whose>> {
    if let Some(found) = e
        .message_id
        .as_deref()
        .map(|id| apply::by_message_id(db, id))
        .transpose()?
        .flatten()
    {
        return Ok(Some(found));
    }
    let Some(recipient) = &e.recipient else {
        return Ok(None);
    };
    let since = (now - Duration::days(RECIPIENT_DAYS)).timestamp_micros();
    for s in store::find_all_cases(db, recipient)? {
        if let Some(found) = apply::latest_sent_to(db, s.id, since)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// Secrets compared in constant time.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(a, b))
}

/// A JSON body, or the `400` saying why not.
pub fn json(body: &[u8]) -> Result<serde_json::Value, Refusal> {
    serde_json::from_slice(body).map_err(|e| Refusal::Malformed(format!("body: not JSON ({e})")))
}

/// A string field, trimmed, if present.
pub fn text(v: &serde_json::Value, key: &str) -> Option<String> {
    match v.get(key)? {
        serde_json::Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
