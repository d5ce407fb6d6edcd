//! The webhook providers' authentication checks themselves (`webhook_auth`), against oracles
//! written here; a part of `checks_webhooks.rs`, whose keys and signing helpers it uses.

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use base64::Engine;
use serde_json::json;
use tidings::feedback::webhooks::postmark::Postmark;
use tidings::feedback::webhooks::ses::Sns;
use tidings::feedback::webhooks::{text, Refusal};

use super::{
    b64, fresh, mailgun_tag, providers, sendgrid_signature, sns_canonical, sns_sign, unhex, NOW,
    POSTMARK_PASSWORD, POSTMARK_USER,
};

/// A header's value as the web layer hands it over (`None` unless visible ASCII).
fn header(s: &str) -> Option<String> {
    let v = http::HeaderValue::from_str(s).ok()?;
    v.to_str().ok().map(str::to_string)
}

/// The authentication checks themselves. The first byte picks a provider, the rest is that
/// provider's fields, one per line. What the input gives authenticates exactly when it is
/// correct (checked against an oracle written here: the basic-auth value, the HMAC, the ECDSA
/// or RSA signature over the right bytes, a timestamp within 5 minutes), so a random one never
/// does; the same fields correctly signed by the check authenticate (when fresh), and altered
/// after signing, do not.
pub fn webhook_auth(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let input = String::from_utf8_lossy(rest);
    let mut lines = input.split('\n');
    let mut next = || lines.next().unwrap_or("").to_string();
    let p = providers();
    match which % 4 {
        0 => {
            // Postmark: `Authorization`, then a username and password of the input's own.
            let (authorization, user, password) = (next(), next(), next());
            let given = header(&authorization);
            let right = b64(format!("{POSTMARK_USER}:{POSTMARK_PASSWORD}").as_bytes());
            let correct = given
                .as_deref()
                .and_then(|h| h.strip_prefix("Basic "))
                .is_some_and(|b| b.trim() == right);
            assert_eq!(
                p.postmark.authenticate(given.as_deref()).is_ok(),
                correct,
                "Postmark: {authorization:?}"
            );
            assert!(p.postmark.authenticate(None).is_err());
            let theirs = Postmark::new(&user, &password);
            let own = format!("Basic {}", b64(format!("{user}:{password}").as_bytes()));
            assert!(theirs.authenticate(Some(own.as_str())).is_ok());
            assert!(theirs.authenticate(None).is_err());
            assert_eq!(
                theirs
                    .authenticate(Some(format!("Basic {right}").as_str()))
                    .is_ok(),
                format!("{user}:{password}") == format!("{POSTMARK_USER}:{POSTMARK_PASSWORD}")
            );
        }
        1 => {
            // Mailgun: timestamp, token, signature, event.
            let (timestamp, token, signature, event) = (next(), next(), next(), next());
            let body = |signature: &str| {
                json!({
                    "signature": {"timestamp": timestamp, "token": token, "signature": signature},
                    "event-data": {"event": event}
                })
                .to_string()
            };
            let authenticated = |signature: &str| {
                !matches!(
                    p.mailgun.read(body(signature).as_bytes(), NOW),
                    Err(Refusal::Unauthorized(_))
                )
            };
            let (ts, tok) = (timestamp.trim(), token.trim());
            let present = !ts.is_empty() && !tok.is_empty();
            let right = mailgun_tag(ts, tok);
            let correct = present
                && !signature.trim().is_empty()
                && unhex(signature.trim()) == unhex(&right)
                && fresh(ts);
            assert_eq!(authenticated(&signature), correct, "Mailgun: {signature:?}");
            assert_eq!(authenticated(&right), present && fresh(ts));
            let mut wrong = right.clone().into_bytes();
            wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
            assert!(!authenticated(std::str::from_utf8(&wrong).expect("hex")));
        }
        2 => {
            // SendGrid: signature, timestamp, then the body (the rest).
            let (signature, timestamp) = (next(), next());
            let body: Vec<&str> = lines.collect();
            let body = body.join("\n").into_bytes();
            let authenticated = |signature: &str, body: &[u8]| {
                !matches!(
                    p.sendgrid
                        .read(Some(signature), Some(timestamp.as_str()), body, NOW),
                    Err(Refusal::Unauthorized(_))
                )
            };
            let mut signed = timestamp.as_bytes().to_vec();
            signed.extend_from_slice(&body);
            let verifies = base64::engine::general_purpose::STANDARD
                .decode(signature.trim())
                .is_ok_and(|sig| {
                    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &p.ec_public)
                        .verify(&signed, &sig)
                        .is_ok()
                });
            assert_eq!(
                authenticated(&signature, &body),
                verifies && fresh(&timestamp),
                "SendGrid: {signature:?}"
            );
            let good = sendgrid_signature(&timestamp, &body);
            assert_eq!(authenticated(&good, &body), fresh(&timestamp));
            let mut altered = body.clone();
            altered.push(b' ');
            assert!(!authenticated(&good, &altered), "another body");
        }
        _ => {
            // SNS: Type, MessageId, TopicArn, Message, Timestamp, SubscribeURL, Token, Signature,
            // SignatureVersion.
            let mut m = json!({});
            const FIELDS: &[&str] = &["Type", "MessageId", "TopicArn", "Message", "Timestamp"];
            const SIGNED: &[&str] = &["SubscribeURL", "Token", "Signature", "SignatureVersion"];
            for f in FIELDS.iter().chain(SIGNED) {
                m[*f] = next().into();
            }
            let authentic = |r: &Result<Sns, Refusal>| {
                matches!(r, Ok(_) | Err(Refusal::Forbidden(_) | Refusal::Upstream(_)))
            };
            let read = p.ses.read(m.to_string().as_bytes());
            // Only a signature over the canonical string under our key gets through.
            let verifies = sns_canonical(&m).is_some_and(|c| {
                let sig = text(&m, "Signature")
                    .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
                let alg: &aws_lc_rs::signature::RsaParameters =
                    match text(&m, "SignatureVersion").as_deref() {
                        Some("1") => {
                            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
                        }
                        Some("2") => &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
                        _ => return false,
                    };
                sig.is_some_and(|sig| {
                    UnparsedPublicKey::new(alg, &p.rsa_public)
                        .verify(c.as_bytes(), &sig)
                        .is_ok()
                })
            });
            if !verifies {
                assert!(!authentic(&read), "SNS without a signature: {read:?}");
            }
            if sns_sign(&mut m) {
                let read = p.ses.read(m.to_string().as_bytes());
                assert!(
                    !matches!(read, Err(Refusal::Unauthorized(_))),
                    "SNS signed: {read:?}"
                );
                let mut altered = m.clone();
                altered["MessageId"] = format!("{}x", m["MessageId"].as_str().unwrap_or("")).into();
                let read = p.ses.read(altered.to_string().as_bytes());
                assert!(matches!(read, Err(Refusal::Unauthorized(_))), "{read:?}");
                let mut sha1 = m.clone();
                sha1["SignatureVersion"] = "1".into();
                let read = p.ses.read(sha1.to_string().as_bytes());
                assert!(matches!(read, Err(Refusal::Unauthorized(_))), "{read:?}");
            }
        }
    }
}
