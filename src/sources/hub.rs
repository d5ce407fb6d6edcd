//! A source's WebSub subscription, the service side: asking the hub, answering its
//! verification only for what was asked, and taking a signed push as a reason to poll at once
//! (the pushed body is not trusted as content).

use std::time::Duration;

use chrono::Utc;

use super::guard::Allowed;
use super::{store, websub, Sources, NEVER};

/// How long before asking a hub again when it did not answer or verify.
const RETRY: Duration = Duration::from_secs(3600);

/// What the hub's verification request asks.
#[derive(Debug, Clone)]
pub struct Verification {
    pub mode: String,
    pub topic: String,
    pub challenge: String,
    pub lease_seconds: Option<i64>,
}

/// What became of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Signed with the subscription's secret: the source is polled at once.
    Polling,
    /// Unsigned, wrongly signed, or for a source without a subscription: ignored.
    Ignored,
    /// No such source: the hub may stop sending.
    Gone,
}

impl Sources {
    fn callback(&self, id: i64) -> String {
        format!("{}/websub/{id}", self.base_url)
    }

    /// Back to polling alone; the hub is asked again at `retry_us` (`NEVER`: not again).
    async fn polling_alone(&self, id: i64, retry_us: i64) {
        let _ = self
            .store
            .write(move |db| store::websub_ended(db, id, retry_us))
            .await;
    }

    fn retry_us() -> i64 {
        Utc::now().timestamp_micros() + RETRY.as_micros() as i64
    }

    /// Asks the source's hub for a subscription (or its renewal), with a fresh secret the first
    /// time. The hub then verifies it at the callback; until then it is `subscribing`.
    pub async fn subscribe(&self, id: i64) {
        let Ok(Some(hub)) = self.store.read(move |db| store::hub_of(db, id)).await else {
            return;
        };
        let (Some(hub_url), topic) = (
            hub.hub.clone(),
            hub.topic.clone().unwrap_or(hub.url.clone()),
        ) else {
            return;
        };
        let Ok(hub_url) = Allowed::url(&hub_url) else {
            tracing::info!(
                source = id,
                "the feed names a hub that is not an http(s) URL"
            );
            self.polling_alone(id, NEVER).await;
            return;
        };
        let addrs = match self.allowed.resolve(&hub_url).await {
            Ok(addrs) => addrs,
            Err(e) => {
                tracing::info!(source = id, reason = %e, "not subscribing to the feed's hub");
                self.polling_alone(id, Self::retry_us()).await;
                return;
            }
        };
        if !websub::reachable(&self.base_url, &addrs) {
            tracing::info!(
                source = id,
                "not subscribing to the feed's hub: site.base_url is not an address it can reach"
            );
            self.polling_alone(id, NEVER).await;
            return;
        }
        let secret = hub.secret.clone().unwrap_or_else(websub::new_secret);
        let state = match hub.state.as_str() {
            "active" => "active",
            _ => "subscribing",
        };
        let (kept, retry) = (secret.clone(), Self::retry_us());
        if self
            .store
            .write(move |db| store::websub_requested(db, id, state, &kept, retry))
            .await
            .is_err()
        {
            return;
        }
        let lease = websub::LEASE_ASKED_SECONDS.to_string();
        let callback = self.callback(id);
        let form = [
            ("hub.mode", "subscribe"),
            ("hub.topic", topic.as_str()),
            ("hub.callback", callback.as_str()),
            ("hub.secret", secret.as_str()),
            ("hub.lease_seconds", lease.as_str()),
        ];
        match websub::request(
            &self.client,
            &self.allowed,
            &hub_url,
            &form,
            &self.limits.user_agent,
            self.limits.timeout,
        )
        .await
        {
            Ok(status) if (200..300).contains(&status) => {
                tracing::info!(source = id, hub = %hub_url, "asked the hub for a subscription");
            }
            Ok(status) => {
                tracing::info!(source = id, hub = %hub_url, status, "the hub refused a subscription");
            }
            Err(e) => {
                tracing::info!(source = id, hub = %hub_url, error = %e, "cannot reach the hub");
            }
        }
    }

    /// Asks the hub to end a removed source's subscription (verified like a subscription).
    pub(super) async fn unsubscribe(&self, id: i64, hub: store::Hub) {
        if !matches!(hub.state.as_str(), "active" | "subscribing") {
            return;
        }
        let (Some(hub_url), topic) = (hub.hub, hub.topic.unwrap_or(hub.url)) else {
            return;
        };
        let Ok(hub_url) = Allowed::url(&hub_url) else {
            return;
        };
        self.leaving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, topic.clone());
        let callback = self.callback(id);
        let form = [
            ("hub.mode", "unsubscribe"),
            ("hub.topic", topic.as_str()),
            ("hub.callback", callback.as_str()),
        ];
        if let Err(e) = websub::request(
            &self.client,
            &self.allowed,
            &hub_url,
            &form,
            &self.limits.user_agent,
            self.limits.timeout,
        )
        .await
        {
            tracing::info!(source = id, error = %e, "cannot ask the hub to unsubscribe");
        }
    }

    /// The hub's verification of intent: the challenge to echo, or `None` (answered `404`)
    /// when tidings did not ask for this mode and topic.
    pub async fn verify(&self, id: i64, v: Verification) -> Option<String> {
        if v.challenge.is_empty() || v.challenge.len() > 1024 {
            return None;
        }
        match v.mode.as_str() {
            "unsubscribe" => {
                let mut leaving = self
                    .leaving
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match leaving.get(&id) {
                    Some(topic) if *topic == v.topic => {
                        leaving.remove(&id);
                        Some(v.challenge)
                    }
                    _ => None,
                }
            }
            "subscribe" => {
                let hub = self
                    .store
                    .read(move |db| store::hub_of(db, id))
                    .await
                    .ok()??;
                let asked = matches!(hub.state.as_str(), "subscribing" | "active")
                    && hub.topic.as_deref().unwrap_or(&hub.url) == v.topic;
                if !asked {
                    return None;
                }
                let lease = v
                    .lease_seconds
                    .unwrap_or(websub::LEASE_ASKED_SECONDS as i64)
                    .clamp(1, 365 * 86_400);
                let now = Utc::now().timestamp_micros();
                let renew = websub::renew_at(now + lease * 1_000_000, lease);
                let max_s = self.bounds.max.as_secs() as i64;
                if let Err(e) = self
                    .store
                    .write(move |db| store::websub_verified(db, id, now, lease, renew, max_s))
                    .await
                {
                    tracing::warn!(source = id, error = %e, "cannot record a verified subscription");
                    return None;
                }
                self.wake.notify_one();
                Some(v.challenge)
            }
            _ => None,
        }
    }

    /// The hub said it will not (or no longer) deliver: polling alone, ask again later.
    pub async fn denied(&self, id: i64) {
        self.polling_alone(id, Self::retry_us()).await;
    }

    /// A push: with a valid `X-Hub-Signature`, the source is polled at once.
    pub async fn pushed(&self, id: i64, signature: Option<&str>, body: &[u8]) -> Pushed {
        let Ok(hub) = self.store.read(move |db| store::hub_of(db, id)).await else {
            return Pushed::Ignored;
        };
        let Some(hub) = hub else {
            return Pushed::Gone;
        };
        let valid = match (&hub.secret, signature) {
            (Some(secret), Some(sig)) => websub::signature_ok(secret, sig, body),
            _ => false,
        };
        if !valid || !matches!(hub.state.as_str(), "active" | "subscribing") {
            metrics::counter!("tidings_websub_pushes_total", "result" => "ignored").increment(1);
            return Pushed::Ignored;
        }
        metrics::counter!("tidings_websub_pushes_total", "result" => "polling").increment(1);
        match self.poll_soon(id).await {
            Ok(_) => Pushed::Polling,
            Err(_) => Pushed::Ignored,
        }
    }
}
