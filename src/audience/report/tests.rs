use super::{build, date, mean_window, parse_days, Inputs};
use crate::audience::store::{DayRow, ReportRow};

const TODAY: i64 = 20_000;

fn inputs(days: i64, since: Option<i64>) -> Inputs {
    Inputs {
        today: TODAY,
        days,
        since,
        enabled: true,
        max_reported: 1_000_000,
    }
}

fn uniques(feed: &str, day: i64, uniques: u64, overflow: u64) -> DayRow {
    DayRow {
        feed: feed.into(),
        day,
        uniques,
        overflow,
    }
}

fn reported(feed: &str, day: i64, service: &str, subscribers: u64, suspect: bool) -> ReportRow {
    ReportRow {
        feed: feed.into(),
        day,
        service: service.into(),
        feed_id: String::new(),
        suspect,
        subscribers,
    }
}

#[test]
fn the_mean_covers_the_seven_whole_days_before_today_since_counting_began() {
    assert_eq!(mean_window(TODAY, None), vec![TODAY]);
    assert_eq!(mean_window(TODAY, Some(TODAY)), vec![TODAY]);
    assert_eq!(
        mean_window(TODAY, Some(TODAY - 2)),
        vec![TODAY - 2, TODAY - 1]
    );
    assert_eq!(
        mean_window(TODAY, Some(TODAY - 100)),
        (TODAY - 7..TODAY).collect::<Vec<_>>()
    );
}

#[test]
fn daily_totals_add_reported_counts_and_uniques_and_leave_suspect_ones_out() {
    let rows = [
        uniques("/feed.xml", TODAY, 3, 0),
        // Folded and still-hashed uniques of one day add up.
        uniques("/feed.xml", TODAY - 1, 2, 5),
        uniques("/feed.xml", TODAY - 1, 1, 0),
        uniques("/tags/ai/atom.xml", TODAY - 1, 4, 0),
    ];
    let reports = [
        reported("/feed.xml", TODAY, "Feedly", 134, false),
        reported("/feed.xml", TODAY, "Inoreader", 25, false),
        reported("/feed.xml", TODAY, "NewsBlur", 5_000_000, true),
        reported("/feed.xml", TODAY - 1, "Feedly", 130, false),
    ];
    let r = build(inputs(3, Some(TODAY - 1)), &rows, &reports);
    assert_eq!(r.today, date(TODAY));
    assert_eq!(r.mean_days, vec![date(TODAY - 1)]);
    let feed = &r.feeds[0];
    assert_eq!(feed.feed, "/feed.xml");
    assert_eq!(feed.days.len(), 3);
    let today = feed.days[2];
    assert_eq!((today.reported, today.uniques, today.total), (159, 3, 162));
    let yesterday = feed.days[1];
    assert_eq!(
        (
            yesterday.reported,
            yesterday.uniques,
            yesterday.overflow,
            yesterday.total
        ),
        (130, 3, 5, 133)
    );
    assert_eq!(feed.readers_7d, 133.0);
    // The latest count of each service, the suspect one flagged and last.
    let services: Vec<_> = feed
        .services
        .iter()
        .map(|s| (s.service.as_str(), s.subscribers, s.suspect, s.day))
        .collect();
    assert_eq!(
        services,
        vec![
            ("Feedly", 134, false, date(TODAY)),
            ("Inoreader", 25, false, date(TODAY)),
            ("NewsBlur", 5_000_000, true, date(TODAY)),
        ]
    );
    assert_eq!(r.feeds[1].feed, "/tags/ai/atom.xml");
    assert_eq!(r.feeds[1].readers_7d, 4.0);
    assert_eq!(r.site.readers_7d, 137.0);
    assert_eq!(r.site.days[2].total, 162);
    assert_eq!(r.site.days[1].total, 137);
    assert_eq!(r.site.suspect_reports, 1);
}

#[test]
fn the_mean_counts_quiet_days_as_zero() {
    let rows = [uniques("/feed.xml", TODAY - 3, 14, 0)];
    let r = build(inputs(30, Some(TODAY - 20)), &rows, &[]);
    assert_eq!(r.feeds[0].readers_7d, 2.0);
    assert_eq!(r.feeds[0].days.len(), 30);
    assert_eq!(r.feeds[0].days[0].day, date(TODAY - 29));
}

#[test]
fn days_is_a_whole_number_in_range() {
    assert_eq!(parse_days("7"), Ok(7));
    for bad in ["0", "366", "-1", "seven", ""] {
        let e = parse_days(bad).unwrap_err();
        assert!(e.contains("1 to 365"), "{bad}: {e}");
    }
}

#[test]
fn a_feed_with_suspect_counts_alone_is_listed() {
    let reports = [reported("/feed.json", TODAY, "Feedly", 2_000_000, true)];
    let r = build(inputs(7, Some(TODAY)), &[], &reports);
    assert_eq!(r.feeds.len(), 1);
    assert_eq!(r.feeds[0].feed, "/feed.json");
    assert_eq!(r.feeds[0].readers_7d, 0.0);
    assert!(r.feeds[0].services[0].suspect);
    assert_eq!(r.site.suspect_reports, 1);
}
