//! DKIM: reading the admin's PEM key (RSA or Ed25519, PKCS#1 or PKCS#8) into lettre's signer with
//! relaxed/relaxed canonicalization, and `tidings dkim keygen`.

use std::path::Path;

use base64::Engine;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::HeaderName;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};

use super::MailConfigError;
use crate::config;

/// The headers every signature covers (each appears once in our messages). Not Content-Type:
/// lettre writes a multipart message's top-level Content-Type with the body, after signing, so
/// listing it in `h=` would make every signature fail (caught by scripts/mail_conformance.sh).
pub const SIGNED_HEADERS: [&str; 9] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
];

fn error(message: String) -> MailConfigError {
    MailConfigError {
        key: "mail.dkim.private_key",
        message,
    }
}

/// The signer for `mail.dkim.*`, or `None` when DKIM is not configured.
pub fn signing_config(dkim: &config::DkimConfig) -> Result<Option<DkimConfig>, MailConfigError> {
    let (Some(selector), Some(domain), Some(path)) =
        (&dkim.selector, &dkim.domain, &dkim.private_key)
    else {
        return Ok(None);
    };
    let key = load_key(path)?;
    Ok(Some(DkimConfig::new(
        selector.clone(),
        domain.clone(),
        key,
        SIGNED_HEADERS
            .iter()
            .map(|h| HeaderName::new_from_ascii_str(h))
            .collect(),
        DkimCanonicalization {
            header: DkimCanonicalizationType::Relaxed,
            body: DkimCanonicalizationType::Relaxed,
        },
    )))
}

/// Reads a PEM private key as `openssl` writes it: RSA in PKCS#1 (`BEGIN RSA PRIVATE KEY`) or
/// PKCS#8, Ed25519 in PKCS#8 (`BEGIN PRIVATE KEY`).
pub fn load_key(path: &Path) -> Result<DkimSigningKey, MailConfigError> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| error(format!("cannot read {}: {e}", path.display())))?;
    parse_key(&pem).map_err(|m| error(format!("{}: {m}", path.display())))
}

pub fn parse_key(pem: &str) -> Result<DkimSigningKey, String> {
    if pem.contains("BEGIN RSA PRIVATE KEY") {
        return DkimSigningKey::new(pem, DkimSigningAlgorithm::Rsa)
            .map_err(|e| format!("not a valid PKCS#1 RSA key: {e}"));
    }
    if !pem.contains("BEGIN PRIVATE KEY") {
        return Err(
            "expected a PEM private key (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)".into(),
        );
    }
    if let Ok(rsa) = rsa::RsaPrivateKey::from_pkcs8_pem(pem) {
        let pkcs1 = rsa
            .to_pkcs1_pem(LineEnding::LF)
            .map_err(|e| format!("cannot convert the RSA key: {e}"))?;
        return DkimSigningKey::new(&pkcs1, DkimSigningAlgorithm::Rsa)
            .map_err(|e| format!("not a valid RSA key: {e}"));
    }
    let ed = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
        .map_err(|_| "neither an RSA nor an Ed25519 PKCS#8 key".to_string())?;
    let seed = base64::engine::general_purpose::STANDARD.encode(ed.to_bytes());
    DkimSigningKey::new(&seed, DkimSigningAlgorithm::Ed25519)
        .map_err(|e| format!("not a valid Ed25519 key: {e}"))
}

/// Which kind of key `tidings dkim keygen` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Algorithm {
    Rsa,
    Ed25519,
}

/// A new key pair: the private key as PKCS#8 PEM, and the `p=`/`k=` value of the DNS record.
pub fn generate(algorithm: Algorithm) -> Result<(String, String), String> {
    let mut rng = rand::rngs::OsRng;
    match algorithm {
        Algorithm::Rsa => {
            let key = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| e.to_string())?;
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| e.to_string())?
                .to_string();
            let public = key
                .to_public_key()
                .to_public_key_der()
                .map_err(|e| e.to_string())?;
            let p = base64::engine::general_purpose::STANDARD.encode(public.as_bytes());
            Ok((pem, format!("v=DKIM1; k=rsa; p={p}")))
        }
        Algorithm::Ed25519 => {
            let key = ed25519_dalek::SigningKey::generate(&mut rng);
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| e.to_string())?
                .to_string();
            let p =
                base64::engine::general_purpose::STANDARD.encode(key.verifying_key().to_bytes());
            Ok((pem, format!("v=DKIM1; k=ed25519; p={p}")))
        }
    }
}

/// The zone-file line to publish: `{selector}._domainkey.{domain}. IN TXT ( "…" "…" )`, split into
/// 255-character strings as DNS requires.
pub fn dns_record(selector: &str, domain: &str, value: &str) -> String {
    let chunks: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!(
        "{selector}._domainkey.{domain}. IN TXT ( {} )",
        chunks.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_back() {
        for alg in [Algorithm::Ed25519, Algorithm::Rsa] {
            let (pem, record) = generate(alg).expect("generate");
            assert!(pem.contains("BEGIN PRIVATE KEY"));
            assert!(record.starts_with("v=DKIM1; k="));
            parse_key(&pem).expect("loads");
        }
        assert!(parse_key("garbage").is_err());
    }

    #[test]
    fn dns_record_splits_long_values() {
        let r = dns_record("s1", "example.com", &"a".repeat(300));
        assert!(r.starts_with("s1._domainkey.example.com. IN TXT ( \""));
        assert_eq!(r.matches('"').count(), 4);
    }
}
