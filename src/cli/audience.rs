//! `tidings audience`: who reads the feeds, as a table or as JSON.

use std::process::ExitCode;

use crate::audience::report::{self, AudienceReport, DayFigures};
use crate::config::Config;

/// Prints the report of the last `days` days.
pub fn audience(config: &Config, days: i64, json: bool) -> anyhow::Result<ExitCode> {
    let store = super::open_store(config)?;
    let today = crate::audience::today();
    let (enabled, max_reported) = (config.audience.enabled, config.audience.max_reported);
    let report = store.blocking(crate::store::Mode::Read, |db| {
        report::read(db, today, days, enabled, max_reported)
    })?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", table(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// The report as a table for a terminal.
pub fn table(report: &AudienceReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let window = match (report.mean_days.first(), report.mean_days.last()) {
        (Some(first), Some(last)) if first != last => format!("{first} to {last}"),
        (Some(day), _) => day.to_string(),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "Feed audience on {}: {:.1} readers a day (mean of {window}){}",
        report.today,
        report.site.readers_7d,
        if report.enabled {
            ""
        } else {
            "; this node does not count (audience.enabled = false)"
        }
    );
    if report.feeds.is_empty() {
        let _ = writeln!(out, "Nothing counted yet.");
        return out;
    }
    let _ = writeln!(
        out,
        "\n{:<32} {:>9} {:>9} {:>9} {:>9} {:>14}",
        "feed", "7-day", "today", "reported", "uniques", "not told apart"
    );
    let today = |days: &[DayFigures]| days.last().copied();
    for feed in &report.feeds {
        let t = today(&feed.days);
        let _ = writeln!(
            out,
            "{:<32} {:>9.1} {:>9} {:>9} {:>9} {:>14}",
            feed.feed,
            feed.readers_7d,
            t.map_or(0, |d| d.total),
            t.map_or(0, |d| d.reported),
            t.map_or(0, |d| d.uniques),
            t.map_or(0, |d| d.overflow),
        );
        for s in &feed.services {
            let name = match s.feed_id.as_str() {
                "" => s.service.clone(),
                id => format!("{} (feed {id})", s.service),
            };
            let _ = writeln!(
                out,
                "  {:<30} {:>9} subscribers on {}{}",
                name,
                s.subscribers,
                s.day,
                if s.suspect {
                    "  SUSPECT: above audience.max_reported, not added"
                } else {
                    ""
                }
            );
        }
    }
    if report.site.suspect_reports > 0 {
        let _ = writeln!(
            out,
            "\n{} reported count(s) above audience.max_reported ({}) were kept as suspect and not added.",
            report.site.suspect_reports, report.max_reported
        );
    }
    out
}
