//! Mailgun's webhooks: `signature.signature` is the hex HMAC-SHA256 of `timestamp` + `token` under
//! `webhooks.mailgun.signing_key`. A timestamp more than 5 minutes off is refused; a token seen
//! before is a replay.

use aws_lc_rs::hmac;

use super::{text, Event, Refusal, What};
use crate::feedback::report::Bounce;

/// How far a request's timestamp may be from now.
pub const WINDOW_SECONDS: i64 = 300;

pub struct Mailgun {
    key: hmac::Key,
}

impl Mailgun {
    pub fn new(signing_key: &str) -> Mailgun {
        Mailgun {
            key: hmac::Key::new(hmac::HMAC_SHA256, signing_key.as_bytes()),
        }
    }

    /// Authenticates and reads one webhook body.
    pub fn read(&self, body: &[u8], now: i64) -> Result<Vec<Event>, Refusal> {
        let v = super::json(body)?;
        let sig = v
            .get("signature")
            .ok_or_else(|| Refusal::Unauthorized("signature: missing".into()))?;
        let (Some(timestamp), Some(token), Some(signature)) = (
            text(sig, "timestamp"),
            text(sig, "token"),
            text(sig, "signature"),
        ) else {
            return Err(Refusal::Unauthorized(
                "signature: needs timestamp, token and signature".into(),
            ));
        };
        let tag = data_encoding::HEXLOWER_PERMISSIVE
            .decode(signature.as_bytes())
            .map_err(|_| Refusal::Unauthorized("signature: not hex".into()))?;
        hmac::verify(&self.key, format!("{timestamp}{token}").as_bytes(), &tag)
            .map_err(|_| Refusal::Unauthorized("the Mailgun signature does not verify".into()))?;
        let at: i64 = timestamp
            .parse()
            .map_err(|_| Refusal::Unauthorized("signature.timestamp: not a number".into()))?;
        if now.abs_diff(at) > WINDOW_SECONDS.unsigned_abs() {
            return Err(Refusal::Unauthorized(
                "signature.timestamp: stale (more than 5 minutes off)".into(),
            ));
        }
        let data = v
            .get("event-data")
            .ok_or_else(|| Refusal::Malformed("event-data: missing".into()))?;
        let event = text(data, "event").unwrap_or_default();
        let severity = text(data, "severity").unwrap_or_default();
        let what = match (event.as_str(), severity.as_str()) {
            ("failed", "permanent") => What::Bounce(Bounce::Hard),
            ("failed", _) => What::Bounce(Bounce::Soft),
            ("complained", _) => What::Complaint,
            ("unsubscribed", _) => What::Unsubscribe,
            _ => What::Ignore,
        };
        let status = data.get("delivery-status");
        let detail = format!(
            "{event} {severity} {} {}",
            status.and_then(|s| text(s, "code")).unwrap_or_default(),
            status
                .and_then(|s| text(s, "description").or_else(|| text(s, "message")))
                .unwrap_or_default()
        );
        Ok(vec![Event {
            replay_id: token,
            what,
            message_id: data
                .get("message")
                .and_then(|m| m.get("headers"))
                .and_then(|h| text(h, "message-id")),
            recipient: text(data, "recipient"),
            detail: detail.split_whitespace().collect::<Vec<_>>().join(" "),
        }])
    }
}
