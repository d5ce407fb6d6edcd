//! `WebhookEndpoints`: the async face the API, the CLI and the console call to manage endpoints,
//! read their delivery log and replay. Input is parsed here once (the URL through the address
//! guard, event types against `EVENT_TYPES`); errors name the field.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::store::{self, DeliveryView, Endpoint};
use crate::config::Config;
use crate::secret::Secret;
use crate::store::Store;

/// Why a request about endpoints was refused.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("{message}")]
    Input {
        field: &'static str,
        message: String,
    },
    #[error("no webhook endpoint with id {0}")]
    NotFound(i64),
    #[error("no delivery {1} of webhook endpoint {0}")]
    NoDelivery(i64, i64),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

fn input(field: &'static str, message: impl Into<String>) -> EndpointError {
    EndpointError::Input {
        field,
        message: message.into(),
    }
}

/// What a change asks for; `None` leaves a value as it is.
#[derive(Debug, Default, Clone)]
pub struct Patch {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

pub struct WebhookEndpoints {
    store: Store,
    config: Arc<Config>,
}

/// Event types as an endpoint may list them: known ones, each once.
pub fn parse_event_types(types: &[String]) -> Result<Vec<String>, EndpointError> {
    let mut out: Vec<String> = Vec::new();
    for t in types {
        let t = t.trim();
        if t == "ping" || !super::EVENT_TYPES.contains(&t) {
            return Err(input(
                "event_types",
                format!(
                    "'{t}' is not an event type; known: {}",
                    super::EVENT_TYPES
                        .iter()
                        .filter(|t| **t != "ping")
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

pub fn rfc3339(us: i64) -> String {
    DateTime::from_timestamp_micros(us)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An endpoint as JSON (never its secret).
pub fn endpoint_json(e: &Endpoint) -> Value {
    json!({
        "id": e.id,
        "url": e.url,
        "event_types": e.event_types,
        "enabled": e.enabled,
        "disabled_reason": e.disabled_reason,
        "created_at": rfc3339(e.created_us),
        "last_success_at": e.last_success_us.map(rfc3339),
        "failing_since": e.failing_since_us.map(rfc3339),
        "previous_secret_valid_until": e.previous_secret_until_us.map(rfc3339),
    })
}

/// A delivery, with its attempts, as JSON.
pub fn delivery_json(d: &DeliveryView) -> Value {
    json!({
        "id": d.id,
        "webhook_id": d.webhook_id,
        "type": d.event_type,
        "state": d.state,
        "attempts": d.attempts,
        "created_at": rfc3339(d.created_us),
        "next_attempt_at": d.next_attempt_us.map(rfc3339),
        "finished_at": d.finished_us.map(rfc3339),
        "last_status": d.last_status,
        "last_error": d.last_error,
        "payload": serde_json::from_str::<Value>(&d.payload).unwrap_or(Value::Null),
        "log": d.log.iter().map(|a| json!({
            "at": DateTime::from_timestamp_micros(a.at_us).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true),
            "status": a.status,
            "latency_ms": a.latency_us as f64 / 1000.0,
            "response": a.response,
        })).collect::<Vec<_>>(),
    })
}

impl WebhookEndpoints {
    pub fn new(config: Arc<Config>, store: Store) -> WebhookEndpoints {
        WebhookEndpoints { store, config }
    }

    /// The URL, parsed and its host checked (`url` names the field).
    async fn checked_url(&self, raw: &str) -> Result<String, EndpointError> {
        let url = super::guard::parse(raw).map_err(|e| input("url", e.0))?;
        super::guard::resolve(&url, self.config.webhook_endpoints.allow_private)
            .await
            .map_err(|e| input("url", e.0))?;
        Ok(url.to_string())
    }

    /// Adds an endpoint; it and its secret, which is shown this once.
    pub async fn create(
        &self,
        url: &str,
        event_types: &[String],
    ) -> Result<(Endpoint, Secret), EndpointError> {
        let url = self.checked_url(url).await?;
        let types = parse_event_types(event_types)?;
        let secret = super::sign::new_secret();
        let stored = secret.clone();
        let endpoint = self
            .store
            .write(move |db| {
                let id = store::create(db, &url, &types, &stored, Utc::now().timestamp_micros())?;
                store::get(db, id)?.ok_or(crate::store::Error::NoRow)
            })
            .await?;
        super::endpoints_changed();
        Ok((endpoint, secret))
    }

    pub async fn list(&self) -> Result<Vec<Endpoint>, EndpointError> {
        Ok(self.store.read(store::list).await?)
    }

    pub async fn get(&self, id: i64) -> Result<Endpoint, EndpointError> {
        self.store
            .read(move |db| store::get(db, id))
            .await?
            .ok_or(EndpointError::NotFound(id))
    }

    pub async fn update(&self, id: i64, patch: Patch) -> Result<Endpoint, EndpointError> {
        let url = match &patch.url {
            Some(u) => Some(self.checked_url(u).await?),
            None => None,
        };
        let types = patch
            .event_types
            .as_deref()
            .map(parse_event_types)
            .transpose()?;
        let enabled = patch.enabled;
        let found = self
            .store
            .write(move |db| {
                if !store::update(db, id, url.as_deref(), types.as_deref(), enabled)? {
                    return Ok(None);
                }
                store::get(db, id)
            })
            .await?;
        super::endpoints_changed();
        found.ok_or(EndpointError::NotFound(id))
    }

    pub async fn delete(&self, id: i64) -> Result<(), EndpointError> {
        let gone = self.store.write(move |db| store::delete(db, id)).await?;
        super::endpoints_changed();
        gone.then_some(()).ok_or(EndpointError::NotFound(id))
    }

    /// A new secret, shown this once; the old one signs too for `webhook_endpoints.rotation_hours`.
    pub async fn rotate(&self, id: i64) -> Result<(Endpoint, Secret), EndpointError> {
        let secret = super::sign::new_secret();
        let stored = secret.clone();
        let hours = i64::from(self.config.webhook_endpoints.rotation_hours);
        let found = self
            .store
            .write(move |db| {
                let until = db.now_us()? + hours * 3_600_000_000;
                if !store::rotate(db, id, &stored, until)? {
                    return Ok(None);
                }
                store::get(db, id)
            })
            .await?;
        Ok((found.ok_or(EndpointError::NotFound(id))?, secret))
    }

    /// Queues a `ping` for endpoint `id`; the delivery.
    pub async fn ping(&self, id: i64) -> Result<DeliveryView, EndpointError> {
        let delivery = self
            .store
            .write(move |db| {
                if store::get(db, id)?.is_none() {
                    return Ok(None);
                }
                let now = Utc::now();
                let event = super::Event {
                    event_type: "ping",
                    subject: format!("ping:{}", uuid::Uuid::new_v4().simple()),
                    data: json!({ "endpoint_id": id }),
                };
                let row = store::NewDelivery {
                    endpoint_id: id,
                    event_type: "ping",
                    subject: event.subject.clone(),
                    payload: event.payload(now),
                };
                store::insert_deliveries(db, &[row], now)?;
                Ok::<_, crate::store::Error>(store::deliveries(db, id, None, 1)?.into_iter().next())
            })
            .await?;
        super::wake().notify_one();
        delivery.ok_or(EndpointError::NotFound(id))
    }

    /// A page of endpoint `id`'s deliveries, newest first, before delivery `before`.
    pub async fn deliveries(
        &self,
        id: i64,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<DeliveryView>, EndpointError> {
        let limit = limit.clamp(1, 1000);
        self.store
            .read(move |db| {
                if store::get(db, id)?.is_none() {
                    return Ok(None);
                }
                store::deliveries(db, id, before, limit).map(Some)
            })
            .await?
            .ok_or(EndpointError::NotFound(id))
    }

    /// Sends delivery `delivery` again, with its `webhook-id`; `false` if it is waiting already.
    pub async fn replay(&self, id: i64, delivery: i64) -> Result<bool, EndpointError> {
        let done = self
            .store
            .write(move |db| store::replay(db, id, delivery, db.now_us()?))
            .await?;
        super::wake().notify_one();
        done.ok_or(EndpointError::NoDelivery(id, delivery))
    }

    /// Sends again every finished delivery made in `[since, until)`; how many.
    pub async fn replay_range(
        &self,
        id: i64,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<usize, EndpointError> {
        if until <= since {
            return Err(input("until", "must be later than since"));
        }
        let n = self
            .store
            .write(move |db| {
                if store::get(db, id)?.is_none() {
                    return Ok(None);
                }
                store::replay_range(
                    db,
                    id,
                    since.timestamp_micros(),
                    until.timestamp_micros(),
                    db.now_us()?,
                )
                .map(Some)
            })
            .await?;
        super::wake().notify_one();
        n.ok_or(EndpointError::NotFound(id))
    }
}
