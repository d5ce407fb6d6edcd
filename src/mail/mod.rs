//! Getting a message out: one `Mailer` for every email tidings sends, over SMTP (pooled, async)
//! or into a folder of `.eml` files, with List-Id, RFC 8058 one-click unsubscribe headers and DKIM.

pub mod bulk;
pub mod dkim;
pub mod templates;

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

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>, Direct),
    File(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

/// How a worker opens its own SMTP connection for bulk sending (see `Session`).
#[derive(Clone)]
struct Direct {
    host: String,
    port: u16,
    /// STARTTLS parameters, or `None` for plain SMTP; implicit TLS uses the pool instead.
    starttls: Option<TlsParameters>,
    implicit_tls: bool,
    credentials: Option<Credentials>,
    timeout: Duration,
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

/// A sender for one worker of a bulk run: over SMTP it keeps its own connection, opened with
/// `TCP_NODELAY` (lettre's pooled transport leaves Nagle on, and every message then waits ~40 ms
/// for a delayed ACK) and reused message after message; otherwise it uses the shared transport.
///
/// On its connection a message takes two round trips instead of lettre's four: when the server
/// offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go out together, and the content goes out
/// already dot-stuffed in one write. Both through lettre's public `command`/`read_response`; any
/// error closes the connection, as lettre's own `send` does, and the next message reconnects.
pub struct Session<'a> {
    mailer: &'a Mailer,
    conn: Option<Connection>,
}

struct Connection {
    smtp: lettre::transport::smtp::client::AsyncSmtpConnection,
    pipelining: bool,
}

impl Mailer {
    pub fn session(&self) -> Session<'_> {
        Session {
            mailer: self,
            conn: None,
        }
    }
}

/// The concatenated `parts` as SMTP's DATA carries them, appended to `out`: a '.' starting a
/// line is doubled (RFC 5321 4.5.2), the content ends with CRLF, then the terminating ".\r\n".
fn dot_stuff_into(out: &mut Vec<u8>, parts: &[&[u8]]) {
    let mut line_start = true;
    for part in parts {
        let mut rest = *part;
        while !rest.is_empty() {
            if line_start && rest[0] == b'.' {
                out.push(b'.');
            }
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    out.extend_from_slice(&rest[..=i]);
                    rest = &rest[i + 1..];
                    line_start = true;
                }
                None => {
                    out.extend_from_slice(rest);
                    rest = &[];
                    line_start = false;
                }
            }
        }
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

/// What one `Session::exchange` did with the content and the envelope it was given.
pub struct Exchange {
    /// The content's outcome: the Message-ID once the server took it.
    pub content: Option<Result<String, SendError>>,
    /// The envelope's outcome: the server is ready for this message's content.
    pub envelope: Option<Result<(), SendError>>,
}

impl Session<'_> {
    /// One round trip: the content of the message whose envelope the last exchange opened
    /// (`content`), then the envelope (MAIL, RCPT, DATA) of the next (`envelope`), written together
    /// when the server offers PIPELINING (RFC 2920 lets message content open a group, and DATA
    /// close it). With the connection kept busy this way a digest costs one round trip. Other
    /// transports send the content whole and have no envelope step.
    pub async fn exchange(
        &mut self,
        content: Option<&Prepared>,
        envelope: Option<&Prepared>,
    ) -> Exchange {
        let Some(direct) = self.direct() else {
            let content = match content {
                Some(p) => Some(self.mailer.send_prepared(p).await),
                None => None,
            };
            return Exchange {
                content,
                envelope: envelope.map(|_| Ok(())),
            };
        };
        let mut conn = self.conn.take().filter(|c| !c.smtp.has_broken());
        let mut out = Exchange {
            content: None,
            envelope: None,
        };
        let mut content = content;
        if content.is_some() && conn.is_none() {
            out.content = Some(Err(lost("the SMTP connection closed before the content")));
            content = None;
        }
        if content.is_none() && envelope.is_none() {
            self.conn = conn;
            return out;
        }
        let mut conn = match conn.take() {
            Some(c) => c,
            None => match connect(&direct).await {
                Ok(c) => c,
                Err(e) => {
                    out.envelope = envelope.map(|_| Err(e));
                    return out;
                }
            },
        };
        // The content's reply is kept even when a later reply times out: a digest the server
        // took must not be retried.
        let mut c = None;
        let result = tokio::time::timeout(
            direct.timeout,
            exchange_on(&mut conn, content, envelope, &mut c),
        )
        .await;
        let e = match result {
            Ok(e) => e,
            Err(_) => {
                let message = "timed out talking to the SMTP server";
                if let (Some(p), Some(Ok(()))) = (content, &c) {
                    out.content = Some(Ok(p.message_id.clone()));
                } else {
                    out.content = out.content.or(content.map(|_| Err(lost(message))));
                }
                out.envelope = envelope.map(|_| Err(lost(message)));
                close_now(conn).await;
                return out;
            }
        };
        let failed = matches!(c, Some(Err(_))) || matches!(e, Some(Err(_)));
        if let (Some(p), Some(r)) = (content, c) {
            out.content = Some(r.map(|()| p.message_id.clone()).map_err(classify));
        }
        out.envelope = e.map(|r| r.map_err(classify));
        if failed {
            // As lettre's own send does after any error: close, and reconnect for the next.
            close_now(conn).await;
            if let Some(Ok(())) = out.envelope {
                out.envelope = Some(Err(lost("the connection was closed after a refusal")));
            }
        } else {
            self.conn = Some(conn);
        }
        out
    }

    fn direct(&self) -> Option<Direct> {
        match &self.mailer.transport {
            Transport::Smtp(_, d) if !d.implicit_tls => Some(d.clone()),
            _ => None,
        }
    }

    /// Says goodbye to the server (without waiting long for its answer).
    pub async fn close(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.smtp.quit()).await;
        }
    }
}

/// Closes a connection after an error. lettre's `abort` sends QUIT and waits for the reply; a
/// server that has just said 354 reads QUIT as message text and never answers, so the wait is
/// bounded and the socket is dropped either way.
async fn close_now(mut conn: Connection) {
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.smtp.abort()).await;
}

fn lost(message: &str) -> SendError {
    SendError {
        failure: Failure::Transient,
        message: message.into(),
    }
}

type SmtpResult = Result<(), lettre::transport::smtp::Error>;

/// The commands of an envelope, for a pipelined group.
fn envelope_commands(conn: &Connection, p: &Prepared) -> String {
    use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
    use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
    use std::fmt::Write as _;
    let info = conn.smtp.server_info();
    let mut params = Vec::new();
    let non_ascii_addresses = p
        .envelope
        .from()
        .is_some_and(|a| !AsRef::<str>::as_ref(a).is_ascii())
        || p.envelope
            .to()
            .iter()
            .any(|a| !AsRef::<str>::as_ref(a).is_ascii());
    if non_ascii_addresses && info.supports_feature(Extension::SmtpUtfEight) {
        params.push(MailParameter::SmtpUtfEight);
    }
    if !p.is_ascii() && info.supports_feature(Extension::EightBitMime) {
        params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let mut group = Mail::new(p.envelope.from().cloned(), params).to_string();
    for to in p.envelope.to() {
        let _ = write!(group, "{}", Rcpt::new(to.clone(), vec![]));
    }
    let _ = write!(group, "{Data}");
    group
}

/// Writes what an exchange sends and reads every reply (even after a refusal, so that the
/// connection stays in step): the content's, then the envelope's.
/// Writes what an exchange sends and reads every reply (even after a refusal, so that the
/// connection stays in step). The content's reply goes into `content_out` as soon as it is read;
/// the envelope's result is returned.
async fn exchange_on(
    conn: &mut Connection,
    content: Option<&Prepared>,
    envelope: Option<&Prepared>,
    content_out: &mut Option<SmtpResult>,
) -> Option<SmtpResult> {
    let commands = envelope.map(|p| envelope_commands(conn, p));
    let pipelining = conn.pipelining;
    let smtp = &mut conn.smtp;
    let mut group = String::new();
    if let Some(p) = content {
        let parts = p.parts();
        let mut bytes = Vec::with_capacity(parts.iter().map(|p| p.len()).sum::<usize>() + 512);
        dot_stuff_into(&mut bytes, &parts);
        match String::from_utf8(bytes) {
            Ok(text) => group = text,
            // lettre stuffs and terminates raw bytes itself.
            Err(_) => *content_out = Some(smtp.message_iter(parts.into_iter()).await.map(|_| ())),
        }
    }
    let content_in_group = content_out.is_none() && !group.is_empty();
    let Some(commands) = commands else {
        if content_in_group {
            *content_out = Some(smtp.command(group).await.map(|_| ()));
        }
        return None;
    };
    let recipients = envelope.map(|p| p.envelope.to().len()).unwrap_or(1);
    if !pipelining {
        if content_in_group {
            *content_out = Some(smtp.command(group).await.map(|_| ()));
        }
        for line in commands.split_inclusive("\r\n") {
            if let Err(e) = smtp.command(line).await {
                return Some(Err(e));
            }
        }
        return Some(Ok(()));
    }
    group.push_str(&commands);
    // A String, not a Display wrapper: std turns a String into the bytes to write with one copy,
    // a Display with a dozen reallocations.
    let first = smtp.command(group).await.map(|_| ());
    let mut envelope_result = Ok(());
    let mut replies = recipients + 2;
    if content_in_group {
        *content_out = Some(first);
    } else {
        envelope_result = first;
        replies -= 1;
    }
    for _ in 0..replies {
        if let Err(e) = smtp.read_response().await {
            if envelope_result.is_ok() {
                envelope_result = Err(e);
            }
        }
    }
    Some(envelope_result)
}

/// Opens a connection, the whole handshake (greeting, STARTTLS, AUTH, EHLO) bounded in time: a
/// server that accepts and then stays silent must not hold a worker.
async fn connect(d: &Direct) -> Result<Connection, SendError> {
    tokio::time::timeout(d.timeout, handshake(d))
        .await
        .unwrap_or_else(|_| {
            Err(lost(&format!(
                "{}:{} did not complete the SMTP handshake in time",
                d.host, d.port
            )))
        })
}

async fn handshake(d: &Direct) -> Result<Connection, SendError> {
    use lettre::transport::smtp::client::AsyncSmtpConnection;
    use lettre::transport::smtp::commands::Ehlo;
    use lettre::transport::smtp::extension::ClientId;
    let addr = format!("{}:{}", d.host, d.port);
    let transient = |message: String| SendError {
        failure: Failure::Transient,
        message,
    };
    let stream = tokio::time::timeout(d.timeout, tokio::net::TcpStream::connect(&addr))
        .await
        .map_err(|_| transient(format!("connecting to {addr} timed out")))?
        .map_err(|e| transient(format!("cannot connect to {addr}: {e}")))?;
    stream
        .set_nodelay(true)
        .map_err(|e| transient(format!("cannot set TCP_NODELAY: {e}")))?;
    let hello = ClientId::default();
    let mut smtp = AsyncSmtpConnection::connect_with_transport(Box::new(stream), &hello)
        .await
        .map_err(classify)?;
    if let Some(tls) = &d.starttls {
        smtp.starttls(tls.clone(), &hello).await.map_err(classify)?;
    }
    // lettre's server info keeps only the extensions it uses; ask again to learn of PIPELINING.
    // Before AUTH: some servers (mailin, for one) forget the login on a later EHLO.
    let pipelining = smtp
        .command(Ehlo::new(hello))
        .await
        .map(|r| {
            r.message()
                .any(|l| l.trim().eq_ignore_ascii_case("PIPELINING"))
        })
        .unwrap_or(false);
    if let Some(credentials) = &d.credentials {
        use lettre::transport::smtp::authentication::Mechanism;
        smtp.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
            .await
            .map_err(classify)?;
    }
    Ok(Connection { smtp, pipelining })
}

fn classify(e: lettre::transport::smtp::Error) -> SendError {
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

fn transport(config: &Config) -> Result<Transport, MailConfigError> {
    let mail = &config.mail;
    let spec = mail.transport.trim();
    if let Some(path) = spec.strip_prefix("file:") {
        let dir = PathBuf::from(path);
        std::fs::create_dir_all(&dir).map_err(|e| {
            config_error(
                "mail.transport",
                format!("cannot create the outbox folder {}: {e}", dir.display()),
            )
        })?;
        return Ok(Transport::File(AsyncFileTransport::new(&dir), dir));
    }
    let url = url::Url::parse(spec).map_err(|_| {
        config_error(
            "mail.transport",
            format!("'{spec}' is neither file:PATH nor smtp://host:port"),
        )
    })?;
    let implicit_tls = match url.scheme() {
        "smtp" => false,
        "smtps" => true,
        other => {
            return Err(config_error(
                "mail.transport",
                format!("unknown scheme '{other}'; use file:, smtp:// or smtps://"),
            ))
        }
    };
    let host = url
        .host_str()
        .ok_or_else(|| config_error("mail.transport", format!("'{spec}' has no host")))?
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    let port = url.port().unwrap_or(if implicit_tls { 465 } else { 587 });
    let extra_roots = match &mail.tls_ca_file {
        None => None,
        Some(path) => Some(ca_certificates(path)?),
    };
    let tls_params = || {
        let mut builder = TlsParameters::builder(host.clone());
        if let Some(roots) = &extra_roots {
            builder = builder.add_root_certificate(roots.clone());
        }
        builder
            .build()
            .map_err(|e| config_error("mail.tls", format!("cannot set up TLS for {host}: {e}")))
    };
    let tls = if implicit_tls || mail.tls == "tls" {
        Tls::Wrapper(tls_params()?)
    } else if mail.tls == "starttls" {
        Tls::Required(tls_params()?)
    } else {
        Tls::None
    };
    let starttls = match &tls {
        Tls::Required(p) => Some(p.clone()),
        _ => None,
    };
    let implicit = matches!(tls, Tls::Wrapper(_));
    let timeout = Duration::from_secs(mail.timeout_seconds.max(1));
    let credentials = match (&mail.username, &mail.password) {
        (Some(user), Some(pass)) => Some(Credentials::new(user.clone(), pass.clone())),
        _ => None,
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
        .port(port)
        .tls(tls)
        .timeout(Some(timeout));
    if let Some(c) = &credentials {
        builder = builder.credentials(c.clone());
    }
    let direct = Direct {
        host,
        port,
        starttls,
        implicit_tls: implicit,
        credentials,
        timeout,
    };
    Ok(Transport::Smtp(builder.build(), direct))
}

/// The certificate authorities in `mail.tls_ca_file`, trusted beside the usual ones.
fn ca_certificates(
    path: &std::path::Path,
) -> Result<lettre::transport::smtp::client::Certificate, MailConfigError> {
    let pem = std::fs::read(path).map_err(|e| {
        config_error(
            "mail.tls_ca_file",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let invalid = || {
        config_error(
            "mail.tls_ca_file",
            format!("{} holds no PEM certificate", path.display()),
        )
    };
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(invalid());
    }
    lettre::transport::smtp::client::Certificate::from_pem(&pem).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_terminates() {
        let stuffed = |parts: &[&[u8]]| {
            let mut out = Vec::new();
            dot_stuff_into(&mut out, parts);
            out
        };
        assert_eq!(
            stuffed(&[b".a\r\nb.\r\n..c\r\n."]),
            b"..a\r\nb.\r\n...c\r\n..\r\n.\r\n".to_vec()
        );
        assert_eq!(stuffed(&[b"x\r\n"]), b"x\r\n.\r\n".to_vec());
        // A line that starts in one part and continues in the next is one line.
        assert_eq!(
            stuffed(&[b"a\r\n", b".b", b"\r\n"]),
            b"a\r\n..b\r\n.\r\n".to_vec()
        );
    }

    #[test]
    fn header_text_cannot_start_a_new_header() {
        assert_eq!(
            header_text("Hello\r\nBcc: victim@example.com"),
            "Hello Bcc: victim@example.com"
        );
    }
}
