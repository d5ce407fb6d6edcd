//! Serving a cached feed: choose the encoding by `Accept-Encoding`, answer `304` to a matching
//! `If-None-Match` (or, without one, a not-older `If-Modified-Since`), and set the caching headers.

use bytes::Bytes;
use http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG,
    IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, VARY,
};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::feeds::cache::{Rendered, Variant};

/// Builds the response for a GET or HEAD of `rendered`.
pub fn respond(
    headers: &HeaderMap,
    rendered: &Rendered,
    cache_control: &HeaderValue,
) -> Response<Full<Bytes>> {
    let (variant, gzipped) = choose(headers, rendered);
    let not_modified = is_not_modified(headers, variant, rendered);
    let mut builder = Response::builder()
        .header(ETAG, variant.etag.clone())
        .header(LAST_MODIFIED, rendered.last_modified.clone())
        .header(CACHE_CONTROL, cache_control.clone())
        .header(VARY, HeaderValue::from_static("Accept-Encoding"));
    if not_modified {
        builder = builder.status(StatusCode::NOT_MODIFIED);
        return builder
            .body(Full::new(Bytes::new()))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())));
    }
    builder = builder
        .header(CONTENT_TYPE, rendered.content_type.clone())
        .header(CONTENT_LENGTH, HeaderValue::from(variant.body.len()));
    if gzipped {
        builder = builder.header(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    builder
        .body(Full::new(variant.body.clone()))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Whether the request's validators match `rendered` (the variant its `Accept-Encoding` gets):
/// the answer is then `304`.
pub fn not_modified(headers: &HeaderMap, rendered: &Rendered) -> bool {
    is_not_modified(headers, choose(headers, rendered).0, rendered)
}

/// Whether the request carries a validator (`If-None-Match` or `If-Modified-Since`).
pub fn is_conditional(headers: &HeaderMap) -> bool {
    headers.contains_key(IF_NONE_MATCH) || headers.contains_key(IF_MODIFIED_SINCE)
}

fn is_not_modified(headers: &HeaderMap, variant: &Variant, rendered: &Rendered) -> bool {
    match headers.get(IF_NONE_MATCH) {
        Some(inm) => etag_matches(inm, &variant.etag),
        None => headers
            .get(IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .is_some_and(|since| rendered.last_modified_time() <= since),
    }
}

fn choose<'a>(headers: &HeaderMap, rendered: &'a Rendered) -> (&'a Variant, bool) {
    match &rendered.gzip {
        Some(gz) if accepts_gzip(headers) => (gz, true),
        _ => (&rendered.identity, false),
    }
}

/// Whether `Accept-Encoding` accepts gzip: a `gzip` entry decides by its quality (non-zero), and
/// without one a `*` entry does (RFC 9110 §12.5.3: `*` stands for the codings not listed, so
/// `gzip;q=0, *` refuses gzip). `q` is matched case-insensitively, as ABNF strings are.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let (mut gzip, mut star) = (None, None);
    for item in headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let q_zero = parts.any(|p| {
            let p = p.trim();
            p.get(..2).is_some_and(|k| k.eq_ignore_ascii_case("q="))
                && p[2..].trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
        });
        let slot = if name.eq_ignore_ascii_case("gzip") {
            &mut gzip
        } else if name == "*" {
            &mut star
        } else {
            continue;
        };
        *slot = Some(slot.unwrap_or(true) && !q_zero);
    }
    gzip.or(star).unwrap_or(false)
}

/// The weak comparison `If-None-Match` uses: `*`, or any listed tag equal to ours ignoring `W/`.
/// `*` is the whole value or nothing (RFC 9110 §13.1.2): a `*` between commas is part of a tag,
/// as in `"a,*,b"`, and matches nothing (found by fuzz/conditional_headers). Our own tags have
/// no comma, so splitting a list at every comma never makes a piece of another tag equal to one.
pub fn etag_matches(if_none_match: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(list) = if_none_match.to_str() else {
        return false;
    };
    if list.trim() == "*" {
        return true;
    }
    let ours = etag.as_bytes();
    list.split(',')
        .map(str::trim)
        .any(|candidate| candidate.trim_start_matches("W/").as_bytes() == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(ACCEPT_ENCODING, HeaderValue::from_static("br, gzip;q=0.8"));
        assert!(accepts_gzip(&h));
        h.insert(
            ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0, deflate"),
        );
        assert!(!accepts_gzip(&h));
        // An explicit refusal is not overridden by `*` (found by fuzz/conditional_headers).
        h.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip;q=0, *"));
        assert!(!accepts_gzip(&h));
        h.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip;Q=0"));
        assert!(!accepts_gzip(&h));
        h.insert(ACCEPT_ENCODING, HeaderValue::from_static("br;q=0, *;q=0.1"));
        assert!(accepts_gzip(&h));
    }

    #[test]
    fn etag_lists_and_weak_tags_match() {
        let ours = HeaderValue::from_static("\"abc\"");
        assert!(etag_matches(
            &HeaderValue::from_static("\"x\", \"abc\""),
            &ours
        ));
        assert!(etag_matches(&HeaderValue::from_static("W/\"abc\""), &ours));
        assert!(etag_matches(&HeaderValue::from_static("*"), &ours));
        assert!(!etag_matches(&HeaderValue::from_static("\"abcd\""), &ours));
        // A `*` inside a tag is no wildcard.
        assert!(!etag_matches(&HeaderValue::from_static("\"x,*,y\""), &ours));
    }
}
