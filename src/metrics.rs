//! Metrics at `/metrics` in the Prometheus text format: feed requests and 304s, digests sent,
//! failed, retried and skipped, send latency, the delivery queue's depth, and feed audience
//! flushes.

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Handles to every metric, registered once; without an installed recorder (the CLI) they do nothing.
#[derive(Clone)]
pub struct Metrics {
    pub feed_requests: Counter,
    pub feed_not_modified: Counter,
    pub digests_sent: Counter,
    pub digests_failed: Counter,
    pub digests_retried: Counter,
    pub digests_skipped: Counter,
    pub send_seconds: Histogram,
    pub queue_depth: Gauge,
    pub claims_released: Counter,
    pub emails_queued: Counter,
    pub emails_sent: Counter,
    pub emails_failed: Counter,
    pub outbox_depth: Gauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        metrics::describe_counter!(
            "tidings_feed_requests_total",
            "GET/HEAD requests answered from the feed cache"
        );
        metrics::describe_counter!(
            "tidings_feed_not_modified_total",
            "feed requests answered 304 Not Modified"
        );
        metrics::describe_counter!(
            "tidings_digests_sent_total",
            "digests accepted by the mail server"
        );
        metrics::describe_counter!(
            "tidings_digests_failed_total",
            "digests given up (permanent failure or out of attempts)"
        );
        metrics::describe_counter!(
            "tidings_digests_retried_total",
            "transient digest failures scheduled for a retry"
        );
        metrics::describe_counter!(
            "tidings_digests_skipped_total",
            "planned digests not sent (subscriber left, articles gone)"
        );
        metrics::describe_histogram!(
            "tidings_digest_send_seconds",
            metrics::Unit::Seconds,
            "time to hand one digest to the mail server"
        );
        metrics::describe_gauge!(
            "tidings_digest_queue_depth",
            "deliveries pending or being sent"
        );
        metrics::describe_counter!(
            "tidings_digest_claims_released_total",
            "claimed deliveries handed back unsent (shutdown, or a lease about to lapse)"
        );
        metrics::describe_counter!(
            "tidings_emails_queued_total",
            "single emails (confirmation, welcome) queued for sending"
        );
        metrics::describe_counter!(
            "tidings_emails_sent_total",
            "single emails accepted by the mail server"
        );
        metrics::describe_counter!(
            "tidings_emails_failed_total",
            "single emails refused for good, or dropped unsent"
        );
        metrics::describe_counter!(
            "tidings_unsubscribes_total",
            "unsubscribes, by source (link, one_click, mailto, webhook, admin)"
        );
        metrics::describe_counter!(
            "tidings_bounces_total",
            "bounces, by kind (hard, soft, other)"
        );
        metrics::describe_counter!(
            "tidings_complaints_total",
            "spam complaints (ARF reports and provider webhooks)"
        );
        metrics::describe_counter!(
            "tidings_inbound_messages_total",
            "messages received for the return path, by class"
        );
        metrics::describe_gauge!("tidings_outbox_depth", "single emails queued or being sent");
        metrics::describe_counter!(
            "tidings_audience_flushes_total",
            "feed audience counts written to the database"
        );
        Metrics {
            outbox_depth: metrics::gauge!("tidings_outbox_depth"),
            claims_released: metrics::counter!("tidings_digest_claims_released_total"),
            emails_queued: metrics::counter!("tidings_emails_queued_total"),
            emails_sent: metrics::counter!("tidings_emails_sent_total"),
            emails_failed: metrics::counter!("tidings_emails_failed_total"),
            feed_requests: metrics::counter!("tidings_feed_requests_total"),
            feed_not_modified: metrics::counter!("tidings_feed_not_modified_total"),
            digests_sent: metrics::counter!("tidings_digests_sent_total"),
            digests_failed: metrics::counter!("tidings_digests_failed_total"),
            digests_retried: metrics::counter!("tidings_digests_retried_total"),
            digests_skipped: metrics::counter!("tidings_digests_skipped_total"),
            send_seconds: metrics::histogram!("tidings_digest_send_seconds"),
            queue_depth: metrics::gauge!("tidings_digest_queue_depth"),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// One unsubscribe more from `source`.
pub fn unsubscribed(source: &'static str) {
    metrics::counter!("tidings_unsubscribes_total", "source" => source).increment(1);
}

/// `n` unsubscribes more from `source` at once (a bulk action).
pub fn unsubscribed_many(source: &'static str, n: u64) {
    metrics::counter!("tidings_unsubscribes_total", "source" => source).increment(n);
}

/// One bounce more of `kind` (hard, soft, other).
pub fn bounced(kind: &'static str) {
    metrics::counter!("tidings_bounces_total", "kind" => kind).increment(1);
}

/// One feed audience flush more (`src/audience/`).
pub fn audience_flushed() {
    metrics::counter!("tidings_audience_flushes_total").increment(1);
}

/// Installs the Prometheus recorder (once per process) and returns its handle for `/metrics`.
pub fn install() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed");
                None
            }
        })
        .clone()
}
