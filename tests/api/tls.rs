//! Mail over TLS to a real TLS server (the test sink with a certificate authority the test made):
//! STARTTLS, implicit TLS and AUTH, verified against `mail.tls_ca_file`, for the single emails
//! and for digests.

use crate::helpers::{
    import_subscribers, publish, wait_until, Daemon, SinkOptions, SinkTls, SmtpSink, TestCa,
};

const USER: &str = "relay-user";
const PASSWORD: &str = "relay-password-123";

fn tls_sink(ca: &TestCa, tls: SinkTls) -> SmtpSink {
    SmtpSink::start_tls(
        SinkOptions {
            tls,
            auth: Some((USER.into(), PASSWORD.into())),
            ..SinkOptions::default()
        },
        ca,
    )
}

/// A daemon sending to `sink` with `transport`, `tls` and the given CA file and password.
fn daemon(sink: &SmtpSink, scheme: &str, tls: &str, ca: Option<&str>, password: &str) -> Daemon {
    let transport = format!("{scheme}://127.0.0.1:{}", sink.port);
    let mut env = vec![
        ("TIDINGS_MAIL_TRANSPORT", transport.as_str()),
        ("TIDINGS_MAIL_TLS", tls),
        ("TIDINGS_MAIL_FROM", "Future Tech Blog <news@blog.example>"),
        ("TIDINGS_MAIL_USERNAME", USER),
        ("TIDINGS_MAIL_PASSWORD", password),
        ("TIDINGS_DIGEST_MAX_ATTEMPTS", "1"),
    ];
    if let Some(ca) = ca {
        env.push(("TIDINGS_MAIL_TLS_CA_FILE", ca));
    }
    Daemon::start_with(&env)
}

fn subscribe(d: &Daemon, email: &str) {
    d.publish(&crate::helpers::article(
        "tagged",
        "Tagged",
        &["AI"],
        "2020-01-01T00:00:00Z",
    ));
    let r = d.post_form(
        "/subscribe",
        &[("email", email), ("cadence", "daily"), ("time_zone", "UTC")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Both ways of doing TLS, each for a confirmation email (lettre's pooled transport) and a digest
/// (tidings' own pipelined session): the messages arrive encrypted and authenticated.
#[test]
fn starttls_and_implicit_tls_with_auth_deliver_encrypted_and_authenticated_mail() {
    for (scheme, tls, mode) in [
        ("smtp", "starttls", SinkTls::StartTls),
        ("smtp", "tls", SinkTls::Implicit),
        ("smtps", "starttls", SinkTls::Implicit),
    ] {
        let ca = TestCa::new();
        let dir = tempfile::tempdir().expect("tmp");
        let ca_file = ca.write_ca(dir.path());
        let sink = tls_sink(&ca, mode);
        let d = daemon(&sink, scheme, tls, ca_file.to_str(), PASSWORD);
        subscribe(&d, "reader@example.com");
        assert_eq!(
            d.settled_emails(),
            1,
            "{scheme} {tls}: the confirmation went out\n{}",
            d.log()
        );
        import_subscribers(&d, 3);
        publish(&d);
        let report = d
            .api("POST", "/api/digests/run", Some(r#"{"now": true}"#))
            .json();
        assert_eq!(report["sent"], 3, "{scheme} {tls}: {report}\n{}", d.log());
        let mails = sink.received();
        assert_eq!(mails.len(), 4);
        for m in &mails {
            assert!(
                m.tls,
                "{scheme} {tls}: sent in the clear to {:?}",
                m.rcpt_to
            );
            assert_eq!(
                m.user.as_deref(),
                Some(USER),
                "{scheme} {tls}: not authenticated"
            );
        }
    }
}

/// Verification is on: without the test CA the server's certificate is refused and nothing is
/// sent; with it but a wrong password, AUTH fails and nothing is sent either.
#[test]
fn an_unknown_certificate_or_a_wrong_password_sends_nothing() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().expect("tmp");
    let ca_file = ca.write_ca(dir.path());
    for (ca_file, password, what) in [
        (None, PASSWORD, "untrusted certificate"),
        (ca_file.to_str(), "wrong-password", "wrong password"),
    ] {
        let sink = tls_sink(&ca, SinkTls::StartTls);
        let d = daemon(&sink, "smtp", "starttls", ca_file, password);
        subscribe(&d, "reader@example.com");
        // Tried, refused, and kept: the confirmation waits in the outbox for the admin to fix
        // the configuration; it is neither sent nor given up.
        let last_error = || -> Option<String> {
            d.db()
                .query_row(
                    "SELECT last_error FROM outbox WHERE state = 'queued' AND attempts >= 1",
                    &[],
                    |r| r.get(0),
                )
                .ok()
        };
        wait_until("a failed attempt", 15, || last_error().is_some());
        let error = last_error().unwrap_or_default();
        assert_eq!(d.metric("tidings_emails_sent_total"), 0.0, "{what}");
        assert_eq!(d.metric("tidings_emails_failed_total"), 0.0, "{what}");
        assert_eq!(d.metric("tidings_outbox_depth"), 1.0, "{what}");
        if password != PASSWORD {
            assert!(error.contains("mail.password"), "{what}: {error}");
        }
        import_subscribers(&d, 2);
        publish(&d);
        let report = d
            .api("POST", "/api/digests/run", Some(r#"{"now": true}"#))
            .json();
        assert_eq!(report["sent"], 0, "{what}: {report}");
        assert_eq!(report["failed"], 2, "{what}: {report}");
        assert!(sink.received().is_empty(), "{what}");
    }
}

/// A CA file that holds no certificate stops the start with a message naming the key.
#[test]
fn a_tls_ca_file_without_a_certificate_stops_the_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("not-a-ca.pem");
    std::fs::write(&bad, "hello").expect("write");
    let out = crate::helpers::cli_in(
        dir.path(),
        &[
            (
                "TIDINGS_MAIL_TRANSPORT".to_string(),
                "smtp://127.0.0.1:2525".to_string(),
            ),
            (
                "TIDINGS_MAIL_TLS_CA_FILE".to_string(),
                bad.display().to_string(),
            ),
            (
                "TIDINGS_DATABASE_PATH".to_string(),
                dir.path().join("t.db").display().to_string(),
            ),
        ],
        &["digest", "run", "--dry-run"],
    );
    assert!(!out.status.success());
    let err = crate::helpers::stderr(&out);
    assert!(
        err.contains("mail.tls_ca_file") && err.contains("no PEM certificate"),
        "{err}"
    );
}
