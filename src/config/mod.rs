//! Settings: one typed struct with defaults that run as shipped, read from `tidings.toml` and
//! overridden key by key by `TIDINGS_<SECTION>_<KEY>` environment variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use url::Url;

use crate::secret::{Secret, SecretUrl};

mod checks;

/// Every configuration key, its type, and its environment variable (derived from the key).
/// The README's configuration table is checked against this list by a test.
pub const KEYS: &[(&str, Kind)] = &[
    ("server.bind", Kind::Str),
    ("site.title", Kind::Str),
    ("site.description", Kind::Str),
    ("site.language", Kind::Str),
    ("site.author", Kind::Str),
    ("site.base_url", Kind::Str),
    ("database.path", Kind::Str),
    ("database.url", Kind::Str),
    ("database.pool_size", Kind::Int),
    ("catalog.load_sample", Kind::Bool),
    ("catalog.sample_path", Kind::Str),
    ("feeds.items", Kind::Int),
    ("feeds.max_age", Kind::Int),
    ("feeds.mirror_dir", Kind::Str),
    ("feeds.websub_hub", Kind::Str),
    ("admin.token", Kind::Str),
    ("admin.session_idle_minutes", Kind::Int),
    ("admin.session_max_hours", Kind::Int),
    ("server.trust_proxy", Kind::Bool),
    ("server.max_connections", Kind::Int),
    ("server.body_timeout_seconds", Kind::Int),
    ("server.shutdown_seconds", Kind::Int),
    ("mail.transport", Kind::Str),
    ("mail.tls", Kind::Str),
    ("mail.tls_ca_file", Kind::Str),
    ("mail.username", Kind::Str),
    ("mail.password", Kind::Str),
    ("mail.from", Kind::Str),
    ("mail.list_id", Kind::Str),
    ("mail.unsubscribe_mailto", Kind::Str),
    ("mail.templates_dir", Kind::Str),
    ("mail.timeout_seconds", Kind::Int),
    ("mail.confirm_subject", Kind::Str),
    ("mail.welcome_subject", Kind::Str),
    ("mail.dkim.selector", Kind::Str),
    ("mail.dkim.domain", Kind::Str),
    ("mail.dkim.private_key", Kind::Str),
    ("mail.bounce_limit", Kind::Int),
    ("mail.return_path", Kind::Str),
    ("mail.soft_bounce_limit", Kind::Int),
    ("mail.soft_bounce_days", Kind::Int),
    ("mail.inbound.bind", Kind::Str),
    ("mail.inbound.max_message_bytes", Kind::Int),
    ("mail.inbound.keep_days", Kind::Int),
    ("mail.inbound.max_connections", Kind::Int),
    ("mail.inbound.max_connections_per_ip", Kind::Int),
    ("digest.schedule", Kind::Str),
    ("digest.time_zone", Kind::Str),
    ("digest.send_hour", Kind::Int),
    ("digest.weekly_day", Kind::Str),
    ("digest.max_age_days", Kind::Int),
    ("digest.subject", Kind::Str),
    ("digest.rate_per_second", Kind::Int),
    ("digest.max_attempts", Kind::Int),
    ("digest.concurrency", Kind::Int),
    ("digest.lease_seconds", Kind::Int),
    ("subscribers.confirm_ttl_hours", Kind::Int),
    ("subscribers.link_ttl_days", Kind::Int),
    ("subscribers.default_cadence", Kind::Str),
    ("subscribers.default_time_zone", Kind::Str),
    ("subscribers.ip_rate_per_minute", Kind::Int),
    ("subscribers.address_rate_per_hour", Kind::Int),
    ("webhooks.ses.topic_arn", Kind::Str),
    ("webhooks.ses.signing_cert", Kind::Str),
    ("webhooks.postmark.username", Kind::Str),
    ("webhooks.postmark.password", Kind::Str),
    ("webhooks.mailgun.signing_key", Kind::Str),
    ("webhooks.sendgrid.public_key", Kind::Str),
    ("audience.enabled", Kind::Bool),
    ("audience.max_reported", Kind::Int),
];

/// The type of a configuration value, so an environment variable can be read as the right TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Bool,
}

/// The environment variable that overrides `key`: `feeds.max_age` → `TIDINGS_FEEDS_MAX_AGE`.
pub fn env_name(key: &str) -> String {
    format!("TIDINGS_{}", key.replace('.', "_").to_uppercase())
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: String, message: String },
    #[error("{env}: {message}")]
    Env { env: String, message: String },
    #[error("config key {key}: {message}")]
    Invalid { key: String, message: String },
}

/// The whole configuration, as the daemon and the CLI use it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub site: SiteConfig,
    pub database: DatabaseConfig,
    pub catalog: CatalogConfig,
    pub feeds: FeedsConfig,
    pub admin: AdminConfig,
    pub mail: MailConfig,
    pub subscribers: SubscribersConfig,
    pub digest: DigestConfig,
    pub webhooks: WebhooksConfig,
    pub audience: AudienceConfig,
}

/// Counting who reads the feeds (`src/audience/`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudienceConfig {
    /// Count feed readers (in memory on the feed path, written every minute).
    pub enabled: bool,
    /// A count a hosted reader reports above this is kept as suspect and not added.
    pub max_reported: u64,
}

impl Default for AudienceConfig {
    fn default() -> Self {
        AudienceConfig {
            enabled: true,
            max_reported: 1_000_000,
        }
    }
}

/// Provider webhooks for bounces and complaints; a provider with no settings answers `404`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    pub ses: SesConfig,
    pub postmark: PostmarkConfig,
    pub mailgun: MailgunConfig,
    pub sendgrid: SendgridConfig,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SesConfig {
    /// The one SNS topic whose notifications are accepted (AWS signs every account's).
    pub topic_arn: Option<String>,
    /// A local PEM certificate to verify SNS signatures with, instead of fetching
    /// `SigningCertURL` (which must be `https://sns.<region>.amazonaws.com/…`).
    pub signing_cert: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostmarkConfig {
    pub username: Option<String>,
    pub password: Option<Secret>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailgunConfig {
    /// The HTTP webhook signing key (Mailgun: Sending → Webhooks).
    pub signing_key: Option<Secret>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SendgridConfig {
    /// The signed event webhook's verification key: base64 of the ECDSA P-256 public key (DER).
    pub public_key: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DigestConfig {
    /// When runs are triggered: a 6-field cron expression (seconds first), in `time_zone`.
    pub schedule: String,
    /// IANA time zone `schedule` is evaluated in.
    pub time_zone: String,
    /// Local hour (0-23, in each subscriber's own time zone) from which their digest is due.
    pub send_hour: u32,
    /// Weekly subscribers' day: mon, tue, wed, thu, fri, sat or sun.
    pub weekly_day: String,
    /// Articles published longer ago than this are never "new" (so importing history mails nobody).
    pub max_age_days: u32,
    /// Subject template: `{{ site }}`, `{{ count }}`, `{{ summary }}`.
    pub subject: String,
    /// Messages per second at most (0 = no limit).
    pub rate_per_second: u32,
    /// Attempts per message before a transient failure counts as failed.
    pub max_attempts: u32,
    /// Messages in flight at once.
    pub concurrency: u32,
    /// How long a claimed delivery stays this process's before another may take it over.
    pub lease_seconds: u32,
}

impl Default for DigestConfig {
    fn default() -> Self {
        DigestConfig {
            schedule: "0 0 * * * *".into(),
            time_zone: "UTC".into(),
            send_hour: 8,
            weekly_day: "mon".into(),
            max_age_days: 7,
            subject: "{{ site }} digest: {{ count }} new article{{ \"s\" if count != 1 }}".into(),
            rate_per_second: 0,
            max_attempts: 5,
            // A connection sends its next digest only once the last one's `sent` row is
            // committed (the crash bound: one digest per connection may go twice), so the
            // connections hide the commit's latency: 16 sent 8,338-8,469 digests/s on SQLite
            // and 6,272-6,437 on PostgreSQL, 48 sent 10,395 and 7,825 (BENCHMARKS.md).
            concurrency: 48,
            lease_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP server listens on; port 0 picks a free port.
    pub bind: String,
    /// Take the client address from `X-Forwarded-For` (only behind a reverse proxy you run).
    pub trust_proxy: bool,
    /// Open connections at most; past it the server stops accepting until one closes.
    pub max_connections: u32,
    /// A request body that sends nothing for this long is dropped (and its connection closed).
    pub body_timeout_seconds: u32,
    /// From SIGTERM to exit at most: what is in flight is finished or handed back within it.
    pub shutdown_seconds: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteConfig {
    pub title: String,
    pub description: String,
    pub language: String,
    pub author: String,
    /// Absolute URL every link in feeds and emails starts with (no trailing slash once loaded).
    pub base_url: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// The SQLite file (the default, `data/tidings.db`); resolved from `url` when that is a
    /// `sqlite:` URL. Setting both `url` and `path` is an error.
    pub path: PathBuf,
    /// `sqlite:PATH` or `postgres://user:pass@host:port/db?sslmode=…` (prints without its
    /// password).
    pub url: Option<SecretUrl>,
    /// Connections per node (PostgreSQL), or SQLite reader connections.
    pub pool_size: u32,
    #[serde(skip)]
    path_set: bool,
}

impl DatabaseConfig {
    /// Where the database is, as `url` or `path` says.
    pub fn location(&self) -> crate::store::Location {
        match self.url.as_ref().map(SecretUrl::expose) {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                crate::store::Location::Postgres(url.to_string())
            }
            _ => crate::store::Location::Sqlite(self.path.clone()),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// Load the sample catalog when the daemon starts with an empty catalog.
    pub load_sample: bool,
    /// JSON file with the sample articles; the copy built into the binary is used when it is missing.
    pub sample_path: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedsConfig {
    /// How many of the newest articles each feed carries.
    pub items: usize,
    /// `Cache-Control: max-age` of feed responses, in seconds.
    pub max_age: u64,
    /// Folder the static mirror of every feed is written to.
    pub mirror_dir: PathBuf,
    /// WebSub hub to link from every feed and to notify when a feed changes.
    pub websub_hub: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// An owner's bearer token for `/api` (API tokens from `tidings token add` work besides).
    pub token: Option<Secret>,
    /// A console session ends after this many minutes without a request.
    pub session_idle_minutes: u32,
    /// A console session ends this many hours after login, in use or not.
    pub session_max_hours: u32,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            token: None,
            session_idle_minutes: 60,
            session_max_hours: 12,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// `file:PATH` (write .eml files) or `smtp://host:port` / `smtps://host:port`, optionally
    /// `smtp://user:pass@host:port` (prints without the password).
    pub transport: SecretUrl,
    /// `none`, `starttls` or `tls` for `smtp://` transports.
    pub tls: String,
    /// Extra certificate authorities (PEM) trusted for the SMTP server's certificate.
    pub tls_ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// `Name <address>` every message comes from.
    pub from: String,
    /// `List-Id` header; default `<digest.{site host}>` with the site title.
    pub list_id: Option<String>,
    /// Address for the `mailto:` part of `List-Unsubscribe`; default the `from` address.
    pub unsubscribe_mailto: Option<String>,
    /// Folder of the editable email templates.
    pub templates_dir: PathBuf,
    pub timeout_seconds: u64,
    pub confirm_subject: String,
    pub welcome_subject: String,
    /// Consecutive permanent failures after which a subscriber becomes `bounced`.
    pub bounce_limit: u32,
    /// The envelope sender, e.g. `bounces@blog.example.org`; each message then goes out from
    /// `bounces+<tag>@…` (VERP). Unset: the `from` address, as it is.
    pub return_path: Option<String>,
    /// Soft bounces (delays, 4.x.x) within `soft_bounce_days` after which a subscriber is bounced.
    pub soft_bounce_limit: u32,
    pub soft_bounce_days: u32,
    pub inbound: InboundConfig,
    pub dkim: DkimConfig,
}

/// The inbound SMTP listener for bounces, complaints and mailto unsubscribes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboundConfig {
    /// `127.0.0.1:2525`; unset means off. Port 0 picks a free one (printed on stdout).
    pub bind: Option<String>,
    pub max_message_bytes: u64,
    /// Raw messages are kept this many days, then pruned.
    pub keep_days: u32,
    pub max_connections: u32,
    pub max_connections_per_ip: u32,
}

impl Default for InboundConfig {
    fn default() -> Self {
        InboundConfig {
            bind: None,
            max_message_bytes: 2 * 1024 * 1024,
            keep_days: 30,
            max_connections: 100,
            max_connections_per_ip: 10,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DkimConfig {
    pub selector: Option<String>,
    pub domain: Option<String>,
    /// Path to an RSA or Ed25519 private key in PEM (PKCS#1 or PKCS#8).
    pub private_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubscribersConfig {
    /// How long a confirmation link works.
    pub confirm_ttl_hours: u64,
    /// How long preference and unsubscribe links in an email work.
    pub link_ttl_days: u64,
    pub default_cadence: String,
    pub default_time_zone: String,
    /// Subscribe requests allowed per client address per minute.
    pub ip_rate_per_minute: u32,
    /// Subscribe requests allowed per email address per hour.
    pub address_rate_per_hour: u32,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            transport: SecretUrl::new("file:data/outbox"),
            tls: "auto".into(),
            tls_ca_file: None,
            username: None,
            password: None,
            from: "Future Tech Blog <tidings@localhost>".into(),
            list_id: None,
            unsubscribe_mailto: None,
            templates_dir: PathBuf::from("email_templates"),
            timeout_seconds: 30,
            confirm_subject: "Confirm your subscription to {{ site }}".into(),
            welcome_subject: "Welcome to {{ site }}".into(),
            bounce_limit: 3,
            return_path: None,
            soft_bounce_limit: 5,
            soft_bounce_days: 14,
            inbound: InboundConfig::default(),
            dkim: DkimConfig::default(),
        }
    }
}

impl Default for SubscribersConfig {
    fn default() -> Self {
        SubscribersConfig {
            confirm_ttl_hours: 48,
            link_ttl_days: 180,
            default_cadence: "daily".into(),
            default_time_zone: "UTC".into(),
            ip_rate_per_minute: 10,
            address_rate_per_hour: 3,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1:8080".into(),
            trust_proxy: false,
            max_connections: 10_000,
            body_timeout_seconds: 30,
            shutdown_seconds: 15,
        }
    }
}

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig {
            title: "Future Tech Blog".into(),
            description: "Articles on AI, open science and machine learning.".into(),
            language: "en".into(),
            author: "Future Tech Blog".into(),
            base_url: "http://127.0.0.1:8080".into(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            path: PathBuf::from("data/tidings.db"),
            url: None,
            pool_size: 8,
            path_set: false,
        }
    }
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig {
            load_sample: true,
            sample_path: PathBuf::from("data/sample-articles.json"),
        }
    }
}

impl Default for FeedsConfig {
    fn default() -> Self {
        FeedsConfig {
            items: 50,
            max_age: 300,
            mirror_dir: PathBuf::from("feeds"),
            websub_hub: None,
        }
    }
}

impl Config {
    /// Reads `path` (must exist), else `./tidings.toml` if present, else the defaults; then applies
    /// `TIDINGS_*` environment variables and checks every value.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(path, |name| std::env::var(name).ok())
    }

    pub fn load_with_env(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let (source, text) = match path {
            Some(p) => (
                p.display().to_string(),
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?,
            ),
            None => {
                let default = Path::new("tidings.toml");
                match std::fs::read_to_string(default) {
                    Ok(t) => ("tidings.toml".to_string(), t),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        ("built-in defaults".to_string(), String::new())
                    }
                    Err(source) => {
                        return Err(ConfigError::Read {
                            path: default.to_path_buf(),
                            source,
                        })
                    }
                }
            }
        };
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
            path: source.clone(),
            message: e.to_string(),
        })?;
        for (key, kind) in KEYS {
            let name = env_name(key);
            if let Some(raw) = env(&name) {
                let value = env_value(&raw, *kind).map_err(|message| ConfigError::Env {
                    env: name.clone(),
                    message,
                })?;
                set_path(&mut table, key, value);
            }
        }
        let path_set = table
            .get("database")
            .and_then(|d| d.as_table())
            .is_some_and(|d| d.contains_key("path"));
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError::Invalid {
                key: e.path().to_string(),
                message: format!("{} (in {source})", e.inner().message()),
            })?;
        config.database.path_set = path_set;
        config.checked()
    }

    /// `server.shutdown_seconds`: the whole time a stop may take.
    pub fn shutdown_budget(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.server.shutdown_seconds))
    }

    pub fn bind_addr(&self) -> Result<SocketAddr, String> {
        self.server.bind.parse().map_err(|_| {
            format!(
                "'{}' is not an address like 127.0.0.1:8080",
                self.server.bind
            )
        })
    }

    /// The site's host name (from `site.base_url`), used for Message-IDs and the List-Id.
    pub fn site_host(&self) -> String {
        Url::parse(&self.site.base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "localhost".into())
    }

    /// An absolute URL on the site for `path` (which starts with `/`).
    pub fn site_url(&self, path: &str) -> String {
        format!("{}{}", self.site.base_url, path)
    }
}

impl Config {
    /// Every key with the value in force, in `KEYS` order, for the console's Settings page:
    /// a secret shows as `[redacted]`, an unset key as `unset`.
    pub fn effective(&self) -> Vec<(&'static str, String)> {
        let tree = serde_json::to_value(self).unwrap_or_default();
        KEYS.iter()
            .map(|(key, _)| {
                let value = key
                    .split('.')
                    .try_fold(&tree, |node, part| node.get(part))
                    .map(|v| match v {
                        serde_json::Value::Null => "unset".to_string(),
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .unwrap_or_else(|| "?".into());
                (*key, value)
            })
            .collect()
    }
}

fn env_value(raw: &str, kind: Kind) -> Result<toml::Value, String> {
    match kind {
        Kind::Str => Ok(toml::Value::String(raw.to_string())),
        Kind::Int => raw
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| format!("'{raw}' is not a whole number")),
        Kind::Bool => match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(toml::Value::Boolean(true)),
            "0" | "false" | "no" | "off" => Ok(toml::Value::Boolean(false)),
            _ => Err(format!("'{raw}' is not true or false")),
        },
    }
}

fn set_path(table: &mut toml::Table, key: &str, value: toml::Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let leaf = parts.pop().unwrap_or(key);
    let mut current = table;
    for part in parts {
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        match entry {
            toml::Value::Table(t) => current = t,
            _ => return,
        }
    }
    current.insert(leaf.to_string(), value);
}

#[cfg(test)]
mod tests;
