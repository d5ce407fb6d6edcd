//! WebSub as a subscriber (W3C WebSub, §5 and §7): the requests tidings sends a hub, and the
//! check of a pushed body's `X-Hub-Signature`. The hub is reached through the same address guard
//! as a feed.

use std::net::IpAddr;
use std::time::Duration;

use aws_lc_rs::hmac;
use bytes::Bytes;
use http_body_util::Full;
use url::Url;

use super::guard::Allowed;
use crate::webhook_endpoints::client::Client;
use crate::webhook_endpoints::guard::private_kind;

/// The lease asked for (the hub may grant another).
pub const LEASE_ASKED_SECONDS: u64 = 10 * 86_400;

/// A fresh `hub.secret`: 32 random bytes, hex (within the spec's 200 bytes).
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// When to renew a lease of `lease_seconds` that ends at `until_us`: halfway, and at the latest
/// a day before it ends.
pub fn renew_at(until_us: i64, lease_seconds: i64) -> i64 {
    let margin_s = (lease_seconds / 2).clamp(0, 86_400);
    until_us - margin_s * 1_000_000
}

/// Whether a hub can be expected to reach `base_url`: not when the site's own address is
/// loopback or private and the hub's is public.
pub fn reachable(base_url: &str, hub_addrs: &[std::net::SocketAddr]) -> bool {
    let Ok(base) = Url::parse(base_url) else {
        return false;
    };
    let host = base.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let base_private = host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<IpAddr>()
            .is_ok_and(|ip| private_kind(ip).is_some());
    let hub_private = hub_addrs.iter().any(|a| private_kind(a.ip()).is_some());
    !base_private || hub_private
}

/// POSTs a subscription request (`subscribe` or `unsubscribe`) to `hub`; the hub's status.
pub async fn request(
    client: &Client,
    allowed: &Allowed,
    hub: &Url,
    form: &[(&str, &str)],
    user_agent: &str,
    timeout: Duration,
) -> Result<u16, String> {
    let send = async {
        let super::fetch::Opened {
            mut sender,
            path,
            authority,
        } = super::fetch::open(client, allowed, hub)
            .await
            .map_err(|e| e.to_string())?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = http::Request::post(path)
            .header(http::header::HOST, authority)
            .header(http::header::USER_AGENT, user_agent)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::CONTENT_LENGTH, body.len())
            .header(http::header::CONNECTION, "close")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("no answer from the hub: {e}"))?;
        Ok(response.status().as_u16())
    };
    tokio::time::timeout(timeout, send)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "the hub did not answer within {} s",
                timeout.as_secs()
            ))
        })
}

/// Whether `header` (`sha256=<hex>`; also sha1, sha384, sha512) is `secret`'s HMAC of `body`,
/// compared in constant time.
pub fn signature_ok(secret: &str, header: &str, body: &[u8]) -> bool {
    let Some((method, hex)) = header.trim().split_once('=') else {
        return false;
    };
    let algorithm = match method.trim().to_ascii_lowercase().as_str() {
        "sha1" => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        "sha256" => hmac::HMAC_SHA256,
        "sha384" => hmac::HMAC_SHA384,
        "sha512" => hmac::HMAC_SHA512,
        _ => return false,
    };
    let Ok(tag) = data_encoding::HEXLOWER_PERMISSIVE.decode(hex.trim().as_bytes()) else {
        return false;
    };
    let key = hmac::Key::new(algorithm, secret.as_bytes());
    hmac::verify(&key, body, &tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, alg: hmac::Algorithm, body: &[u8]) -> String {
        let tag = hmac::sign(&hmac::Key::new(alg, secret.as_bytes()), body);
        data_encoding::HEXLOWER.encode(tag.as_ref())
    }

    #[test]
    fn every_listed_hmac_and_nothing_else() {
        let body = b"<feed/>";
        for (name, alg) in [
            ("sha1", hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY),
            ("sha256", hmac::HMAC_SHA256),
            ("sha384", hmac::HMAC_SHA384),
            ("sha512", hmac::HMAC_SHA512),
        ] {
            let good = format!("{name}={}", sign("s3cret", alg, body));
            assert!(signature_ok("s3cret", &good, body), "{name}");
            assert!(!signature_ok("other", &good, body), "{name}");
            assert!(
                !signature_ok("s3cret", &good, b"<feed>changed</feed>"),
                "{name}"
            );
        }
        assert!(!signature_ok("s3cret", "md5=00", body));
        assert!(!signature_ok("s3cret", "sha256=zz", body));
        assert!(!signature_ok("s3cret", "", body));
    }

    #[test]
    fn renewal_halfway_or_a_day_before() {
        assert_eq!(renew_at(10_000_000, 4), 8_000_000);
        assert_eq!(
            renew_at(100 * 86_400 * 1_000_000, 10 * 86_400),
            99 * 86_400 * 1_000_000
        );
    }

    #[test]
    fn a_public_hub_cannot_reach_a_loopback_site() {
        let public: Vec<std::net::SocketAddr> = vec!["93.184.216.34:443".parse().unwrap()];
        let local: Vec<std::net::SocketAddr> = vec!["127.0.0.2:80".parse().unwrap()];
        assert!(!reachable("http://127.0.0.1:8080", &public));
        assert!(!reachable("http://localhost:8080", &public));
        assert!(reachable("http://127.0.0.1:8080", &local));
        assert!(reachable("https://blog.example", &public));
    }
}
