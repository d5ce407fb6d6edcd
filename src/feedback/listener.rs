//! The inbound SMTP listener (`mail.inbound.bind`): an SMTP server for the return-path address,
//! its `+tag` variants and the unsubscribe mailbox only. Every other recipient gets `550`; it
//! never relays and never sends mail in answer (no backscatter). The protocol is mailin's state
//! machine; this file does the I/O and the limits: connections in all and per client address,
//! recipients per message, line length, message size (`mail.inbound.max_message_bytes`), and
//! an idle timeout. A message is stored and handled (`apply`) before its `250`; if the database
//! cannot take it the client gets `451` and tries again later.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::apply::{self, Inbound, Rules};

/// RFC 5321 allows 1,000 octets; a little room for sloppy clients.
const MAX_LINE: u64 = 4096;
/// RFC 5321's minimum; a bounce has one recipient.
const MAX_RECIPIENTS: usize = 100;
const IDLE: Duration = Duration::from_secs(60);
/// After a reply that ends a session early: how long, and how much, the listener keeps reading
/// (and dropping) what the client still sends, so the reply is not lost to a reset.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: u64 = 64 * 1024;

pub struct Listener {
    pub rules: Rules,
    pub store: crate::store::Store,
    pub max_message_bytes: u64,
    pub max_connections: u32,
    pub max_per_ip: u32,
    pub hostname: String,
    open: Mutex<HashMap<IpAddr, u32>>,
}

impl Listener {
    pub fn new(
        config: &crate::config::Config,
        rules: Rules,
        store: crate::store::Store,
    ) -> Listener {
        Listener {
            rules,
            store,
            max_message_bytes: config.mail.inbound.max_message_bytes,
            max_connections: config.mail.inbound.max_connections,
            max_per_ip: config.mail.inbound.max_connections_per_ip,
            hostname: config.site_host(),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Accepts connections until `shutdown`; connections in progress are given a moment to end.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        let tasks = tokio_util::task::TaskTracker::new();
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "inbound: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.cancelled() => break,
            };
            let this = self.clone();
            let stop = shutdown.clone();
            tasks.spawn(async move {
                let ip = peer.ip();
                match this.admit(ip) {
                    Some(why) => {
                        let mut s = stream;
                        let _ = s.write_all(format!("421 4.7.0 {why}\r\n").as_bytes()).await;
                    }
                    None => {
                        let (read, write) = stream.into_split();
                        let _ = this.session(read, write, ip, stop).await;
                        this.leave(ip);
                    }
                }
            });
        }
        tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), tasks.wait()).await;
    }

    /// Counts a new connection in, or says why not.
    fn admit(&self, ip: IpAddr) -> Option<&'static str> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let total: u32 = open.values().sum();
        if total >= self.max_connections {
            return Some("too many connections, try again later");
        }
        let mine = open.entry(ip).or_insert(0);
        if *mine >= self.max_per_ip {
            return Some("too many connections from your address, try again later");
        }
        *mine += 1;
        None
    }

    fn leave(&self, ip: IpAddr) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&ip);
            }
        }
    }

    /// One SMTP session over a connection's two halves (a socket's; the fuzz target's in-memory
    /// stream), until the client quits, the connection ends or a limit is hit.
    #[doc(hidden)]
    pub async fn session(
        &self,
        read: impl AsyncRead + Unpin,
        mut write: impl AsyncWrite + Unpin,
        ip: IpAddr,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let mut reader = BufReader::new(read);
        let pending = Arc::new(Mutex::new(Pending::default()));
        let handler = Handler {
            rules: self.rules.clone(),
            max_bytes: self.max_message_bytes,
            pending: pending.clone(),
            rcpts: 0,
        };
        let mut session = mailin::SessionBuilder::new(self.hostname.clone()).build(ip, handler);
        let mut out = Vec::new();
        session.greeting().write_to(&mut out)?;
        write.write_all(&out).await?;
        let mut line = Vec::with_capacity(256);
        loop {
            line.clear();
            let mut limited = (&mut reader).take(MAX_LINE);
            let read = tokio::select! {
                r = tokio::time::timeout(IDLE, limited.read_until(b'\n', &mut line)) => r,
                _ = shutdown.cancelled() => {
                    write.write_all(b"421 4.3.2 shutting down\r\n").await?;
                    return Ok(());
                }
            };
            match read {
                Err(_) => {
                    write
                        .write_all(b"421 4.4.2 idle too long, closing\r\n")
                        .await?;
                    return Ok(());
                }
                Ok(Err(e)) => return Err(e),
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(_)) => {}
            }
            if !line.ends_with(b"\n") {
                write.write_all(b"500 5.5.2 line too long\r\n").await?;
                // The rest of the line is still unread, and closing a socket with unread input
                // sends a reset, which may discard the reply before the client reads it. End
                // this side, then drop what arrives (briefly, and a bounded amount) before
                // closing: a lingering close, as web servers do.
                write.shutdown().await?;
                let mut rest = (&mut reader).take(LINGER_BYTES);
                let _ = tokio::time::timeout(
                    LINGER,
                    tokio::io::copy(&mut rest, &mut tokio::io::sink()),
                )
                .await;
                return Ok(());
            }
            // mailin's parser wants a path in `MAIL FROM:<…>`, but bounces come from the null
            // reverse path `<>` (RFC 5321 4.5.5): stand in a sentinel, mapped back below.
            let response = match null_sender(&line) {
                Some(rewritten) => session.process(&rewritten),
                None => session.process(&line),
            };
            let finished = take_finished(&pending);
            out.clear();
            match finished {
                Some(Finished::TooLarge) => {
                    out.extend_from_slice(b"552 5.3.4 message too big\r\n");
                }
                Some(Finished::Message(msg)) => {
                    out.extend_from_slice(self.deliver(msg).await);
                }
                None => response.write_to(&mut out)?,
            }
            write.write_all(&out).await?;
            if matches!(response.action, mailin::Action::Close) {
                return Ok(());
            }
        }
    }

    /// Stores and handles one message; the reply to its final dot.
    async fn deliver(&self, msg: Message) -> &'static [u8] {
        let rules = self.rules.clone();
        let handled = self
            .store
            .write(move |db| {
                let inbound = Inbound {
                    mail_from: Some(msg.from.as_str()),
                    rcpt_to: &msg.rcpt,
                    raw: &msg.data,
                };
                apply::handle(db, &rules, &inbound, chrono::Utc::now())
            })
            .await;
        match handled {
            Ok(h) => {
                tracing::info!(inbound = h.id, class = h.class, outcome = %h.outcome, "inbound message");
                b"250 2.0.0 OK\r\n"
            }
            Err(e) => {
                tracing::warn!(error = %e, "inbound: cannot store a message; the sender will retry");
                b"451 4.3.0 cannot store the message now, try again later\r\n"
            }
        }
    }
}

/// The address that stands in for the null reverse path (`.invalid` cannot be a real domain).
const NULL_SENDER: &str = "null-sender@tidings.invalid";

/// `MAIL FROM:<> …` with the sentinel in place of `<>`.
fn null_sender(line: &[u8]) -> Option<Vec<u8>> {
    let head = line.get(..12)?;
    if !head.eq_ignore_ascii_case(b"MAIL FROM:<>") {
        return None;
    }
    let mut out = b"MAIL FROM:<".to_vec();
    out.extend_from_slice(NULL_SENDER.as_bytes());
    out.push(b'>');
    out.extend_from_slice(&line[12..]);
    Some(out)
}

/// A message as the protocol hands it over.
struct Message {
    from: String,
    rcpt: Vec<String>,
    data: Vec<u8>,
}

enum Finished {
    Message(Message),
    TooLarge,
}

#[derive(Default)]
struct Pending {
    current: Option<Message>,
    too_large: bool,
    finished: Option<Finished>,
}

fn take_finished(p: &Arc<Mutex<Pending>>) -> Option<Finished> {
    p.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .finished
        .take()
}

/// mailin's callbacks: which recipients are taken, and the message as it arrives.
struct Handler {
    rules: Rules,
    max_bytes: u64,
    pending: Arc<Mutex<Pending>>,
    rcpts: usize,
}

impl mailin::Handler for Handler {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, _from: &str) -> mailin::Response {
        self.rcpts = 0;
        mailin::response::OK
    }

    fn rcpt(&mut self, to: &str) -> mailin::Response {
        if self.rcpts >= MAX_RECIPIENTS {
            return mailin::Response::custom(452, "4.5.3 too many recipients".into());
        }
        if !self.rules.accepts(to) {
            // Not ours, and never relayed.
            return mailin::Response::custom(550, "5.1.1 no such mailbox here".into());
        }
        self.rcpts += 1;
        mailin::response::OK
    }

    fn data_start(
        &mut self,
        _domain: &str,
        from: &str,
        _is8bit: bool,
        to: &[String],
    ) -> mailin::Response {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        p.too_large = false;
        p.current = Some(Message {
            from: if from == NULL_SENDER {
                String::new()
            } else {
                from.to_string()
            },
            rcpt: to.to_vec(),
            data: Vec::new(),
        });
        mailin::response::START_DATA
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let over = p
            .current
            .as_ref()
            .is_some_and(|m| (m.data.len() + buf.len()) as u64 > self.max_bytes);
        if over {
            p.too_large = true;
            if let Some(m) = p.current.as_mut() {
                // Keep reading to the final dot, storing nothing more.
                m.data = Vec::new();
            }
        } else if !p.too_large {
            if let Some(m) = p.current.as_mut() {
                m.data.extend_from_slice(buf);
            }
        }
        Ok(())
    }

    fn data_end(&mut self) -> mailin::Response {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let msg = p.current.take();
        p.finished = Some(match msg {
            Some(_) if p.too_large => Finished::TooLarge,
            Some(m) => Finished::Message(m),
            None => Finished::TooLarge,
        });
        // The listener replies once the message is stored.
        mailin::response::OK
    }
}
