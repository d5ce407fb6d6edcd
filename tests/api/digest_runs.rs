//! Runs that do not hold the connection: `POST /api/digests/runs` answers `202` with the run's
//! `Location` once it is planned, `GET` follows it to the end, and the list pages by key.

use crate::helpers::{import_subscribers, publish, Daemon, SmtpSink, TOKEN};

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

#[test]
fn a_started_run_answers_202_with_its_location_and_finishes_with_its_counts() {
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[]);
    import_subscribers(&d, 40);
    publish(&d);
    let r = d.api("POST", "/api/digests/runs", Some(r#"{"now": true}"#));
    assert_eq!(r.status, 202, "{}", r.text());
    let location = r.header("location").expect("Location");
    let id = r.json()["run_id"].as_i64().expect("run_id");
    assert_eq!(location, format!("/api/digests/runs/{id}"));
    assert_eq!(r.json()["planned"], 40);
    let auth = bearer();
    let done = d.wait_for_with(&location, &[("Authorization", &auth)], |r| {
        r.status == 200 && r.json()["state"] == "done"
    });
    let run = done.json();
    assert_eq!(run["id"], id);
    assert_eq!(run["due"], 40);
    assert_eq!(run["sent"], 40);
    assert_eq!(run["failed"], 0);
    assert_eq!(run["waiting"], 0);
    assert_eq!(run["manual"], true);
    // Nobody is due now: no run, 200.
    let again = d.api("POST", "/api/digests/runs", Some(r#"{"now": true}"#));
    assert_eq!(again.status, 200, "{}", again.text());
    assert!(again.json()["run_id"].is_null());
    assert!(again.header("location").is_none());
}

#[test]
fn a_start_with_dry_run_is_400_naming_it_and_starts_nothing() {
    let d = Daemon::start();
    import_subscribers(&d, 3);
    publish(&d);
    let r = d.api("POST", "/api/digests/runs", Some(r#"{"dry_run": true}"#));
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["field"], "dry_run");
    let runs = d.api("GET", "/api/digests/runs", None);
    assert_eq!(runs.status, 200);
    assert_eq!(runs.json()["runs"], serde_json::json!([]));
    let r = d.api("GET", "/api/digests/runs/12345", None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["field"], "id");
    let r = d.api("GET", "/api/digests/runs/nine", None);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "id");
}

#[test]
fn runs_page_by_key_newest_first_without_gaps_or_repeats() {
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[]);
    import_subscribers(&d, 2);
    let mut ids = Vec::new();
    for i in 0..5 {
        crate::helpers::publish_article(&d, &format!("news-{i}"));
        let r = d.api("POST", "/api/digests/run", Some(r#"{"now": true}"#));
        assert_eq!(r.status, 200, "{}", r.text());
        ids.push(r.json()["run_id"].as_i64().expect("run_id"));
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut path = "/api/digests/runs?limit=2".to_string();
    loop {
        let page = d.api("GET", &path, None).json();
        let runs = page["runs"].as_array().expect("runs").clone();
        assert!(runs.len() <= 2);
        seen.extend(runs.iter().map(|r| r["id"].as_i64().expect("id")));
        match page["next"].as_str() {
            Some(next) => {
                // A run added between pages comes first, never inside the pages still to read.
                if seen.len() == 2 {
                    crate::helpers::publish_article(&d, "between");
                    let r = d.api("POST", "/api/digests/run", Some(r#"{"now": true}"#));
                    assert_eq!(r.status, 200);
                }
                path = format!("/api/digests/runs?limit=2&after={next}");
            }
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let r = d.api("GET", "/api/digests/runs?limit=1001", None);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "limit");
}
