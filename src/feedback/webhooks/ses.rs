//! Amazon SES through SNS. The SNS signature is checked before anything else, including before
//! `SubscribeURL` is fetched: the canonical string of the message's fields, RSA PKCS#1 with
//! SHA-1 (`SignatureVersion` 1) or SHA-256 (2), under the certificate at `SigningCertURL`, which
//! must be `https://sns.<region>.amazonaws.com/….pem` (or the local `webhooks.ses.signing_cert`).
//! AWS signs every account's notifications, so only `webhooks.ses.topic_arn` is accepted.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::Engine;
use serde_json::Value;

use super::{text, Event, Refusal, What};
use crate::feedback::report::{status_bounce, Bounce};

pub struct Ses {
    topic_arn: String,
    /// The local certificate's public key (SPKI DER), when configured.
    local: Option<Vec<u8>>,
    /// Fetched certificates' public keys by URL.
    fetched: Mutex<HashMap<String, Vec<u8>>>,
}

/// What an authentic SNS message asks for.
#[derive(Debug)]
pub enum Sns {
    /// Confirm the subscription by fetching this URL.
    Confirm(String),
    Notification(Vec<Event>),
    /// `UnsubscribeConfirmation`: nothing to do.
    Other(String),
}

/// The public key (SPKI DER) of a PEM certificate.
pub fn certificate_key(pem: &[u8]) -> Result<Vec<u8>, String> {
    use x509_cert::der::{DecodePem, Encode};
    let text = std::str::from_utf8(pem).map_err(|_| "not a PEM certificate".to_string())?;
    let cert = x509_cert::Certificate::from_pem(text)
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    cert.tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())
}

/// Whether `url` is an SNS endpoint: `https://sns.<region>.amazonaws.com/…`.
fn sns_url(url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    let Some(host) = u.host_str() else {
        return false;
    };
    let region = host
        .strip_prefix("sns.")
        .and_then(|h| h.strip_suffix(".amazonaws.com"));
    u.scheme() == "https"
        && u.port().is_none()
        && region.is_some_and(|r| {
            !r.is_empty()
                && r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

impl Ses {
    pub fn new(topic_arn: String, local_cert: Option<Vec<u8>>) -> Ses {
        Ses {
            topic_arn,
            local: local_cert,
            fetched: Mutex::new(HashMap::new()),
        }
    }

    /// Authenticates and reads one SNS POST body. Blocking (it may fetch the certificate).
    pub fn read(&self, body: &[u8]) -> Result<Sns, Refusal> {
        let m = super::json(body)?;
        let kind = text(&m, "Type").ok_or_else(|| Refusal::Malformed("Type: missing".into()))?;
        let fields: &[&str] = match kind.as_str() {
            "Notification" => &[
                "Message",
                "MessageId",
                "Subject",
                "Timestamp",
                "TopicArn",
                "Type",
            ],
            "SubscriptionConfirmation" | "UnsubscribeConfirmation" => &[
                "Message",
                "MessageId",
                "SubscribeURL",
                "Timestamp",
                "Token",
                "TopicArn",
                "Type",
            ],
            other => return Err(Refusal::Malformed(format!("Type: unknown '{other}'"))),
        };
        let mut canonical = String::new();
        for f in fields {
            // Subject is signed only when present; the others are required.
            match m.get(*f).and_then(Value::as_str) {
                Some(v) => {
                    canonical.push_str(f);
                    canonical.push('\n');
                    canonical.push_str(v);
                    canonical.push('\n');
                }
                None if *f == "Subject" => {}
                None => return Err(Refusal::Malformed(format!("{f}: missing"))),
            }
        }
        let algorithm: &'static signature::RsaParameters =
            match text(&m, "SignatureVersion").as_deref() {
                Some("1") => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                Some("2") => &signature::RSA_PKCS1_2048_8192_SHA256,
                _ => return Err(Refusal::Unauthorized("SignatureVersion: not 1 or 2".into())),
            };
        let sig = text(&m, "Signature")
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .ok_or_else(|| Refusal::Unauthorized("Signature: missing or not base64".into()))?;
        let key = self.key(text(&m, "SigningCertURL").as_deref())?;
        UnparsedPublicKey::new(algorithm, &key)
            .verify(canonical.as_bytes(), &sig)
            .map_err(|_| Refusal::Unauthorized("the SNS signature does not verify".into()))?;
        // Authentic from here on.
        let topic = text(&m, "TopicArn").unwrap_or_default();
        if !super::same(topic.as_bytes(), self.topic_arn.as_bytes()) {
            return Err(Refusal::Forbidden(format!(
                "TopicArn: '{topic}' is not webhooks.ses.topic_arn"
            )));
        }
        let message_id = text(&m, "MessageId").unwrap_or_default();
        match kind.as_str() {
            "SubscriptionConfirmation" => {
                let url = text(&m, "SubscribeURL").unwrap_or_default();
                if !sns_url(&url) {
                    return Err(Refusal::Forbidden(
                        "SubscribeURL: not an https://sns.<region>.amazonaws.com/ URL".into(),
                    ));
                }
                Ok(Sns::Confirm(url))
            }
            "Notification" => {
                let message = text(&m, "Message").unwrap_or_default();
                Ok(Sns::Notification(events(&message_id, &message)?))
            }
            _ => Ok(Sns::Other(kind)),
        }
    }

    fn key(&self, url: Option<&str>) -> Result<Vec<u8>, Refusal> {
        if let Some(k) = &self.local {
            return Ok(k.clone());
        }
        let url = url.ok_or_else(|| Refusal::Unauthorized("SigningCertURL: missing".into()))?;
        if !sns_url(url) || !url.ends_with(".pem") {
            return Err(Refusal::Unauthorized(
                "SigningCertURL: not an https://sns.<region>.amazonaws.com/….pem URL".into(),
            ));
        }
        if let Some(k) = self
            .fetched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(url)
        {
            return Ok(k.clone());
        }
        let pem = ureq::get(url)
            .call()
            .and_then(|mut r| r.body_mut().with_config().limit(64 * 1024).read_to_vec())
            .map_err(|e| Refusal::Upstream(format!("cannot fetch the SNS certificate: {e}")))?;
        let key = certificate_key(&pem).map_err(Refusal::Upstream)?;
        self.fetched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(url.to_string(), key.clone());
        Ok(key)
    }
}

/// Confirms an SNS subscription (blocking GET of its `SubscribeURL`, checked by `read`).
pub fn confirm(url: &str) -> Result<(), Refusal> {
    ureq::get(url)
        .call()
        .map(|_| ())
        .map_err(|e| Refusal::Upstream(format!("cannot confirm the SNS subscription: {e}")))
}

/// The SES notification inside an SNS `Message`: one event per recipient.
pub fn events(sns_id: &str, message: &str) -> Result<Vec<Event>, Refusal> {
    let n: Value = serde_json::from_str(message)
        .map_err(|e| Refusal::Malformed(format!("Message: not an SES notification ({e})")))?;
    let kind = text(&n, "notificationType")
        .or_else(|| text(&n, "eventType"))
        .unwrap_or_default();
    let mail = n.get("mail").cloned().unwrap_or(Value::Null);
    let message_id = mail
        .get("commonHeaders")
        .and_then(|h| text(h, "messageId"))
        .or_else(|| {
            mail.get("headers")?.as_array()?.iter().find_map(|h| {
                let name = text(h, "name")?;
                name.eq_ignore_ascii_case("message-id")
                    .then(|| text(h, "value"))
                    .flatten()
            })
        });
    let event = |i: usize, what: What, recipient: Option<String>, detail: String| Event {
        replay_id: format!("{sns_id}:{i}"),
        what,
        message_id: message_id.clone(),
        recipient,
        detail,
    };
    let list = |obj: &Value, key: &str| -> Vec<Value> {
        obj.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    Ok(match kind.as_str() {
        "Bounce" => {
            let b = n.get("bounce").cloned().unwrap_or(Value::Null);
            let bounce_type = text(&b, "bounceType").unwrap_or_default();
            list(&b, "bouncedRecipients")
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let status = text(r, "status").unwrap_or_default();
                    let what = match bounce_type.as_str() {
                        // Providers' "permanent" is a hard bounce.
                        "Permanent" => Bounce::Hard,
                        "Transient" => Bounce::Soft,
                        _ => status_bounce(&status),
                    };
                    let detail = format!(
                        "{bounce_type} {} {}",
                        status,
                        text(r, "diagnosticCode").unwrap_or_default()
                    );
                    event(
                        i,
                        What::Bounce(what),
                        text(r, "emailAddress"),
                        detail.trim().into(),
                    )
                })
                .collect()
        }
        "Complaint" => {
            let c = n.get("complaint").cloned().unwrap_or(Value::Null);
            let feedback = text(&c, "complaintFeedbackType").unwrap_or_else(|| "abuse".into());
            let what = if feedback == "not-spam" {
                What::Ignore
            } else {
                What::Complaint
            };
            list(&c, "complainedRecipients")
                .iter()
                .enumerate()
                .map(|(i, r)| event(i, what, text(r, "emailAddress"), feedback.clone()))
                .collect()
        }
        other => list(&mail, "destination")
            .iter()
            .enumerate()
            .map(|(i, r)| {
                event(
                    i,
                    What::Ignore,
                    r.as_str().map(str::to_string),
                    format!("SES {other}"),
                )
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_sns_endpoints_are_fetched() {
        for ok in [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.eu-west-2.amazonaws.com/?Action=ConfirmSubscription&Token=x",
        ] {
            assert!(super::sns_url(ok), "{ok}");
        }
        for bad in [
            "http://sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
            "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
            "https://sns..amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com:8443/x.pem",
            "https://s3.amazonaws.com/x.pem",
        ] {
            assert!(!super::sns_url(bad), "{bad}");
        }
    }
}
