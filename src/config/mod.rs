//! Settings: one typed struct with defaults that run as shipped, read from `tidings.toml` and
//! overridden key by key by `TIDINGS_<SECTION>_<KEY>` environment variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use url::Url;

mod checks;
mod sections;

pub use sections::*;

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
    ("feeds.cache_bytes", Kind::Int),
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
    ("digest.instant_delay_seconds", Kind::Int),
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
    ("webhook_endpoints.timeout_seconds", Kind::Int),
    ("webhook_endpoints.retry_schedule", Kind::Str),
    ("webhook_endpoints.rotation_hours", Kind::Int),
    ("webhook_endpoints.disable_after_hours", Kind::Int),
    ("webhook_endpoints.allow_private", Kind::Bool),
    ("webhook_endpoints.concurrency", Kind::Int),
    ("webhook_endpoints.keep_days", Kind::Int),
    ("sources.min_interval_minutes", Kind::Int),
    ("sources.max_interval_minutes", Kind::Int),
    ("sources.per_host", Kind::Int),
    ("sources.timeout_seconds", Kind::Int),
    ("sources.max_bytes", Kind::Int),
    ("sources.max_entries", Kind::Int),
    ("sources.allow_private", Kind::List),
];

/// The type of a configuration value, so an environment variable can be read as the right TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Bool,
    /// A list of strings: a TOML array, or in the environment a comma-separated list.
    List,
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
    pub webhook_endpoints: WebhookEndpointsConfig,
    pub sources: SourcesConfig,
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
        Kind::List => Ok(toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        )),
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
