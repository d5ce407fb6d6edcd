//! Postmark's bounce and spam-complaint webhooks, authenticated by HTTP basic auth
//! (`webhooks.postmark.username`, `webhooks.postmark.password`), compared in constant time.

use base64::Engine;

use super::{text, Event, Refusal, What};
use crate::feedback::report::Bounce;

pub struct Postmark {
    expected: Vec<u8>,
}

impl Postmark {
    pub fn new(username: &str, password: &str) -> Postmark {
        Postmark {
            expected: format!("{username}:{password}").into_bytes(),
        }
    }

    /// Checks the `Authorization` header.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<(), Refusal> {
        let given = authorization
            .and_then(|h| h.strip_prefix("Basic "))
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .unwrap_or_default();
        if super::same(&given, &self.expected) {
            Ok(())
        } else {
            Err(Refusal::Unauthorized("wrong or missing basic auth".into()))
        }
    }
}

/// One Postmark record (they post one per request).
pub fn events(body: &[u8]) -> Result<Vec<Event>, Refusal> {
    let v = super::json(body)?;
    let record =
        text(&v, "RecordType").ok_or_else(|| Refusal::Malformed("RecordType: missing".into()))?;
    let id = text(&v, "ID").ok_or_else(|| Refusal::Malformed("ID: missing".into()))?;
    let kind = text(&v, "Type").unwrap_or_default();
    let what = match (record.as_str(), kind.as_str()) {
        ("Bounce", "HardBounce" | "BadEmailAddress") => What::Bounce(Bounce::Hard),
        ("Bounce", "SoftBounce" | "Transient" | "DnsError") => What::Bounce(Bounce::Soft),
        ("Bounce", "SpamComplaint") | ("SpamComplaint", _) => What::Complaint,
        ("SubscriptionChange", _)
            if v.get("SuppressSending") == Some(&serde_json::Value::Bool(true)) =>
        {
            What::Unsubscribe
        }
        _ => What::Ignore,
    };
    Ok(vec![Event {
        replay_id: id,
        what,
        message_id: None,
        recipient: text(&v, "Email").or_else(|| text(&v, "Recipient")),
        detail: format!(
            "{record} {kind} {}",
            text(&v, "Description").unwrap_or_default()
        )
        .trim()
        .to_string(),
    }])
}
