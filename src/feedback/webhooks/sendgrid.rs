//! SendGrid's signed event webhook: `X-Twilio-Email-Event-Webhook-Signature` is a base64 ECDSA
//! P-256 / SHA-256 signature (DER) of the `X-Twilio-Email-Event-Webhook-Timestamp` value followed
//! by the raw body, under `webhooks.sendgrid.public_key` (base64 DER, as SendGrid shows it). The
//! timestamp must be within 5 minutes; an `sg_event_id` seen before is a replay.

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use base64::Engine;

use super::{text, Event, Refusal, What};
use crate::feedback::report::{status_bounce, Bounce};

pub const WINDOW_SECONDS: i64 = 300;

pub struct Sendgrid {
    key: Vec<u8>,
}

impl Sendgrid {
    /// From the configured key; the error names what is wrong with it.
    pub fn new(public_key: &str) -> Result<Sendgrid, String> {
        let key = base64::engine::general_purpose::STANDARD
            .decode(public_key.trim())
            .map_err(|_| "is not base64".to_string())?;
        aws_lc_rs::signature::ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &key)
            .map_err(|_| "is not an ECDSA P-256 public key (base64 DER)".to_string())?;
        Ok(Sendgrid { key })
    }

    /// Authenticates and reads one webhook request.
    pub fn read(
        &self,
        signature: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<Vec<Event>, Refusal> {
        let (Some(signature), Some(timestamp)) = (signature, timestamp) else {
            return Err(Refusal::Unauthorized(
                "X-Twilio-Email-Event-Webhook-Signature and -Timestamp are required".into(),
            ));
        };
        let sig = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .map_err(|_| Refusal::Unauthorized("the signature is not base64".into()))?;
        let mut signed = timestamp.as_bytes().to_vec();
        signed.extend_from_slice(body);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.key)
            .verify(&signed, &sig)
            .map_err(|_| Refusal::Unauthorized("the SendGrid signature does not verify".into()))?;
        let at: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| Refusal::Unauthorized("the timestamp is not a number".into()))?;
        if now.abs_diff(at) > WINDOW_SECONDS.unsigned_abs() {
            return Err(Refusal::Unauthorized(
                "the timestamp is stale (more than 5 minutes off)".into(),
            ));
        }
        let v = super::json(body)?;
        let list = v
            .as_array()
            .ok_or_else(|| Refusal::Malformed("body: not a JSON array of events".into()))?;
        let mut out = Vec::new();
        for e in list {
            let event = text(e, "event").unwrap_or_default();
            let status = text(e, "status").unwrap_or_default();
            let what = match event.as_str() {
                "bounce" if text(e, "type").as_deref() == Some("blocked") => {
                    What::Bounce(Bounce::Soft)
                }
                "bounce" if status.starts_with('5') => What::Bounce(status_bounce(&status)),
                "bounce" => What::Bounce(Bounce::Hard),
                "deferred" => What::Bounce(Bounce::Soft),
                "spamreport" => What::Complaint,
                "unsubscribe" | "group_unsubscribe" => What::Unsubscribe,
                _ => What::Ignore,
            };
            let id = text(e, "sg_event_id").unwrap_or_else(|| {
                format!(
                    "{}:{}:{}",
                    text(e, "sg_message_id").unwrap_or_default(),
                    event,
                    text(e, "timestamp").unwrap_or_default()
                )
            });
            out.push(Event {
                replay_id: id,
                what,
                message_id: text(e, "smtp-id"),
                recipient: text(e, "email"),
                detail: format!("{event} {status} {}", text(e, "reason").unwrap_or_default())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            });
        }
        Ok(out)
    }
}
