//! The ledger's own tests, on a SQLite database.

use super::sent::{fold_subscribers, FOLD_DELIVERIES};
use super::*;

/// Two deliveries whose leases ran out: one held by instance 100 (still queued in its own
/// run), one by instance 200.
fn lapsed_claims() -> (tempfile::TempDir, rusqlite::Connection) {
    let dir = tempfile::tempdir().expect("tmp");
    let conn = crate::db::open(&dir.path().join("t.db")).expect("db");
    conn.execute_batch(
        "INSERT INTO subscribers (id, email, status, cadence, time_zone, created_at) VALUES
             (1, 'a@example.com', 'confirmed', 'daily', 'UTC', '2026-01-01T00:00:00Z'),
             (2, 'b@example.com', 'confirmed', 'daily', 'UTC', '2026-01-01T00:00:00Z');
         INSERT INTO digest_runs (id, now_us, manual, subject, html, deliveries) VALUES (1, 0, 1, '', '', 2);
         INSERT INTO deliveries (id, run_id, subscriber_id, state, window_end_us, articles, next_attempt_us, lease_owner, lease_until_us)
             VALUES (1, 1, 1, 'sending', 0, '[]', 0, 100, 1),
                    (2, 1, 2, 'sending', 0, '[]', 0, 200, 1);",
    )
    .expect("rows");
    (dir, conn)
}

/// A delivery's Message-ID is made at its first claim and kept through a release, a retry
/// and a takeover by another instance; two deliveries never share one.
#[test]
fn a_delivery_keeps_the_message_id_of_its_first_claim() {
    let (_dir, conn) = lapsed_claims();
    let db = Db::Lite(&conn);
    let made = std::cell::Cell::new(0);
    let new_id = || {
        made.set(made.get() + 1);
        crate::mail::new_message_id("t.example")
    };
    let lease = chrono::Duration::seconds(-1);
    let Next::Claimed(first) = claim(&db, 300, lease, 10, &new_id).expect("claim") else {
        panic!("both lapsed rows are due");
    };
    assert_eq!(first.len(), 2);
    assert_ne!(first[0].message_id, first[1].message_id);
    assert!(
        first[0].message_id < first[1].message_id,
        "made in id order"
    );
    // Released, retried, and taken over by another instance once the lease lapsed.
    release(&db, 300, &[1]).expect("release");
    mark_retry(&db, &first[1], "4xx", Some(DateTime::<Utc>::UNIX_EPOCH)).expect("retry");
    let Next::Claimed(again) = claim(&db, 400, lease, 10, &new_id).expect("claim") else {
        panic!("both rows are due again");
    };
    let ids = |c: &[Claimed]| {
        c.iter()
            .map(|d| (d.id, d.message_id.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&again), ids(&first));
    // Expired claims of 300 taken over by 500: still the same ids.
    let Next::Claimed(taken) = claim(&db, 500, lease, 10, &new_id).expect("claim") else {
        panic!("400's lapsed claims are due");
    };
    assert_eq!(ids(&taken), ids(&first));
    let stored: String = db
        .query_row("SELECT message_id FROM deliveries WHERE id = 1", &[], |r| {
            r.get(0)
        })
        .expect("row");
    assert_eq!(stored, first[0].message_id);
}

#[test]
fn a_run_never_reclaims_its_own_lapsed_claims_but_takes_others() {
    let (_dir, conn) = lapsed_claims();
    let db = Db::Lite(&conn);
    let next = claim(&db, 100, chrono::Duration::seconds(300), 10, &|| {
        crate::mail::new_message_id("t.example")
    })
    .expect("claim");
    let Next::Claimed(claimed) = next else {
        panic!("the other instance's lapsed claim is due");
    };
    assert_eq!(
        claimed.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![2],
        "not its own row 1, which may still be queued in this run"
    );
    // Renewing extends what 100 holds (both rows now) and nothing of another owner's.
    assert_eq!(
        renew(&db, 100, chrono::Duration::seconds(300)).expect("renew"),
        vec![1, 2]
    );
    assert!(renew(&db, 200, chrono::Duration::seconds(300))
        .expect("renew")
        .is_empty());
    // The old owner cannot hand back a row it lost.
    release(&db, 200, &[2]).expect("release");
    let state: String = db
        .query_row("SELECT state FROM deliveries WHERE id = 2", &[], |r| {
            r.get(0)
        })
        .expect("row");
    assert_eq!(state, "sending");
    // A new run of the same instance starts by taking its leftovers back: both go back.
    assert_eq!(release_own(&db, 100).expect("release"), 2);
    let state: String = db
        .query_row("SELECT state FROM deliveries WHERE id = 1", &[], |r| {
            r.get(0)
        })
        .expect("row");
    assert_eq!(state, "pending");
}

/// A digest logged as sent and not folded when the process died (a kill) is `sent` to the
/// next claim, which therefore never takes it again, though its lease ran out.
#[test]
fn a_digest_logged_as_sent_before_a_crash_is_never_claimed_again() {
    let (_dir, conn) = lapsed_claims();
    let db = Db::Lite(&conn);
    conn.execute_batch(
        "UPDATE subscribers SET window_start_us = 5, bounces = 2 WHERE id = 2;
         UPDATE deliveries SET message_id = '<m@example.com>' WHERE id = 2",
    )
    .expect("window, and the id the claim gave");
    let at = from_us(1_700_000_000_000_000);
    mark_sent(
        &db,
        &[Sent {
            delivery: 2,
            subscriber_id: 2,
            window_end: from_us(42),
            message_id: "<m@example.com>".into(),
            at,
        }],
    )
    .expect("log");
    // Logged only: the ledger row is untouched until a fold.
    let state: String = db
        .query_row("SELECT state FROM deliveries WHERE id = 2", &[], |r| {
            r.get(0)
        })
        .expect("row");
    assert_eq!(state, "sending");
    assert_eq!(logged_sent(&db).expect("logged").len(), 1);
    // Instance 100 would take over 200's lapsed row 2: the fold first makes it sent.
    let next = claim(&db, 100, chrono::Duration::seconds(300), 10, &|| {
        crate::mail::new_message_id("t.example")
    })
    .expect("claim");
    assert!(
        !matches!(&next, Next::Claimed(c) if c.iter().any(|c| c.id == 2)),
        "a sent digest was claimed again"
    );
    let row: (String, Option<String>, Option<i64>, i64, Option<i64>) = db
        .query_row(
            "SELECT state, message_id, sent_us, attempts, lease_owner FROM deliveries WHERE id = 2",
            &[],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .expect("row");
    assert_eq!(
        row,
        (
            "sent".to_string(),
            Some("<m@example.com>".to_string()),
            Some(at.timestamp_micros()),
            1,
            None
        )
    );
    let subscriber: (i64, i64) = db
        .query_row(
            "SELECT window_start_us, bounces FROM subscribers WHERE id = 2",
            &[],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("subscriber");
    assert_eq!(
        subscriber,
        (42, 0),
        "the window moved, the bounce count reset"
    );
    assert!(logged_sent(&db).expect("logged").is_empty());
    assert_eq!(fold_sent(&db).expect("fold"), 0, "folded once");
}

/// A digest still in the log is sent to every reader that matters: it leaves the queue depth,
/// and a bounce that quotes its Message-ID finds it at once.
#[test]
fn a_logged_digest_is_out_of_the_queue_and_found_by_its_message_id() {
    let (_dir, conn) = lapsed_claims();
    let db = Db::Lite(&conn);
    conn.execute_batch("UPDATE deliveries SET message_id = '<m2@example.com>' WHERE id = 2")
        .expect("the id the claim gave");
    assert_eq!(queue_depth(&db).expect("depth"), 2);
    mark_sent(
        &db,
        &[Sent {
            delivery: 2,
            subscriber_id: 2,
            window_end: from_us(42),
            message_id: "<m2@example.com>".into(),
            at: from_us(1_700_000_000_000_000),
        }],
    )
    .expect("log");
    assert_eq!(
        queue_depth(&db).expect("depth"),
        1,
        "the logged digest is sent"
    );
    let found = crate::feedback::apply::by_message_id(&db, "m2@example.com")
        .expect("lookup")
        .expect("the logged digest");
    assert_eq!((found.subscriber, found.delivery), (2, Some(2)));
    assert_eq!(
        queue_depth(&db).expect("depth"),
        1,
        "and stays so once folded"
    );
}

/// A fold costs the log's rows, not the ledger's: each statement reads the log and finds
/// rows by id (a scan of `deliveries` per claim made sending O(ledger) per batch).
#[test]
fn folding_reads_the_log_and_finds_rows_by_id() {
    let (_dir, conn) = lapsed_claims();
    for sql in [FOLD_DELIVERIES.to_string(), fold_subscribers()] {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan");
        let plan: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("plan rows");
        assert!(
            plan.iter()
                .any(|p| p.starts_with("SEARCH deliveries") || p.starts_with("SEARCH subscribers")),
            "{sql}: {plan:?}"
        );
        assert!(
            !plan
                .iter()
                .any(|p| p.starts_with("SCAN deliveries") || p.starts_with("SCAN subscribers")),
            "{sql}: {plan:?}"
        );
    }
}
