//! Provider webhooks, with payloads shaped as in each provider's documentation and signed by the
//! test (SNS with an RSA certificate it makes, Postmark basic auth, Mailgun HMAC, SendGrid
//! ECDSA): once correctly (the subscriber is bounced or unsubscribed), once wrongly (401, and
//! nothing changes), and replayed (nothing changes, across a restart).

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::Engine;

use crate::helpers::{import_subscribers, publish, Daemon, SmtpSink};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:tidings-bounces";
const MAILGUN_KEY: &str = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

struct Keys {
    rsa: aws_lc_rs::rsa::KeyPair,
    ec: EcdsaKeyPair,
    _dir: tempfile::TempDir,
    cert: std::path::PathBuf,
}

fn keys() -> Keys {
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA key");
    let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&rsa).expect("PKCS#8");
    let signer = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &pkcs8.as_ref().to_vec().into(),
        &rcgen::PKCS_RSA_SHA256,
    )
    .expect("rcgen key");
    let cert = rcgen::CertificateParams::new(vec!["sns.us-east-1.amazonaws.com".to_string()])
        .expect("params")
        .self_signed(&signer)
        .expect("certificate");
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("sns.pem");
    std::fs::write(&path, cert.pem()).expect("write");
    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("EC key");
    Keys {
        rsa,
        ec,
        _dir: dir,
        cert: path,
    }
}

fn daemon(sink: &SmtpSink, k: &Keys) -> Daemon {
    let spki = b64(
        AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(k.ec.public_key())
            .expect("SPKI")
            .as_ref(),
    );
    let cert = k.cert.display().to_string();
    Daemon::start_mailing(
        sink,
        &[
            ("TIDINGS_WEBHOOKS_SES_TOPIC_ARN", TOPIC),
            ("TIDINGS_WEBHOOKS_SES_SIGNING_CERT", cert.as_str()),
            ("TIDINGS_WEBHOOKS_POSTMARK_USERNAME", "postmark"),
            ("TIDINGS_WEBHOOKS_POSTMARK_PASSWORD", "s3cret-hook-password"),
            ("TIDINGS_WEBHOOKS_MAILGUN_SIGNING_KEY", MAILGUN_KEY),
            ("TIDINGS_WEBHOOKS_SENDGRID_PUBLIC_KEY", spki.as_str()),
        ],
    )
}

/// `n` readers each sent a digest: (address, Message-ID).
fn sent(d: &Daemon, sink: &SmtpSink, n: usize) -> Vec<(String, String)> {
    import_subscribers(d, n);
    publish(d);
    let report = d
        .api("POST", "/api/digests/run", Some(r#"{"now": true}"#))
        .json();
    assert_eq!(report["sent"], n, "{report}");
    sink.messages()
        .iter()
        .map(|m| {
            (
                m.header("To").expect("To"),
                m.header("Message-ID").expect("Message-ID"),
            )
        })
        .collect()
}

fn post(d: &Daemon, provider: &str, headers: &[(&str, &str)], body: &str) -> crate::helpers::Resp {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    d.request(
        "POST",
        &format!("/webhooks/{provider}"),
        &all,
        Some(body.as_bytes()),
    )
}

fn status_of(d: &Daemon, email: &str) -> String {
    d.api("GET", &format!("/api/subscribers/{email}"), None)
        .json()["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `email`'s events after signing up (the sign-up's own, `subscribed` and `confirmed`, are
/// `history.rs`'s), oldest first.
fn events_after_sign_up(d: &Daemon, email: &str) -> Vec<serde_json::Value> {
    d.api("GET", &format!("/api/subscribers/{email}/events"), None)
        .json()["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| !matches!(e["kind"].as_str(), Some("subscribed" | "confirmed")))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn events_of(d: &Daemon, email: &str) -> usize {
    events_after_sign_up(d, email).len()
}

/// An SNS message with these fields, signed (SignatureVersion 2) over the canonical string.
fn sns(k: &Keys, fields: &[(&str, &str)]) -> String {
    let order = [
        "Message",
        "MessageId",
        "Subject",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ];
    let mut canonical = String::new();
    for name in order {
        if let Some((_, v)) = fields.iter().find(|(n, _)| *n == name) {
            canonical.push_str(&format!("{name}\n{v}\n"));
        }
    }
    let mut sig = vec![0u8; k.rsa.public_modulus_len()];
    k.rsa
        .sign(
            &aws_lc_rs::signature::RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            canonical.as_bytes(),
            &mut sig,
        )
        .expect("sign");
    let mut m = serde_json::Map::new();
    for (n, v) in fields {
        m.insert(n.to_string(), serde_json::Value::String(v.to_string()));
    }
    m.insert("SignatureVersion".into(), "2".into());
    m.insert("Signature".into(), b64(&sig).into());
    m.insert(
        "SigningCertURL".into(),
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem".into(),
    );
    serde_json::Value::Object(m).to_string()
}

fn ses_bounce(email: &str, message_id: &str) -> String {
    serde_json::json!({
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent", "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": email, "action": "failed", "status": "5.1.1",
                                   "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
            "timestamp": "2026-12-02T00:00:00.000Z", "feedbackId": "0100018c-feedback"
        },
        "mail": {
            "timestamp": "2026-12-02T00:00:00.000Z", "source": "news@blog.example",
            "messageId": "0100018c-ses-own-id", "destination": [email],
            "headersTruncated": false,
            "headers": [{"name": "Message-ID", "value": message_id}],
            "commonHeaders": {"messageId": message_id}
        }
    })
    .to_string()
}

#[test]
fn an_unconfigured_provider_answers_404() {
    let d = Daemon::start();
    for p in ["ses", "postmark", "mailgun", "sendgrid", "other"] {
        assert_eq!(post(&d, p, &[], "{}").status, 404, "{p}");
    }
}

#[test]
fn ses_through_sns_is_verified_topic_checked_and_never_replayed() {
    let sink = SmtpSink::start();
    let k = keys();
    let mut d = daemon(&sink, &k);
    let readers = sent(&d, &sink, 3);
    let (a, a_id) = &readers[0];
    let message = ses_bounce(a, a_id);
    let fields = [
        ("Type", "Notification"),
        ("MessageId", "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324"),
        ("TopicArn", TOPIC),
        ("Message", message.as_str()),
        ("Timestamp", "2026-12-02T00:00:01.000Z"),
    ];
    let good = sns(&k, &fields);

    // Tampered after signing: 401, nothing changes.
    let tampered = good.replace(a.as_str(), readers[1].0.as_str());
    assert_eq!(post(&d, "ses", &[], &tampered).status, 401);
    assert_eq!(status_of(&d, &readers[1].0), "confirmed");
    assert_eq!(events_of(&d, &readers[1].0), 0);

    // Signed, by our topic: the subscriber is bounced and suppressed.
    let r = post(&d, "ses", &[], &good);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(status_of(&d, a), "bounced");
    let history = events_after_sign_up(&d, a);
    assert_eq!(history[0]["source"], "webhook:ses", "{history:?}");
    assert_eq!(history[0]["bounce"], "hard", "{history:?}");

    // Replayed, even after a restart: nothing more happens.
    d.restart();
    let again = post(&d, "ses", &[], &good);
    assert_eq!(again.status, 200);
    assert!(again.text().contains("replay"), "{}", again.text());
    assert_eq!(events_of(&d, a), 2, "bounce + suppressed, once");

    // Authentic but another account's topic: 403.
    let (b, b_id) = &readers[1];
    let other_message = ses_bounce(b, b_id);
    let other = sns(
        &k,
        &[
            ("Type", "Notification"),
            ("MessageId", "another-message"),
            (
                "TopicArn",
                "arn:aws:sns:us-east-1:999999999999:someone-else",
            ),
            ("Message", other_message.as_str()),
            ("Timestamp", "2026-12-02T00:00:02.000Z"),
        ],
    );
    assert_eq!(post(&d, "ses", &[], &other).status, 403);
    assert_eq!(status_of(&d, b), "confirmed");

    // A subscription confirmation: the signature is checked before SubscribeURL is fetched,
    // and only an SNS URL is ever fetched.
    let trap = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    trap.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}/confirm", trap.local_addr().expect("addr"));
    let confirm_fields = [
        ("Type", "SubscriptionConfirmation"),
        ("MessageId", "confirm-1"),
        ("Token", "2336412f37fb687f5d51e6e241d09c8058"),
        ("TopicArn", TOPIC),
        ("Message", "You have chosen to subscribe."),
        ("SubscribeURL", url.as_str()),
        ("Timestamp", "2026-12-02T00:00:03.000Z"),
    ];
    let unsigned = sns(&k, &confirm_fields).replace("You have chosen", "You chose");
    assert_eq!(post(&d, "ses", &[], &unsigned).status, 401);
    assert_eq!(post(&d, "ses", &[], &sns(&k, &confirm_fields)).status, 403);
    assert!(
        matches!(trap.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "nothing was fetched"
    );
    assert_eq!(post(&d, "ses", &[], "not json").status, 400);
}

#[test]
fn postmark_needs_its_basic_auth_and_maps_by_recipient() {
    let sink = SmtpSink::start();
    let k = keys();
    let d = daemon(&sink, &k);
    let readers = sent(&d, &sink, 2);
    let (a, _) = &readers[0];
    let (b, _) = &readers[1];
    let bounce = serde_json::json!({
        "RecordType": "Bounce", "ID": 4323372036854775807_u64, "Type": "HardBounce",
        "TypeCode": 1, "Name": "Hard bounce", "Tag": "digest",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483", "ServerID": 23,
        "MessageStream": "outbound", "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": a, "From": "news@blog.example", "BouncedAt": "2026-12-02T00:00:00Z",
        "DumpAvailable": true, "Inactive": true, "CanActivate": true, "Subject": "digest"
    })
    .to_string();
    let good = format!("Basic {}", b64(b"postmark:s3cret-hook-password"));
    let bad = format!("Basic {}", b64(b"postmark:guess"));
    let r = post(&d, "postmark", &[("Authorization", &bad)], &bounce);
    assert_eq!(r.status, 401);
    assert_eq!(post(&d, "postmark", &[], &bounce).status, 401);
    assert_eq!(status_of(&d, a), "confirmed");
    let r = post(&d, "postmark", &[("Authorization", &good)], &bounce);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(status_of(&d, a), "bounced");
    let replay = post(&d, "postmark", &[("Authorization", &good)], &bounce);
    assert!(replay.text().contains("replay"), "{}", replay.text());

    let complaint = serde_json::json!({
        "RecordType": "SpamComplaint", "ID": 42, "Type": "SpamComplaint", "TypeCode": 512,
        "MessageID": "00000000-0000-0000-0000-000000000000", "Email": b,
        "From": "news@blog.example", "BouncedAt": "2026-12-02T00:00:00Z", "Subject": "digest"
    })
    .to_string();
    let r = post(&d, "postmark", &[("Authorization", &good)], &complaint);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(status_of(&d, b), "unsubscribed");
    let list = d.api("GET", "/api/suppressions", None).json();
    assert_eq!(list["total"], 2, "{list}");
}

/// A Mailgun webhook body signed with `key` (HMAC-SHA256 of timestamp and token).
pub(crate) fn mailgun_body(
    timestamp: i64,
    token: &str,
    key: &str,
    event: serde_json::Value,
) -> String {
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.as_bytes()),
        format!("{timestamp}{token}").as_bytes(),
    );
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    serde_json::json!({
        "signature": {"timestamp": timestamp.to_string(), "token": token, "signature": hex},
        "event-data": event
    })
    .to_string()
}

#[test]
fn mailgun_is_hmac_signed_fresh_and_never_replayed() {
    let sink = SmtpSink::start();
    let k = keys();
    let d = daemon(&sink, &k);
    let readers = sent(&d, &sink, 2);
    let (a, a_id) = &readers[0];
    let now = chrono::Utc::now().timestamp();
    let failed = serde_json::json!({
        "event": "failed", "severity": "permanent", "reason": "bounce",
        "id": "G9Bn5sl1TC6nu79C8C0bwg", "timestamp": now as f64, "recipient": a,
        "message": {"headers": {"message-id": a_id.trim_matches(|c| c == '<' || c == '>'),
                                "to": a, "from": "news@blog.example", "subject": "digest"}},
        "delivery-status": {"code": 550, "message": "No such user", "description": "", "attempt-no": 1}
    });
    let token = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0";
    let wrong = mailgun_body(now, token, "key-not-ours", failed.clone());
    assert_eq!(post(&d, "mailgun", &[], &wrong).status, 401);
    let stale = mailgun_body(now - 3600, token, MAILGUN_KEY, failed.clone());
    assert_eq!(post(&d, "mailgun", &[], &stale).status, 401);
    assert_eq!(status_of(&d, a), "confirmed");
    let good = mailgun_body(now, token, MAILGUN_KEY, failed);
    let r = post(&d, "mailgun", &[], &good);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(status_of(&d, a), "bounced");
    let replay = post(&d, "mailgun", &[], &good);
    assert!(replay.text().contains("replay"), "{}", replay.text());

    let (b, _) = &readers[1];
    let complained = mailgun_body(
        now,
        "b1ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de1",
        MAILGUN_KEY,
        serde_json::json!({"event": "complained", "recipient": b, "id": "x", "timestamp": now as f64}),
    );
    assert_eq!(post(&d, "mailgun", &[], &complained).status, 200);
    assert_eq!(status_of(&d, b), "unsubscribed");
}

#[test]
fn sendgrid_is_ecdsa_signed_and_maps_each_event() {
    let sink = SmtpSink::start();
    let k = keys();
    let d = daemon(&sink, &k);
    let readers = sent(&d, &sink, 3);
    let (a, a_id) = &readers[0];
    let (b, _) = &readers[1];
    let now = chrono::Utc::now().timestamp();
    let body = serde_json::json!([
        {"email": a, "timestamp": now, "smtp-id": a_id, "event": "bounce", "type": "bounce",
         "status": "5.1.1", "reason": "550 5.1.1 The email account does not exist.",
         "sg_event_id": "sg-bounce-1", "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"},
        {"email": b, "timestamp": now, "event": "spamreport", "sg_event_id": "sg-spam-1",
         "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.1"},
        {"email": "stranger@elsewhere.example", "timestamp": now, "event": "bounce",
         "status": "5.1.1", "sg_event_id": "sg-stranger-1"}
    ])
    .to_string();
    let ts = now.to_string();
    let sign = |payload: &str| {
        let mut signed = ts.as_bytes().to_vec();
        signed.extend_from_slice(payload.as_bytes());
        b64(k
            .ec
            .sign(&aws_lc_rs::rand::SystemRandom::new(), &signed)
            .expect("sign")
            .as_ref())
    };
    let sig = sign(&body);
    let headers = |sig: &str| -> Vec<(&str, String)> {
        vec![
            ("X-Twilio-Email-Event-Webhook-Signature", sig.to_string()),
            ("X-Twilio-Email-Event-Webhook-Timestamp", ts.clone()),
        ]
    };
    let send = |payload: &str, sig: &str| {
        let h = headers(sig);
        let refs: Vec<(&str, &str)> = h.iter().map(|(n, v)| (*n, v.as_str())).collect();
        post(&d, "sendgrid", &refs, payload)
    };
    // Signed for another body: 401.
    let tampered = body.replace("spamreport", "delivered");
    assert_eq!(send(&tampered, &sig).status, 401);
    assert_eq!(post(&d, "sendgrid", &[], &body).status, 401);
    assert_eq!(status_of(&d, a), "confirmed");
    let r = send(&body, &sig);
    assert_eq!(r.status, 200, "{}", r.text());
    let outcomes = r.json()["outcomes"].clone();
    assert_eq!(status_of(&d, a), "bounced");
    assert_eq!(status_of(&d, b), "unsubscribed");
    assert!(
        outcomes[2].as_str().unwrap_or("").contains("ignored"),
        "{outcomes}"
    );
    // Signed but not JSON: 400.
    assert_eq!(send("not json", &sign("not json")).status, 400);
}
