//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`, seeds and what the fuzzers kept,
//! crashes found and fixed among them) through the same checks the fuzz targets run, so a plain
//! `cargo test` fails if a parser regresses on any of them.

#[path = "../fuzz/checks.rs"]
mod checks;
#[path = "../fuzz/checks_feedback.rs"]
mod checks_feedback;
#[path = "../fuzz/checks_webhooks.rs"]
mod checks_webhooks;

fn replay(target: &str, check: fn(&[u8])) {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let dir = fuzz.join("corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    // Crashes found and fixed, kept apart too (`fuzz/regressions/<target>/`, where there are any).
    if let Ok(found) = std::fs::read_dir(fuzz.join("regressions").join(target)) {
        files.extend(found.filter_map(|e| e.ok().map(|e| e.path())));
    }
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    for file in files {
        let data = std::fs::read(&file).expect("corpus file");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "{target}: {} fails its check",
            file.display()
        );
    }
}

#[test]
fn article_json_corpus() {
    replay("article_json", checks::article_json);
}

#[test]
fn markdown_front_matter_corpus() {
    replay("markdown_front_matter", checks::markdown_front_matter);
}

#[test]
fn feed_import_corpus() {
    replay("feed_import", checks::feed_import);
}

#[test]
fn subscriber_csv_corpus() {
    replay("subscriber_csv", checks::subscriber_csv);
}

#[test]
fn form_body_corpus() {
    replay("form_body", checks::form_body);
}

#[test]
fn conditional_headers_corpus() {
    replay("conditional_headers", checks::conditional_headers);
}

#[test]
fn feedback_report_corpus() {
    replay("feedback_report", checks_feedback::feedback_report);
}

#[test]
fn feedback_tags_corpus() {
    replay("feedback_tags", checks_feedback::feedback_tags);
}

#[test]
fn inbound_smtp_session_corpus() {
    replay(
        "inbound_smtp_session",
        checks_feedback::inbound_smtp_session,
    );
}

#[test]
fn webhook_ses_corpus() {
    replay("webhook_ses", checks_webhooks::webhook_ses);
}

#[test]
fn webhook_postmark_corpus() {
    replay("webhook_postmark", checks_webhooks::webhook_postmark);
}

#[test]
fn webhook_mailgun_corpus() {
    replay("webhook_mailgun", checks_webhooks::webhook_mailgun);
}

#[test]
fn webhook_sendgrid_corpus() {
    replay("webhook_sendgrid", checks_webhooks::webhook_sendgrid);
}

#[test]
fn webhook_auth_corpus() {
    replay("webhook_auth", checks_webhooks::webhook_auth);
}

/// Found by `feedback_report` (and `inbound_smtp_session`, through the listener): an ARF report
/// with broken nested parts makes mail-parser 0.11.9 fail an internal assertion (a panic in builds
/// with debug assertions; upstream, malformed MIME has made it panic in release builds too). The
/// message is read as `Other` instead of failing its handling.
#[test]
fn a_message_mail_parser_panics_on_reads_as_other() {
    let raw = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/regressions/feedback_report/regression-mail-parser-debug-assert.eml"),
    )
    .expect("regression input");
    let report = tidings::feedback::report::parse(&raw);
    if cfg!(debug_assertions) {
        assert_eq!(
            report,
            tidings::feedback::report::Report::Other { subject: None }
        );
    }
    checks_feedback::feedback_report(&raw);
}

/// Found by `webhook_auth`: a correctly signed SendGrid (and, the same code, Mailgun) request
/// whose timestamp is `-9223372036854775808` overflowed `now - timestamp` (a panic with overflow
/// checks; in release it wrapped and happened to be refused). It is stale, and refused.
#[test]
fn a_signed_timestamp_at_the_end_of_i64_is_stale() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/webhook_auth");
    for name in [
        "regression-sendgrid-timestamp-overflow",
        "regression-mailgun-timestamp-overflow",
    ] {
        let data = std::fs::read(dir.join(name)).expect("regression input");
        checks_webhooks::webhook_auth(&data);
    }
}

/// The SMTP target's property (stored messages = `250 2.0.0` replies) is not vacuous: its seeds
/// store a bounce, refuse a relay, refuse an oversized message and end at a too-long line.
#[test]
fn the_smtp_seeds_store_refuse_and_cut_off_as_the_listener_should() {
    let seed = |name: &str| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus/inbound_smtp_session")
            .join(name);
        checks_feedback::smtp_session(&std::fs::read(path).expect("seed"))
    };
    let (replies, stored) = seed("seed-dsn.smtp");
    assert_eq!(stored, 1, "{replies:?}");
    assert!(
        replies.iter().any(|r| r.starts_with("250 2.0.0")),
        "{replies:?}"
    );
    let (replies, stored) = seed("seed-two-messages-dot-stuffed.smtp");
    assert_eq!(stored, 2, "{replies:?}");
    let (replies, stored) = seed("seed-relay-refused.smtp");
    assert_eq!(stored, 0);
    assert_eq!(
        replies.iter().filter(|r| r.starts_with("550")).count(),
        3,
        "{replies:?}"
    );
    let (replies, stored) = seed("seed-too-big.smtp");
    assert_eq!(stored, 0);
    assert!(replies.iter().any(|r| r.starts_with("552")), "{replies:?}");
    let (replies, _) = seed("seed-line-too-long.smtp");
    assert!(
        replies.last().is_some_and(|r| r.starts_with("500")),
        "{replies:?}"
    );
}
