//! Getting a message out: one `Mailer` for every email tidings sends, over SMTP (pooled, async)
//! or into a folder of `.eml` files, with List-Id, RFC 8058 one-click unsubscribe headers and DKIM.

pub mod bulk;
pub mod dkim;
mod session;
pub mod templates;
mod transport;

pub use self::session::{Exchange, Session};
use self::transport::{transport, Direct, Transport};

use std::path::PathBuf;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{
    Address, AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};

use crate::config::Config;
pub use crate::feedback::tags::Delivery;
use crate::feedback::tags::Keys;

#[derive(Debug, thiserror::Error)]
#[error("config key {key}: {message}")]
pub struct MailConfigError {
    pub key: &'static str,
    pub message: String,
}

fn config_error(key: &'static str, message: impl Into<String>) -> MailConfigError {
    MailConfigError {
        key,
        message: message.into(),
    }
}

/// Whether trying again later may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Connection refused, timeout, 4xx: retry later.
    Transient,
    /// 5xx: the server refused this message for good.
    Permanent,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub failure: Failure,
    pub message: String,
}

/// One email as the rest of tidings describes it; the mailer adds every header.
#[derive(Debug, Clone)]
pub struct OutgoingEmail {
    pub to: Address,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The one-click unsubscribe URL for this recipient (`List-Unsubscribe`).
    pub unsubscribe_url: String,
    pub subscriber: i64,
    pub delivery: Delivery,
    /// The Message-ID its row was given when first claimed (every attempt sends the same one);
    /// `None`: a new one.
    pub message_id: Option<String>,
}

/// Who one copy of a message is for: the address, the subscriber, which delivery it is (for the
/// return path and Feedback-ID), and their one-click unsubscribe URL.
#[derive(Debug, Clone, Copy)]
pub struct Recipient<'a> {
    pub to: &'a Address,
    pub subscriber: i64,
    pub delivery: Delivery,
    pub unsubscribe_url: &'a str,
}

/// The return path's mailbox (`mail.return_path`, when VERP is on) and the mailbox that takes
/// mailto unsubscribes (when one is advertised: `mail.unsubscribe_mailto`, or the return path
/// when the inbound listener is on).
pub fn feedback_mailboxes(
    config: &Config,
) -> Result<(Option<TaggedMailbox>, Option<TaggedMailbox>), MailConfigError> {
    let mail = &config.mail;
    let return_path = mail
        .return_path
        .as_deref()
        .map(|a| TaggedMailbox::parse("mail.return_path", a))
        .transpose()?;
    if let Some(rp) = &return_path {
        // `local+` and the tag must fit the 64 octets of a local part (RFC 5321 4.5.3.1.1).
        if rp.local.len() + 1 + crate::feedback::tags::VERP_LEN > 64 {
            return Err(config_error(
                "mail.return_path",
                format!(
                    "the local part '{}' is too long: at most {} characters leave room for the tag",
                    rp.local,
                    63 - crate::feedback::tags::VERP_LEN
                ),
            ));
        }
    }
    // A mailto unsubscribe is advertised only where someone reads it: the inbound listener, or
    // an address the admin named.
    let unsubscribe = match (&mail.unsubscribe_mailto, &mail.inbound.bind) {
        (Some(a), _) => Some(TaggedMailbox::parse("mail.unsubscribe_mailto", a)?),
        (None, Some(_)) => return_path.clone(),
        (None, None) => None,
    };
    Ok((return_path, unsubscribe))
}

/// An address split at its last `@`, for `local+token@domain`.
#[derive(Debug, Clone)]
pub struct TaggedMailbox {
    pub local: String,
    pub domain: String,
}

impl TaggedMailbox {
    fn parse(key: &'static str, raw: &str) -> Result<TaggedMailbox, MailConfigError> {
        let address: Address = raw
            .trim()
            .parse()
            .map_err(|e| config_error(key, format!("'{raw}' is not an address: {e}")))?;
        let local = address.user().to_lowercase();
        if local.contains('+') {
            return Err(config_error(
                key,
                format!("'{raw}': the local part may not contain '+' (tidings adds +tags)"),
            ));
        }
        Ok(TaggedMailbox {
            local,
            domain: address.domain().to_lowercase(),
        })
    }

    /// `local+tag@domain`.
    pub fn with_tag(&self, tag: &str) -> String {
        format!("{}+{tag}@{}", self.local, self.domain)
    }

    /// Whether `address` is this mailbox or one of its `+tag` variants; the tag if any.
    pub fn matches<'a>(&self, address: &'a str) -> Option<Option<&'a str>> {
        let (local, domain) = address.rsplit_once('@')?;
        if !domain.eq_ignore_ascii_case(&self.domain) {
            return None;
        }
        match local.split_once('+') {
            None => local.eq_ignore_ascii_case(&self.local).then_some(None),
            Some((base, tag)) => base.eq_ignore_ascii_case(&self.local).then_some(Some(tag)),
        }
    }
}

pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    message_id_domain: String,
    list_id: String,
    /// The envelope sender's mailbox when VERP is on (`mail.return_path`).
    return_path: Option<TaggedMailbox>,
    /// The mailbox that takes mailto unsubscribes, when one is advertised.
    unsubscribe_mailbox: Option<TaggedMailbox>,
    keys: Keys,
    mailto_days: i64,
    dkim: Option<dkim::Signer>,
}

/// A message ready for the wire: who it goes to, its exact bytes in parts (the DKIM-Signature
/// field if any, the other header fields as lettre formats them, the blank line, the encoded
/// body), its Message-ID. Kept in parts so a digest's 20 KB body is not copied to add a header.
pub struct Prepared {
    pub envelope: Envelope,
    pub signature: String,
    pub head: Vec<u8>,
    pub body: Vec<u8>,
    pub message_id: String,
}

impl Prepared {
    /// The parts in order; together, the whole message.
    pub fn parts(&self) -> [&[u8]; 4] {
        [self.signature.as_bytes(), &self.head, b"\r\n", &self.body]
    }

    /// The whole message in one piece.
    pub fn whole(&self) -> Vec<u8> {
        self.parts().concat()
    }

    fn is_ascii(&self) -> bool {
        self.parts().iter().all(|p| p.is_ascii())
    }
}

impl Mailer {
    /// The mailer `config` describes; `keys` make the VERP tags and mailto tokens.
    pub fn from_config(config: &Config, keys: Keys) -> Result<Mailer, MailConfigError> {
        let mail = &config.mail;
        let from: Mailbox = mail.from.parse().map_err(|e| {
            config_error(
                "mail.from",
                format!(
                    "'{}' is not an address like 'Blog <news@example.com>': {e}",
                    mail.from
                ),
            )
        })?;
        let (return_path, unsubscribe_mailbox) = feedback_mailboxes(config)?;
        let host = config.site_host();
        let list_id = match &mail.list_id {
            Some(l) => header_text(l),
            None => format!("{} <digest.{host}>", header_text(&config.site.title)),
        };
        let transport = transport(config)?;
        let dkim = dkim::signing_config(&mail.dkim)?;
        Ok(Mailer {
            transport,
            from,
            message_id_domain: host,
            list_id,
            return_path,
            unsubscribe_mailbox,
            keys,
            mailto_days: config.subscribers.link_ttl_days.max(1) as i64,
            dkim,
        })
    }

    /// The mailer for `config`, with the keys kept in the database at `conn` (made on first use).
    pub async fn open(config: &Config, store: &crate::store::Store) -> anyhow::Result<Mailer> {
        let keys = store.write(Keys::load).await?;
        Ok(Mailer::from_config(config, keys)?)
    }

    /// Whether messages are DKIM-signed.
    pub fn signs(&self) -> bool {
        self.dkim.is_some()
    }

    /// Where `file:` transports write, for logs and the README's promise.
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Smtp(_, d) => format!("SMTP {}:{}", d.host, d.port),
            Transport::File(_, dir) => format!("files in {}", dir.display()),
        }
    }

    /// A new Message-ID on the site's host (`new_message_id`).
    pub fn new_message_id(&self) -> String {
        new_message_id(&self.message_id_domain)
    }

    fn build_error(e: impl std::fmt::Display) -> SendError {
        SendError {
            failure: Failure::Permanent,
            message: format!("cannot build the message: {e}"),
        }
    }

    /// Builds the complete message: headers, multipart/alternative (text, then HTML), DKIM.
    pub fn build(&self, email: &OutgoingEmail) -> Result<Prepared, SendError> {
        let message_id = match &email.message_id {
            Some(id) => id.clone(),
            None => self.new_message_id(),
        };
        let message = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, email.to.clone()))
            .subject(header_text(&email.subject))
            .date_now()
            .message_id(Some(message_id.clone()))
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(Self::build_error)?;
        let who = Recipient {
            to: &email.to,
            subscriber: email.subscriber,
            delivery: email.delivery,
            unsubscribe_url: &email.unsubscribe_url,
        };
        self.finish(message, message_id, who, None)
    }

    /// Builds one recipient's copy of a bulk message: `values` go over the template's
    /// placeholders; `message_id` is the delivery's own (the same on every attempt).
    pub fn build_from_template(
        &self,
        template: &bulk::BodyTemplate,
        who: Recipient<'_>,
        values: &[&str],
        message_id: String,
    ) -> Result<Prepared, SendError> {
        let body = template.fill(values).map_err(Self::build_error)?;
        // The body stays out of lettre's message: only the header fields are formatted.
        let message = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, who.to.clone()))
            .subject(header_text(&template.subject))
            .date_now()
            .message_id(Some(message_id.clone()))
            .header(lettre::message::header::MIME_VERSION_1_0)
            .header(template.content_type())
            .body(Body::dangerous_pre_encoded(
                Vec::new(),
                ContentTransferEncoding::SevenBit,
            ))
            .map_err(Self::build_error)?;
        let hash = match self.dkim {
            Some(_) => template.body_hash(values),
            None => None,
        };
        self.finish(message, message_id, who, Some((body, hash)))
    }

    /// Adds the list headers and Feedback-ID, formats, signs, and sets the envelope (the VERP
    /// return path when `mail.return_path` is set). `encoded` is the body when it is kept out of
    /// `message` (with its DKIM body hash when known); otherwise the body is lettre's.
    fn finish(
        &self,
        mut message: Message,
        message_id: String,
        who: Recipient<'_>,
        encoded: Option<(Vec<u8>, Option<[u8; 32]>)>,
    ) -> Result<Prepared, SendError> {
        let now = chrono::Utc::now();
        let headers = message.headers_mut();
        headers.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Id"),
            self.list_id.clone(),
        ));
        let https = format!("<{}>", header_text(who.unsubscribe_url));
        let list_unsubscribe = match &self.unsubscribe_mailbox {
            Some(mailbox) => {
                let token = self.keys.unsubscribe_token(
                    who.subscriber,
                    who.to.as_ref(),
                    now,
                    self.mailto_days,
                );
                format!(
                    "{https}, <mailto:{}?subject=unsubscribe%20{token}>",
                    mailbox.with_tag(&token)
                )
            }
            None => https,
        };
        headers.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe"),
            list_unsubscribe,
        ));
        headers.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click".into(),
        ));
        // Gmail's feedback loop reports complaints by this: campaign:type:list:sender.
        let campaign = match who.delivery {
            Delivery::Digest { run, .. } => format!("run{run}:digest"),
            Delivery::Single { .. } => "single:transactional".to_string(),
        };
        headers.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("Feedback-ID"),
            format!("{campaign}:tidings:{}", self.message_id_domain),
        ));
        let envelope = match &self.return_path {
            Some(rp) => {
                let sender: Address = rp
                    .with_tag(&self.keys.verp_tag(who.delivery, now))
                    .parse()
                    .map_err(Self::build_error)?;
                Envelope::new(Some(sender), vec![who.to.clone()]).map_err(Self::build_error)?
            }
            None => message.envelope().clone(),
        };
        let (head, body, hash) = match encoded {
            Some((body, hash)) => (message.headers().to_string().into_bytes(), body, hash),
            None => {
                let formatted = message.formatted();
                let end = dkim::header_end(&formatted).unwrap_or(formatted.len());
                let body = formatted.get(end + 2..).unwrap_or_default().to_vec();
                (formatted[..end].to_vec(), body, None)
            }
        };
        let signature = match &self.dkim {
            Some(signer) => {
                let hash = hash.unwrap_or_else(|| dkim::body_hash(&dkim::relaxed_body(&body)));
                signer.signature_header(&head, &hash, now.timestamp())
            }
            None => String::new(),
        };
        Ok(Prepared {
            envelope,
            signature,
            head,
            body,
            message_id,
        })
    }

    /// Sends one email; the caller decides what to do with a failure.
    pub async fn send(&self, email: &OutgoingEmail) -> Result<String, SendError> {
        let prepared = self.build(email)?;
        self.send_prepared(&prepared).await
    }

    /// Sends a built message through the shared transport.
    pub async fn send_prepared(&self, p: &Prepared) -> Result<String, SendError> {
        let id = p.message_id.clone();
        match &self.transport {
            Transport::Smtp(t, _) => t
                .send_raw(&p.envelope, &p.whole())
                .await
                .map(|_| id)
                .map_err(classify),
            Transport::File(t, _) => t
                .send_raw(&p.envelope, &p.whole())
                .await
                .map(|_| id)
                .map_err(|e| SendError {
                    failure: Failure::Transient,
                    message: format!("cannot write the message file: {e}"),
                }),
        }
    }

    /// Whether the transport answers (SMTP: a NOOP on a pooled connection).
    pub async fn reachable(&self) -> bool {
        match &self.transport {
            Transport::Smtp(t, _) => t.test_connection().await.unwrap_or(false),
            Transport::File(_, dir) => dir.is_dir(),
        }
    }
}

fn classify(e: lettre::transport::smtp::Error) -> SendError {
    // A refused login (530, 534, 535, 538) is this side's configuration, not the message: the
    // message waits in the outbox until the admin fixes it.
    let code = e.status().map(|c| c.to_string());
    if matches!(code.as_deref(), Some("530" | "534" | "535" | "538")) {
        return SendError {
            failure: Failure::Transient,
            message: format!("{e} (check mail.username and mail.password)"),
        };
    }
    if e.is_tls() {
        return SendError {
            failure: Failure::Transient,
            message: format!(
                "TLS with the relay failed: {e} (set mail.tls, e.g. none for a relay on this \
                 machine, or trust its CA with mail.tls_ca_file)"
            ),
        };
    }
    let failure = if e.is_permanent() {
        Failure::Permanent
    } else {
        Failure::Transient
    };
    SendError {
        failure,
        message: e.to_string(),
    }
}

/// Text bound for a header: control characters (CR, LF, ...) become spaces, so user text can
/// never start a header of its own; lettre then encodes non-ASCII per RFC 2047.
pub fn header_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A new Message-ID: a UUIDv7 (RFC 9562; 74 random bits after a millisecond timestamp). Ids
/// made later sort later, so the ledger's `message_id` index grows at its end: random UUIDv4s
/// dirtied a random index page per sent digest, and each commit wrote them all to the WAL
/// (BENCHMARKS.md, 2026-12-03: 6–10% more digests/s on SQLite). A delivery (digest or outbox
/// row) gets one when first claimed and keeps it, so a copy re-sent after a crash or a takeover
/// carries the first copy's id, and mailboxes that de-duplicate on it show one message.
pub fn new_message_id(domain: &str) -> String {
    format!("<{}@{domain}>", uuid::Uuid::now_v7())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_unique_and_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..10_000)
            .map(|_| new_message_id("blog.example"))
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "not strictly increasing"
        );
        assert!(ids[0].starts_with('<') && ids[0].ends_with("@blog.example>"));
    }

    #[test]
    fn header_text_cannot_start_a_new_header() {
        assert_eq!(
            header_text("Hello\r\nBcc: victim@example.com"),
            "Hello Bcc: victim@example.com"
        );
    }
}
