//! Verifies a message's DKIM signature with mail-auth (an implementation tidings did not write),
//! taking the public key from a TXT record value given by the test instead of from DNS.

use std::borrow::Borrow;
use std::hash::Hash;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, ResolverCache, Txt};

/// A "DNS" holding one TXT record: `{selector}._domainkey.{domain}`.
struct OneRecord {
    name: String,
    txt: Txt,
}

impl ResolverCache<Box<str>, Txt> for OneRecord {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let asked: Box<str> = self.name.clone().into_boxed_str();
        // Compare through the key type: the cache is asked by `str`.
        (Borrow::<Q>::borrow(&asked) == name).then(|| self.txt.clone())
    }

    fn remove<Q>(&self, _name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _key: Box<str>, _value: Txt, _valid_until: std::time::Instant) {}
}

/// Whether the message's DKIM signature verifies against `record` published at
/// `{selector}._domainkey.{domain}`; the error says what mail-auth found.
pub fn dkim_verify(raw: &[u8], selector: &str, domain: &str, record: &str) -> Result<(), String> {
    let key = DomainKey::parse(record.as_bytes()).map_err(|e| format!("bad record: {e}"))?;
    let cache = OneRecord {
        name: format!("{selector}._domainkey.{domain}."),
        txt: Txt::from(key),
    };
    let message = AuthenticatedMessage::parse(raw).ok_or("mail-auth cannot parse the message")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let authenticator = MessageAuthenticator::new(
        mail_auth::hickory_resolver::config::ResolverConfig::default(),
        mail_auth::hickory_resolver::config::ResolverOpts::default(),
    )
    .map_err(|e| e.to_string())?;
    let outputs = runtime.block_on(
        authenticator.verify_dkim(mail_auth::Parameters::new(&message).with_txt_cache(&cache)),
    );
    if outputs.is_empty() {
        return Err("no DKIM-Signature".into());
    }
    for o in &outputs {
        if *o.result() != DkimResult::Pass {
            return Err(format!("{:?}", o.result()));
        }
    }
    Ok(())
}
