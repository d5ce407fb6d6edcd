//! A bulk sender's own SMTP connection: opened with TCP_NODELAY, PIPELINING when offered, content
//! dot-stuffed in one write, and every reply read so the connection stays in step.

use super::*;

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

pub(super) struct Connection {
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
    /// Drops the connection without ending the message whose DATA is open: the server discards
    /// a message whose final dot never came. The next exchange connects afresh.
    pub fn abandon(&mut self) {
        self.conn = None;
    }

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
}
