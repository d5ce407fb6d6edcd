//! The subscribers' rows: sealed links, and the per-status counts the schema keeps.

use super::*;

#[test]
fn sealed_links_work_until_they_expire_and_only_for_their_purpose() {
    let dir = tempfile::tempdir().expect("tmp");
    let conn = crate::db::open(&dir.path().join("t.db")).expect("db");
    let conn = Db::Lite(&conn);
    let email = SubscriberEmail::parse("reader@example.com").expect("email");
    let now = Utc::now();
    let prefs = Preferences {
        tags: vec![],
        cadence: Cadence::Daily,
        time_zone: TimeZone(chrono_tz::UTC),
    };
    let id = insert(&conn, &email, &prefs, Status::Confirmed, now).expect("insert");
    let key = link_key(&conn).expect("key");
    assert_eq!(
        link_key(&conn).expect("again").bytes(),
        key.bytes(),
        "one key per database"
    );
    let expires = (now + Duration::days(30)).timestamp();
    let unsub = key.seal(id, "reader@example.com", Purpose::Unsubscribe, expires);
    let ok = check(&conn, &unsub, Purpose::Unsubscribe, now).expect("check");
    assert_eq!(ok.map(|r| r.subscriber.id).ok(), Some(id));
    assert_eq!(
        check(&conn, &unsub, Purpose::Preferences, now)
            .expect("check")
            .err(),
        Some(TokenProblem::Unknown)
    );
    assert_eq!(
        check(&conn, &unsub, Purpose::Confirm, now)
            .expect("check")
            .err(),
        Some(TokenProblem::Unknown)
    );
    let later = now + Duration::days(31);
    assert_eq!(
        check(&conn, &unsub, Purpose::Unsubscribe, later)
            .expect("check")
            .err(),
        Some(TokenProblem::Expired)
    );
    let other = LinkKey::generate().seal(id, "reader@example.com", Purpose::Unsubscribe, expires);
    assert_eq!(
        check(&conn, &other, Purpose::Unsubscribe, now)
            .expect("check")
            .err(),
        Some(TokenProblem::Unknown),
        "another installation's key"
    );
}

/// One change made to the subscribers in a test.
type Step<'a> = dyn Fn(&Db) -> Result<()> + 'a;

/// The counts the dashboard reads follow every way a subscriber comes, moves and goes, on both
/// engines: the same as counting the rows, before and after each change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counts_by_status_follow_every_change() {
    for (s, _dir) in crate::store::tests::both().await {
        s.write(|db| -> Result<()> {
            let counted = |db: &Db| -> Result<StatusCounts> {
                let mut c = StatusCounts::default();
                for (status, n) in db.query_map(
                    "SELECT status, count(*) FROM subscribers GROUP BY status",
                    &[],
                    |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)),
                )? {
                    match status.as_str() {
                        "pending" => c.pending = n,
                        "confirmed" => c.confirmed = n,
                        "unsubscribed" => c.unsubscribed = n,
                        _ => c.bounced = n,
                    }
                }
                Ok(c)
            };
            let prefs = Preferences {
                tags: vec![],
                cadence: Cadence::Daily,
                time_zone: TimeZone(chrono_tz::UTC),
            };
            let now = Utc::now();
            let mut ids = Vec::new();
            for i in 0..12 {
                let email = SubscriberEmail::parse(&format!("r{i}@example.com")).expect("email");
                let status = if i % 3 == 0 {
                    Status::Pending
                } else {
                    Status::Confirmed
                };
                ids.push(insert(db, &email, &prefs, status, now)?);
            }
            let steps: Vec<Box<Step>> = vec![
                Box::new(|db| set_status(db, ids[0], Status::Confirmed, now)),
                Box::new(|db| set_status(db, ids[1], Status::Unsubscribed, now)),
                // The same status again moves nothing.
                Box::new(|db| set_status(db, ids[1], Status::Unsubscribed, now)),
                Box::new(|db| count_bounce(db, ids[2], 1).map(drop)),
                Box::new(|db| stop_many(db, &ids[3..7], Status::Bounced, false, now).map(drop)),
                Box::new(|db| stop_many(db, &ids[7..9], Status::Unsubscribed, true, now).map(drop)),
                Box::new(|db| delete_many(db, &ids[9..11]).map(drop)),
                Box::new(|db| {
                    let email = SubscriberEmail::parse("r11@example.com").expect("email");
                    delete(db, &email).map(drop)
                }),
                // A change of something else is not a move.
                Box::new(|db| {
                    db.execute(
                        "UPDATE subscribers SET bounces = bounces + 1 WHERE id = ?1",
                        params![ids[0]],
                    )
                    .map(drop)
                }),
            ];
            assert_eq!(counts_by_status(db)?, counted(db)?, "after the inserts");
            for (i, step) in steps.iter().enumerate() {
                step(db)?;
                // The same before and after the moves are folded in (PostgreSQL), and after a
                // second fold, which finds nothing new.
                assert_eq!(counts_by_status(db)?, counted(db)?, "after step {i}");
                fold_counts(db)?;
                assert_eq!(
                    counts_by_status(db)?,
                    counted(db)?,
                    "after step {i}, folded"
                );
                fold_counts(db)?;
                assert_eq!(counts_by_status(db)?, counted(db)?, "after step {i}, again");
            }
            assert_eq!(
                counts_by_status(db)?,
                StatusCounts {
                    pending: 0,
                    confirmed: 1,
                    unsubscribed: 3,
                    bounced: 5,
                },
                "{:?}",
                counted(db)?
            );
            Ok(())
        })
        .await
        .expect("counts");
    }
}
