//! `tidings migrate`: a SQLite site moved into PostgreSQL serves the same feed bytes and ETags,
//! and every link in the emails it sent before the move still works.

use crate::helpers::{
    fresh_postgres_url, import_subscribers, publish_article, start_digest_run, Daemon, SmtpSink,
};

const FEEDS: [&str; 4] = ["/feed.xml", "/atom.xml", "/feed.json", "/tags/ai/feed.xml"];

fn feeds(d: &Daemon) -> Vec<(String, Vec<u8>, Option<String>)> {
    FEEDS
        .iter()
        .map(|path| {
            let r = d.get(path);
            assert_eq!(r.status, 200, "{path}");
            (path.to_string(), r.body.clone(), r.header("etag"))
        })
        .collect()
}

#[test]
#[ignore = "needs PostgreSQL (TIDINGS_TEST_POSTGRES_URL); .ci/run sets it"]
fn a_site_moved_to_postgres_keeps_its_feeds_etags_and_links() {
    const N: usize = 10_000;
    let sink = SmtpSink::start();
    let mut d = Daemon::start_mailing_on_sqlite(&sink);
    import_subscribers(&d, N);
    for slug in ["first", "second", "third"] {
        publish_article(&d, slug);
    }
    // 10,000 digests take longer than one API call's 30 s when the suite runs in parallel: no
    // timeout for this one.
    let report = start_digest_run(&d)
        .join()
        .expect("run thread")
        .expect("a report");
    assert_eq!(report["sent"], N as u64, "{report}");
    let run = report["run_id"].as_i64().expect("run id");
    let before = feeds(&d);
    let archive = d.get(&format!("/digests/{run}"));
    assert_eq!(archive.status, 200);
    let mail = sink.wait_for(N).pop().expect("a digest");
    let unsubscribe = mail.link("https://blog.example", "/unsubscribe/");
    let preferences = mail.link("https://blog.example", "/preferences/");
    assert_eq!(d.get(&preferences).status, 200);
    d.stop();
    // A kill between a digest's durable `sent` log row and its fold leaves it `sending` in the
    // ledger: the move carries it over as sent.
    let last: i64 = {
        let db = d.db();
        let last = db
            .query_row("SELECT max(id) FROM deliveries", &[], |r| r.get(0))
            .expect("a delivery");
        db.execute(
            "INSERT INTO sent_log (delivery_id, subscriber_id, message_id, sent_us, window_end_us) \
             SELECT id, subscriber_id, message_id, sent_us, window_end_us FROM deliveries WHERE id = ?1",
            &[&last],
        )
        .expect("log row");
        db.execute(
            "UPDATE deliveries SET state = 'sending', message_id = NULL, attempts = 0 WHERE id = ?1",
            &[&last],
        )
        .expect("unfold");
        last
    };

    let url = fresh_postgres_url();
    // The target from the environment: no password in the process list.
    let mut env = d.env().to_vec();
    env.push(("TIDINGS_MIGRATE_TO".into(), url.clone()));
    let out = crate::helpers::cli_in(&d.dir, &env, &["migrate"]);
    assert!(out.status.success(), "{}", crate::helpers::stderr(&out));
    assert!(
        crate::helpers::stdout(&out).contains(&format!("subscribers {N}")),
        "{}",
        crate::helpers::stdout(&out)
    );
    // A second copy into the same (now full) database is refused and changes nothing.
    let again = crate::helpers::cli_in(&d.dir, &env, &["migrate"]);
    assert!(!again.status.success());
    assert!(
        crate::helpers::stderr(&again).contains("not empty"),
        "{}",
        crate::helpers::stderr(&again)
    );

    d.use_database_url(&url);
    // The per-status counts the dashboard reads are made by the target's own triggers as the
    // subscribers arrive: the same as counting the rows.
    let by_status = |sql: &str| -> Vec<(String, i64)> {
        d.db()
            .query_map(sql, &[], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("counts")
    };
    assert_eq!(
        by_status(
            "SELECT status, sum(n)::bigint FROM (SELECT status, n FROM subscriber_counts \
             UNION ALL SELECT status, n FROM subscriber_count_moves) AS c \
             GROUP BY status HAVING sum(n) <> 0 ORDER BY status"
        ),
        by_status("SELECT status, count(*) FROM subscribers GROUP BY status ORDER BY status"),
        "counted as copied"
    );
    let moved: (String, i64, bool) = d
        .db()
        .query_row(
            "SELECT state, attempts, message_id IS NOT NULL FROM deliveries WHERE id = ?1",
            &[&last],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("the logged delivery");
    assert_eq!(
        moved,
        ("sent".to_string(), 1, true),
        "a logged digest moves as sent"
    );
    d.start_again();
    assert_eq!(feeds(&d), before, "the same bytes and ETags on PostgreSQL");
    let moved = d.get(&format!("/digests/{run}"));
    assert_eq!((moved.status, moved.body), (200, archive.body));
    assert_eq!(d.get(&preferences).status, 200, "an old preferences link");
    let page = d.get(&unsubscribe);
    assert_eq!(page.status, 200, "an old unsubscribe link");
    let r = d.request(
        "POST",
        &unsubscribe,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(b"List-Unsubscribe=One-Click"),
    );
    assert_eq!(r.status, 200);
    let who = mail.header("To").unwrap_or_default();
    let status = d
        .api("GET", &format!("/api/subscribers/{who}"), None)
        .json();
    assert_eq!(status["status"], "unsubscribed", "{status}");
    // New rows continue after the copied ids.
    publish_article(&d, "after-the-move");
    let after = d.get("/feed.xml");
    assert!(after.text().contains("after-the-move"));
}
