//! Bulk actions on both engines (PostgreSQL when `TIDINGS_TEST_POSTGRES_URL` is set).

use chrono::Utc;

use super::*;
use crate::params;
use crate::store::Db;
use crate::subscribers::events::{self, EventView};
use crate::subscribers::search::tests::{add, add_all, stores};
use crate::subscribers::search::{self, Filter};
use crate::subscribers::{Status, Subscriber, SubscriberEmail};

async fn everyone(store: &Store) -> Vec<Subscriber> {
    store
        .read(|db| subscribers::list(db, None))
        .await
        .expect("list")
}

async fn history(store: &Store, email: &str) -> Vec<EventView> {
    let email = email.to_string();
    store
        .read(move |db| events::for_email(db, &email))
        .await
        .expect("events")
}

/// An event as a user reads it, without its time.
fn shape(e: &EventView) -> String {
    format!(
        "{} {:?} {} {:?} {:?} {:?} {:?}",
        e.kind, e.bounce, e.source, e.detail, e.delivery_id, e.outbox_id, e.inbound_id
    )
}

fn gmail() -> Filter {
    Filter::parse(Some("gmail"), None, None).expect("filter")
}

#[test]
fn actions_parse_by_name() {
    for a in [Action::Unsubscribe, Action::Suppress, Action::Delete] {
        assert_eq!(Action::parse(a.as_str()), Ok(a));
    }
    assert!(Action::parse("export-everyone").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_unsubscribe_changes_exactly_the_subscribers_matched_at_confirmation() {
    for (store, _dir) in stores().await {
        store
            .write(|db| {
                for i in 0..1_500 {
                    add(
                        db,
                        &format!("Reader{i:04}@gmail.com"),
                        Status::Confirmed,
                        &[],
                    );
                }
                for i in 0..5 {
                    add(db, &format!("gone{i}@gmail.com"), Status::Unsubscribed, &[]);
                }
                add(db, "refused@gmail.com", Status::Bounced, &[]);
                for i in 0..10 {
                    add(db, &format!("other{i}@example.org"), Status::Confirmed, &[]);
                }
                Ok::<_, Error>(())
            })
            .await
            .expect("insert");
        let ids = search::matching(&store, gmail()).await.expect("ids");
        assert_eq!(ids.len(), 1_506);
        // Someone subscribes between the confirmation page and the action.
        add_all(&store, &[("late@gmail.com", Status::Confirmed, &[])]).await;
        let outcome = apply(&store, Action::Unsubscribe, &ids)
            .await
            .expect("apply");
        assert_eq!(
            outcome,
            Outcome {
                requested: 1_506,
                changed: 1_500,
                unchanged: 6,
                missing: 0,
                batches: 2,
            }
        );
        for s in everyone(&store).await {
            let email = s.email.as_str();
            let expected = if email.starts_with("Reader") || email.starts_with("gone") {
                Status::Unsubscribed
            } else if email.starts_with("refused") {
                Status::Bounced
            } else {
                Status::Confirmed
            };
            assert_eq!(s.status, expected, "{email}");
            assert_eq!(
                s.unsubscribed_at.is_some(),
                expected == Status::Unsubscribed
            );
        }
        // One event each, as a single unsubscribe by an admin records.
        let single = add_all(&store, &[("single@example.net", Status::Confirmed, &[])]).await[0];
        store
            .write(move |db| {
                let s = subscribers::get(db, single)?.expect("there");
                flow::unsubscribe_in(db, &s, "admin", None, None, Utc::now())
            })
            .await
            .expect("single");
        let single = history(&store, "single@example.net").await;
        let bulk = history(&store, "reader0042@gmail.com").await;
        assert_eq!(bulk.len(), 1);
        assert_eq!(shape(&bulk[0]), shape(&single[0]));
        let counted: Vec<(String, i64)> = store
            .read(|db| {
                db.query_map(
                    "SELECT kind, count(*) FROM events GROUP BY kind ORDER BY kind",
                    &[],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
            .await
            .expect("events");
        assert_eq!(counted, [("unsubscribe".to_string(), 1_501)]);
        for quiet in ["late@gmail.com", "gone0@gmail.com", "refused@gmail.com"] {
            assert!(history(&store, quiet).await.is_empty(), "{quiet}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_suppress_puts_each_address_on_the_list_as_a_single_suppression_does() {
    for (store, _dir) in stores().await {
        let ids = add_all(
            &store,
            &[
                ("Ann@x.org", Status::Confirmed, &[]),
                ("ann@x.org", Status::Pending, &[]),
                ("bob@x.org", Status::Confirmed, &[]),
                ("carol@x.org", Status::Bounced, &[]),
                ("dan@x.org", Status::Confirmed, &[]),
                ("Zed@y.org", Status::Confirmed, &[]),
                ("zed@y.org", Status::Confirmed, &[]),
            ],
        )
        .await;
        let (first_ann, ann, bob, carol) = (ids[0], ids[1], ids[2], ids[3]);
        let (first_zed, zed) = (ids[5], ids[6]);
        // Bob was suppressed before; Zed is suppressed the single way, to compare with.
        store
            .write(|db| {
                let now = Utc::now();
                for e in ["bob@x.org", "zed@y.org"] {
                    let email = SubscriberEmail::parse(e).expect("email");
                    suppressions::add(db, &email, Reason::Admin, None, "admin", now)?;
                }
                Ok::<_, Error>(())
            })
            .await
            .expect("single");
        let outcome = apply(&store, Action::Suppress, &[ann, bob, carol, 999_999])
            .await
            .expect("apply");
        assert_eq!(
            outcome,
            Outcome {
                requested: 4,
                changed: 2,
                unchanged: 1,
                missing: 1,
                batches: 1,
            }
        );
        let listed: Vec<(String, Reason)> = store
            .read(suppressions::list)
            .await
            .expect("list")
            .into_iter()
            .map(|s| (s.email, s.reason))
            .collect();
        assert_eq!(
            listed,
            [
                ("ann@x.org".to_string(), Reason::Admin),
                ("bob@x.org".to_string(), Reason::Admin),
                ("carol@x.org".to_string(), Reason::Admin),
                ("zed@y.org".to_string(), Reason::Admin),
            ]
        );
        let status: std::collections::HashMap<i64, Status> = everyone(&store)
            .await
            .into_iter()
            .map(|s| (s.id, s.status))
            .collect();
        assert_eq!(status[&first_ann], Status::Unsubscribed, "every spelling");
        assert_eq!(status[&ann], Status::Unsubscribed);
        assert_eq!(status[&carol], Status::Bounced, "already not sent to");
        assert_eq!(status[&ids[4]], Status::Confirmed, "not matched");
        assert_eq!(status[&first_zed], status[&zed]);
        // One event per address, naming its first spelling, like Zed's.
        let (anns, zeds) = (
            history(&store, "ann@x.org").await,
            history(&store, "zed@y.org").await,
        );
        assert_eq!((anns.len(), zeds.len()), (1, 1));
        assert_eq!(shape(&anns[0]), shape(&zeds[0]));
        let named = |email: &'static str| {
            let store = store.clone();
            async move {
                store
                    .read(move |db| {
                        db.query_row(
                            "SELECT subscriber_id FROM events WHERE email = ?1",
                            params![email],
                            |r| r.get::<Option<i64>>(0),
                        )
                    })
                    .await
                    .expect("event")
            }
        };
        assert_eq!(named("ann@x.org").await, Some(first_ann));
        assert_eq!(named("zed@y.org").await, Some(first_zed));
        assert_eq!(named("carol@x.org").await, Some(carol));
        assert_eq!(
            history(&store, "bob@x.org").await.len(),
            1,
            "only the first"
        );
    }
}

fn ledger_rows(db: &Db, subscriber: i64) -> Result<i64, Error> {
    db.query_row(
        "SELECT count(*) FROM deliveries WHERE subscriber_id = ?1",
        params![subscriber],
        |r| r.get(0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_delete_removes_the_subscribers_and_their_ledger_and_keeps_their_history() {
    for (store, _dir) in stores().await {
        let ids = add_all(
            &store,
            &[
                ("del0@gmail.com", Status::Confirmed, &["rust"]),
                ("del1@gmail.com", Status::Confirmed, &[]),
                ("del2@gmail.com", Status::Pending, &[]),
                ("keep@gmail.com", Status::Confirmed, &[]),
            ],
        )
        .await;
        let all = ids.clone();
        store
            .write(move |db| {
                let run: i64 = db.query_row(
                    "INSERT INTO digest_runs (now_us, manual, subject, html, deliveries) \
                     VALUES (0, 1, 's', 'h', 4) RETURNING id",
                    &[],
                    |r| r.get(0),
                )?;
                for id in &all {
                    db.execute(
                        "INSERT INTO deliveries (run_id, subscriber_id, state, window_end_us, articles, next_attempt_us) \
                         VALUES (?1, ?2, 'sent', 0, '[]', 0)",
                        params![run, id],
                    )?;
                }
                let s = subscribers::get(db, all[0])?.expect("there");
                flow::unsubscribe_in(db, &s, "link", None, None, Utc::now())?;
                Ok::<_, Error>(())
            })
            .await
            .expect("ledger");
        let outcome = apply(&store, Action::Delete, &[ids[0], ids[1], ids[2], 999_999])
            .await
            .expect("apply");
        assert_eq!(
            outcome,
            Outcome {
                requested: 4,
                changed: 3,
                unchanged: 0,
                missing: 1,
                batches: 1,
            }
        );
        let left: Vec<String> = everyone(&store)
            .await
            .iter()
            .map(|s| s.email.to_string())
            .collect();
        assert_eq!(left, ["keep@gmail.com"]);
        let rows = store
            .read(move |db| {
                ids.iter()
                    .map(|id| ledger_rows(db, *id))
                    .collect::<Result<Vec<i64>, Error>>()
            })
            .await
            .expect("ledger");
        assert_eq!(rows, [0, 0, 0, 1]);
        assert_eq!(history(&store, "del0@gmail.com").await.len(), 1, "kept");
        let found = search::search(&store, search::SearchQuery::default(), 10)
            .await
            .expect("search");
        assert_eq!(found.count, search::MatchCount::Exact(1));
        let found = search::matching(&store, gmail()).await.expect("search");
        assert_eq!(found.len(), 1, "the index forgot them too");
        if !store.is_postgres() {
            store
                .write(|db| {
                    db.execute(
                        "INSERT INTO subscriber_search (subscriber_search) VALUES ('integrity-check')",
                        &[],
                    )
                })
                .await
                .expect("the trigram index matches the table");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_export_writes_the_matched_subscribers_as_subscriber_export_does() {
    for (store, _dir) in stores().await {
        add_all(
            &store,
            &[
                ("ann@gmail.com", Status::Confirmed, &["rust", "science"]),
                ("bob@example.org", Status::Confirmed, &[]),
                ("cal@gmail.com", Status::Unsubscribed, &[]),
                ("dee@example.org", Status::Pending, &[]),
            ],
        )
        .await;
        let mut ids = search::matching(&store, gmail()).await.expect("ids");
        ids.push(999_999);
        let (written, bytes) = export_csv(&store, &ids, Vec::new()).await.expect("export");
        assert_eq!(written, 2);
        let whole = store
            .read(|db| {
                let mut out = Vec::new();
                crate::subscribers::csv::export(db, &mut out)?;
                Ok::<_, FlowError>(out)
            })
            .await
            .expect("export");
        let whole = String::from_utf8(whole).expect("utf-8");
        let lines: Vec<&str> = whole.lines().collect();
        let text = String::from_utf8(bytes).expect("utf-8");
        let expected: Vec<&str> = vec![lines[0], lines[3], lines[1]];
        assert_eq!(text.lines().collect::<Vec<_>>(), expected, "newest first");
    }
}
