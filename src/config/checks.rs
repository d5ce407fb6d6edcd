//! Every setting checked once, when the file is read: an error names the key the user wrote.

use std::path::PathBuf;

use url::Url;

use super::{Config, ConfigError};

impl Config {
    pub(super) fn checked(mut self) -> Result<Config, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_string(),
            message,
        };
        self.bind_addr()
            .map_err(|m| invalid("server.bind", m.to_string()))?;
        if let Some(url) = self
            .database
            .url
            .as_ref()
            .map(|u| u.expose().to_string())
            .filter(|u| !u.trim().is_empty())
        {
            if self.database.path_set {
                return Err(invalid(
                    "database.url",
                    "set either database.url or database.path (TIDINGS_DATABASE_URL or TIDINGS_DATABASE_PATH), not both".into(),
                ));
            }
            if let Some(path) = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
            {
                if path.is_empty() {
                    return Err(invalid(
                        "database.url",
                        "sqlite: needs a file path, e.g. sqlite:data/tidings.db".into(),
                    ));
                }
                self.database.path = PathBuf::from(path);
            } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                if let Err(message) = crate::store::postgres::Target::parse(&url) {
                    return Err(invalid("database.url", message));
                }
            } else {
                return Err(invalid(
                    "database.url",
                    "must start with sqlite: or postgres://".into(),
                ));
            }
        } else {
            self.database.url = None;
        }
        if self.server.max_connections == 0 {
            return Err(invalid(
                "server.max_connections",
                "must be at least 1".into(),
            ));
        }
        if !(1..=3600).contains(&self.server.shutdown_seconds) {
            return Err(invalid(
                "server.shutdown_seconds",
                format!("{} is out of range 1..=3600", self.server.shutdown_seconds),
            ));
        }
        if !(1..=3600).contains(&self.server.body_timeout_seconds) {
            return Err(invalid(
                "server.body_timeout_seconds",
                format!(
                    "{} is out of range 1..=3600",
                    self.server.body_timeout_seconds
                ),
            ));
        }
        if !(1..=1000).contains(&self.database.pool_size) {
            return Err(invalid(
                "database.pool_size",
                format!("{} is out of range 1..=1000", self.database.pool_size),
            ));
        }
        let base = Url::parse(&self.site.base_url).map_err(|e| {
            invalid(
                "site.base_url",
                format!("'{}' is not an absolute URL: {e}", self.site.base_url),
            )
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid(
                "site.base_url",
                "must start with http:// or https://".into(),
            ));
        }
        self.site.base_url = self.site.base_url.trim_end_matches('/').to_string();
        // Names that end up in feed titles and mail headers stay on one line.
        for text in [
            &mut self.site.title,
            &mut self.site.author,
            &mut self.site.description,
        ] {
            *text = crate::catalog::input::one_line(text);
        }
        if self.site.title.trim().is_empty() {
            return Err(invalid("site.title", "must not be empty".into()));
        }
        if !(1..=1000).contains(&self.feeds.items) {
            return Err(invalid(
                "feeds.items",
                format!("{} is out of range 1..=1000", self.feeds.items),
            ));
        }
        if self.feeds.cache_bytes > 1 << 40 {
            return Err(invalid(
                "feeds.cache_bytes",
                format!("{} is more than 1 TiB", self.feeds.cache_bytes),
            ));
        }
        if let Some(hub) = &self.feeds.websub_hub {
            if hub.is_empty() {
                self.feeds.websub_hub = None;
            } else if Url::parse(hub).is_err() {
                return Err(invalid(
                    "feeds.websub_hub",
                    format!("'{hub}' is not an absolute URL"),
                ));
            }
        }
        if !matches!(self.mail.tls.as_str(), "auto" | "none" | "starttls" | "tls") {
            return Err(invalid(
                "mail.tls",
                format!("'{}' must be auto, none, starttls or tls", self.mail.tls),
            ));
        }
        crate::subscribers::Cadence::parse(&self.subscribers.default_cadence)
            .map_err(|m| invalid("subscribers.default_cadence", m))?;
        if self
            .subscribers
            .default_time_zone
            .parse::<chrono_tz::Tz>()
            .is_err()
        {
            return Err(invalid(
                "subscribers.default_time_zone",
                format!(
                    "'{}' is not an IANA time zone (e.g. Europe/Paris)",
                    self.subscribers.default_time_zone
                ),
            ));
        }
        if !(1..=i64::MAX as u64).contains(&self.audience.max_reported) {
            return Err(invalid(
                "audience.max_reported",
                format!(
                    "{} is out of range 1..={}",
                    self.audience.max_reported,
                    i64::MAX
                ),
            ));
        }
        let hooks = &self.webhook_endpoints;
        for (key, value, range) in [
            (
                "webhook_endpoints.timeout_seconds",
                hooks.timeout_seconds,
                1..=300,
            ),
            (
                "webhook_endpoints.rotation_hours",
                hooks.rotation_hours,
                0..=8760,
            ),
            (
                "webhook_endpoints.disable_after_hours",
                hooks.disable_after_hours,
                1..=8760,
            ),
            ("webhook_endpoints.concurrency", hooks.concurrency, 1..=1000),
            ("webhook_endpoints.keep_days", hooks.keep_days, 1..=3650),
        ] {
            if !range.contains(&value) {
                return Err(invalid(
                    key,
                    format!(
                        "{value} is out of range {}..={}",
                        range.start(),
                        range.end()
                    ),
                ));
            }
        }
        let sources = &self.sources;
        for (key, value, range) in [
            (
                "sources.min_interval_minutes",
                u64::from(sources.min_interval_minutes),
                1..=10_080,
            ),
            (
                "sources.max_interval_minutes",
                u64::from(sources.max_interval_minutes),
                u64::from(sources.min_interval_minutes.max(1))..=43_200,
            ),
            ("sources.per_host", u64::from(sources.per_host), 1..=64),
            (
                "sources.timeout_seconds",
                u64::from(sources.timeout_seconds),
                1..=600,
            ),
            ("sources.max_bytes", sources.max_bytes, 1024..=1 << 30),
            (
                "sources.max_entries",
                u64::from(sources.max_entries),
                1..=100_000,
            ),
        ] {
            if !range.contains(&value) {
                return Err(invalid(
                    key,
                    format!(
                        "{value} is out of range {}..={}",
                        range.start(),
                        range.end()
                    ),
                ));
            }
        }
        crate::sources::guard::Allowed::parse(&sources.allow_private)
            .map_err(|m| invalid("sources.allow_private", m))?;
        crate::webhook_endpoints::RetrySchedule::parse(&hooks.retry_schedule)
            .map_err(|m| invalid("webhook_endpoints.retry_schedule", m))?;
        if self.subscribers.ip_rate_per_minute == 0 || self.subscribers.address_rate_per_hour == 0 {
            return Err(invalid(
                "subscribers.ip_rate_per_minute",
                "rate limits must be at least 1".into(),
            ));
        }
        for field in [
            &mut self.mail.password,
            &mut self.admin.token,
            &mut self.webhooks.postmark.password,
            &mut self.webhooks.mailgun.signing_key,
        ] {
            if field.as_ref().is_some_and(|v| v.expose().trim().is_empty()) {
                *field = None;
            }
        }
        for field in [
            &mut self.mail.username,
            &mut self.mail.list_id,
            &mut self.mail.unsubscribe_mailto,
            &mut self.mail.return_path,
            &mut self.mail.inbound.bind,
            &mut self.webhooks.ses.topic_arn,
            &mut self.webhooks.postmark.username,
            &mut self.webhooks.sendgrid.public_key,
            &mut self.mail.dkim.selector,
            &mut self.mail.dkim.domain,
        ] {
            if field.as_deref().is_some_and(|v| v.trim().is_empty()) {
                *field = None;
            }
        }
        if self
            .mail
            .dkim
            .private_key
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            self.mail.dkim.private_key = None;
        }
        crate::schedule::Cron::parse(&self.digest.schedule)
            .map_err(|m| invalid("digest.schedule", m))?;
        if self.digest.time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(invalid(
                "digest.time_zone",
                format!("'{}' is not an IANA time zone", self.digest.time_zone),
            ));
        }
        if self.digest.send_hour > 23 {
            return Err(invalid("digest.send_hour", "must be 0-23".into()));
        }
        crate::digest::due::parse_weekday(&self.digest.weekly_day)
            .map_err(|m| invalid("digest.weekly_day", m))?;
        if self.digest.max_attempts == 0 || self.digest.concurrency == 0 {
            return Err(invalid(
                "digest.max_attempts",
                "max_attempts and concurrency must be at least 1".into(),
            ));
        }
        if self.digest.instant_delay_seconds > 86_400 {
            return Err(invalid(
                "digest.instant_delay_seconds",
                format!(
                    "{} is out of range 0..=86400",
                    self.digest.instant_delay_seconds
                ),
            ));
        }
        if !(5..=86_400).contains(&self.digest.lease_seconds) {
            return Err(invalid(
                "digest.lease_seconds",
                format!("{} is out of range 5..=86400", self.digest.lease_seconds),
            ));
        }
        if self
            .mail
            .tls_ca_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            self.mail.tls_ca_file = None;
        }
        let dkim = &self.mail.dkim;
        let set = [
            dkim.selector.is_some(),
            dkim.domain.is_some(),
            dkim.private_key.is_some(),
        ];
        if set.iter().any(|s| *s) && !set.iter().all(|s| *s) {
            return Err(invalid(
                "mail.dkim",
                "set all of selector, domain and private_key, or none".into(),
            ));
        }
        if self
            .webhooks
            .ses
            .signing_cert
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            self.webhooks.ses.signing_cert = None;
        }
        let postmark = &self.webhooks.postmark;
        if postmark.username.is_some() != postmark.password.is_some() {
            return Err(invalid(
                "webhooks.postmark.username",
                "set both webhooks.postmark.username and webhooks.postmark.password, or neither"
                    .into(),
            ));
        }
        if self.webhooks.ses.signing_cert.is_some() && self.webhooks.ses.topic_arn.is_none() {
            return Err(invalid(
                "webhooks.ses.topic_arn",
                "is required for the SES webhook (only that topic's notifications are accepted)"
                    .into(),
            ));
        }
        if self.mail.inbound.bind.is_some() && self.mail.return_path.is_none() {
            return Err(invalid(
                "mail.return_path",
                "is required when mail.inbound.bind is set: bounces come back to it \
                 (e.g. return_path = \"bounces@blog.example.org\")"
                    .into(),
            ));
        }
        if self.mail.inbound.max_message_bytes < 1024 {
            return Err(invalid(
                "mail.inbound.max_message_bytes",
                "must be at least 1024".into(),
            ));
        }
        if self.mail.inbound.max_connections == 0 || self.mail.inbound.max_connections_per_ip == 0 {
            return Err(invalid(
                "mail.inbound.max_connections",
                "connection caps must be at least 1".into(),
            ));
        }
        if self.mail.soft_bounce_limit == 0 || self.mail.soft_bounce_days == 0 {
            return Err(invalid(
                "mail.soft_bounce_limit",
                "soft_bounce_limit and soft_bounce_days must be at least 1".into(),
            ));
        }
        if !(1..=10_080).contains(&self.admin.session_idle_minutes) {
            return Err(invalid(
                "admin.session_idle_minutes",
                format!(
                    "{} is out of range 1..=10080 (a week)",
                    self.admin.session_idle_minutes
                ),
            ));
        }
        if !(1..=720).contains(&self.admin.session_max_hours) {
            return Err(invalid(
                "admin.session_max_hours",
                format!(
                    "{} is out of range 1..=720 (30 days)",
                    self.admin.session_max_hours
                ),
            ));
        }
        if let Some(token) = &self.admin.token {
            if token.expose().is_empty() {
                self.admin.token = None;
            } else if token.expose().len() < 16 {
                return Err(invalid(
                    "admin.token",
                    "must be at least 16 characters (try: openssl rand -hex 32)".into(),
                ));
            }
        }
        Ok(self)
    }
}
