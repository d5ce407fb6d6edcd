//! The audience as admins see it (API, CLI, and later the console): per feed, each service's
//! latest reported count (suspect ones flagged), the readers told apart each day, and the 7-day
//! figure; and the same summed over the site.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use serde::Serialize;

use super::store::{self, DayRow, ReportRow};
use crate::store::{Db, Error};

/// Days the 7-day figure averages over.
pub const MEAN_DAYS: i64 = 7;

/// Days a report shows unless asked otherwise, and at most.
pub const DEFAULT_DAYS: i64 = 30;
pub const MAX_DAYS: i64 = 365;

/// `days` as a user wrote it (query or command line): a whole number in 1..=365.
pub fn parse_days(raw: &str) -> Result<i64, String> {
    match raw.trim().parse::<i64>() {
        Ok(n) if (1..=MAX_DAYS).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{raw}' must be a whole number of days from 1 to {MAX_DAYS}"
        )),
    }
}

/// Everything `GET /api/audience` and `tidings audience` show.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AudienceReport {
    /// `audience.enabled`: whether this node counts (the figures may come from others).
    pub enabled: bool,
    /// `audience.max_reported`: reported counts above it are suspect.
    pub max_reported: u64,
    pub today: NaiveDate,
    /// The first day anything was counted.
    pub since: Option<NaiveDate>,
    /// The days the 7-day figure averages over (see `mean_window`).
    pub mean_days: Vec<NaiveDate>,
    pub site: SiteAudience,
    /// Busiest first.
    pub feeds: Vec<FeedAudience>,
}

/// The whole site: every feed's figures added up.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SiteAudience {
    /// The mean of the daily totals over `mean_days`.
    pub readers_7d: f64,
    /// Oldest first, one per day of the report (days with nothing counted are zeros).
    pub days: Vec<DayFigures>,
    /// Reports above `max_reported` in the report's days.
    pub suspect_reports: usize,
}

/// One feed.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FeedAudience {
    /// Its URL path: `/feed.xml`, `/tags/ai/atom.xml`.
    pub feed: String,
    pub readers_7d: f64,
    /// Each (service, feed id)'s count on the last day it reported in the report's days; suspect
    /// ones apart, flagged. Largest first.
    pub services: Vec<ServiceCount>,
    /// Oldest first, one per day of the report.
    pub days: Vec<DayFigures>,
}

/// A hosted reader's count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ServiceCount {
    pub service: String,
    /// The service's id for the feed, "" when it gives none.
    pub feed_id: String,
    pub subscribers: u64,
    /// Above `audience.max_reported`: shown, never added.
    pub suspect: bool,
    /// The day of this count.
    pub day: NaiveDate,
}

/// One day's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DayFigures {
    pub day: NaiveDate,
    /// The sum of the services' latest counts that day, suspect ones left out.
    pub reported: u64,
    /// Distinct (client address, User-Agent) pairs of other readers.
    pub uniques: u64,
    /// Requests of readers that could not be told apart (past a node's in-memory cap): at most
    /// this many more readers.
    pub overflow: u64,
    /// `reported + uniques`.
    pub total: u64,
}

/// The date of a day number.
pub fn date(day: i64) -> NaiveDate {
    chrono::DateTime::UNIX_EPOCH.date_naive() + chrono::Days::new(u64::try_from(day).unwrap_or(0))
}

/// The days the 7-day figure averages: the 7 whole days before `today` from the first day
/// counted on; on the first day, `today` alone (so a new site sees a figure at once).
pub fn mean_window(today: i64, since: Option<i64>) -> Vec<i64> {
    let since = since.unwrap_or(today);
    let days: Vec<i64> = (today - MEAN_DAYS..today).filter(|d| *d >= since).collect();
    if days.is_empty() {
        vec![today]
    } else {
        days
    }
}

/// Reads the report of the `days` days up to `today` (1..=`MAX_DAYS`).
pub fn read(
    db: &Db,
    today: i64,
    days: i64,
    enabled: bool,
    max_reported: u64,
) -> Result<AudienceReport, Error> {
    let days = days.clamp(1, MAX_DAYS);
    let from = (today - days + 1).min(today - MEAN_DAYS);
    let since = store::first_day(db)?;
    let rows = store::day_rows(db, from)?;
    let reports = store::report_rows(db, from)?;
    Ok(build(
        Inputs {
            today,
            days,
            since,
            enabled,
            max_reported,
        },
        &rows,
        &reports,
    ))
}

/// What `build` needs besides the rows.
#[derive(Debug, Clone, Copy)]
pub struct Inputs {
    pub today: i64,
    pub days: i64,
    pub since: Option<i64>,
    pub enabled: bool,
    pub max_reported: u64,
}

#[derive(Default, Clone, Copy)]
struct Day {
    reported: u64,
    uniques: u64,
    overflow: u64,
}

impl Day {
    fn figures(self, day: i64) -> DayFigures {
        DayFigures {
            day: date(day),
            reported: self.reported,
            uniques: self.uniques,
            overflow: self.overflow,
            total: self.reported.saturating_add(self.uniques),
        }
    }
}

/// The report from the stored rows (pure).
pub fn build(inputs: Inputs, rows: &[DayRow], reports: &[ReportRow]) -> AudienceReport {
    let Inputs {
        today,
        days,
        since,
        enabled,
        max_reported,
    } = inputs;
    let shown: Vec<i64> = (today - days + 1..=today).collect();
    let window = mean_window(today, since);
    let mut feeds: BTreeMap<&str, BTreeMap<i64, Day>> = BTreeMap::new();
    for r in rows {
        let day = feeds.entry(&r.feed).or_default().entry(r.day).or_default();
        day.uniques += r.uniques;
        day.overflow += r.overflow;
    }
    // The latest row of each (service, feed id, suspect) within the shown days.
    let mut latest: HashMap<(&str, &str, &str, bool), &ReportRow> = HashMap::new();
    let mut suspect_reports = 0;
    for r in reports {
        // A feed with suspect counts alone is listed too (with its genuine figures at zero).
        let day = feeds.entry(&r.feed).or_default().entry(r.day).or_default();
        if !r.suspect {
            day.reported = day.reported.saturating_add(r.subscribers);
        } else if r.day >= shown[0] {
            suspect_reports += 1;
        }
        if r.day < shown[0] {
            continue;
        }
        let slot = latest
            .entry((&r.feed, &r.service, &r.feed_id, r.suspect))
            .or_insert(r);
        if r.day > slot.day {
            *slot = r;
        }
    }
    let mut services: HashMap<&str, Vec<ServiceCount>> = HashMap::new();
    for r in latest.into_values() {
        services.entry(&r.feed).or_default().push(ServiceCount {
            service: r.service.clone(),
            feed_id: r.feed_id.clone(),
            subscribers: r.subscribers,
            suspect: r.suspect,
            day: date(r.day),
        });
    }
    let mut site = vec![Day::default(); shown.len()];
    let mut site_mean = 0.0;
    let mut out = Vec::new();
    for (feed, by_day) in &feeds {
        let day = |d: i64| by_day.get(&d).copied().unwrap_or_default();
        let readers_7d = mean(window.iter().map(|d| day(*d).figures(*d).total));
        site_mean += readers_7d;
        for (slot, d) in site.iter_mut().zip(&shown) {
            let f = day(*d);
            slot.reported = slot.reported.saturating_add(f.reported);
            slot.uniques += f.uniques;
            slot.overflow += f.overflow;
        }
        let mut counts = services.remove(feed).unwrap_or_default();
        counts.sort_by(|a, b| {
            (
                a.suspect,
                std::cmp::Reverse(a.subscribers),
                &a.service,
                &a.feed_id,
            )
                .cmp(&(
                    b.suspect,
                    std::cmp::Reverse(b.subscribers),
                    &b.service,
                    &b.feed_id,
                ))
        });
        out.push(FeedAudience {
            feed: feed.to_string(),
            readers_7d,
            services: counts,
            days: shown.iter().map(|d| day(*d).figures(*d)).collect(),
        });
    }
    out.sort_by(|a, b| {
        b.readers_7d
            .total_cmp(&a.readers_7d)
            .then_with(|| a.feed.cmp(&b.feed))
    });
    AudienceReport {
        enabled,
        max_reported,
        today: date(today),
        since: since.map(date),
        mean_days: window.iter().map(|d| date(*d)).collect(),
        site: SiteAudience {
            readers_7d: site_mean,
            days: site
                .iter()
                .zip(&shown)
                .map(|(f, d)| f.figures(*d))
                .collect(),
            suspect_reports,
        },
        feeds: out,
    }
}

fn mean(values: impl ExactSizeIterator<Item = u64>) -> f64 {
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    values.map(|v| v as f64).sum::<f64>() / n as f64
}

#[cfg(test)]
mod tests;
