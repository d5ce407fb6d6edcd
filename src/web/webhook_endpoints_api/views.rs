//! What `/api/webhook-endpoints` takes and answers, with their OpenAPI schemas.

use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

use crate::webhook_endpoints::service::rfc3339;
use crate::webhook_endpoints::store::{DeliveryView, Endpoint};
use crate::webhook_endpoints::EVENT_TYPES;

/// `event_types` as the document says it: the types one can subscribe to (not `ping`).
fn subscribable_types() -> impl Into<RefOr<Schema>> {
    let types: Vec<&str> = EVENT_TYPES
        .iter()
        .copied()
        .filter(|t| *t != "ping")
        .collect();
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(types)),
        )
        .description(Some(
            "The event types it hears of; none (`[]`) is every type",
        ))
}

/// A new endpoint.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WebhookEndpointInput)]
pub struct CreateBody {
    /// Where events go: an `http` or `https` URL without user or password, whose host resolves
    /// within 2 s to a public address (any address with `webhook_endpoints.allow_private`).
    #[schema(format = "uri", pattern = r"^https?://[^/?#@]")]
    pub url: String,
    #[serde(default)]
    #[schema(schema_with = subscribable_types)]
    pub event_types: Vec<String>,
}

/// A change to an endpoint: only what is given changes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WebhookEndpointPatch)]
pub struct PatchBody {
    /// A new URL (checked as when the endpoint is added).
    #[schema(format = "uri", pattern = r"^https?://[^/?#@]")]
    pub url: Option<String>,
    #[schema(schema_with = subscribable_types)]
    pub event_types: Option<Vec<String>>,
    /// `false` stops deliveries (they wait); `true` starts them again and forgets why the
    /// endpoint was disabled.
    pub enabled: Option<bool>,
}

/// Which finished deliveries to send again: those made in `[since, until)`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WebhookReplayRange)]
pub struct RangeBody {
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub since: String,
    /// RFC 3339; later than `since`.
    #[schema(format = DateTime)]
    pub until: String,
}

/// A webhook endpoint. Its secret is never part of it.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookEndpoint)]
pub struct EndpointView {
    pub id: i64,
    pub url: String,
    /// Empty: every type.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Why it was disabled (by tidings: `410 Gone`, or failing too long), if it was.
    pub disabled_reason: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_success_at: Option<String>,
    /// Since when it has failed without a success.
    #[schema(format = DateTime)]
    pub failing_since: Option<String>,
    /// Until then the secret rotated out still signs beside the current one.
    #[schema(format = DateTime)]
    pub previous_secret_valid_until: Option<String>,
}

impl From<&Endpoint> for EndpointView {
    fn from(e: &Endpoint) -> Self {
        EndpointView {
            id: e.id,
            url: e.url.clone(),
            event_types: e.event_types.clone(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.clone(),
            created_at: rfc3339(e.created_us),
            last_success_at: e.last_success_us.map(rfc3339),
            failing_since: e.failing_since_us.map(rfc3339),
            previous_secret_valid_until: e.previous_secret_until_us.map(rfc3339),
        }
    }
}

/// An endpoint just added or whose secret was just rotated, with that secret: shown this once,
/// never again (no other answer, list or log holds it).
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookEndpointWithSecret)]
pub struct WithSecret {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// The signing secret (`whsec_` and base64), shown this once: keep it now.
    pub secret: String,
}

/// Every endpoint, and the event types there are.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookEndpointList)]
pub struct EndpointList {
    pub endpoints: Vec<EndpointView>,
    pub event_types: Vec<&'static str>,
}

/// Where a delivery is.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = WebhookDeliveryState)]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

/// One event for one endpoint, with its attempts (oldest first).
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookDelivery)]
pub struct DeliveryJson {
    pub id: i64,
    /// The `webhook-id` header of every attempt (`msg_…`).
    pub webhook_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub state: DeliveryState,
    pub attempts: i64,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    /// The body sent: `{"type", "timestamp", "data"}`.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub log: Vec<AttemptJson>,
}

/// One attempt.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookAttempt)]
pub struct AttemptJson {
    #[schema(format = DateTime)]
    pub at: String,
    /// The answer's status; none when there was no answer.
    pub status: Option<i64>,
    pub latency_ms: f64,
    /// The start of the answer's body, or what went wrong.
    pub response: Option<String>,
}

impl From<&DeliveryView> for DeliveryJson {
    fn from(d: &DeliveryView) -> Self {
        let state = match d.state.as_str() {
            "delivered" => DeliveryState::Delivered,
            "failed" => DeliveryState::Failed,
            _ => DeliveryState::Pending,
        };
        DeliveryJson {
            id: d.id,
            webhook_id: d.webhook_id.clone(),
            event_type: d.event_type.clone(),
            state,
            attempts: d.attempts,
            created_at: rfc3339(d.created_us),
            next_attempt_at: d.next_attempt_us.map(rfc3339),
            finished_at: d.finished_us.map(rfc3339),
            last_status: d.last_status,
            last_error: d.last_error.clone(),
            payload: serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null),
            log: d
                .log
                .iter()
                .map(|a| AttemptJson {
                    at: chrono::DateTime::from_timestamp_micros(a.at_us)
                        .unwrap_or_default()
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    status: a.status,
                    latency_ms: a.latency_us as f64 / 1000.0,
                    response: a.response.clone(),
                })
                .collect(),
        }
    }
}

/// A page of deliveries, newest first.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookDeliveryPage)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryJson>,
    /// Pass as `before` for the next page; none on the last one.
    pub next_before: Option<i64>,
}

/// A delivery sent again.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookReplayed)]
pub struct Replayed {
    pub delivery: i64,
    /// Whether it was queued (a delivery still pending is not queued twice).
    pub queued: bool,
}

/// Deliveries in a time range sent again.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookReplayedRange)]
pub struct ReplayedRange {
    /// How many were queued.
    pub replayed: usize,
}
