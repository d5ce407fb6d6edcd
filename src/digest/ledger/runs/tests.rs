//! The runs' read models on a small known ledger, on SQLite and (when
//! `TIDINGS_TEST_POSTGRES_URL` names a server) on PostgreSQL.

use super::*;
use crate::catalog::{ArticleInput, ArticleJson};
use crate::store::Error;
use crate::subscribers::events::NewEvent;
use crate::subscribers::{store, Cadence, Preferences, Status, SubscriberEmail, TimeZone};
use chrono::TimeZone as _;

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 1, hour, 0, 0)
        .single()
        .expect("time")
}

/// Two articles: `a1` about Rust, `a2` about Go.
fn articles(db: &Db) -> Result<(String, String)> {
    let mut ids = Vec::new();
    for (slug, tag) in [("a1", "Rust"), ("a2", "Go")] {
        let json = format!(
            r#"{{"slug":"{slug}","title":"{slug}","url":"https://blog.example/{slug}","published_at":"2026-01-31T00:00:00Z","content_html":"<p>x</p>","tags":["{tag}"]}}"#
        );
        let input = ArticleInput::parse(ArticleJson::from_json(json.as_bytes()).expect("json"))
            .expect("valid");
        let (_, article) =
            crate::catalog::store::upsert(db, &input, at(0)).map_err(|e| Error::Column {
                index: 0,
                message: e.to_string(),
            })?;
        ids.push(article.id);
    }
    Ok((ids[0].clone(), ids[1].clone()))
}

/// Run 1 planned five digests: s1 sent, s2 sent at its second try, s3 refused (550), s4
/// skipped, s5 waiting for a retry. s1's digest drew a complaint and an unsubscribe, s2's a
/// bounce reported twice. Run 2 sent two, and s2 unsubscribed through theirs. Returns the runs
/// and the delivery ids of run 1 by subscriber (1-based).
fn known_ledger(db: &Db) -> Result<(i64, i64, Vec<i64>)> {
    let (a1, a2) = articles(db)?;
    let prefs = Preferences {
        tags: vec![],
        cadence: Cadence::Daily,
        time_zone: TimeZone(chrono_tz::UTC),
    };
    let mut subscribers = Vec::new();
    for n in 1..=5 {
        let e = SubscriberEmail::parse(&format!("s{n}@example.com")).expect("email");
        subscribers.push(store::insert(db, &e, &prefs, Status::Confirmed, at(1))?);
    }
    let plan = super::super::PlanWriter::begin(db, at(2), false)?;
    let lists: [&[&str]; 5] = [&[&a1], &[&a1], &[&a2], &[&a1, &a2], &[&a2]];
    for (s, list) in subscribers.iter().zip(lists) {
        plan.delivery(*s, list.iter().copied())?;
    }
    let run1 = plan.finish("first", "")?.expect("run 1");
    let d: Vec<i64> = db.query_map(
        "SELECT id FROM deliveries WHERE run_id = ?1 ORDER BY subscriber_id",
        params![run1],
        |r| r.get(0),
    )?;
    let set = |id: i64, state: &str, attempts: i64, error: Option<&str>| {
        db.execute(
            "UPDATE deliveries SET state = ?2, attempts = ?3, last_error = ?4, sent_us = 1 WHERE id = ?1",
            params![id, state, attempts, error],
        )
    };
    set(d[0], "sent", 1, None)?;
    set(d[1], "sent", 2, None)?;
    set(d[2], "failed", 1, Some("550 5.1.1 no such user"))?;
    set(d[3], "skipped", 0, Some("no longer subscribed"))?;
    set(d[4], "pending", 1, Some("421 try later"))?;
    let event = |n: usize, kind: Kind, source: &'static str, delivery: i64| {
        let e = NewEvent::new("", kind, source)
            .subscriber(subscribers[n - 1])
            .delivery(Some(delivery));
        events::record(db, &e, at(3))
    };
    event(3, Kind::Bounce, "smtp", d[2])?;
    event(1, Kind::Complaint, "arf", d[0])?;
    event(1, Kind::Unsubscribe, "one_click", d[0])?;
    event(2, Kind::Bounce, "dsn", d[1])?;
    event(2, Kind::Bounce, "webhook:ses", d[1])?;
    let plan = super::super::PlanWriter::begin(db, at(5), true)?;
    plan.delivery(subscribers[0], [a1.as_str()].into_iter())?;
    plan.delivery(subscribers[1], [a1.as_str()].into_iter())?;
    let run2 = plan.finish("second", "")?.expect("run 2");
    db.execute(
        "UPDATE deliveries SET state = 'sent', attempts = 1, sent_us = 1 WHERE run_id = ?1",
        params![run2],
    )?;
    let last: i64 = db.query_row(
        "SELECT max(id) FROM deliveries WHERE run_id = ?1",
        params![run2],
        |r| r.get(0),
    )?;
    event(2, Kind::Unsubscribe, "link", last)?;
    Ok((run1, run2, d))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_and_one_run_count_a_small_known_ledger() {
    for (s, _dir) in crate::store::tests::both().await {
        let (run1, run2, d) = s.write(known_ledger).await.expect("ledger");
        let (all, older, newest, detail, missing) = s
            .read(move |db| -> Result<_> {
                Ok((
                    runs(db, None, 30)?,
                    runs(db, Some(run2), 30)?,
                    runs(db, None, 1)?,
                    run(db, run1, 10)?,
                    run(db, run2 + 1, 10)?,
                ))
            })
            .await
            .expect("read");
        let second = RunSummary {
            id: run2,
            at: at(5),
            manual: true,
            instant: false,
            state: RunState::Done,
            paused_reason: None,
            due: 2,
            sent: 2,
            failed: 0,
            skipped: 0,
            retried: 0,
            waiting: 0,
            bounced: 0,
            complained: 0,
            unsubscribed: 1,
        };
        let first = RunSummary {
            id: run1,
            at: at(2),
            manual: false,
            instant: false,
            state: RunState::Running,
            paused_reason: None,
            due: 5,
            sent: 2,
            failed: 1,
            skipped: 1,
            // s2, sent at its second try, and s5, waiting for its.
            retried: 2,
            waiting: 1,
            // s2's, reported twice; s3's refusal at send time is a failure.
            bounced: 1,
            complained: 1,
            unsubscribed: 1,
        };
        assert_eq!(all, [second.clone(), first.clone()]);
        assert_eq!(older, std::slice::from_ref(&first), "the page after run 2");
        assert_eq!(newest, [second]);
        assert!(missing.is_none());
        let detail = detail.expect("run 1");
        assert_eq!(detail.summary, first);
        assert_eq!(detail.subject, "first");
        let tags: Vec<(&str, i64, i64)> = detail
            .tags
            .iter()
            .map(|t| (t.slug.as_str(), t.due, t.sent))
            .collect();
        // Go: s3, s4, s5 (none sent); Rust: s1, s2 (sent), s4.
        assert_eq!(tags, [("go", 3, 0), ("rust", 3, 2)]);
        assert_eq!(
            detail.failures,
            [Failure {
                delivery_id: d[2],
                subscriber_id: detail.failures[0].subscriber_id,
                email: Some("s3@example.com".into()),
                attempts: 1,
                error: Some("550 5.1.1 no such user".into()),
            }]
        );
        // Paused, run 1 says so; its failures page on by delivery id.
        let (paused, after) = s
            .write(move |db| -> Result<_> {
                super::super::pause(db, run1, "policy bounces", at(6))?;
                Ok((
                    runs(db, Some(run2), 1)?,
                    run_failures(db, run1, Some(d[2]), 10)?,
                ))
            })
            .await
            .expect("paused");
        assert_eq!(paused[0].state, RunState::Paused);
        assert_eq!(paused[0].paused_reason.as_deref(), Some("policy bounces"));
        assert!(after.is_empty());
    }
}

/// The failed, skipped and retried rows are counted and listed through their own index, and the
/// waiting ones through the index of open rows, not a scan of the ledger (SQLite's plan names
/// them).
#[test]
fn a_runs_counts_read_small_indexes_not_the_ledger() {
    let dir = tempfile::tempdir().expect("tmp");
    let conn = crate::db::open(&dir.path().join("t.db")).expect("db");
    for (sql, params, index) in [
        (NOTABLE, params![1, 2], "deliveries_run_notable"),
        (FAILURES, params![1, 2, 3], "deliveries_run_notable"),
        (WAITING_NOT_LOGGED, params![1, 2], "deliveries_open"),
    ] {
        let plan: Vec<String> = Db::Lite(&conn)
            .query_map(&format!("EXPLAIN QUERY PLAN {sql}"), params, |r| r.get(3))
            .expect("plan");
        assert!(plan.iter().any(|p| p.contains(index)), "{sql}: {plan:?}");
    }
}

/// A run's bounces, complaints and unsubscribes are found by its range of delivery ids, not by
/// reading each delivery: they stay the run's after the subscriber (and so their ledger rows) is
/// deleted, as its number due does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_keeps_what_came_back_after_the_subscriber_is_deleted() {
    for (s, _dir) in crate::store::tests::both().await {
        let (run1, _, _) = s.write(known_ledger).await.expect("ledger");
        let (gone, all) = s
            .write(move |db| -> Result<_> {
                // s1's digest of run 1 drew a complaint and an unsubscribe.
                let s1 = SubscriberEmail::parse("s1@example.com").expect("email");
                Ok((store::delete(db, &s1)?, runs(db, None, 30)?))
            })
            .await
            .expect("delete and read");
        assert!(gone);
        let first = all.iter().find(|r| r.id == run1).expect("run 1");
        assert_eq!((first.due, first.complained, first.unsubscribed), (5, 1, 1));
    }
}
