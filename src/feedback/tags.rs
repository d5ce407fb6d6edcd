//! The tokens that ride in addresses: a VERP tag in the envelope sender that names the
//! delivery a bounce is about, and a mailto-unsubscribe token in the `List-Unsubscribe`
//! address. Both are lower-case base32 (letters and digits only, so they survive MTAs that fold
//! case), carry an expiry, and are authenticated with a keyed BLAKE3 MAC (80 bits) under a
//! secret of their own that is used for nothing else. Without the key neither can be made or
//! altered, so a forged bounce or unsubscribe changes nothing.

use chrono::{DateTime, Utc};
use data_encoding::BASE32_NOPAD;

/// Which delivery a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// A digest ledger row (`deliveries.id`) of run `run`.
    Digest { id: i64, run: i64 },
    /// An outbox row (`outbox.id`).
    Single { id: i64 },
}

impl Delivery {
    fn kind(self) -> u8 {
        match self {
            Delivery::Digest { .. } => b'd',
            Delivery::Single { .. } => b'o',
        }
    }

    fn id(self) -> i64 {
        match self {
            Delivery::Digest { id, .. } | Delivery::Single { id } => id,
        }
    }
}

/// What a VERP tag names, once its MAC checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tagged {
    Digest(i64),
    Single(i64),
}

/// The two keys, loaded from the database (`store::secret`).
#[derive(Clone)]
pub struct Keys {
    verp: [u8; 32],
    mailto: [u8; 32],
}

/// How long a tag or token stays valid: bounces can come days late, and a mailto unsubscribe
/// may be sent from an old email.
pub const VERP_DAYS: i64 = 30;

/// Tags start with this letter, mailto tokens with `UNSUBSCRIBE_PREFIX`.
pub const VERP_PREFIX: char = 'b';
pub const UNSUBSCRIBE_PREFIX: char = 'u';

/// Length of a VERP tag with its prefix (1 + base32 of 21 bytes).
pub const VERP_LEN: usize = 35;
/// Length of a mailto token with its prefix (1 + base32 of 20 bytes).
pub const UNSUBSCRIBE_LEN: usize = 33;

const MAC_LEN: usize = 10;

fn day(t: DateTime<Utc>) -> u16 {
    u16::try_from(t.timestamp().div_euclid(86_400)).unwrap_or(u16::MAX)
}

fn encode(bytes: &[u8]) -> String {
    BASE32_NOPAD.encode(bytes).to_ascii_lowercase()
}

fn decode(s: &str) -> Option<Vec<u8>> {
    BASE32_NOPAD.decode(s.to_ascii_uppercase().as_bytes()).ok()
}

fn mac(key: &[u8; 32], context: &[u8], payload: &[u8]) -> [u8; MAC_LEN] {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(context);
    h.update(payload);
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&h.finalize().as_bytes()[..MAC_LEN]);
    out
}

impl Keys {
    /// From keys the caller holds (the fuzz targets and tests, which have no database).
    #[doc(hidden)]
    pub fn from_secrets(verp: [u8; 32], mailto: [u8; 32]) -> Keys {
        Keys { verp, mailto }
    }

    pub fn load(db: &crate::store::Db) -> Result<Keys, crate::store::Error> {
        Ok(Keys {
            verp: crate::subscribers::store::secret(db, "verp_key")?,
            mailto: crate::subscribers::store::secret(db, "mailto_key")?,
        })
    }

    /// The tag for `delivery`, valid until `now` + `VERP_DAYS`.
    pub fn verp_tag(&self, delivery: Delivery, now: DateTime<Utc>) -> String {
        let mut bytes = [0u8; 21];
        bytes[0] = delivery.kind();
        bytes[1..9].copy_from_slice(&delivery.id().to_be_bytes());
        bytes[9..11].copy_from_slice(&day(now + chrono::Duration::days(VERP_DAYS)).to_be_bytes());
        let m = mac(&self.verp, b"tidings verp", &bytes[..11]);
        bytes[11..].copy_from_slice(&m);
        let mut tag = String::with_capacity(VERP_LEN);
        tag.push(VERP_PREFIX);
        tag.push_str(&encode(&bytes));
        tag
    }

    /// What `tag` names, if it is ours, intact and not expired.
    pub fn check_verp(&self, tag: &str, now: DateTime<Utc>) -> Option<Tagged> {
        let body = tag.strip_prefix(VERP_PREFIX)?;
        let bytes = decode(body)?;
        if bytes.len() != 21 {
            return None;
        }
        let m = mac(&self.verp, b"tidings verp", &bytes[..11]);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&m[..], &bytes[11..])) {
            return None;
        }
        let expires = u16::from_be_bytes([bytes[9], bytes[10]]);
        if day(now) > expires {
            return None;
        }
        let id = i64::from_be_bytes(bytes[1..9].try_into().ok()?);
        match bytes[0] {
            b'd' => Some(Tagged::Digest(id)),
            b'o' => Some(Tagged::Single(id)),
            _ => None,
        }
    }

    /// The mailto-unsubscribe token for a subscriber, valid for `days`.
    pub fn unsubscribe_token(
        &self,
        subscriber: i64,
        email: &str,
        now: DateTime<Utc>,
        days: i64,
    ) -> String {
        let mut bytes = [0u8; 20];
        bytes[..8].copy_from_slice(&subscriber.to_be_bytes());
        bytes[8..10].copy_from_slice(&day(now + chrono::Duration::days(days)).to_be_bytes());
        let m = mac(&self.mailto, &mailto_context(email), &bytes[..10]);
        bytes[10..].copy_from_slice(&m);
        let mut token = String::with_capacity(UNSUBSCRIBE_LEN);
        token.push(UNSUBSCRIBE_PREFIX);
        token.push_str(&encode(&bytes));
        token
    }

    /// The subscriber id a mailto token claims, before its MAC is checked against their address.
    pub fn unsubscribe_claim(token: &str) -> Option<i64> {
        let bytes = decode(token.strip_prefix(UNSUBSCRIBE_PREFIX)?)?;
        (bytes.len() == 20).then(|| i64::from_be_bytes(bytes[..8].try_into().unwrap_or_default()))
    }

    /// Whether `token` is a valid, unexpired mailto token for this subscriber and address.
    pub fn check_unsubscribe(
        &self,
        token: &str,
        subscriber: i64,
        email: &str,
        now: DateTime<Utc>,
    ) -> bool {
        let Some(bytes) = token.strip_prefix(UNSUBSCRIBE_PREFIX).and_then(decode) else {
            return false;
        };
        if bytes.len() != 20 || bytes[..8] != subscriber.to_be_bytes() {
            return false;
        }
        let m = mac(&self.mailto, &mailto_context(email), &bytes[..10]);
        let expires = u16::from_be_bytes([bytes[8], bytes[9]]);
        bool::from(subtle::ConstantTimeEq::ct_eq(&m[..], &bytes[10..])) && day(now) <= expires
    }
}

fn mailto_context(email: &str) -> Vec<u8> {
    let mut c = b"tidings mailto unsubscribe ".to_vec();
    c.extend_from_slice(email.to_lowercase().as_bytes());
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys {
            verp: [7; 32],
            mailto: [9; 32],
        }
    }

    #[test]
    fn a_verp_tag_is_short_lower_case_and_names_its_delivery() {
        let now = Utc::now();
        let tag = keys().verp_tag(
            Delivery::Digest {
                id: 123_456,
                run: 7,
            },
            now,
        );
        assert_eq!(tag.len(), VERP_LEN);
        assert!(tag
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert_eq!(keys().check_verp(&tag, now), Some(Tagged::Digest(123_456)));
        // Folded to upper case by an MTA, it still reads.
        assert_eq!(
            keys().check_verp(&tag.to_uppercase().replacen('B', "b", 1), now),
            Some(Tagged::Digest(123_456))
        );
        let single = keys().verp_tag(Delivery::Single { id: 5 }, now);
        assert_eq!(keys().check_verp(&single, now), Some(Tagged::Single(5)));
    }

    #[test]
    fn a_forged_altered_expired_or_foreign_tag_names_nothing() {
        let now = Utc::now();
        let tag = keys().verp_tag(Delivery::Single { id: 5 }, now);
        // One character changed anywhere.
        for i in 1..tag.len() {
            let mut t: Vec<char> = tag.chars().collect();
            t[i] = if t[i] == 'a' { 'b' } else { 'a' };
            let t: String = t.into_iter().collect();
            assert_eq!(keys().check_verp(&t, now), None, "{t}");
        }
        let other = Keys {
            verp: [8; 32],
            mailto: [9; 32],
        };
        assert_eq!(other.check_verp(&tag, now), None);
        let later = now + chrono::Duration::days(VERP_DAYS + 1);
        assert_eq!(keys().check_verp(&tag, later), None);
        assert_eq!(keys().check_verp("b", now), None);
        assert_eq!(keys().check_verp("hello", now), None);
    }

    #[test]
    fn a_mailto_token_is_bound_to_the_subscriber_and_their_address() {
        let now = Utc::now();
        let k = keys();
        let t = k.unsubscribe_token(42, "Ann@example.com", now, 60);
        assert_eq!(t.len(), UNSUBSCRIBE_LEN);
        assert_eq!(Keys::unsubscribe_claim(&t), Some(42));
        assert!(k.check_unsubscribe(&t, 42, "ann@example.com", now));
        assert!(!k.check_unsubscribe(&t, 43, "ann@example.com", now));
        assert!(!k.check_unsubscribe(&t, 42, "bob@example.com", now));
        assert!(!k.check_unsubscribe(&t, 42, "ann@example.com", now + chrono::Duration::days(61)));
        // The VERP key does not make mailto tokens.
        let swapped = Keys {
            verp: [9; 32],
            mailto: [7; 32],
        };
        assert!(!swapped.check_unsubscribe(&t, 42, "ann@example.com", now));
    }
}
