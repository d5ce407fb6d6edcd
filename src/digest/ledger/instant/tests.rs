//! The day's instant run on a small ledger, on SQLite and (when `TIDINGS_TEST_POSTGRES_URL`
//! names a server) on PostgreSQL: reopened around a scheduled run, held while paused, counted
//! right, closed once.

use super::*;
use crate::digest::ledger::{previous_run, runs, PlanWriter};
use crate::subscribers::events::{self, Kind, NewEvent};
use crate::subscribers::{store, Cadence, Preferences, Status, SubscriberEmail, TimeZone};
use chrono::TimeZone as _;

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 1, hour, 0, 0)
        .single()
        .expect("time")
}

fn reader(db: &Db, email: &str, cadence: Cadence) -> Result<i64> {
    let prefs = Preferences {
        tags: vec![],
        cadence,
        time_zone: TimeZone(chrono_tz::UTC),
    };
    let e = SubscriberEmail::parse(email).expect("email");
    store::insert(db, &e, &prefs, Status::Confirmed, at(1))
}

/// The day's first instant plan, a scheduled run, the day's second instant plan: the runs and
/// the deliveries of the first reader, the daily one and the second reader.
fn ledger(db: &Db) -> Result<(i64, i64, i64, [i64; 3])> {
    let first = reader(db, "first@example.com", Cadence::Instant)?;
    let daily = reader(db, "daily@example.com", Cadence::Daily)?;
    let second = reader(db, "second@example.com", Cadence::Instant)?;
    let plan = PlanWriter::begin_instant(db, at(2))?;
    plan.delivery(first, ["a"].into_iter())?;
    let morning = plan.finish("morning", "")?.expect("a run");
    let plan = PlanWriter::begin(db, at(3), false)?;
    plan.delivery(daily, ["a"].into_iter())?;
    let scheduled = plan.finish("scheduled", "")?.expect("a run");
    // The day's run paused (a wave of policy bounces): what the next plan adds waits too.
    crate::digest::ledger::pause(db, morning, "blocked", at(3))?;
    let plan = PlanWriter::begin_instant(db, at(4))?;
    plan.delivery(second, ["b"].into_iter())?;
    let afternoon = plan.finish("afternoon", "")?.expect("a run");
    let held: i64 = db.query_row(
        "SELECT next_attempt_us FROM deliveries WHERE subscriber_id = ?1",
        params![second],
        |r| r.get(0),
    )?;
    assert_eq!(held, crate::digest::ledger::PAUSED_US);
    crate::digest::ledger::resume(db, morning, at(4))?;
    let id = |s: i64| -> Result<i64> {
        db.query_row(
            "SELECT id FROM deliveries WHERE subscriber_id = ?1",
            params![s],
            |r| r.get(0),
        )
    };
    Ok((
        morning,
        scheduled,
        afternoon,
        [id(first)?, id(daily)?, id(second)?],
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_days_instant_sends_share_a_run_that_counts_only_its_own_and_closes_once() {
    for (s, _dir) in crate::store::tests::both().await {
        let (morning, scheduled, afternoon, d) = s.write(ledger).await.expect("ledger");
        assert_eq!(morning, afternoon, "the day's run is reopened");
        assert_ne!(morning, scheduled);
        let (range, last_scheduled, open, closed_early) = s
            .write(move |db| -> Result<_> {
                let range: (i64, i64, i64) = db.query_row(
                    "SELECT first_delivery_id, last_delivery_id, deliveries FROM digest_runs WHERE id = ?1",
                    params![morning],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                let open = unclosed_before(db, day_of(at(2)) + 1)?;
                // Its digests still wait: not closed.
                let closed = close_if_settled(db, morning, at(23))?;
                Ok((range, previous_run(db)?, open, closed))
            })
            .await
            .expect("read");
        assert_eq!(
            range,
            (d[0], d[2], 2),
            "both plans, the scheduled run's row inside"
        );
        assert_eq!(
            last_scheduled,
            Some(at(3)),
            "instant runs keep their own archive"
        );
        assert_eq!(open, vec![morning]);
        assert!(!closed_early);

        // Every digest sent; the daily reader unsubscribes through theirs.
        let (all, page, first_close, second_close) = s
            .write(move |db| -> Result<_> {
                db.execute(
                    "UPDATE deliveries SET state = 'sent', attempts = 1, sent_us = 1",
                    &[],
                )?;
                let e = NewEvent::new("", Kind::Unsubscribe, "link").delivery(Some(d[1]));
                events::record(db, &e, at(5))?;
                let first = close_if_settled(db, morning, at(23))?;
                let second = close_if_settled(db, morning, at(23))?;
                // The page that holds the instant run but not the scheduled one (newer).
                Ok((
                    runs(db, None, 30)?,
                    runs(db, Some(scheduled), 30)?,
                    first,
                    second,
                ))
            })
            .await
            .expect("counts");
        let of = |list: &[RunSummaryLite], id: i64| list.iter().find(|r| r.0 == id).cloned();
        let all: Vec<RunSummaryLite> = all.iter().map(lite).collect();
        let page: Vec<RunSummaryLite> = page.iter().map(lite).collect();
        assert_eq!(of(&all, morning), Some((morning, true, 2, 2, 0)));
        assert_eq!(of(&all, scheduled), Some((scheduled, false, 1, 1, 1)));
        assert_eq!(
            of(&page, morning),
            Some((morning, true, 2, 2, 0)),
            "the scheduled run's unsubscribe is not put down to the instant run around it"
        );
        assert!(first_close, "closed once settled");
        assert!(!second_close, "and only once");
        let open = s
            .read(move |db| unclosed_before(db, day_of(at(2)) + 1))
            .await
            .expect("read");
        assert!(open.is_empty());
    }
}

/// (id, instant, due, sent, unsubscribed)
type RunSummaryLite = (i64, bool, i64, i64, i64);

fn lite(r: &crate::digest::ledger::RunSummary) -> RunSummaryLite {
    (r.id, r.instant, r.due, r.sent, r.unsubscribed)
}
