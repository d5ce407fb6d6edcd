//! The sections of the configuration, one struct each, with the defaults that run as shipped.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::secret::{Secret, SecretUrl};

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

/// Following blogs that live elsewhere (`src/sources/`): how their feeds are polled.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourcesConfig {
    /// The shortest time between two regular polls of one source.
    pub min_interval_minutes: u32,
    /// The longest (also the poll of a source whose hub pushes, and the cap of a back-off).
    pub max_interval_minutes: u32,
    /// Fetches at once per host name.
    pub per_host: u32,
    /// One fetch's whole time: connect, redirects, headers and the body.
    pub timeout_seconds: u32,
    /// The most bytes of a body, counted after decompression.
    pub max_bytes: u64,
    /// The most entries read from one fetch (the first in the document).
    pub max_entries: u32,
    /// Addresses or networks (`127.0.0.2`, `10.0.0.0/8`) a source may resolve to although they
    /// are loopback, private, link-local or metadata addresses.
    pub allow_private: Vec<String>,
}

impl Default for SourcesConfig {
    fn default() -> Self {
        SourcesConfig {
            min_interval_minutes: 15,
            max_interval_minutes: 1440,
            per_host: 2,
            timeout_seconds: 20,
            max_bytes: 10 * 1024 * 1024,
            max_entries: 500,
            allow_private: Vec::new(),
        }
    }
}

/// Outgoing webhooks (`src/webhook_endpoints/`): how they are delivered.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookEndpointsConfig {
    /// One attempt's whole time: connect, send, and the answer.
    pub timeout_seconds: u32,
    /// When each attempt goes, after the event (the first) and after each failure: `0s,5s,5m,…`.
    pub retry_schedule: String,
    /// How long a rotated-out secret still signs beside the new one.
    pub rotation_hours: u32,
    /// An endpoint failing without a success this long is disabled.
    pub disable_after_hours: u32,
    /// Allow endpoints on loopback, private, link-local and metadata addresses (tests, a LAN).
    pub allow_private: bool,
    /// Deliveries in flight at once, per node.
    pub concurrency: u32,
    /// Finished deliveries and attempts are kept this long, then pruned.
    pub keep_days: u32,
}

impl Default for WebhookEndpointsConfig {
    fn default() -> Self {
        WebhookEndpointsConfig {
            timeout_seconds: 15,
            retry_schedule: "0s,5s,5m,30m,2h,5h,10h,10h".into(),
            rotation_hours: 24,
            disable_after_hours: 120,
            allow_private: false,
            concurrency: 32,
            keep_days: 30,
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
    /// An instant subscriber's digest goes this long after the first article new to them.
    pub instant_delay_seconds: u32,
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
            instant_delay_seconds: 600,
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
    pub(super) path_set: bool,
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
    /// Memory for rendered feeds (bytes, gzip copies included): the site feeds and the index page
    /// always, then the tag feeds readers ask for, the least recently used going first.
    pub cache_bytes: u64,
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
            cache_bytes: 32 * 1024 * 1024,
        }
    }
}
