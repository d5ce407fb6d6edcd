//! Tokens: 256 bits, URL-safe base64, each for one purpose and one subscriber. Two kinds:
//! - stored: random bits from the OS CSPRNG, kept only as a BLAKE3 hash (confirmation links,
//!   which are single-use, and the links of the emails the subscribe flow sends);
//! - sealed: the subscriber id and an expiry, authenticated with a keyed BLAKE3 MAC (160 bits)
//!   under this installation's secret link key, over the purpose too. Digests use these: a run for
//!   100,000 readers would otherwise write 200,000 token rows at random places in the index.
//!   Without the key a sealed token cannot be made or altered, and one purpose's token is
//!   refused for another. A digest's sealed tokens also name the delivery (the ledger row) they
//!   were sent in, under the MAC, so an unsubscribe through one is attributed to its run; they
//!   are 320 bits (54 characters). Tokens sealed before that (43 characters) still open.

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
        (matches!(raw.len(), TOKEN_LEN | DELIVERY_TOKEN_LEN)
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

/// The secret key sealed tokens are made and checked with (`store::link_key` keeps it).
#[derive(Clone)]
pub struct LinkKey([u8; 32]);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

const MAC_BYTES: usize = 20;
/// A stored token, and a sealed one without a delivery: 32 bytes.
const TOKEN_LEN: usize = 43;
/// A sealed token that names its delivery: subscriber id, delivery id, expiry and MAC, 40 bytes.
const DELIVERY_BYTES: usize = 8 + 8 + 4 + MAC_BYTES;
/// How long a digest's link token is in a URL (the digest's body templates hold its place).
pub const DELIVERY_TOKEN_LEN: usize = 54;

impl LinkKey {
    pub fn new(bytes: [u8; 32]) -> LinkKey {
        LinkKey(bytes)
    }

    pub fn generate() -> LinkKey {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        LinkKey(bytes)
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The MAC binds the purpose, the id, the expiry (and the delivery, in the longer form) and the
    /// subscriber's address: SQLite may give a deleted subscriber's id to a newcomer, whose address
    /// differs. Each form has its own context string, so neither can pass for the other.
    fn mac(&self, purpose: Purpose, body: &[u8], email: &str) -> [u8; MAC_BYTES] {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(if body.len() == 12 {
            b"tidings link token\0".as_slice()
        } else {
            b"tidings delivery link token\0".as_slice()
        });
        h.update(purpose.as_str().as_bytes());
        h.update(b"\0");
        h.update(body);
        h.update(email.as_bytes());
        let mut out = [0u8; MAC_BYTES];
        out.copy_from_slice(&h.finalize().as_bytes()[..MAC_BYTES]);
        out
    }

    /// A sealed token for `subscriber` (whose address is `email`) and `purpose`, good until
    /// `expires` (unix seconds), naming no delivery (the form digests carried before they named
    /// theirs).
    pub fn seal(&self, subscriber: i64, email: &str, purpose: Purpose, expires: i64) -> Token {
        let mut body = [0u8; 12];
        body[..8].copy_from_slice(&subscriber.to_be_bytes());
        body[8..].copy_from_slice(&(expires.clamp(0, u32::MAX as i64) as u32).to_be_bytes());
        let mut bytes = [0u8; 32];
        bytes[..12].copy_from_slice(&body);
        bytes[12..].copy_from_slice(&self.mac(purpose, &body, email));
        Token(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A sealed token for `subscriber` (whose address is `email`) and `purpose`, good until
    /// `expires` (unix seconds), that names `delivery`, the digest it is sent in.
    pub fn seal_for_delivery(
        &self,
        subscriber: i64,
        delivery: i64,
        email: &str,
        purpose: Purpose,
        expires: i64,
    ) -> Token {
        let mut bytes = [0u8; DELIVERY_BYTES];
        bytes[..8].copy_from_slice(&subscriber.to_be_bytes());
        bytes[8..16].copy_from_slice(&delivery.to_be_bytes());
        bytes[16..20].copy_from_slice(&(expires.clamp(0, u32::MAX as i64) as u32).to_be_bytes());
        let mac = self.mac(purpose, &bytes[..20], email);
        bytes[20..].copy_from_slice(&mac);
        Token(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Whom a token claims to be for, before any check: (subscriber id, the sealed parts).
    pub fn claimed(token: &Token) -> Option<(i64, Sealed)> {
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.as_str())
            .ok()?;
        if decoded.len() != 32 && decoded.len() != DELIVERY_BYTES {
            return None;
        }
        let mut bytes = [0u8; DELIVERY_BYTES];
        bytes[..decoded.len()].copy_from_slice(&decoded);
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes[..8]);
        Some((
            i64::from_be_bytes(id),
            Sealed {
                bytes,
                len: decoded.len(),
            },
        ))
    }

    /// What a sealed token holds, if this key made it for `purpose` and the subscriber whose
    /// address is `email`.
    pub fn open(&self, sealed: &Sealed, purpose: Purpose, email: &str) -> Option<Opened> {
        let body_len = sealed.len - MAC_BYTES;
        let body = &sealed.bytes[..body_len];
        let expected = self.mac(purpose, body, email);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            &expected[..],
            &sealed.bytes[body_len..sealed.len],
        )) {
            return None;
        }
        let mut expires = [0u8; 4];
        expires.copy_from_slice(&body[body_len - 4..]);
        let delivery = (body_len == 20).then(|| {
            let mut d = [0u8; 8];
            d.copy_from_slice(&body[8..16]);
            i64::from_be_bytes(d)
        });
        Some(Opened {
            expires: i64::from(u32::from_be_bytes(expires)),
            delivery,
        })
    }
}

/// What an authentic sealed token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Unix seconds.
    pub expires: i64,
    /// The delivery (digest) it was sent in; `None` for a token sealed without one.
    pub delivery: Option<i64>,
}

/// A token's bytes (32, or 40 with a delivery), not yet checked.
pub struct Sealed {
    bytes: [u8; DELIVERY_BYTES],
    len: usize,
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

    #[test]
    fn sealed_tokens_open_only_with_their_key_purpose_and_subscriber() {
        let key = LinkKey::generate();
        let open = |key: &LinkKey, t: &Token, purpose: Purpose, email: &str| {
            let (id, sealed) = LinkKey::claimed(t)?;
            key.open(&sealed, purpose, email).map(|o| (id, o.expires))
        };
        let t = key.seal(42, "a@example.com", Purpose::Unsubscribe, 2_000_000_000);
        assert_eq!(t.as_str().len(), 43);
        assert_eq!(Token::from_url(t.as_str()), Some(t.clone()));
        assert_eq!(
            open(&key, &t, Purpose::Unsubscribe, "a@example.com"),
            Some((42, 2_000_000_000))
        );
        assert_eq!(
            open(&key, &t, Purpose::Preferences, "a@example.com"),
            None,
            "single-purpose"
        );
        assert_eq!(
            open(&key, &t, Purpose::Unsubscribe, "b@example.com"),
            None,
            "a reused id with another address"
        );
        assert_eq!(
            open(
                &LinkKey::generate(),
                &t,
                Purpose::Unsubscribe,
                "a@example.com"
            ),
            None
        );
        // Changing the subscriber id (the first bytes) breaks the seal.
        let mut forged = t.as_str().to_string();
        forged.replace_range(0..1, if forged.starts_with('A') { "B" } else { "A" });
        let forged = Token::from_url(&forged).expect("shape");
        assert_eq!(
            open(&key, &forged, Purpose::Unsubscribe, "a@example.com"),
            None
        );
        assert_eq!(
            open(
                &key,
                &Token::generate(),
                Purpose::Unsubscribe,
                "a@example.com"
            ),
            None
        );
    }

    fn open(key: &LinkKey, t: &Token, purpose: Purpose, email: &str) -> Option<(i64, Opened)> {
        let (id, sealed) = LinkKey::claimed(t)?;
        key.open(&sealed, purpose, email).map(|o| (id, o))
    }

    #[test]
    fn a_digest_token_names_its_delivery_under_the_mac() {
        let key = LinkKey::generate();
        let t = key.seal_for_delivery(
            42,
            7_000_001,
            "a@example.com",
            Purpose::Unsubscribe,
            2_000_000_000,
        );
        assert_eq!(t.as_str().len(), DELIVERY_TOKEN_LEN);
        assert_eq!(Token::from_url(t.as_str()), Some(t.clone()));
        assert_eq!(
            open(&key, &t, Purpose::Unsubscribe, "a@example.com"),
            Some((
                42,
                Opened {
                    expires: 2_000_000_000,
                    delivery: Some(7_000_001)
                }
            ))
        );
        assert_eq!(open(&key, &t, Purpose::Preferences, "a@example.com"), None);
        assert_eq!(open(&key, &t, Purpose::Unsubscribe, "b@example.com"), None);
        // Another delivery id (bytes 8..16, characters 11..21) breaks the seal.
        let mut forged = t.as_str().to_string();
        let c = if &forged[18..19] == "A" { "B" } else { "A" };
        forged.replace_range(18..19, c);
        let forged = Token::from_url(&forged).expect("shape");
        assert_eq!(
            LinkKey::claimed(&forged).map(|(id, _)| id),
            Some(42),
            "only the delivery changed"
        );
        assert_eq!(
            open(&key, &forged, Purpose::Unsubscribe, "a@example.com"),
            None
        );
        // Cut to the older length, it is no token of ours either.
        let short = Token::from_url(&t.as_str()[..43]).expect("shape");
        assert_eq!(
            open(&key, &short, Purpose::Unsubscribe, "a@example.com"),
            None
        );
    }

    #[test]
    fn a_token_sealed_without_a_delivery_still_opens_unattributed() {
        let key = LinkKey::generate();
        let old = key.seal(42, "a@example.com", Purpose::Unsubscribe, 2_000_000_000);
        assert_eq!(old.as_str().len(), 43);
        assert_eq!(
            open(&key, &old, Purpose::Unsubscribe, "a@example.com"),
            Some((
                42,
                Opened {
                    expires: 2_000_000_000,
                    delivery: None
                }
            ))
        );
        assert!(Token::from_url(&"A".repeat(50)).is_none(), "neither length");
    }
}
