//! The history's read models and the upgrade that rebuilt it, on SQLite and (when
//! `TIDINGS_TEST_POSTGRES_URL` names a server) on PostgreSQL.

use super::*;
use crate::digest::ledger::{self, Next, PlanWriter, Sent};
use crate::subscribers::{store, Cadence, Preferences, Status, SubscriberEmail, TimeZone};
use chrono::{Duration, TimeZone as _};

fn prefs() -> Preferences {
    Preferences {
        tags: vec![],
        cadence: Cadence::Daily,
        time_zone: TimeZone(chrono_tz::UTC),
    }
}

fn email(s: &str) -> SubscriberEmail {
    SubscriberEmail::parse(s).expect("email")
}

/// Each day's counts and the confirmed total at each day's end, over three days that hold
/// confirmations, an unsubscribe, a bounce, a complaint, a removal and a subscriber bounced out;
/// one confirmation is from before the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_days_count_each_kind_and_walk_the_confirmed_total_back() {
    for (s, _dir) in crate::store::tests::both().await {
        let days = s
            .write(|db| -> Result<(Vec<Day>, i64)> {
                // The changes of today are stamped at its start or by the wall clock: both today.
                let now = Utc::now();
                let today = now.timestamp_micros().div_euclid(DAY_US) * DAY_US;
                let at = |day: i64, hour: i64| from_us(today + day * DAY_US + hour * 3_600_000_000);
                let add = |address: &str, status: Status, t: DateTime<Utc>| -> Result<i64> {
                    let e = email(address);
                    let id = store::insert(db, &e, &prefs(), status, t)?;
                    if status == Status::Confirmed {
                        record(
                            db,
                            &NewEvent::new(e.as_str(), Kind::Confirmed, "api").subscriber(id),
                            t,
                        )?;
                    }
                    Ok(id)
                };
                add("z@example.com", Status::Confirmed, at(-10, 1))?;
                let a = add("a@example.com", Status::Pending, at(-2, 8))?;
                store::set_status(db, a, Status::Confirmed, at(-2, 9))?;
                record(
                    db,
                    &NewEvent::new("a@example.com", Kind::Confirmed, "link").subscriber(a),
                    at(-2, 9),
                )?;
                let b = add("b@example.com", Status::Confirmed, at(-2, 10))?;
                let d = add("d@example.com", Status::Confirmed, at(-1, 3))?;
                store::set_status(db, a, Status::Unsubscribed, at(-1, 4))?;
                record(
                    db,
                    &NewEvent::new("a@example.com", Kind::Unsubscribe, "link").subscriber(a),
                    at(-1, 4),
                )?;
                record(
                    db,
                    &NewEvent::new("b@example.com", Kind::Bounce, "dsn")
                        .subscriber(b)
                        .bounce("soft"),
                    at(-1, 5),
                )?;
                record(
                    db,
                    &NewEvent::new("b@example.com", Kind::Complaint, "arf").subscriber(b),
                    at(-1, 6),
                )?;
                add("c@example.com", Status::Confirmed, at(0, 0))?;
                assert!(store::delete(db, &email("z@example.com"))?);
                assert!(store::count_bounce(db, d, 1)?, "d bounced out");
                Ok((daily(db, 3, now)?, store::confirmed_total(db)?))
            })
            .await
            .expect("days");
        let (days, total) = days;
        let column = |f: fn(&Day) -> i64| days.iter().map(f).collect::<Vec<i64>>();
        assert_eq!(days.len(), 3);
        assert_eq!(
            days[2].date,
            Utc::now().date_naive(),
            "the last day is today"
        );
        assert_eq!(column(|d| d.confirmations), [2, 1, 1]);
        assert_eq!(column(|d| d.unsubscribes), [0, 1, 0]);
        assert_eq!(column(|d| d.bounces), [0, 1, 0]);
        assert_eq!(column(|d| d.complaints), [0, 1, 0]);
        // z, a, b; then z, b, d; then b and c (z removed, d bounced).
        assert_eq!(column(|d| d.confirmed), [3, 3, 2]);
        assert_eq!(total, 2, "the counted changes add up to the list as it is");
    }
}

fn day(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0)
        .single()
        .expect("date")
        + Duration::days(n)
}

/// A subscriber's timeline: their events with their sources, the digest they were sent with its
/// run, and an unsubscribe through that digest put down to the same run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeline_holds_events_and_digests_oldest_first_with_their_runs() {
    for (s, _dir) in crate::store::tests::both().await {
        let (run, delivery, entries) = s
            .write(|db| -> Result<(i64, i64, Vec<Entry>)> {
                let x = email("Xe@example.com");
                let id = store::insert(db, &x, &prefs(), Status::Pending, day(0))?;
                record(
                    db,
                    &NewEvent::new(x.as_str(), Kind::Subscribed, "form").subscriber(id),
                    day(0),
                )?;
                store::set_status(db, id, Status::Confirmed, day(1))?;
                record(
                    db,
                    &NewEvent::new(x.as_str(), Kind::Confirmed, "link").subscriber(id),
                    day(1),
                )?;
                let plan = PlanWriter::begin(db, day(2), true)?;
                plan.delivery(id, ["urn:a1"].into_iter())?;
                let run = plan.finish("subject", "<p>")?.expect("a run");
                let new_id = || "<m1@example.com>".to_string();
                let Next::Claimed(claimed) =
                    ledger::claim(db, 7, Duration::minutes(5), 10, &new_id)?
                else {
                    panic!("the delivery is due");
                };
                let delivery = claimed[0].id;
                // Logged, not yet folded, on SQLite: the timeline reads the log too.
                ledger::mark_sent(
                    db,
                    &[Sent::of(
                        &claimed[0],
                        "<m1@example.com>".into(),
                        day(2) + Duration::hours(1),
                    )],
                )?;
                store::set_status(db, id, Status::Unsubscribed, day(3))?;
                let unsubscribe = NewEvent::new(x.as_str(), Kind::Unsubscribe, "one_click")
                    .subscriber(id)
                    .delivery(Some(delivery));
                record(db, &unsubscribe, day(3))?;
                Ok((run, delivery, timeline(db, "XE@EXAMPLE.COM")?))
            })
            .await
            .expect("timeline");
        let seen: Vec<String> = entries
            .iter()
            .map(|e| {
                format!(
                    "{} {:?} {:?} {:?}",
                    e.kind.as_str(),
                    e.source,
                    e.run_id,
                    e.delivery_id
                )
            })
            .collect();
        let run = Some(run);
        let delivery = Some(delivery);
        assert_eq!(
            seen,
            [
                "subscribed Some(\"form\") None None".to_string(),
                "confirmed Some(\"link\") None None".to_string(),
                format!("digest_sent None {run:?} {delivery:?}"),
                format!("unsubscribe Some(\"one_click\") {run:?} {delivery:?}"),
            ]
        );
        assert_eq!(entries[2].at, day(2) + Duration::hours(1));
        assert!(entries.iter().all(|e| !e.approximate));
    }
}

/// Rows as a database before the upgrade held them: a confirmed subscriber, one confirmed then
/// unsubscribed with no event, one pending then unsubscribed whose unsubscribe is on record, a
/// pending one, and one confirmed then bounced; a run of two deliveries.
const BEFORE_THE_UPGRADE: &str = "
INSERT INTO subscribers (id, email, status, cadence, time_zone, created_at, confirmed_at, unsubscribed_at) VALUES
    (1, 'Ann@example.com', 'confirmed', 'daily', 'UTC', '2025-01-02T03:04:05.678901Z', '2025-01-03T00:00:00.500000Z', NULL),
    (2, 'bob@example.com', 'unsubscribed', 'daily', 'UTC', '2025-02-01T00:00:00Z', '2025-02-02T00:00:00Z', '2025-03-01T10:00:00.000001Z'),
    (3, 'cy@example.com', 'unsubscribed', 'daily', 'UTC', '2025-02-01T00:00:00Z', NULL, '2025-04-01T00:00:00Z'),
    (4, 'di@example.com', 'pending', 'daily', 'UTC', '2025-05-01T00:00:00Z', NULL, NULL),
    (5, 'ed@example.com', 'bounced', 'daily', 'UTC', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z', NULL);
INSERT INTO events (at_us, email, subscriber_id, kind, source) VALUES
    (1743465600000000, 'cy@example.com', 3, 'unsubscribe', 'one_click'),
    (1748736000000000, 'ed@example.com', 5, 'bounce', 'dsn');
INSERT INTO digest_runs (id, now_us, manual, subject, html, deliveries) VALUES (1, 0, 0, '', '', 2);
INSERT INTO deliveries (id, run_id, subscriber_id, state, window_end_us, articles, next_attempt_us, attempts, sent_us) VALUES
    (10, 1, 1, 'sent', 0, '[]', 0, 1, 5),
    (12, 1, 2, 'sent', 0, '[]', 0, 1, 5);
";

/// What the upgrade made of `BEFORE_THE_UPGRADE`, read through the store.
fn rebuilt(db: &Db) -> Result<()> {
    let history = |address: &str| -> Result<Vec<String>> {
        Ok(for_email(db, address)?
            .iter()
            .map(|e| {
                let mark = if e.approximate { " ~" } else { "" };
                format!("{} {} {}{mark}", e.at, e.kind, e.source)
            })
            .collect())
    };
    assert_eq!(
        history("ann@example.com")?,
        [
            "2025-01-02T03:04:05Z subscribed unknown ~",
            "2025-01-03T00:00:00Z confirmed unknown ~"
        ]
    );
    assert_eq!(
        history("bob@example.com")?,
        [
            "2025-02-01T00:00:00Z subscribed unknown ~",
            "2025-02-02T00:00:00Z confirmed unknown ~",
            "2025-03-01T10:00:00Z unsubscribe unknown ~"
        ]
    );
    assert_eq!(
        history("cy@example.com")?,
        [
            "2025-02-01T00:00:00Z subscribed unknown ~",
            "2025-04-01T00:00:00Z unsubscribe one_click"
        ],
        "the unsubscribe on record is not repeated"
    );
    assert_eq!(
        history("di@example.com")?,
        ["2025-05-01T00:00:00Z subscribed unknown ~"]
    );
    assert_eq!(
        history("ed@example.com")?,
        [
            "2025-01-01T00:00:00Z subscribed unknown ~",
            "2025-01-01T00:00:00Z confirmed unknown ~",
            "2025-06-01T00:00:00Z bounce dsn"
        ]
    );
    // The confirmed total's changes by day add up to today's: Ann. Bob left at his unsubscribe,
    // Ed at his bounce. Each event is counted on its day.
    let day = |date: &str| {
        chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .expect("date")
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp()
            / 86_400
    };
    let counted = |counter: &str| -> Result<Vec<(i64, i64)>> {
        db.query_map(
            "SELECT day, n FROM daily_counts WHERE counter = ?1 ORDER BY day",
            crate::params![counter],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    };
    assert_eq!(
        counted("confirmed_total")?,
        [
            (day("2025-01-01"), 1),
            (day("2025-01-03"), 1),
            (day("2025-02-02"), 1),
            (day("2025-03-01"), -1),
            (day("2025-06-01"), -1)
        ]
    );
    assert_eq!(store::confirmed_total(db)?, 1);
    // The per-status counts (013 / V8) start from the rows already there.
    assert_eq!(
        store::counts_by_status(db)?,
        store::StatusCounts {
            pending: 1,
            confirmed: 1,
            unsubscribed: 2,
            bounced: 1
        }
    );
    assert_eq!(
        counted("unsubscribe")?,
        [(day("2025-03-01"), 1), (day("2025-04-01"), 1)]
    );
    assert_eq!(counted("subscribed")?.iter().map(|c| c.1).sum::<i64>(), 5);
    // The run's deliveries lie between ids 10 and 12.
    let bounds: (Option<i64>, Option<i64>) = db.query_row(
        "SELECT first_delivery_id, last_delivery_id FROM digest_runs WHERE id = 1",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    assert_eq!(bounds, (Some(10), Some(12)));
    Ok(())
}

#[test]
fn the_upgrade_rebuilds_sqlite_history_marked_approximate() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("t.db");
    {
        let mut conn = rusqlite::Connection::open(&path).expect("open");
        crate::db::migrations()
            .to_version(&mut conn, 8)
            .expect("at 008");
        conn.execute_batch(BEFORE_THE_UPGRADE).expect("rows");
    }
    let conn = crate::db::open(&path).expect("upgraded");
    rebuilt(&Db::Lite(&conn)).expect("rebuilt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_rebuilds_postgres_history_marked_approximate() {
    let Some(location) = crate::store::tests::fresh_postgres().await else {
        return;
    };
    let crate::store::Location::Postgres(url) = &location else {
        unreachable!("a PostgreSQL location");
    };
    crate::store::postgres::migrate_to(url, 3).await;
    let (config, tls) = crate::store::postgres::connect_config(url).expect("url");
    let (client, connection) = config.connect(tls).await.expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute(BEFORE_THE_UPGRADE)
        .await
        .expect("rows");
    let s = crate::store::Store::open(&location, 2)
        .await
        .expect("upgraded");
    s.read(rebuilt).await.expect("rebuilt");
}
