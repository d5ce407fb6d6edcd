//! Subscribers: who gets digests, about which tags, how often and in which time zone; their
//! single-purpose tokens; and the double opt-in, preference and unsubscribe flows.

pub mod bulk;
pub mod csv;
pub mod events;
pub mod flow;
pub mod search;
pub mod store;
pub mod suppressions;
pub mod tokens;

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// An email address, parsed once at the edge: no spaces or control characters (so it can never
/// inject a header), domain lower-cased, local part kept as given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriberEmail(lettre::Address);

impl SubscriberEmail {
    pub fn parse(raw: &str) -> Result<SubscriberEmail, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("is required".into());
        }
        if s.len() > 254 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!("'{}' is not an email address", shown(s)));
        }
        let address = lettre::Address::from_str(s)
            .map_err(|_| format!("'{}' is not an email address", shown(s)))?;
        if !address.domain().contains('.') && address.domain() != "localhost" {
            return Err(format!("'{}' has no domain like example.com", shown(s)));
        }
        let normalised = format!("{}@{}", address.user(), address.domain().to_lowercase());
        lettre::Address::from_str(&normalised)
            .map(SubscriberEmail)
            .map_err(|_| format!("'{}' is not an email address", shown(s)))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }

    pub fn address(&self) -> &lettre::Address {
        &self.0
    }
}

fn shown(s: &str) -> String {
    s.chars().take(80).filter(|c| !c.is_control()).collect()
}

impl std::fmt::Display for SubscriberEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Confirmed,
    Unsubscribed,
    Bounced,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Confirmed => "confirmed",
            Status::Unsubscribed => "unsubscribed",
            Status::Bounced => "bounced",
        }
    }

    pub fn parse(s: &str) -> Result<Status, String> {
        match s.trim() {
            "pending" => Ok(Status::Pending),
            "confirmed" => Ok(Status::Confirmed),
            "unsubscribed" => Ok(Status::Unsubscribed),
            "bounced" => Ok(Status::Bounced),
            other => Err(format!(
                "'{}' must be pending, confirmed, unsubscribed or bounced",
                shown(other)
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Cadence {
    Daily,
    Weekly,
    /// A digest `digest.instant_delay_seconds` after the first article new to them.
    Instant,
}

impl Cadence {
    pub fn as_str(self) -> &'static str {
        match self {
            Cadence::Daily => "daily",
            Cadence::Weekly => "weekly",
            Cadence::Instant => "instant",
        }
    }

    pub fn parse(s: &str) -> Result<Cadence, String> {
        match s.trim() {
            "daily" => Ok(Cadence::Daily),
            "weekly" => Ok(Cadence::Weekly),
            "instant" => Ok(Cadence::Instant),
            other => Err(format!(
                "'{}' must be daily, weekly or instant",
                shown(other)
            )),
        }
    }
}

/// An IANA time zone name, checked against the tz database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZone(pub chrono_tz::Tz);

impl TimeZone {
    pub fn parse(s: &str) -> Result<TimeZone, String> {
        s.trim()
            .parse::<chrono_tz::Tz>()
            .map(TimeZone)
            .map_err(|_| {
                format!(
                    "'{}' is not an IANA time zone (e.g. Europe/Paris)",
                    shown(s)
                )
            })
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

/// A tag's slug as subscribers choose it (the document's name for its rule).
pub struct TagSlug;

impl utoipa::PartialSchema for TagSlug {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .max_length(Some(200))
            .pattern(Some(r"^\s*[a-z0-9-]*\s*$"))
            .into()
    }
}

impl utoipa::ToSchema for TagSlug {}

/// An IANA time zone name, for the document: one of the names the tz database knows.
pub struct TimeZoneName;

impl utoipa::PartialSchema for TimeZoneName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(chrono_tz::TZ_VARIANTS.iter().map(|z| z.name())))
            .into()
    }
}

impl utoipa::ToSchema for TimeZoneName {}

/// What a subscriber chose: tags (slugs; empty = every tag), cadence and time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preferences {
    pub tags: Vec<String>,
    pub cadence: Cadence,
    pub time_zone: TimeZone,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Subscriber {
    pub id: i64,
    pub email: SubscriberEmail,
    pub status: Status,
    pub preferences: Preferences,
    pub created_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub unsubscribed_at: Option<DateTime<Utc>>,
    pub welcomed_at: Option<DateTime<Utc>>,
}

/// The JSON shape in the admin API.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Subscriber)]
pub struct SubscriberView {
    pub email: String,
    pub status: Status,
    pub tags: Vec<String>,
    pub cadence: Cadence,
    pub time_zone: &'static str,
    pub created_at: String,
    pub confirmed_at: Option<String>,
    pub unsubscribed_at: Option<String>,
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Subscriber {
    pub fn view(&self) -> SubscriberView {
        SubscriberView {
            email: self.email.to_string(),
            status: self.status,
            tags: self.preferences.tags.clone(),
            cadence: self.preferences.cadence,
            time_zone: self.preferences.time_zone.name(),
            created_at: time(&self.created_at),
            confirmed_at: self.confirmed_at.as_ref().map(time),
            unsubscribed_at: self.unsubscribed_at.as_ref().map(time),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_parsed_once_with_the_domain_lower_cased() {
        let e = SubscriberEmail::parse("  Ada.Lovelace@Example.COM ").expect("valid");
        assert_eq!(e.as_str(), "Ada.Lovelace@example.com");
        for bad in [
            "",
            "no-at-sign",
            "a@b",
            "a b@example.com",
            "x@example.com\r\nBcc: victim@example.com",
            "<script>@example.com",
        ] {
            assert!(SubscriberEmail::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cadence_status_and_time_zone_parse() {
        assert_eq!(Cadence::parse("weekly"), Ok(Cadence::Weekly));
        assert_eq!(Cadence::parse(" instant "), Ok(Cadence::Instant));
        assert_eq!(Cadence::Instant.as_str(), "instant");
        assert!(Cadence::parse("hourly").is_err());
        assert_eq!(Status::parse("confirmed"), Ok(Status::Confirmed));
        assert_eq!(
            TimeZone::parse("Europe/Paris").map(|t| t.name()),
            Ok("Europe/Paris")
        );
        assert!(TimeZone::parse("Mars/Olympus").is_err());
    }
}
