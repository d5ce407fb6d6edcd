//! The suppression list: addresses no email of any kind goes to. Hard bounces, complaints and
//! admins put an address here; only an admin lifts it, and lifting never subscribes anyone
//! again. Keyed by the lower-cased address and not tied to a subscriber row, so an entry
//! outlives `subscriber remove` and a re-import.

use crate::params;
use crate::store::{Db, Error, Row};
use chrono::{DateTime, Utc};

type Result<T, E = Error> = std::result::Result<T, E>;

use super::events::{self, Kind, NewEvent};
use super::flow::FlowError;
use super::{store, Status, SubscriberEmail};

/// Why an address is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The mailbox does not exist or is disabled (5.1.1 and friends).
    HardBounce,
    /// `mail.soft_bounce_limit` soft bounces within `mail.soft_bounce_days`.
    SoftBounces,
    /// `mail.bounce_limit` permanent failures in a row.
    Bounces,
    /// The recipient reported the mail as spam.
    Complaint,
    /// An admin added it (also: a suppression list imported from another tool).
    Admin,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::HardBounce => "hard_bounce",
            Reason::SoftBounces => "soft_bounces",
            Reason::Bounces => "bounces",
            Reason::Complaint => "complaint",
            Reason::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Reason, String> {
        Ok(match s.trim() {
            "hard_bounce" => Reason::HardBounce,
            "soft_bounces" => Reason::SoftBounces,
            "bounces" => Reason::Bounces,
            "complaint" => Reason::Complaint,
            "" | "admin" => Reason::Admin,
            other => {
                return Err(format!(
                    "'{}' is not one of hard_bounce, soft_bounces, bounces, complaint, admin",
                    other.chars().take(40).collect::<String>()
                ))
            }
        })
    }

    /// What a subscriber who is still on the list becomes.
    fn status(self) -> Status {
        match self {
            Reason::HardBounce | Reason::SoftBounces | Reason::Bounces => Status::Bounced,
            Reason::Complaint | Reason::Admin => Status::Unsubscribed,
        }
    }
}

/// One entry.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Suppression {
    pub email: String,
    pub reason: Reason,
    pub note: Option<String>,
    pub created_at: String,
    /// `created_at` to the microsecond: with the address, the key a page of the list ends at.
    #[serde(skip)]
    #[schema(ignore)]
    pub created_us: i64,
}

impl Suppression {
    /// Where a page that ends with this entry ends (the next page's `after`).
    pub fn cursor(&self) -> Cursor {
        Cursor {
            created_us: self.created_us,
            email: self.email.clone(),
        }
    }
}

/// A place in the suppression list, newest first: an entry's time and address. Written as
/// `MICROSECONDS.ADDRESS` in a page's `after=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_us: i64,
    pub email: String,
}

impl Cursor {
    /// A cursor from a page's `after=`; the error names the field.
    pub fn parse(raw: &str) -> Result<Cursor, String> {
        let bad = || {
            format!(
                "after: '{}' is not a place in the list (MICROSECONDS.ADDRESS)",
                raw.chars()
                    .take(80)
                    .filter(|c| !c.is_control())
                    .collect::<String>()
            )
        };
        let (us, email) = raw.split_once('.').ok_or_else(bad)?;
        let created_us = us.parse::<i64>().map_err(|_| bad())?;
        if email.is_empty() {
            return Err(bad());
        }
        Ok(Cursor {
            created_us,
            email: email.to_string(),
        })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.created_us, self.email)
    }
}

fn read(r: &Row) -> Result<Suppression> {
    let reason: String = r.get(1)?;
    let at: i64 = r.get(3)?;
    Ok(Suppression {
        email: r.get(0)?,
        reason: Reason::parse(&reason).map_err(|message| Error::Column { index: 1, message })?,
        note: r.get(2)?,
        created_at: DateTime::from_timestamp_micros(at)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        created_us: at,
    })
}

/// The key an address is suppressed under.
pub fn key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// The entry for `email`, if it is suppressed.
pub fn find(db: &Db, email: &str) -> Result<Option<Suppression>> {
    db.query_opt(
        "SELECT email, reason, note, created_us FROM suppressions WHERE email = ?1",
        params![key(email)],
        read,
    )
}

/// Entries after `after` (from the newest: `None`), newest first, at most `limit`: the
/// console's list, paged by key (`suppressions_created`), never by offset.
pub fn page(db: &Db, after: Option<&Cursor>, limit: usize) -> Result<Vec<Suppression>> {
    let (us, email) = match after {
        Some(c) => (c.created_us, c.email.as_str()),
        None => (i64::MAX, ""),
    };
    db.query_map(
        "SELECT email, reason, note, created_us FROM suppressions \
         WHERE (created_us, email) < (?1, ?2) ORDER BY created_us DESC, email DESC LIMIT ?3",
        params![us, email, limit as i64],
        read,
    )
}

/// How many addresses are suppressed, reading at most `at_most + 1` rows: `(n, true)` when
/// there are more than `at_most` (then `n` is `at_most`).
pub fn count_capped(db: &Db, at_most: u64) -> Result<(u64, bool)> {
    let n: i64 = db.query_row(
        "SELECT count(*) FROM (SELECT 1 FROM suppressions LIMIT ?1) AS s",
        params![(at_most + 1) as i64],
        |r| r.get(0),
    )?;
    let n = n.max(0) as u64;
    Ok((n.min(at_most), n > at_most))
}

/// How many addresses are suppressed.
pub fn count(db: &Db) -> Result<i64> {
    db.query_row("SELECT count(*) FROM suppressions", &[], |r| r.get(0))
}

pub fn list(db: &Db) -> Result<Vec<Suppression>> {
    db.query_map(
        "SELECT email, reason, note, created_us FROM suppressions ORDER BY email",
        &[],
        read,
    )
}

/// Suppresses `email` (call inside the caller's transaction). A subscriber who is pending or
/// confirmed becomes bounced or unsubscribed, by the reason. `false` if it already was
/// suppressed (the first reason is kept).
pub fn add(
    db: &Db,
    email: &SubscriberEmail,
    reason: Reason,
    note: Option<&str>,
    source: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let added = db.execute("INSERT INTO suppressions (email, reason, note, created_us) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING", params![
            key(email.as_str()),
            reason.as_str(),
            note,
            now.timestamp_micros()
        ])?
        == 1;
    let subscribers = store::find_all_cases(db, email.as_str())?;
    for s in &subscribers {
        if matches!(s.status, Status::Pending | Status::Confirmed) {
            store::set_status(db, s.id, reason.status(), now)?;
        }
    }
    if added {
        let mut event =
            NewEvent::new(email.as_str(), Kind::Suppressed, source).detail(reason.as_str());
        event.subscriber_id = subscribers.first().map(|s| s.id);
        events::record(db, &event, now)?;
    }
    Ok(added)
}

/// What `add_many` did, per subscriber.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddedMany {
    /// Subscribers whose address this call put on the list.
    pub added: usize,
    /// Subscribers whose address already was on it.
    pub already: usize,
    /// Ids that no longer exist.
    pub missing: usize,
}

/// Suppresses the addresses of the subscribers with these ids, as `add` does each one (in the
/// caller's transaction): an entry per address not yet on the list, with its event; every
/// spelling of the address that is pending or confirmed becomes bounced or unsubscribed.
pub fn add_many(
    db: &Db,
    ids: &[i64],
    reason: Reason,
    note: Option<&str>,
    source: &str,
    now: DateTime<Utc>,
) -> Result<AddedMany> {
    let found = store::emails_of(db, ids)?;
    let mut keys: Vec<String> = found.iter().map(|(_, e)| key(e)).collect();
    keys.sort();
    keys.dedup();
    const TYPES: [&str; 4] = ["TEXT", "TEXT", "TEXT", "BIGINT"];
    let (reason_text, created) = (reason.as_str(), now.timestamp_micros());
    let mut new_keys = std::collections::HashSet::new();
    for run in crate::store::sql::pow2_runs(&keys, 256) {
        let mut params: Vec<&dyn crate::store::Param> = Vec::with_capacity(run.len() * 4);
        for k in run {
            params.extend([k as &dyn crate::store::Param, &reason_text, &note, &created]);
        }
        db.query_each(
            &format!(
                "INSERT INTO suppressions (email, reason, note, created_us) VALUES {} \
                 ON CONFLICT DO NOTHING RETURNING email",
                crate::store::sql::values(run.len(), &TYPES)
            ),
            &params,
            |r| -> Result<()> {
                new_keys.insert(r.get::<String>(0)?);
                Ok(())
            },
        )?;
    }
    let found_ids: Vec<i64> = found.iter().map(|(id, _)| *id).collect();
    let first = store::first_of_address(db, &found_ids)?;
    store::stop_many(db, &found_ids, reason.status(), true, now)?;
    let mut outcome = AddedMany {
        missing: ids.len() - found.len(),
        ..AddedMany::default()
    };
    let mut events = Vec::new();
    let mut recorded = std::collections::HashSet::new();
    for (id, email) in &found {
        let k = key(email);
        if !new_keys.contains(&k) {
            outcome.already += 1;
            continue;
        }
        outcome.added += 1;
        if recorded.insert(k) {
            let mut event = NewEvent::new(email, Kind::Suppressed, source).detail(reason.as_str());
            event.subscriber_id = first.get(id).copied();
            events.push(event);
        }
    }
    events::record_many(db, &events, now)?;
    Ok(outcome)
}

/// Lifts the entry for `email`; a bounced subscriber becomes unsubscribed (never subscribed
/// again: only they can do that). `false` if it was not suppressed.
pub fn lift(db: &Db, email: &str, now: DateTime<Utc>) -> Result<bool> {
    let lifted = db.execute(
        "DELETE FROM suppressions WHERE email = ?1",
        params![key(email)],
    )? == 1;
    if !lifted {
        return Ok(false);
    }
    let subscribers = store::find_all_cases(db, email)?;
    for s in subscribers.iter().filter(|s| s.status == Status::Bounced) {
        store::set_status(db, s.id, Status::Unsubscribed, now)?;
    }
    let mut event = NewEvent::new(email, Kind::Lifted, "admin");
    event.subscriber_id = subscribers.first().map(|s| s.id);
    events::record(db, &event, now)?;
    Ok(true)
}

/// The error an admin sees when an import or API call would revive a suppressed address.
pub fn refusal(s: &Suppression) -> String {
    format!(
        "{} is suppressed ({}); lift it first with `tidings suppression remove` or DELETE /api/suppressions/{{email}}",
        s.email,
        s.reason.as_str()
    )
}

/// The CSV columns of `suppression export`; `import` needs `email` and reads `reason` and
/// `note` when present (other tools' exports often carry only the address).
pub const COLUMNS: [&str; 4] = ["email", "reason", "note", "created_at"];

/// What an import did: (line, problem) for each row refused.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub added: usize,
    pub already: usize,
    pub rejected: Vec<(u64, String)>,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} added, {} already suppressed, {} rejected",
            self.added,
            self.already,
            self.rejected.len()
        )
    }
}

/// Imports a suppression list (CSV with a header) in the caller's transaction: good rows are added,
/// bad ones reported by line. A header without `email`, or with a column not in `COLUMNS`, is
/// refused before anything changes.
pub fn import(db: &Db, bytes: &[u8]) -> Result<ImportReport, FlowError> {
    use crate::catalog::InputError;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| InputError::new("header", e.to_string()))?
        .clone();
    if let Some(bad) = headers.iter().find(|h| !COLUMNS.contains(h)) {
        return Err(InputError::new(
            "header",
            format!(
                "unknown column '{}'; expected email,reason,note",
                bad.chars().take(40).collect::<String>()
            ),
        )
        .into());
    }
    let column = |name: &str| headers.iter().position(|h| h == name);
    let Some(email_at) = column("email") else {
        return Err(InputError::new("header", "needs an email column").into());
    };
    let (reason_at, note_at) = (column("reason"), column("note"));
    let now = Utc::now();
    let mut report = ImportReport::default();
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                report.rejected.push((line, e.to_string()));
                continue;
            }
        };
        let field = |at: Option<usize>| at.and_then(|i| record.get(i)).unwrap_or("");
        let email = match SubscriberEmail::parse(field(Some(email_at))) {
            Ok(e) => e,
            Err(p) => {
                report.rejected.push((line, format!("email: {p}")));
                continue;
            }
        };
        let reason = match Reason::parse(field(reason_at)) {
            Ok(r) => r,
            Err(p) => {
                report.rejected.push((line, format!("reason: {p}")));
                continue;
            }
        };
        let note = Some(field(note_at)).filter(|n| !n.is_empty());
        if add(db, &email, reason, note, "admin", now)? {
            report.added += 1;
        } else {
            report.already += 1;
        }
    }
    Ok(report)
}

/// Writes the list as CSV (`COLUMNS`).
pub fn export(db: &Db, out: impl std::io::Write) -> anyhow::Result<usize> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(COLUMNS)?;
    let all = list(db)?;
    for s in &all {
        writer.write_record([
            s.email.as_str(),
            s.reason.as_str(),
            s.note.as_deref().unwrap_or(""),
            &s.created_at,
        ])?;
    }
    writer.flush()?;
    Ok(all.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    /// Newest first, two entries at the same moment in address order, and the next page starts
    /// right after the last one shown, whatever was added meanwhile at the top.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_list_pages_by_key_newest_first() {
        for (s, _dir) in crate::store::tests::both().await {
            let (first, second, bad) = s
                .write(|db| -> Result<_> {
                    let t = |h: u32| {
                        Utc.with_ymd_and_hms(2026, 3, 1, h, 0, 0)
                            .single()
                            .expect("t")
                    };
                    for (address, h) in [
                        ("a@x.example", 1),
                        ("b@x.example", 2),
                        ("c@x.example", 2),
                        ("d@x.example", 3),
                    ] {
                        let e = SubscriberEmail::parse(address).expect("email");
                        add(db, &e, Reason::Admin, None, "admin", t(h))?;
                    }
                    let first = page(db, None, 2)?;
                    let cursor = Cursor::parse(&first[1].cursor().to_string()).expect("cursor");
                    let e = SubscriberEmail::parse("z@x.example").expect("email");
                    add(db, &e, Reason::Admin, None, "admin", t(4))?;
                    Ok((
                        first,
                        page(db, Some(&cursor), 10)?,
                        Cursor::parse("soon.a@x.example"),
                    ))
                })
                .await
                .expect("pages");
            let emails = |p: &[Suppression]| p.iter().map(|s| s.email.clone()).collect::<Vec<_>>();
            assert_eq!(emails(&first), ["d@x.example", "c@x.example"]);
            assert_eq!(emails(&second), ["b@x.example", "a@x.example"]);
            assert!(bad.expect_err("not a cursor").starts_with("after: "));
        }
    }
}
