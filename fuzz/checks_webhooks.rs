//! What must hold for the provider webhooks (`src/feedback/webhooks/`), whatever the body: each
//! reader runs whole, behind its authentication, on bodies the check signs with keys it holds
//! (HMAC for Mailgun, an ECDSA P-256 key pair for SendGrid, an RSA key for SNS given to `Ses` as
//! its local certificate's key, Postmark's basic auth); and the authentication checks themselves
//! let through exactly what is correctly signed. Used by the fuzz targets and by
//! `tests/fuzz_corpus.rs`, like `checks.rs`.
#![allow(dead_code)]

use std::sync::OnceLock;

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::Engine;
use serde_json::{json, Value};
use tidings::feedback::report::Bounce;
use tidings::feedback::webhooks::mailgun::Mailgun;
use tidings::feedback::webhooks::postmark::{self, Postmark};
use tidings::feedback::webhooks::sendgrid::Sendgrid;
use tidings::feedback::webhooks::ses::{self, Ses, Sns};
use tidings::feedback::webhooks::{text, Event, Refusal, What};

#[path = "checks_webhook_auth.rs"]
mod auth;
pub use auth::webhook_auth;

pub const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:tidings-bounces";
pub const MAILGUN_KEY: &str = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";
pub const POSTMARK_USER: &str = "postmark";
pub const POSTMARK_PASSWORD: &str = "s3cret-hook-password";
/// "Now" for the timestamped providers (2026-05-28).
pub const NOW: i64 = 1_780_000_000;
/// Both Mailgun's and SendGrid's window.
const WINDOW: i128 = 300;

/// The keys, generated once per process, and the providers set up with them.
struct Providers {
    rsa: aws_lc_rs::rsa::KeyPair,
    ec: EcdsaKeyPair,
    /// SubjectPublicKeyInfo DER of the two public keys.
    rsa_public: Vec<u8>,
    ec_public: Vec<u8>,
    ses: Ses,
    sendgrid: Sendgrid,
    mailgun: Mailgun,
    postmark: Postmark,
}

fn providers() -> &'static Providers {
    static P: OnceLock<Providers> = OnceLock::new();
    P.get_or_init(|| {
        let rsa =
            aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA key");
        let spki = AsDer::<PublicKeyX509Der>::as_der(rsa.public_key())
            .expect("SPKI")
            .as_ref()
            .to_vec();
        let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("EC key");
        let ec_spki = AsDer::<PublicKeyX509Der>::as_der(ec.public_key()).expect("SPKI");
        Providers {
            ses: Ses::new(TOPIC.into(), Some(spki.clone())),
            sendgrid: Sendgrid::new(&b64(ec_spki.as_ref())).expect("SendGrid key"),
            rsa_public: spki,
            ec_public: ec_spki.as_ref().to_vec(),
            mailgun: Mailgun::new(MAILGUN_KEY),
            postmark: Postmark::new(POSTMARK_USER, POSTMARK_PASSWORD),
            rsa,
            ec,
        }
    })
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex in either case, as Mailgun's signatures are read.
fn unhex(s: &str) -> Option<Vec<u8>> {
    let digits: Option<Vec<u8>> = s.chars().map(|c| c.to_digit(16).map(|d| d as u8)).collect();
    let digits = digits?;
    (digits.len() % 2 == 0).then(|| digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect())
}

fn mailgun_tag(timestamp: &str, token: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, MAILGUN_KEY.as_bytes());
    hex(aws_lc_rs::hmac::sign(&key, format!("{timestamp}{token}").as_bytes()).as_ref())
}

fn sendgrid_signature(timestamp: &str, body: &[u8]) -> String {
    let mut signed = timestamp.as_bytes().to_vec();
    signed.extend_from_slice(body);
    let sig = providers()
        .ec
        .sign(&aws_lc_rs::rand::SystemRandom::new(), &signed)
        .expect("sign");
    b64(sig.as_ref())
}

/// Whether `timestamp` (trimmed) is a number within the window around `NOW`.
fn fresh(timestamp: &str) -> bool {
    timestamp
        .trim()
        .parse::<i64>()
        .is_ok_and(|at| (i128::from(NOW) - i128::from(at)).abs() <= WINDOW)
}

/// The SNS fields signed for a message `Type`, in order (AWS's documentation).
fn sns_fields(kind: &str) -> Option<&'static [&'static str]> {
    const NOTIFICATION: &[&str] = &[
        "Message",
        "MessageId",
        "Subject",
        "Timestamp",
        "TopicArn",
        "Type",
    ];
    const CONFIRMATION: &[&str] = &[
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ];
    match kind {
        "Notification" => Some(NOTIFICATION),
        "SubscriptionConfirmation" | "UnsubscribeConfirmation" => Some(CONFIRMATION),
        _ => None,
    }
}

/// The string SNS signs, or `None` when a field it needs is missing or not a string.
fn sns_canonical(m: &Value) -> Option<String> {
    let mut canonical = String::new();
    for f in sns_fields(&text(m, "Type")?)? {
        match m.get(*f).and_then(Value::as_str) {
            Some(v) => canonical.push_str(&format!("{f}\n{v}\n")),
            None if *f == "Subject" => {}
            None => return None,
        }
    }
    Some(canonical)
}

/// Signs an SNS envelope in place (`SignatureVersion` 2), if it has what SNS signs.
fn sns_sign(m: &mut Value) -> bool {
    let Some(canonical) = sns_canonical(m) else {
        return false;
    };
    let rsa = &providers().rsa;
    let mut sig = vec![0u8; rsa.public_modulus_len()];
    rsa.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        canonical.as_bytes(),
        &mut sig,
    )
    .expect("sign");
    m["SignatureVersion"] = "2".into();
    m["Signature"] = b64(&sig).into();
    m["SigningCertURL"] =
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-fuzz.pem".into();
    true
}

/// Bounds every event keeps: a replay id, and present optional fields non-empty and trimmed.
fn event_bounds(e: &Event, recipient_trimmed: bool) {
    assert!(!e.replay_id.is_empty(), "an event without a replay id");
    let trimmed = |v: &String| !v.is_empty() && v.trim() == v;
    if let Some(m) = &e.message_id {
        assert!(trimmed(m), "message id {m:?}");
    }
    if let (Some(r), true) = (&e.recipient, recipient_trimmed) {
        assert!(trimmed(r), "recipient {r:?}");
    }
}

/// A detail folded to single spaces, as Mailgun's and SendGrid's readers make it.
fn folded(detail: &str) -> bool {
    detail.split_whitespace().collect::<Vec<_>>().join(" ") == detail
}

/// The SES notification inside an SNS message: one event per listed recipient, numbered
/// `<sns id>:<i>`, all about the same Message-ID; a bounce per bounced recipient, a complaint
/// (or, for `not-spam`, nothing) per complaining one; anything else is on record only.
fn check_ses_events(sns_id: &str, message: &str, read: &Result<Vec<Event>, Refusal>) {
    let Ok(n) = serde_json::from_str::<Value>(message) else {
        assert!(matches!(read, Err(Refusal::Malformed(_))), "{read:?}");
        return;
    };
    let events = read
        .as_ref()
        .expect("an SES notification that is JSON reads");
    let kind = text(&n, "notificationType")
        .or_else(|| text(&n, "eventType"))
        .unwrap_or_default();
    let count = |v: Option<&Value>, key: &str| {
        v.and_then(|v| v.get(key))
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    };
    let want = match kind.as_str() {
        "Bounce" => count(n.get("bounce"), "bouncedRecipients"),
        "Complaint" => count(n.get("complaint"), "complainedRecipients"),
        _ => count(n.get("mail"), "destination"),
    };
    assert_eq!(events.len(), want, "one event per recipient");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.replay_id, format!("{sns_id}:{i}"));
        assert_eq!(e.message_id, events[0].message_id);
        event_bounds(e, kind == "Bounce" || kind == "Complaint");
        match kind.as_str() {
            "Bounce" => {
                assert!(matches!(e.what, What::Bounce(_)), "{e:?}");
                assert_eq!(e.detail, e.detail.trim());
                let t = n.get("bounce").and_then(|b| text(b, "bounceType"));
                match t.as_deref() {
                    Some("Permanent") => assert_eq!(e.what, What::Bounce(Bounce::Hard)),
                    Some("Transient") => assert_eq!(e.what, What::Bounce(Bounce::Soft)),
                    _ => {}
                }
            }
            "Complaint" => assert!(matches!(e.what, What::Complaint | What::Ignore)),
            _ => assert_eq!(e.what, What::Ignore),
        }
    }
}

/// SES through SNS. The body as sent, unsigned, never gets past the signature. An input that is
/// an SNS envelope (it has a `Type`) is signed as SNS would and read whole by `Ses::read`: it is
/// never refused as unauthorised; another topic is `403`; a subscription is confirmed only to an
/// `https://sns.…` URL; a notification reads as `ses::events` reads its `Message`. Any other
/// input is taken for the SES notification itself and read by `ses::events`.
pub fn webhook_ses(data: &[u8]) {
    let p = providers();
    let unsigned = p.ses.read(data);
    assert!(
        matches!(
            unsigned,
            Err(Refusal::Malformed(_) | Refusal::Unauthorized(_))
        ),
        "an unsigned body: {unsigned:?}"
    );
    let Ok(mut m) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Some(kind) = text(&m, "Type") else {
        if let Ok(message) = std::str::from_utf8(data) {
            let read = ses::events("fuzz-sns-id", message);
            assert_eq!(
                read,
                ses::events("fuzz-sns-id", message),
                "not deterministic"
            );
            check_ses_events("fuzz-sns-id", message, &read);
        }
        return;
    };
    if sns_fields(&kind).is_none() || !sns_sign(&mut m) {
        assert!(
            matches!(unsigned, Err(Refusal::Malformed(_))),
            "{unsigned:?}"
        );
        return;
    }
    let body = serde_json::to_vec(&m).expect("json");
    let read = p.ses.read(&body);
    let topic = text(&m, "TopicArn").unwrap_or_default();
    if topic != TOPIC {
        assert!(matches!(read, Err(Refusal::Forbidden(_))), "{read:?}");
        return;
    }
    match kind.as_str() {
        "SubscriptionConfirmation" => match &read {
            Ok(Sns::Confirm(url)) => {
                assert_eq!(Some(url), text(&m, "SubscribeURL").as_ref());
                // As a URL reads it: the scheme and host are case-insensitive.
                let u = url::Url::parse(url).expect("a URL");
                assert_eq!(u.scheme(), "https", "{url}");
                assert_eq!(u.port(), None, "{url}");
                let host = u.host_str().unwrap_or_default();
                assert!(
                    host.starts_with("sns.") && host.ends_with(".amazonaws.com"),
                    "{url}"
                );
            }
            Err(Refusal::Forbidden(_)) => {}
            other => panic!("a subscription confirmation: {other:?}"),
        },
        "UnsubscribeConfirmation" => {
            assert!(matches!(&read, Ok(Sns::Other(k)) if *k == kind), "{read:?}")
        }
        _ => {
            let id = text(&m, "MessageId").unwrap_or_default();
            let message = text(&m, "Message").unwrap_or_default();
            let direct = ses::events(&id, &message);
            match (&read, &direct) {
                (Ok(Sns::Notification(a)), Ok(b)) => assert_eq!(a, b),
                (Err(a), Err(b)) => assert_eq!(a, b),
                _ => panic!("Ses::read {read:?} but ses::events {direct:?}"),
            }
            check_ses_events(&id, &message, &direct);
        }
    }
}

/// Postmark, behind its basic auth: a body is refused only as malformed (not JSON, no
/// `RecordType`, no `ID`), else it is one event with the record's `ID` and no Message-ID; a spam
/// complaint is a complaint, only a `Bounce` record is a bounce, only a `SubscriptionChange` that
/// suppresses sending is an unsubscribe.
pub fn webhook_postmark(data: &[u8]) {
    let p = providers();
    let good = format!(
        "Basic {}",
        b64(format!("{POSTMARK_USER}:{POSTMARK_PASSWORD}").as_bytes())
    );
    p.postmark
        .authenticate(Some(good.as_str()))
        .expect("the right credentials");
    let read = postmark::events(data);
    assert_eq!(read, postmark::events(data), "not deterministic");
    let v = serde_json::from_slice::<Value>(data).ok();
    let field = |k: &str| v.as_ref().and_then(|v| text(v, k));
    match read {
        Err(Refusal::Malformed(_)) => assert!(
            v.is_none() || field("RecordType").is_none() || field("ID").is_none(),
            "refused a record with RecordType and ID"
        ),
        Err(other) => panic!("authenticated, but refused: {other:?}"),
        Ok(events) => {
            assert_eq!(events.len(), 1);
            let e = &events[0];
            event_bounds(e, true);
            assert_eq!(Some(&e.replay_id), field("ID").as_ref());
            assert_eq!(e.message_id, None);
            assert_eq!(e.detail, e.detail.trim());
            let record = field("RecordType").unwrap_or_default();
            if record == "SpamComplaint" {
                assert_eq!(e.what, What::Complaint);
            }
            if matches!(e.what, What::Bounce(_)) {
                assert_eq!(record, "Bounce");
            }
            if e.what == What::Unsubscribe {
                assert_eq!(record, "SubscriptionChange");
                assert_eq!(
                    v.as_ref().and_then(|v| v.get("SuppressSending")),
                    Some(&Value::Bool(true))
                );
            }
        }
    }
}

/// Mailgun. The input's JSON is given a correct signature (its own token, or one, and a fresh
/// timestamp) and read whole by `Mailgun::read`: an object is then never refused as
/// unauthorised, only for a missing `event-data`; it is one event whose replay id is the token,
/// `failed` a bounce (hard when `permanent`), `complained` a complaint, `unsubscribed` an
/// unsubscribe, anything else on record only, with its detail folded to single spaces.
pub fn webhook_mailgun(data: &[u8]) {
    let p = providers();
    let Ok(mut v) = serde_json::from_slice::<Value>(data) else {
        let read = p.mailgun.read(data, NOW);
        assert!(matches!(read, Err(Refusal::Malformed(_))), "{read:?}");
        return;
    };
    let Some(obj) = v.as_object_mut() else {
        let body = serde_json::to_vec(&v).expect("json");
        let read = p.mailgun.read(&body, NOW);
        assert!(matches!(read, Err(Refusal::Unauthorized(_))), "{read:?}");
        return;
    };
    let sig = obj.entry("signature").or_insert_with(|| json!({}));
    if !sig.is_object() {
        *sig = json!({});
    }
    // Mailgun's tokens are strings. A number would be signed as its text, which a float does not
    // keep through serde_json's parse and print (it parses to the nearest double only with its
    // `float_roundtrip` feature): the check makes it a string, so that it signs what is read.
    let token = text(sig, "token").unwrap_or_else(|| "fuzz-token".into());
    sig["token"] = token.clone().into();
    sig["timestamp"] = NOW.to_string().into();
    sig["signature"] = mailgun_tag(&NOW.to_string(), &token).into();
    let body = serde_json::to_vec(&v).expect("json");
    let read = p.mailgun.read(&body, NOW);
    assert_eq!(read, p.mailgun.read(&body, NOW), "not deterministic");
    let Some(data) = v.get("event-data") else {
        assert!(matches!(read, Err(Refusal::Malformed(_))), "{read:?}");
        return;
    };
    let events = read.expect("a signed body with event-data reads");
    assert_eq!(events.len(), 1);
    let e = &events[0];
    event_bounds(e, true);
    assert_eq!(e.replay_id, token);
    assert!(folded(&e.detail), "detail {:?}", e.detail);
    let event = text(data, "event").unwrap_or_default();
    let severity = text(data, "severity").unwrap_or_default();
    let want = match (event.as_str(), severity.as_str()) {
        ("failed", "permanent") => What::Bounce(Bounce::Hard),
        ("failed", _) => What::Bounce(Bounce::Soft),
        ("complained", _) => What::Complaint,
        ("unsubscribed", _) => What::Unsubscribe,
        _ => What::Ignore,
    };
    assert_eq!(e.what, want);
}

/// SendGrid. The input is the body, signed with the target's key and a fresh timestamp, and read
/// whole by `Sendgrid::read`: it is never refused as unauthorised; a JSON array reads as one
/// event per element (each with a replay id, `spamreport` a complaint, `unsubscribe` and
/// `group_unsubscribe` unsubscribes, `deferred` a soft bounce, only `bounce` and `deferred`
/// bounces), anything else is malformed.
pub fn webhook_sendgrid(data: &[u8]) {
    let p = providers();
    let ts = NOW.to_string();
    let sig = sendgrid_signature(&ts, data);
    let read = p
        .sendgrid
        .read(Some(sig.as_str()), Some(ts.as_str()), data, NOW);
    assert_eq!(
        read,
        p.sendgrid
            .read(Some(sig.as_str()), Some(ts.as_str()), data, NOW),
        "not deterministic"
    );
    let Ok(Value::Array(list)) = serde_json::from_slice::<Value>(data) else {
        assert!(matches!(read, Err(Refusal::Malformed(_))), "{read:?}");
        return;
    };
    let events = read.expect("a signed array reads");
    assert_eq!(events.len(), list.len(), "one event per element");
    for (e, item) in events.iter().zip(&list) {
        event_bounds(e, true);
        assert!(folded(&e.detail), "detail {:?}", e.detail);
        if let Some(id) = text(item, "sg_event_id") {
            assert_eq!(e.replay_id, id);
        }
        let event = text(item, "event").unwrap_or_default();
        match event.as_str() {
            "spamreport" => assert_eq!(e.what, What::Complaint),
            "unsubscribe" | "group_unsubscribe" => assert_eq!(e.what, What::Unsubscribe),
            "deferred" => assert_eq!(e.what, What::Bounce(Bounce::Soft)),
            "bounce" => assert!(matches!(e.what, What::Bounce(_))),
            _ => assert_eq!(e.what, What::Ignore),
        }
    }
}
