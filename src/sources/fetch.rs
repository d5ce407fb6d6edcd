//! One fetch of a source's feed: a conditional GET to an address the guard checked, redirects
//! followed by hand (each target checked again, at most 5 hops), the body read within
//! `sources.max_bytes` counted after decompression, the whole within `sources.timeout_seconds`.

use std::io::Write;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use url::Url;

use super::guard::Allowed;
use crate::webhook_endpoints::client::{parse_retry_after, Client};

/// Redirects followed in one fetch, at most.
pub const MAX_HOPS: usize = 5;

/// What a fetch asks with.
#[derive(Debug, Clone, Default)]
pub struct Ask {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// What a fetch brought back (any status).
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: u16,
    /// The URL that answered (after redirects).
    pub url: Url,
    /// Every hop was `301` or `308`: where the feed has moved.
    pub moved: Option<Url>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// `Cache-Control: max-age`, `Expires` and `Retry-After` (the last at most a day).
    pub max_age: Option<Duration>,
    pub expires: Option<SystemTime>,
    pub retry_after: Option<Duration>,
    /// `Link: <…>; rel="hub"` and `rel="self"`.
    pub hub: Option<String>,
    pub self_link: Option<String>,
    /// The body, decompressed (empty unless `200`).
    pub body: Vec<u8>,
}

/// Why a fetch brought nothing back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("refused: {0}")]
    Refused(String),
    #[error("no complete answer within {0} s")]
    Timeout(u32),
    #[error("the body is larger than sources.max_bytes ({0} bytes)")]
    TooLarge(u64),
    #[error("more than {MAX_HOPS} redirects")]
    TooManyRedirects,
    #[error("a redirect without a usable Location")]
    BadRedirect,
    #[error("{0}")]
    Http(String),
}

/// The settings a fetch runs with.
#[derive(Debug, Clone)]
pub struct Limits {
    pub timeout: Duration,
    pub max_bytes: u64,
    pub user_agent: String,
}

/// Fetches `url` within `limits.timeout`, everything included.
pub async fn fetch(
    client: &Client,
    allowed: &Allowed,
    url: &Url,
    ask: &Ask,
    limits: &Limits,
) -> Result<Fetched, FetchError> {
    let secs = limits.timeout.as_secs() as u32;
    tokio::time::timeout(limits.timeout, follow(client, allowed, url, ask, limits))
        .await
        .unwrap_or(Err(FetchError::Timeout(secs)))
}

async fn follow(
    client: &Client,
    allowed: &Allowed,
    start: &Url,
    ask: &Ask,
    limits: &Limits,
) -> Result<Fetched, FetchError> {
    let mut url = start.clone();
    let mut permanent = true;
    for hop in 0..=MAX_HOPS {
        let response = get(client, allowed, &url, ask, limits).await?;
        let status = response.status().as_u16();
        if matches!(status, 301 | 302 | 303 | 307 | 308) {
            if hop == MAX_HOPS {
                return Err(FetchError::TooManyRedirects);
            }
            permanent &= matches!(status, 301 | 308);
            let next = response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| url.join(l).ok())
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or(FetchError::BadRedirect)?;
            url = next;
            continue;
        }
        let moved = (permanent && hop > 0).then(|| url.clone());
        return read(response, url, moved, limits).await;
    }
    Err(FetchError::TooManyRedirects)
}

/// A new connection to the first of `url`'s addresses (each checked by the guard) that answers,
/// with the request target and `Host` for it. Feeds and hubs are reached this way.
pub(super) struct Opened {
    pub sender: SendRequest<Full<Bytes>>,
    pub path: String,
    pub authority: String,
}

pub(super) async fn open(
    client: &Client,
    allowed: &Allowed,
    url: &Url,
) -> Result<Opened, FetchError> {
    let addrs = allowed
        .resolve(url)
        .await
        .map_err(|e| FetchError::Refused(e.0))?;
    let https = url.scheme() == "https";
    let host = url.host_str().unwrap_or_default().to_string();
    let mut last = String::from("no address");
    for addr in &addrs {
        match client.connect(https, &host, *addr).await {
            Ok(sender) => {
                return Ok(Opened {
                    sender,
                    path: match url.query() {
                        Some(q) => format!("{}?{q}", url.path()),
                        None => url.path().to_string(),
                    },
                    authority: match url.port() {
                        Some(p) => format!("{host}:{p}"),
                        None => host,
                    },
                })
            }
            Err(e) => last = e,
        }
    }
    Err(FetchError::Http(last))
}

async fn get(
    client: &Client,
    allowed: &Allowed,
    url: &Url,
    ask: &Ask,
    limits: &Limits,
) -> Result<http::Response<hyper::body::Incoming>, FetchError> {
    let Opened {
        mut sender,
        path,
        authority,
    } = open(client, allowed, url).await?;
    let mut request = http::Request::get(path)
        .header(http::header::HOST, authority)
        .header(http::header::USER_AGENT, &limits.user_agent)
        .header(
            http::header::ACCEPT,
            "application/rss+xml, application/atom+xml, application/feed+json, \
             application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5",
        )
        .header(http::header::ACCEPT_ENCODING, "gzip, deflate")
        .header(http::header::CONNECTION, "close");
    if let Some(etag) = &ask.etag {
        request = request.header(http::header::IF_NONE_MATCH, etag);
    }
    if let Some(lm) = &ask.last_modified {
        request = request.header(http::header::IF_MODIFIED_SINCE, lm);
    }
    let request = request
        .body(Full::new(Bytes::new()))
        .map_err(|e| FetchError::Http(format!("cannot build the request: {e}")))?;
    sender
        .send_request(request)
        .await
        .map_err(|e| FetchError::Http(format!("no answer: {e}")))
}

async fn read(
    response: http::Response<hyper::body::Incoming>,
    url: Url,
    moved: Option<Url>,
    limits: &Limits,
) -> Result<Fetched, FetchError> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = |name: http::header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 1024)
            .map(str::to_string)
    };
    let (hub, self_link) = links(headers.get_all(http::header::LINK).iter());
    let mut fetched = Fetched {
        status,
        url,
        moved,
        etag: text(http::header::ETAG),
        last_modified: text(http::header::LAST_MODIFIED),
        max_age: text(http::header::CACHE_CONTROL).and_then(|v| max_age(&v)),
        expires: text(http::header::EXPIRES).and_then(|v| httpdate::parse_http_date(&v).ok()),
        retry_after: text(http::header::RETRY_AFTER).and_then(|v| parse_retry_after(&v)),
        hub,
        self_link,
        body: Vec::new(),
    };
    if status != 200 {
        return Ok(fetched);
    }
    let encoding = text(http::header::CONTENT_ENCODING)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let capped = Capped {
        buf: Vec::new(),
        max: limits.max_bytes,
    };
    let mut sink: Box<dyn Sink> = match encoding.as_str() {
        "" | "identity" => Box::new(capped),
        "gzip" | "x-gzip" => Box::new(flate2::write::GzDecoder::new(capped)),
        "deflate" => Box::new(flate2::write::ZlibDecoder::new(capped)),
        other => {
            return Err(FetchError::Http(format!(
                "the body is in an encoding not asked for ({other})"
            )))
        }
    };
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| FetchError::Http(format!("the body broke off: {e}")))?;
        if let Ok(data) = frame.into_data() {
            sink.write_all(&data).map_err(|e| too_large(e, limits))?;
        }
    }
    fetched.body = sink.finish().map_err(|e| too_large(e, limits))?;
    Ok(fetched)
}

fn too_large(e: std::io::Error, limits: &Limits) -> FetchError {
    if e.kind() == std::io::ErrorKind::FileTooLarge {
        FetchError::TooLarge(limits.max_bytes)
    } else {
        FetchError::Http(format!("cannot decompress the body: {e}"))
    }
}

/// A writer that refuses to hold more than `max` bytes.
struct Capped {
    buf: Vec<u8>,
    max: u64,
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() as u64 + data.len() as u64 > self.max {
            return Err(std::io::ErrorKind::FileTooLarge.into());
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The body's way in: straight, or through a decoder.
trait Sink: Write + Send {
    fn finish(self: Box<Self>) -> std::io::Result<Vec<u8>>;
}

impl Sink for Capped {
    fn finish(self: Box<Self>) -> std::io::Result<Vec<u8>> {
        Ok(self.buf)
    }
}

impl Sink for flate2::write::GzDecoder<Capped> {
    fn finish(self: Box<Self>) -> std::io::Result<Vec<u8>> {
        (*self).finish().map(|c| c.buf)
    }
}

impl Sink for flate2::write::ZlibDecoder<Capped> {
    fn finish(self: Box<Self>) -> std::io::Result<Vec<u8>> {
        (*self).finish().map(|c| c.buf)
    }
}

/// `max-age=N` of a `Cache-Control` (`no-cache`/`no-store` mean none).
fn max_age(v: &str) -> Option<Duration> {
    v.split(',').map(str::trim).find_map(|d| {
        let (name, value) = d.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| value.trim().trim_matches('"').parse::<u64>().ok())
            .flatten()
            .map(Duration::from_secs)
    })
}

/// The hub and self URLs of `Link` headers (RFC 8288): `<url>; rel="hub"`.
fn links<'a>(
    values: impl Iterator<Item = &'a http::HeaderValue>,
) -> (Option<String>, Option<String>) {
    let (mut hub, mut own) = (None, None);
    for value in values.filter_map(|v| v.to_str().ok()) {
        for link in value.split(',') {
            let mut parts = link.split(';');
            let Some(target) = parts.next().map(str::trim) else {
                continue;
            };
            let Some(target) = target.strip_prefix('<').and_then(|t| t.strip_suffix('>')) else {
                continue;
            };
            for param in parts {
                let Some((name, rels)) = param.split_once('=') else {
                    continue;
                };
                if !name.trim().eq_ignore_ascii_case("rel") {
                    continue;
                }
                for rel in rels.trim().trim_matches('"').split_whitespace() {
                    if rel.eq_ignore_ascii_case("hub") && hub.is_none() {
                        hub = Some(target.to_string());
                    } else if rel.eq_ignore_ascii_case("self") && own.is_none() {
                        own = Some(target.to_string());
                    }
                }
            }
        }
    }
    (hub, own)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=3600"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(max_age("no-cache"), None);
    }

    #[test]
    fn hub_and_self_from_link_headers() {
        let values = [http::HeaderValue::from_static(
            "<https://hub.example/>; rel=\"hub\", <https://blog.example/feed>; rel=\"self\"",
        )];
        let (hub, own) = links(values.iter());
        assert_eq!(hub.as_deref(), Some("https://hub.example/"));
        assert_eq!(own.as_deref(), Some("https://blog.example/feed"));
    }

    #[test]
    fn a_capped_writer_stops_at_its_limit() {
        let mut c = Capped {
            buf: Vec::new(),
            max: 4,
        };
        assert!(c.write_all(b"1234").is_ok());
        let e = c.write_all(b"5").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::FileTooLarge);
    }
}
