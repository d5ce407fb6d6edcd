//! Standard Webhooks v1 signatures: `v1,<base64 of HMAC-SHA256(key, "id.timestamp.body")>`, the
//! key being the base64-decoded part of a `whsec_…` secret; and making such secrets.

use aws_lc_rs::hmac;
use base64::Engine;

use crate::secret::Secret;

const PREFIX: &str = "whsec_";

/// A new secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> Secret {
    let bytes: [u8; 32] = rand::random();
    Secret::new(format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// The signing key of a secret; `None` if it is not `whsec_` and base64.
fn key(secret: &Secret) -> Option<hmac::Key> {
    let encoded = secret.expose().strip_prefix(PREFIX)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    Some(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
}

/// The `webhook-signature` header: one `v1,…` entry per secret, space-separated.
pub fn signature(secrets: &[Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut signed = Vec::with_capacity(id.len() + body.len() + 24);
    signed.extend_from_slice(id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    secrets
        .iter()
        .filter_map(key)
        .map(|k| {
            let tag = hmac::sign(&k, &signed);
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's test vector (also the `standardwebhooks` crate's).
    #[test]
    fn signs_the_specification_test_vector() {
        let secret = Secret::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
        assert_eq!(
            signature(
                &[secret],
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn signs_once_per_secret_and_new_secrets_verify() {
        let (a, b) = (new_secret(), new_secret());
        assert!(a.expose().starts_with("whsec_"));
        assert_ne!(a.expose(), b.expose());
        let header = signature(&[a.clone(), b.clone()], "msg_1", 1_700_000_000, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], signature(&[a], "msg_1", 1_700_000_000, b"{}"));
        assert_eq!(parts[1], signature(&[b], "msg_1", 1_700_000_000, b"{}"));
    }
}
