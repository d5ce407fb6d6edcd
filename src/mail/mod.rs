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
}

pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    message_id_domain: String,
    list_id: String,
    unsubscribe_mailto: String,
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
    pub fn from_config(config: &Config) -> Result<Mailer, MailConfigError> {
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
        let unsubscribe_mailto = match &mail.unsubscribe_mailto {
            Some(a) => a
                .parse::<Address>()
                .map_err(|e| config_error("mail.unsubscribe_mailto", format!("'{a}': {e}")))?
                .to_string(),
            None => from.email.to_string(),
        };
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
            unsubscribe_mailto,
            dkim,
        })
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

    fn message_id(&self) -> String {
        format!("<{}@{}>", uuid::Uuid::new_v4(), self.message_id_domain)
    }

    fn build_error(e: impl std::fmt::Display) -> SendError {
        SendError {
            failure: Failure::Permanent,
            message: format!("cannot build the message: {e}"),
        }
    }

    /// Builds the complete message: headers, multipart/alternative (text, then HTML), DKIM.
    pub fn build(&self, email: &OutgoingEmail) -> Result<Prepared, SendError> {
        let message_id = self.message_id();
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
        Ok(self.finish(message, message_id, &email.unsubscribe_url, None))
    }

    /// Builds one recipient's copy of a bulk message: `values` go over the template's
    /// placeholders; `unsubscribe_url` is theirs.
    pub fn build_from_template(
        &self,
        template: &bulk::BodyTemplate,
        to: &Address,
        values: &[&str],
        unsubscribe_url: &str,
    ) -> Result<Prepared, SendError> {
        let body = template.fill(values).map_err(Self::build_error)?;
        let message_id = self.message_id();
        // The body stays out of lettre's message: only the header fields are formatted.
        let message = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to.clone()))
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
        Ok(self.finish(message, message_id, unsubscribe_url, Some((body, hash))))
    }

    /// Adds the list headers, formats, and signs. `encoded` is the body when it is kept out of
    /// `message` (with its DKIM body hash when known); otherwise the body is lettre's.
    fn finish(
        &self,
        mut message: Message,
        message_id: String,
        unsubscribe_url: &str,
        encoded: Option<(Vec<u8>, Option<[u8; 32]>)>,
    ) -> Prepared {
        let headers = message.headers_mut();
        headers.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Id"),
            self.list_id.clone(),
        ));
        headers.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe"),
            format!(
                "<{}>, <mailto:{}?subject=unsubscribe>",
                header_text(unsubscribe_url),
                self.unsubscribe_mailto
            ),
        ));
        headers.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click".into(),
        ));
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
                let now = chrono::Utc::now().timestamp();
                let hash = hash.unwrap_or_else(|| dkim::body_hash(&dkim::relaxed_body(&body)));
                signer.signature_header(&head, &hash, now)
            }
            None => String::new(),
        };
        Prepared {
            envelope: message.envelope().clone(),
            signature,
            head,
            body,
            message_id,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_cannot_start_a_new_header() {
        assert_eq!(
            header_text("Hello\r\nBcc: victim@example.com"),
            "Hello Bcc: victim@example.com"
        );
    }
}
