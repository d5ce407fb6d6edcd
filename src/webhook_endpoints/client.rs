//! The HTTP client deliveries go through: HTTP/1.1 over hyper's connection API, to the address
//! the guard checked (never a second lookup), keep-alive connections pooled per address,
//! redirects never followed (a `3xx` is a failed attempt like any other non-`2xx`), TLS with
//! rustls on the ring provider and the webpki roots.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use url::Url;

/// Idle connections kept per address, at most.
const IDLE_PER_ADDRESS: usize = 256;
/// The most of an answer's body read (the rest is left, and the connection with it).
const BODY_READ: usize = 64 * 1024;

/// What an endpoint answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// The first 1 KiB of the body, as text.
    pub body: String,
}

type Key = (bool, String, SocketAddr);

/// Pooled connections to endpoints.
pub struct Client {
    idle: Mutex<HashMap<Key, Vec<SendRequest<Full<Bytes>>>>>,
    tls: Arc<rustls::ClientConfig>,
    allow_private: bool,
}

impl Client {
    pub fn new(allow_private: bool) -> Result<Client, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Client {
            idle: Mutex::new(HashMap::new()),
            tls: Arc::new(tls),
            allow_private,
        })
    }

    /// POSTs `body` with `headers` to `url`: its host resolved and checked first, then the
    /// checked address connected to (or a pooled connection to it reused).
    pub async fn post(
        &self,
        url: &Url,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<Answer, String> {
        let addrs = super::guard::resolve(url, self.allow_private)
            .await
            .map_err(|e| e.0)?;
        let https = url.scheme() == "https";
        let host = url.host_str().unwrap_or_default().to_string();
        let (key, mut sender) = self.checkout(https, &host, &addrs).await?;
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let mut request = http::Request::post(path)
            .header(http::header::HOST, authority)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("tidings/", env!("CARGO_PKG_VERSION")),
            )
            .header(http::header::CONTENT_LENGTH, body.len());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let mut reusable = !response
            .headers()
            .get(http::header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let mut kept = Vec::new();
        let mut body = response.into_body();
        loop {
            match body.frame().await {
                None => break,
                Some(Err(_)) => {
                    reusable = false;
                    break;
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if kept.len() < BODY_READ {
                            kept.extend_from_slice(&data);
                        } else {
                            // Too much to read through: this connection goes with it.
                            reusable = false;
                            break;
                        }
                    }
                }
            }
        }
        if reusable {
            self.checkin(key, sender);
        }
        Ok(Answer {
            status,
            retry_after,
            body: first_kib(&kept),
        })
    }

    /// An idle connection to one of `addrs`, or a new one to the first that answers.
    async fn checkout(
        &self,
        https: bool,
        host: &str,
        addrs: &[SocketAddr],
    ) -> Result<(Key, SendRequest<Full<Bytes>>), String> {
        for addr in addrs {
            let key = (https, host.to_string(), *addr);
            loop {
                let found = self
                    .idle
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_mut(&key)
                    .and_then(Vec::pop);
                let Some(mut sender) = found else { break };
                if !sender.is_closed() && sender.ready().await.is_ok() {
                    return Ok((key, sender));
                }
            }
        }
        let mut last = String::from("no address");
        for addr in addrs {
            match self.connect(https, host, *addr).await {
                Ok(sender) => return Ok(((https, host.to_string(), *addr), sender)),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn checkin(&self, key: Key, sender: SendRequest<Full<Bytes>>) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(key).or_default();
        if list.len() < IDLE_PER_ADDRESS {
            list.push(sender);
        }
    }

    /// A new HTTP/1.1 connection to `addr` (an address the guard checked), over TLS for `https`
    /// with `host` as the server name. Also the sources' fetches connect through it.
    pub async fn connect(
        &self,
        https: bool,
        host: &str,
        addr: SocketAddr,
    ) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        if https {
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| format!("{host} is not a TLS server name: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {host} ({addr}) failed: {e}"))?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| format!("HTTP with {addr} failed: {e}"))?;
            tokio::spawn(connection);
            Ok(sender)
        } else {
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| format!("HTTP with {addr} failed: {e}"))?;
            tokio::spawn(connection);
            Ok(sender)
        }
    }
}

/// `Retry-After`: seconds, or an HTTP date; at most a day.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let wait = match v.trim().parse::<u64>() {
        Ok(s) => Duration::from_secs(s),
        Err(_) => httpdate::parse_http_date(v.trim())
            .ok()?
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    };
    Some(wait.min(Duration::from_secs(86_400)))
}

/// The first 1 KiB of `bytes` as text (cut at a character).
pub fn first_kib(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(super::store::RESPONSE_KEPT + 4)]);
    let mut end = text.len().min(super::store::RESPONSE_KEPT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_a_date() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("999999"),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn keeps_the_first_kib() {
        assert_eq!(first_kib(&[b'a'; 3000]).len(), 1024);
        let text = "é".repeat(600);
        let kept = first_kib(text.as_bytes());
        assert!(kept.len() <= 1024 && kept.chars().all(|c| c == 'é'));
    }
}
