//! Moving a list in and out: CSV with the header `email,tags,cadence,time_zone,status` (tags as
//! slugs separated by `;`; only `email` required). Bad rows are reported by line number, good
//! ones imported; re-running changes nothing.

use crate::store::Db;
use chrono::Utc;

use super::flow::{check_tags, FlowError};
use super::{store, Cadence, Preferences, Status, SubscriberEmail, TimeZone};
use crate::config::Config;

#[derive(Debug, Default)]
pub struct Report {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// (line, problem)
    pub rejected: Vec<(u64, String)>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} new, {} updated, {} unchanged, {} rejected",
            self.created,
            self.updated,
            self.unchanged,
            self.rejected.len()
        )
    }
}

/// One subscriber as an admin describes it (CSV row, API body, CLI flags).
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SubscriberInput)]
pub struct SubscriberJson {
    #[schema(required = true, nullable = false, format = Email)]
    pub email: Option<String>,
    /// `pending` for a new address unless given.
    #[schema(value_type = Option<super::Status>)]
    pub status: Option<String>,
    /// Slugs of this site's tags; none means every tag.
    #[schema(value_type = Option<Vec<super::TagSlug>>)]
    pub tags: Option<Vec<String>>,
    #[schema(value_type = Option<super::Cadence>)]
    pub cadence: Option<String>,
    /// An IANA time zone name.
    #[schema(value_type = Option<super::TimeZoneName>)]
    pub time_zone: Option<String>,
}

/// What an admin upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
    Unchanged,
}

/// Where an admin's subscriber came from, as their `subscribed` and `confirmed` events say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminSource {
    /// `POST /api/subscribers`.
    Api,
    /// A CSV import (`tidings subscriber import`).
    Csv,
    /// `tidings subscriber add`.
    Cli,
}

impl AdminSource {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminSource::Api => "api",
            AdminSource::Csv => "csv",
            AdminSource::Cli => "cli",
        }
    }
}

/// Adds or updates a subscriber for an admin (API, CLI, CSV). `default_status` applies to new
/// subscribers given no status. An unsubscribed or bounced subscriber is never re-activated here:
/// only they can subscribe again. A new pending or confirmed subscriber is recorded as
/// `subscribed` from `source`, and one who becomes confirmed here as `confirmed` from it.
pub fn admin_upsert(
    db: &Db,
    config: &Config,
    raw: SubscriberJson,
    default_status: Status,
    source: AdminSource,
) -> Result<(Upserted, super::Subscriber), FlowError> {
    use super::events::{self, Kind, NewEvent};
    use crate::catalog::InputError;
    let field = |f: &'static str| move |p: String| FlowError::Input(InputError::new(f, p));
    let email =
        SubscriberEmail::parse(raw.email.as_deref().unwrap_or("")).map_err(field("email"))?;
    let status = raw
        .status
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(Status::parse)
        .transpose()
        .map_err(field("status"))?;
    let cadence = raw
        .cadence
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(Cadence::parse)
        .transpose()
        .map_err(field("cadence"))?;
    let time_zone = raw
        .time_zone
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(TimeZone::parse)
        .transpose()
        .map_err(field("time_zone"))?;
    // Every refusal below comes before the first write, so a refused row changes nothing in the
    // caller's transaction. No per-address lock here: an import of 100,000 rows in one
    // transaction would hold 100,000 of them (PostgreSQL's lock table is finite); the unique
    // address is what keeps two writers from adding one subscriber twice.
    let tx = db;
    let tags = raw.tags.map(|t| check_tags(tx, &t)).transpose()?;
    let now = Utc::now();
    let existing = store::find(tx, &email)?;
    // Nothing revives a suppressed address silently: an admin lifts it first.
    let resulting = status.unwrap_or(match &existing {
        Some(s) => s.status,
        None => default_status,
    });
    if matches!(resulting, Status::Pending | Status::Confirmed) {
        if let Some(s) = super::suppressions::find(tx, email.as_str())? {
            return Err(InputError::new("email", super::suppressions::refusal(&s)).into());
        }
    }
    let outcome = match existing {
        None => {
            let prefs = Preferences {
                tags: tags.unwrap_or_default(),
                cadence: cadence.unwrap_or(
                    Cadence::parse(&config.subscribers.default_cadence).unwrap_or(Cadence::Daily),
                ),
                time_zone: time_zone.unwrap_or(
                    TimeZone::parse(&config.subscribers.default_time_zone)
                        .unwrap_or(TimeZone(chrono_tz::UTC)),
                ),
            };
            let status = status.unwrap_or(default_status);
            let id = store::insert(tx, &email, &prefs, status, now)?;
            if status == Status::Unsubscribed {
                store::set_status(tx, id, status, now)?;
            }
            if matches!(status, Status::Pending | Status::Confirmed) {
                let asked = NewEvent::new(email.as_str(), Kind::Subscribed, source.as_str());
                events::record(tx, &asked.subscriber(id), now)?;
            }
            if status == Status::Confirmed {
                let confirmed = NewEvent::new(email.as_str(), Kind::Confirmed, source.as_str());
                events::record(tx, &confirmed.subscriber(id), now)?;
            }
            Upserted::Created
        }
        Some(existing) => {
            if let Some(wanted) = status {
                if matches!(existing.status, Status::Unsubscribed | Status::Bounced)
                    && matches!(wanted, Status::Confirmed | Status::Pending)
                {
                    return Err(InputError::new(
                        "status",
                        format!(
                            "{email} is {}; only they can subscribe again",
                            existing.status.as_str()
                        ),
                    )
                    .into());
                }
            }
            let prefs = Preferences {
                tags: tags.unwrap_or_else(|| existing.preferences.tags.clone()),
                cadence: cadence.unwrap_or(existing.preferences.cadence),
                time_zone: time_zone.unwrap_or(existing.preferences.time_zone),
            };
            let new_status = status.unwrap_or(existing.status);
            if prefs == existing.preferences && new_status == existing.status {
                Upserted::Unchanged
            } else {
                store::set_preferences(tx, existing.id, &prefs)?;
                if new_status != existing.status {
                    store::set_status(tx, existing.id, new_status, now)?;
                    let email = existing.email.as_str();
                    if new_status == Status::Confirmed {
                        let confirmed = NewEvent::new(email, Kind::Confirmed, source.as_str());
                        events::record(tx, &confirmed.subscriber(existing.id), now)?;
                    }
                    if new_status == Status::Unsubscribed {
                        let event = NewEvent::new(email, Kind::Unsubscribe, "admin")
                            .subscriber(existing.id);
                        events::record(tx, &event, now)?;
                        crate::metrics::unsubscribed("admin");
                    }
                }
                Upserted::Updated
            }
        }
    };
    let subscriber = store::find(tx, &email)?
        .ok_or_else(|| FlowError::Internal("subscriber vanished".into()))?;
    Ok((outcome, subscriber))
}

/// Imports a CSV file's rows, in the caller's transaction (new rows default to `confirmed`: the list comes from another
/// service that already confirmed them).
/// The columns `export` writes; `import` reads the first five and ignores the last two.
const COLUMNS: [&str; 7] = [
    "email",
    "tags",
    "cadence",
    "time_zone",
    "status",
    "created_at",
    "confirmed_at",
];

pub fn import(db: &Db, config: &Config, bytes: &[u8]) -> Result<Report, FlowError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| FlowError::Input(crate::catalog::InputError::new("header", e.to_string())))?
        .clone();
    // Export's own columns are accepted (`created_at` and `confirmed_at` ignored), so that an
    // export imports as it is.
    if let Some(bad) = headers.iter().find(|h| !COLUMNS.contains(h)) {
        return Err(crate::catalog::InputError::new(
            "header",
            format!("unknown column '{bad}'; expected email,tags,cadence,time_zone,status"),
        )
        .into());
    }
    if !headers.iter().any(|h| h == "email") {
        return Err(crate::catalog::InputError::new("header", "needs an email column").into());
    }
    let mut report = Report::default();
    for (i, record) in reader.records().enumerate() {
        let line = record
            .as_ref()
            .ok()
            .and_then(|r| r.position().map(|p| p.line()))
            .unwrap_or(i as u64 + 2);
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                report.rejected.push((line, e.to_string()));
                continue;
            }
        };
        let get = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .and_then(|i| record.get(i))
                .map(str::to_string)
        };
        let raw = SubscriberJson {
            email: get("email"),
            status: get("status"),
            tags: get("tags").map(|t| {
                t.split(';')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            }),
            cadence: get("cadence"),
            time_zone: get("time_zone"),
        };
        match admin_upsert(db, config, raw, Status::Confirmed, AdminSource::Csv) {
            Ok((Upserted::Created, _)) => report.created += 1,
            Ok((Upserted::Updated, _)) => report.updated += 1,
            Ok((Upserted::Unchanged, _)) => report.unchanged += 1,
            Err(FlowError::Input(e)) => report.rejected.push((line, e.to_string())),
            Err(e) => return Err(e),
        }
    }
    // The search index, in a few statements for the whole file rather than one per row.
    super::search::sync(db)?;
    Ok(report)
}

/// Every subscriber as CSV, in the import format plus `created_at` and `confirmed_at`.
pub fn export(db: &Db, out: impl std::io::Write) -> Result<usize, FlowError> {
    let mut writer = csv::Writer::from_writer(out);
    export_header(&mut writer)?;
    let all = store::list(db, None)?;
    for s in &all {
        export_row(&mut writer, s)?;
    }
    writer
        .flush()
        .map_err(|e| FlowError::Internal(e.to_string()))?;
    Ok(all.len())
}

fn csv_error(e: csv::Error) -> FlowError {
    FlowError::Internal(e.to_string())
}

/// The header line `export` starts with.
pub fn export_header<W: std::io::Write>(writer: &mut csv::Writer<W>) -> Result<(), FlowError> {
    writer.write_record(COLUMNS).map_err(csv_error)
}

/// The subscribers with these ids (those that still exist), in that order, as `export` writes
/// them, after a header from `export_header` (a bulk export writes a batch at a time); how many.
pub fn export_ids<W: std::io::Write>(
    db: &Db,
    ids: &[i64],
    writer: &mut csv::Writer<W>,
) -> Result<usize, FlowError> {
    let mut found = store::get_many(db, ids)?;
    let mut written = 0;
    for id in ids {
        if let Some(s) = found.remove(id) {
            export_row(writer, &s)?;
            written += 1;
        }
    }
    Ok(written)
}

fn export_row<W: std::io::Write>(
    writer: &mut csv::Writer<W>,
    s: &super::Subscriber,
) -> Result<(), FlowError> {
    let v = s.view();
    writer
        .write_record([
            v.email.as_str(),
            &v.tags.join(";"),
            v.cadence.as_str(),
            v.time_zone,
            v.status.as_str(),
            &v.created_at,
            v.confirmed_at.as_deref().unwrap_or(""),
        ])
        .map_err(csv_error)
}
