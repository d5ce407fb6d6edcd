//! Tokens: 256 bits from the OS CSPRNG, URL-safe base64, stored only as a BLAKE3 hash, each for
//! one purpose and one subscriber.

use base64::Engine;
use rand::RngCore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Confirm,
    Preferences,
    Unsubscribe,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Confirm => "confirm",
            Purpose::Preferences => "preferences",
            Purpose::Unsubscribe => "unsubscribe",
        }
    }
}

/// A token as it goes into a link; only its hash is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn generate() -> Token {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Token(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A token from a URL; anything that could not be one of ours is rejected without a lookup.
    pub fn from_url(raw: &str) -> Option<Token> {
        (raw.len() == 43
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| Token(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> [u8; 32] {
        *blake3::hash(self.0.as_bytes()).as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_url_safe_and_distinct() {
        let a = Token::generate();
        let b = Token::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 43);
        assert_eq!(Token::from_url(a.as_str()), Some(a.clone()));
        assert!(Token::from_url("short").is_none());
        assert!(Token::from_url(&"a/".repeat(22)[..43]).is_none());
        assert_ne!(a.hash(), b.hash());
    }
}
