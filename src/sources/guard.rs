//! Where a source may be fetched from: `http(s)` URLs whose host resolves only to public
//! addresses, or to one that `sources.allow_private` lists. Checked when a source is added and
//! at every fetch, after DNS resolution and after each redirect; the connection then goes to the
//! address checked (the webhook guard's rules, `webhook_endpoints::guard`).

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use url::Url;

use crate::webhook_endpoints::guard::{self, Refused};

/// The non-public addresses and networks allowed all the same.
#[derive(Debug, Clone, Default)]
pub struct Allowed(Vec<IpNet>);

impl Allowed {
    /// `127.0.0.2`, `::1`, `10.0.0.0/8`, …; an address alone is its own network.
    pub fn parse(list: &[String]) -> Result<Allowed, String> {
        list.iter()
            .map(|raw| {
                let s = raw.trim();
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("'{s}' is not an address or a network (10.0.0.0/8)"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Allowed)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The feed URL, parsed: `http(s)://host/…` without a user or password.
    pub fn url(raw: &str) -> Result<Url, Refused> {
        guard::parse(raw)
    }

    /// `url`'s addresses, each public or allowed; the ones to connect to.
    pub async fn resolve(&self, url: &Url) -> Result<Vec<SocketAddr>, Refused> {
        guard::resolve_with(
            url,
            |ip| self.contains(ip),
            "not listed in sources.allow_private",
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_networks() {
        let allowed = Allowed::parse(&["127.0.0.2".into(), "10.0.0.0/8".into()]).unwrap();
        assert!(allowed.contains("127.0.0.2".parse().unwrap()));
        assert!(allowed.contains("::ffff:127.0.0.2".parse().unwrap()));
        assert!(allowed.contains("10.9.8.7".parse().unwrap()));
        assert!(!allowed.contains("127.0.0.1".parse().unwrap()));
        let err = Allowed::parse(&["localhost".into()]).unwrap_err();
        assert!(err.contains("'localhost'"), "{err}");
    }

    #[tokio::test]
    async fn only_the_listed_private_address_passes() {
        let allowed = Allowed::parse(&["127.0.0.2".into()]).unwrap();
        let ok = Allowed::url("http://127.0.0.2:9/feed.xml").unwrap();
        assert_eq!(allowed.resolve(&ok).await.unwrap().len(), 1);
        let refused = Allowed::url("http://127.0.0.1:9/feed.xml").unwrap();
        let e = allowed.resolve(&refused).await.unwrap_err();
        assert!(
            e.0.contains("loopback") && e.0.contains("sources.allow_private"),
            "{e}"
        );
    }
}
