//! The search on both engines (PostgreSQL when `TIDINGS_TEST_POSTGRES_URL` is set).

use chrono::Utc;

use super::*;
use crate::store::{Location, Store};
use crate::subscribers::{Cadence, Preferences, SubscriberEmail, TimeZone};

/// A fresh SQLite store, and a fresh PostgreSQL one when the server is there.
pub(crate) async fn stores() -> Vec<(Store, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let lite = Store::open(&Location::Sqlite(dir.path().join("t.db")), 2)
        .await
        .expect("sqlite");
    let mut stores = vec![(lite, Some(dir))];
    if let Some(pg) = crate::store::tests::fresh_postgres().await {
        stores.push((Store::open(&pg, 4).await.expect("postgres"), None));
    }
    stores
}

/// Adds a subscriber through the store, as the flows do; its id.
pub(crate) fn add(db: &Db, email: &str, status: Status, tags: &[&str]) -> i64 {
    let email = SubscriberEmail::parse(email).expect("a valid address");
    let prefs = Preferences {
        tags: tags.iter().map(|t| t.to_string()).collect(),
        cadence: Cadence::Daily,
        time_zone: TimeZone(chrono_tz::UTC),
    };
    let now = Utc::now();
    let id = store::insert(db, &email, &prefs, Status::Pending, now).expect("insert");
    if status != Status::Pending {
        store::set_status(db, id, status, now).expect("status");
    }
    id
}

pub(crate) async fn add_all(store: &Store, rows: &[(&str, Status, &[&str])]) -> Vec<i64> {
    let rows: Vec<(String, Status, Vec<String>)> = rows
        .iter()
        .map(|(e, s, t)| (e.to_string(), *s, t.iter().map(|t| t.to_string()).collect()))
        .collect();
    store
        .write(move |db| {
            Ok::<_, Error>(
                rows.iter()
                    .map(|(e, s, t)| {
                        let tags: Vec<&str> = t.iter().map(String::as_str).collect();
                        add(db, e, *s, &tags)
                    })
                    .collect(),
            )
        })
        .await
        .expect("add")
}

fn filter(q: Option<&str>, status: Option<&str>, tag: Option<&str>) -> Filter {
    Filter::parse(q, status, tag).expect("a valid filter")
}

/// The addresses a filter finds, newest first (one page holds them all).
async fn found(store: &Store, f: Filter) -> Vec<String> {
    let query = SearchQuery {
        filter: f,
        after: None,
    };
    let found = search(store, query, MAX_PAGE_SIZE).await.expect("search");
    let emails: Vec<String> = found
        .page
        .subscribers
        .iter()
        .map(|s| s.email.to_string())
        .collect();
    assert_eq!(
        found.count,
        MatchCount::Exact(emails.len() as u64),
        "the count agrees with the page"
    );
    emails
}

async fn found_q(store: &Store, q: &str) -> Vec<String> {
    found(store, filter(Some(q), None, None)).await
}

#[test]
fn bad_input_names_its_field_and_blank_fields_are_no_filter() {
    let field = |r: Result<SearchQuery, InputError>| r.expect_err("refused").field;
    assert_eq!(field(SearchQuery::parse(Some("ab"), None, None, None)), "q");
    assert_eq!(
        field(SearchQuery::parse(Some("  a  "), None, None, None)),
        "q"
    );
    assert_eq!(
        field(SearchQuery::parse(Some("ab\0c"), None, None, None)),
        "q"
    );
    let long = "a".repeat(MAX_CHARS + 1);
    assert_eq!(
        field(SearchQuery::parse(Some(&long), None, None, None)),
        "q"
    );
    assert_eq!(
        field(SearchQuery::parse(None, Some("gone"), None, None)),
        "status"
    );
    assert_eq!(
        field(SearchQuery::parse(None, None, Some("Open Science"), None)),
        "tag"
    );
    for bad in ["x", "0", "-3", "1.5"] {
        assert_eq!(
            field(SearchQuery::parse(None, None, None, Some(bad))),
            "after"
        );
    }
    let q = SearchQuery::parse(Some(" ann "), Some(""), Some(" "), Some(""))
        .expect("blank fields are no filter");
    assert_eq!(q.filter.q(), Some("ann"));
    assert_eq!(
        (q.filter.status(), q.filter.tag(), q.after),
        (None, None, None)
    );
    let q =
        SearchQuery::parse(None, Some("bounced"), Some("open-science"), Some("42")).expect("valid");
    assert_eq!(q.filter.status(), Some(Status::Bounced));
    assert_eq!(q.filter.tag(), Some("open-science"));
    assert_eq!(q.after, Some(42));
}

#[test]
fn counts_read_as_a_number_or_a_bound() {
    assert_eq!(MatchCount::Exact(0).to_string(), "0");
    assert_eq!(MatchCount::Exact(9_999).to_string(), "9,999");
    assert_eq!(MatchCount::Exact(1_234_567).to_string(), "1,234,567");
    assert_eq!(
        MatchCount::MoreThan(COUNT_LIMIT).to_string(),
        "more than 10,000"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_part_of_the_address_is_found_in_any_case() {
    for (store, _dir) in stores().await {
        add_all(
            &store,
            &[
                ("anna.smith@gmail.com", Status::Confirmed, &[]),
                ("Joann@example.org", Status::Confirmed, &[]),
                ("bob@example.org.uk", Status::Pending, &[]),
                ("carol@mail.example.org", Status::Confirmed, &[]),
                ("example.org@gmail.com", Status::Unsubscribed, &[]),
                ("dan@outlook.com", Status::Bounced, &[]),
            ],
        )
        .await;
        // The middle of the local part, and of the domain.
        assert_eq!(found_q(&store, "na.sm").await, ["anna.smith@gmail.com"]);
        assert_eq!(
            found_q(&store, "mail.c").await,
            ["example.org@gmail.com", "anna.smith@gmail.com"]
        );
        // A domain with its `@`: not a subdomain of it, nor the name in a local part.
        assert_eq!(
            found_q(&store, "@example.org").await,
            ["bob@example.org.uk", "Joann@example.org"]
        );
        // Any case, in the text and in the address.
        assert_eq!(
            found_q(&store, "ANN").await,
            ["Joann@example.org", "anna.smith@gmail.com"]
        );
        assert_eq!(
            found_q(&store, "jOaNn@Example").await,
            ["Joann@example.org"]
        );
        assert_eq!(found_q(&store, "zzz").await, Vec::<String>::new());
        assert_eq!(
            found_q(&store, "firmed").await,
            Vec::<String>::new(),
            "the address, not the status"
        );
        assert_eq!(
            found(&store, Filter::default()).await.len(),
            6,
            "no filter: everyone"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_and_quotes_in_the_search_match_only_themselves() {
    for (store, _dir) in stores().await {
        add_all(
            &store,
            &[
                ("a_b@x.org", Status::Confirmed, &[]),
                ("axb@x.org", Status::Confirmed, &[]),
                ("a%b@x.org", Status::Confirmed, &[]),
                ("a*b@x.org", Status::Confirmed, &[]),
                ("aab@x.org", Status::Confirmed, &[]),
                ("a+b@x.org", Status::Confirmed, &[]),
            ],
        )
        .await;
        assert_eq!(found_q(&store, "a_b").await, ["a_b@x.org"]);
        assert_eq!(found_q(&store, "a%b").await, ["a%b@x.org"]);
        assert_eq!(found_q(&store, "a*b").await, ["a*b@x.org"]);
        for nothing in [
            "%%%",
            "___",
            "***",
            "\"ab",
            "a\"b",
            "b@x\"",
            "a\\b",
            "x.org*",
            "NEAR(a b)",
        ] {
            assert_eq!(
                found_q(&store, nothing).await,
                Vec::<String>::new(),
                "{nothing:?} is literal"
            );
        }
        assert_eq!(found_q(&store, "b@x.org").await.len(), 6);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_tag_filters_combine_with_the_search() {
    for (store, _dir) in stores().await {
        add_all(
            &store,
            &[
                ("ann@gmail.com", Status::Confirmed, &["rust", "science"]),
                ("bea@gmail.com", Status::Pending, &["rust"]),
                ("cal@gmail.com", Status::Confirmed, &[]),
                ("dee@example.org", Status::Confirmed, &["rust"]),
                ("eve@gmail.com", Status::Bounced, &["science"]),
                ("fay@gmail.com", Status::Unsubscribed, &["rust"]),
            ],
        )
        .await;
        let f = |q, s, t| filter(q, s, t);
        assert_eq!(
            found(&store, f(Some("gmail"), Some("confirmed"), None)).await,
            ["cal@gmail.com", "ann@gmail.com"]
        );
        assert_eq!(
            found(&store, f(Some("gmail"), None, Some("rust"))).await,
            ["fay@gmail.com", "bea@gmail.com", "ann@gmail.com"]
        );
        assert_eq!(
            found(&store, f(Some("gmail"), Some("confirmed"), Some("rust"))).await,
            ["ann@gmail.com"]
        );
        assert_eq!(
            found(&store, f(None, Some("confirmed"), Some("rust"))).await,
            ["dee@example.org", "ann@gmail.com"]
        );
        assert_eq!(
            found(&store, f(None, None, Some("science"))).await,
            ["eve@gmail.com", "ann@gmail.com"]
        );
        assert_eq!(
            found(&store, f(None, Some("bounced"), None)).await,
            ["eve@gmail.com"]
        );
        assert_eq!(
            found(&store, f(Some("example"), Some("pending"), None)).await,
            Vec::<String>::new()
        );
        assert_eq!(
            found(&store, f(None, None, Some("no-such-tag"))).await,
            Vec::<String>::new()
        );
    }
}

/// Reads every page of `f`, `size` at a time, adding `new` matching subscribers before each
/// page after the first; the addresses seen, in order.
async fn every_page(store: &Store, f: &Filter, size: usize, new: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut after = None;
    for round in 0.. {
        if round > 0 {
            let joined: Vec<String> = (0..3)
                .map(|i| format!("{new}{round}x{i}@example.org"))
                .collect();
            let rows: Vec<(&str, Status, &[&str])> = joined
                .iter()
                .map(|e| (e.as_str(), Status::Confirmed, &[] as &[&str]))
                .collect();
            add_all(store, &rows).await;
        }
        let query = SearchQuery {
            filter: f.clone(),
            after,
        };
        let found = search(store, query, size).await.expect("page");
        assert!(found.page.subscribers.len() <= size);
        seen.extend(found.page.subscribers.iter().map(|s| s.email.to_string()));
        match found.page.next_after {
            Some(id) => {
                assert_eq!(Some(id), found.page.subscribers.last().map(|s| s.id));
                after = Some(id);
            }
            None => break,
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_by_key_neither_shift_nor_repeat_while_people_subscribe() {
    for (store, _dir) in stores().await {
        let mut rows = Vec::new();
        for i in 0..25 {
            rows.push(format!("page{i:02}@example.org"));
            rows.push(format!("other{i:02}@elsewhere.net"));
        }
        let rows: Vec<(&str, Status, &[&str])> = rows
            .iter()
            .map(|e| (e.as_str(), Status::Confirmed, &[] as &[&str]))
            .collect();
        add_all(&store, &rows).await;
        // Through the address index, and through the status alone: each page continues where
        // the one before ended, whoever subscribed in between (and matches too).
        for (f, size, newcomers) in [
            (filter(Some("page"), None, None), 10, "pagenew"),
            (filter(None, Some("confirmed"), None), 7, "late"),
        ] {
            let before = found(&store, f.clone()).await;
            assert!(before.len() >= 25);
            let seen = every_page(&store, &f, size, newcomers).await;
            assert_eq!(
                seen, before,
                "newest first, each once, none of the newcomers"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_count_is_exact_to_ten_thousand_and_a_bound_beyond() {
    for (store, _dir) in stores().await {
        store
            .write(|db| {
                for i in 0..COUNT_LIMIT {
                    add(db, &format!("bulk{i:05}@gmail.com"), Status::Confirmed, &[]);
                }
                add(db, "rare@gmail.com", Status::Bounced, &[]);
                add(db, "someone@example.org", Status::Confirmed, &[]);
                Ok::<_, Error>(())
            })
            .await
            .expect("insert");
        let count = |f: Filter| {
            let store = store.clone();
            async move {
                refresh(&store).await.expect("refresh");
                store.read(move |db| count(db, &f)).await.expect("count")
            }
        };
        assert_eq!(
            count(filter(Some("bulk"), None, None)).await,
            MatchCount::Exact(10_000)
        );
        assert_eq!(
            count(filter(Some("gmail"), Some("bounced"), None)).await,
            MatchCount::Exact(1)
        );
        assert_eq!(
            count(filter(Some("gmail"), None, None)).await,
            MatchCount::MoreThan(10_000)
        );
        assert_eq!(count(Filter::default()).await, MatchCount::MoreThan(10_000));
        assert_eq!(
            count(filter(None, Some("confirmed"), None)).await,
            MatchCount::MoreThan(10_000)
        );
        // Per request: one more subscriber is counted at once.
        assert_eq!(
            count(filter(Some("@example.org"), None, None)).await,
            MatchCount::Exact(1)
        );
        add_all(&store, &[("another@example.org", Status::Pending, &[])]).await;
        assert_eq!(
            count(filter(Some("@example.org"), None, None)).await,
            MatchCount::Exact(2)
        );
        // Every match is there for a bulk action, beyond the count and the page.
        let ids = matching(&store, filter(Some("gmail"), None, None))
            .await
            .expect("ids");
        assert_eq!(ids.len(), 10_001);
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_match_whole_slugs_and_the_index_follows_changes() {
    for (store, _dir) in stores().await {
        let ids = add_all(
            &store,
            &[
                ("ann@gmail.com", Status::Confirmed, &["ai"]),
                ("bea@gmail.com", Status::Confirmed, &["ai-ethics"]),
                ("cal@gmail.com", Status::Confirmed, &["c", "rust"]),
                ("dee@gmail.com", Status::Pending, &["brainstorm"]),
            ],
        )
        .await;
        let f = |q, s, t| filter(q, s, t);
        for (q, status) in [
            (Some("gmail"), None),
            (None, Some("confirmed")),
            (None, None),
        ] {
            assert_eq!(
                found(&store, f(q, status, Some("ai"))).await,
                ["ann@gmail.com"],
                "not ai-ethics, not brainstorm ({q:?}, {status:?})"
            );
            assert_eq!(
                found(&store, f(q, status, Some("c"))).await,
                ["cal@gmail.com"],
                "a one-letter tag is a tag, not a status ({q:?}, {status:?})"
            );
        }
        // A new status and new tags are found at once, the old ones no longer.
        let (ann, cal) = (ids[0], ids[2]);
        store
            .write(move |db| {
                let now = Utc::now();
                store::set_status(db, ann, Status::Unsubscribed, now)?;
                let mut prefs = store::get(db, cal)?.expect("cal").preferences;
                prefs.tags = vec!["ai".into()];
                store::set_preferences(db, cal, &prefs)
            })
            .await
            .expect("change");
        assert_eq!(
            found(&store, f(Some("gmail"), Some("confirmed"), Some("ai"))).await,
            ["cal@gmail.com"]
        );
        assert_eq!(
            found(&store, f(Some("gmail"), Some("unsubscribed"), None)).await,
            ["ann@gmail.com"]
        );
        assert_eq!(
            found(&store, f(Some("gmail"), None, Some("rust"))).await,
            Vec::<String>::new()
        );
        assert_eq!(
            found(&store, f(None, Some("confirmed"), Some("c"))).await,
            Vec::<String>::new()
        );
        if !store.is_postgres() {
            store
                .write(|db| {
                    db.execute(
                        "INSERT INTO subscriber_search (subscriber_search) VALUES ('integrity-check')",
                        &[],
                    )
                })
                .await
                .expect("the index matches the table");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_status_is_found_with_a_search_and_an_import_leaves_the_index_current() {
    for (store, _dir) in stores().await {
        let config = crate::config::Config::default();
        let csv = "email,status\nann@gmail.com,pending\nbea@gmail.com,confirmed\n\
                   cal@gmail.com,unsubscribed\ndee@example.org,confirmed\n";
        store
            .write(move |db| crate::subscribers::csv::import(db, &config, csv.as_bytes()))
            .await
            .expect("import");
        add_all(&store, &[("eve@gmail.com", Status::Bounced, &[])]).await;
        if !store.is_postgres() {
            let queued: i64 = store
                .read(|db| {
                    db.query_row("SELECT count(*) FROM subscriber_search_queue", &[], |r| {
                        r.get(0)
                    })
                })
                .await
                .expect("queue");
            assert_eq!(
                queued, 1,
                "the import synced its own rows; eve waits for a search"
            );
        }
        for (status, email) in [
            ("pending", "ann@gmail.com"),
            ("confirmed", "bea@gmail.com"),
            ("unsubscribed", "cal@gmail.com"),
            ("bounced", "eve@gmail.com"),
        ] {
            assert_eq!(
                found(&store, filter(Some("gmail"), Some(status), None)).await,
                [email]
            );
        }
    }
}

/// On PostgreSQL, the subscribers and tags already there when the search table arrives (V11)
/// are found by address, status and tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_from_before_the_postgres_search_table_are_found_after_the_upgrade() {
    let Some(location) = crate::store::tests::fresh_postgres().await else {
        return;
    };
    let Location::Postgres(url) = &location else {
        unreachable!("a PostgreSQL location");
    };
    crate::store::postgres::migrate_to(url, 10).await;
    let (config, tls) = crate::store::postgres::connect_config(url).expect("url");
    let (client, connection) = config.connect(tls).await.expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute(
            "INSERT INTO subscribers (id, email, status, cadence, time_zone, created_at) VALUES \
                 (1, 'Old.Reader@Example.org', 'confirmed', 'daily', 'UTC', '2024-01-01T00:00:00Z'), \
                 (2, 'other.reader@example.org', 'bounced', 'daily', 'UTC', '2024-01-01T00:00:00Z'); \
             INSERT INTO subscriber_tags (subscriber_id, tag_slug) VALUES (1, 'rust'), (2, 'ai');",
        )
        .await
        .expect("rows");
    let store = Store::open(&location, 2).await.expect("upgraded");
    for (q, status, tag, expected) in [
        (Some("d.rea"), None, None, vec![1]),
        (Some("READER@EX"), None, None, vec![2, 1]),
        (Some("reader"), Some("bounced"), None, vec![2]),
        (Some("reader"), None, Some("rust"), vec![1]),
        (None, Some("confirmed"), Some("rust"), vec![1]),
        (None, Some("confirmed"), Some("ai"), vec![]),
    ] {
        let ids = matching(&store, filter(q, status, tag))
            .await
            .expect("search");
        assert_eq!(ids, expected, "{q:?} {status:?} {tag:?}");
    }
}
