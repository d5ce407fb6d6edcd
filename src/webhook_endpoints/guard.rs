//! The address guard: an endpoint's URL is `http` or `https` with a host, and (unless
//! `webhook_endpoints.allow_private`) every address its host resolves to is public. Checked when
//! an endpoint is made or changed, and again before every delivery, whose connection then goes
//! to the address checked (so a DNS answer that changes in between cannot point it inward).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use url::Url;

/// How long a host may take to resolve.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a URL is refused: said to the admin (the API names the `url` field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// An endpoint URL, parsed once: `http(s)://host[:port]/…`, without user or password.
pub fn parse(raw: &str) -> Result<Url, Refused> {
    let url = Url::parse(raw.trim()).map_err(|e| Refused(format!("'{raw}' is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refused(format!(
            "must start with http:// or https://, not {}:",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Refused("needs a host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused(
            "must not carry a user or password (the signature authenticates)".into(),
        ));
    }
    if url.as_str().len() > 2048 {
        return Err(Refused("is longer than 2,048 characters".into()));
    }
    Ok(url)
}

/// Why an address is not public; `None` when it is.
pub fn private_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_kind(v4);
            }
            let s = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("cloud metadata")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("unique-local")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if s[0] & 0xff00 == 0xff00 {
                Some("multicast")
            } else if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                // NAT64: the IPv4 address inside decides.
                v4_kind(Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                ))
            } else {
                None
            }
        }
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        Some("cloud metadata")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("CGNAT (shared)")
    } else if o[0] == 0 {
        Some("unspecified")
    } else if ip.is_broadcast() || ip.is_multicast() || o[0] >= 240 {
        Some("multicast or reserved")
    } else {
        None
    }
}

/// Resolves `url`'s host (within 2 s) and checks every address; the addresses to connect to.
pub async fn resolve(url: &Url, allow_private: bool) -> Result<Vec<SocketAddr>, Refused> {
    resolve_with(
        url,
        |_| allow_private,
        "webhook_endpoints.allow_private is off",
    )
    .await
}

/// `resolve`, where `allowed` says which non-public addresses may be used all the same, and
/// `why_not` ends the refusal's message.
pub async fn resolve_with(
    url: &Url,
    allowed: impl Fn(IpAddr) -> bool,
    why_not: &str,
) -> Result<Vec<SocketAddr>, Refused> {
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(443);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => match tokio::time::timeout(
            RESOLVE_TIMEOUT,
            tokio::net::lookup_host((bare.to_string(), port)),
        )
        .await
        {
            Err(_) => {
                return Err(Refused(format!(
                    "the host {host} did not resolve within 2 s"
                )))
            }
            Ok(Err(e)) => return Err(Refused(format!("the host {host} does not resolve ({e})"))),
            Ok(Ok(found)) => found.collect(),
        },
    };
    if addrs.is_empty() {
        return Err(Refused(format!("the host {host} has no address")));
    }
    if let Some((addr, kind)) = addrs
        .iter()
        .filter(|a| !allowed(a.ip()))
        .find_map(|a| private_kind(a.ip()).map(|k| (a, k)))
    {
        return Err(Refused(format!(
            "the host {host} resolves to {}, a {kind} address ({why_not})",
            addr.ip()
        )));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_cgnat_and_metadata_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(private_kind(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "100.128.0.1",
        ] {
            assert_eq!(private_kind(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn only_http_urls_with_a_host_and_no_password() {
        assert!(parse("https://example.com/hook").is_ok());
        assert!(parse("ftp://example.com/").is_err());
        assert!(parse("http://user:pw@example.com/").is_err());
        assert!(parse("not a url").is_err());
    }

    #[tokio::test]
    async fn a_literal_private_address_is_refused_unless_allowed() {
        let url = parse("http://127.0.0.1:9/hook").unwrap();
        let refused = resolve(&url, false).await.unwrap_err();
        assert!(refused.0.contains("loopback"), "{refused}");
        assert_eq!(resolve(&url, true).await.unwrap().len(), 1);
    }
}
