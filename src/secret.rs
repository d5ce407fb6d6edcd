//! Settings that must never reach a log: a `Secret` prints as `[redacted]`, and a URL that may
//! carry a password (`smtp://user:pass@host`, `postgres://user:pass@host/db`) prints without it.
//! `Debug` and `Display` are the only ways these print; the value itself is read with `expose`.
//!
//! Hand-written rather than `secrecy`: its `Debug` prints `SecretBox<str>([REDACTED])`, and a
//! URL needs its password cut out while the rest (host, database, `sslmode`) stays readable.

use serde::Deserialize;

/// What a secret prints as.
pub const REDACTED: &str = "[redacted]";

/// A password, token or key: `Debug` and `Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that needs it (a comparison, a signature, a login).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

/// A URL whose user-info password and `password=` query parameter are secret: `Debug` and
/// `Display` print it with them replaced by `[redacted]`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(value: impl Into<String>) -> SecretUrl {
        SecretUrl(value.into())
    }

    /// The URL as written, password included.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password replaced by `[redacted]`, for messages and logs.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

/// Serialised (the console's Settings page) as `[redacted]`.
impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// Serialised with its password replaced by `[redacted]`.
impl serde::Serialize for SecretUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl std::str::FromStr for SecretUrl {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SecretUrl::new(s))
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl std::fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `scheme://user:pass@host/…?password=x&…` → `scheme://user:[redacted]@host/…?password=[redacted]&…`.
/// Works on the text, so a URL too broken to parse is still cut; anything after `://` up to the
/// last `@` before the path counts as user info.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..rest_start]);
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..colon]);
                    out.push(':');
                    out.push_str(REDACTED);
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let tail = &rest[authority_end..];
    match tail.find('?') {
        Some(q) => {
            out.push_str(&tail[..=q]);
            let (query, fragment) = match tail[q + 1..].find('#') {
                Some(h) => (&tail[q + 1..q + 1 + h], &tail[q + 1 + h..]),
                None => (&tail[q + 1..], ""),
            };
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if is_password_key(k) => format!("{k}={REDACTED}"),
                    _ => pair.to_string(),
                })
                .collect();
            out.push_str(&pairs.join("&"));
            out.push_str(fragment);
        }
        None => out.push_str(tail),
    }
    out
}

fn is_password_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    k == "password" || k == "sslpassword" || k == "pass"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_prints_as_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "hunter2");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            token: Option<Secret>,
        }
        let h = Holder {
            token: Some(Secret::new("hunter2")),
        };
        assert!(!format!("{h:?}").contains("hunter2"));
    }

    #[test]
    fn a_url_prints_without_its_password() {
        for (url, shown) in [
            (
                "postgres://u:p%40ss@db.example:5432/t?sslmode=verify-full",
                "postgres://u:[redacted]@db.example:5432/t?sslmode=verify-full",
            ),
            (
                "smtp://user:s3cret@mail.example:587",
                "smtp://user:[redacted]@mail.example:587",
            ),
            (
                "postgres://u@h/db?password=s3cret&sslmode=require",
                "postgres://u@h/db?password=[redacted]&sslmode=require",
            ),
            ("smtp://a:b@c@host", "smtp://a:[redacted]@host"),
            ("smtp://host:25", "smtp://host:25"),
            ("file:data/outbox", "file:data/outbox"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
            let s = SecretUrl::new(url);
            assert_eq!(format!("{s}"), shown);
            assert_eq!(format!("{s:?}"), format!("{shown:?}"));
        }
    }
}
