//! The suppression list: no email of any kind goes to a suppressed address, nothing revives one
//! silently, the form does not tell, lifting leaves the subscriber unsubscribed, and an entry
//! outlives `subscriber remove`.

use crate::helpers::{publish, stderr, stdout, Daemon, SmtpSink};

fn subscribe(d: &Daemon, email: &str) -> String {
    let r = d.post_form(
        "/subscribe",
        &[("email", email), ("cadence", "daily"), ("time_zone", "UTC")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

fn status_of(d: &Daemon, email: &str) -> String {
    let r = d.api("GET", &format!("/api/subscribers/{email}"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["status"].as_str().unwrap_or_default().to_string()
}

/// `email`'s events after signing up (the sign-up's own, `subscribed` and `confirmed`, are
/// `history.rs`'s), oldest first.
fn history(d: &Daemon, email: &str) -> Vec<String> {
    let r = d.api("GET", &format!("/api/subscribers/{email}/events"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| !matches!(e["kind"].as_str(), Some("subscribed" | "confirmed")))
        .map(|e| {
            format!(
                "{}/{}",
                e["kind"].as_str().unwrap_or(""),
                e["source"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn a_suppressed_address_gets_nothing_and_the_form_does_not_tell() {
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[]);
    let added = d.api(
        "POST",
        "/api/suppressions",
        Some(r#"{"email":"Gone@Example.com","note":"asked by phone"}"#),
    );
    assert_eq!(added.status, 201, "{}", added.text());
    assert_eq!(added.json()["suppression"]["email"], "gone@example.com");
    let again = d.api(
        "POST",
        "/api/suppressions",
        Some(r#"{"email":"gone@example.com"}"#),
    );
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["added"], false);

    // The same page for a suppressed address as for a new one; only the new one gets mail.
    let for_gone = subscribe(&d, "gone@example.com");
    let for_new = subscribe(&d, "new@example.com");
    assert_eq!(for_gone, for_new);
    assert_eq!(d.settled_emails(), 1);
    let to: Vec<Vec<String>> = sink.received().into_iter().map(|m| m.rcpt_to).collect();
    assert_eq!(to, [vec!["new@example.com".to_string()]]);

    // Neither the API nor an import revives it; the error says why and how.
    let api = d.api(
        "POST",
        "/api/subscribers",
        Some(r#"{"email":"gone@example.com","status":"confirmed"}"#),
    );
    assert_eq!(api.status, 400);
    assert_eq!(api.json()["field"], "email");
    assert!(
        api.json()["error"]
            .as_str()
            .unwrap_or("")
            .contains("suppressed"),
        "{}",
        api.text()
    );
    let csv = d.dir.join("list.csv");
    std::fs::write(
        &csv,
        "email,status\nGONE@example.com,confirmed\nok@example.com,confirmed\n",
    )
    .expect("write");
    let import = d.cli(&["subscriber", "import", csv.to_str().expect("path")]);
    assert!(!import.status.success());
    assert!(
        stderr(&import).contains("line 2: email: gone@example.com is suppressed"),
        "{}",
        stderr(&import)
    );
    let listed = d.api("GET", "/api/subscribers", None).json();
    let emails: Vec<&str> = listed["subscribers"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["email"].as_str())
        .collect();
    assert!(
        !emails
            .iter()
            .any(|e| e.eq_ignore_ascii_case("gone@example.com")),
        "{emails:?}"
    );
}

#[test]
fn suppressing_a_subscriber_stops_their_digests_and_lifting_never_resubscribes() {
    let sink = SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[]);
    for email in ["kept@example.com", "stays@example.com"] {
        let r = d.api(
            "POST",
            "/api/subscribers",
            Some(&format!(r#"{{"email":"{email}","status":"confirmed"}}"#)),
        );
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let out = d.cli(&["suppression", "add", "KEPT@example.com", "--note", "asked"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(status_of(&d, "kept@example.com"), "unsubscribed");

    publish(&d);
    let report = d
        .api("POST", "/api/digests/run", Some(r#"{"now": true}"#))
        .json();
    assert_eq!(report["sent"], 1, "{report}");
    let to: Vec<Vec<String>> = sink.received().into_iter().map(|m| m.rcpt_to).collect();
    assert_eq!(to, [vec!["stays@example.com".to_string()]]);

    let lifted = d.api("DELETE", "/api/suppressions/kept@example.com", None);
    assert_eq!(lifted.status, 204);
    assert_eq!(status_of(&d, "kept@example.com"), "unsubscribed");
    assert_eq!(
        d.api("DELETE", "/api/suppressions/kept@example.com", None)
            .status,
        404
    );
    assert_eq!(
        history(&d, "kept@example.com"),
        ["suppressed/admin", "lifted/admin"]
    );

    // An entry outlives the subscriber row, and so does the history.
    assert!(d
        .cli(&["suppression", "add", "stays@example.com"])
        .status
        .success());
    assert!(d
        .cli(&["subscriber", "remove", "stays@example.com"])
        .status
        .success());
    let list = d.api("GET", "/api/suppressions", None).json();
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["suppressions"][0]["email"], "stays@example.com");
    let show = d.cli(&["subscriber", "show", "stays@example.com"]);
    assert!(show.status.success());
    assert!(
        stdout(&show).contains("not on the list"),
        "{}",
        stdout(&show)
    );
    assert!(
        stdout(&show).contains("suppressed  via admin"),
        "{}",
        stdout(&show)
    );
    // A form subscription does not bring it back either.
    subscribe(&d, "stays@example.com");
    assert_eq!(
        d.api("GET", "/api/subscribers/stays@example.com", None)
            .status,
        404
    );
}

#[test]
fn a_suppression_list_moves_in_and_out_as_csv() {
    let d = Daemon::start();
    let file = d.dir.join("suppressed.csv");
    std::fs::write(
        &file,
        "email,reason,note\na@example.com,complaint,from the old tool\nnot an address,,\nb@example.com,,\nc@example.com,sneezed,\n",
    )
    .expect("write");
    let out = d.cli(&["suppression", "import", file.to_str().expect("path")]);
    assert!(!out.status.success(), "bad rows make the exit 1");
    let err = stderr(&out);
    assert!(err.contains("line 3: email:"), "{err}");
    assert!(
        err.contains("line 5: reason: 'sneezed' is not one of"),
        "{err}"
    );
    assert!(
        stdout(&out).contains("2 added, 0 already suppressed, 2 rejected"),
        "{}",
        stdout(&out)
    );
    let export = d.cli(&["suppression", "export"]);
    let csv = stdout(&export);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "email,reason,note,created_at");
    assert!(
        rows[1].starts_with("a@example.com,complaint,from the old tool,"),
        "{csv}"
    );
    assert!(rows[2].starts_with("b@example.com,admin,,"), "{csv}");
    assert_eq!(rows.len(), 3);
    // The export imports back as it is, changing nothing.
    std::fs::write(&file, &csv).expect("write");
    let again = d.cli(&["suppression", "import", file.to_str().expect("path")]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("0 added, 2 already suppressed, 0 rejected"));
    // A header it does not know is refused before anything changes.
    std::fs::write(&file, "address\nx@example.com\n").expect("write");
    let bad = d.cli(&["suppression", "import", file.to_str().expect("path")]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("header: unknown column 'address'"),
        "{}",
        stderr(&bad)
    );
    assert_eq!(d.api("GET", "/api/suppressions", None).json()["total"], 2);
}
