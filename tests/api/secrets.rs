//! Secrets never reach a log: the daemon runs at `RUST_LOG=trace` with every secret set, sends a
//! confirmation email and a digest through a relay that asks for AUTH, hears a bounce and a
//! provider webhook, and turns away an API request with a wrong token; then neither the log nor
//! what the commands printed holds any secret, as it is, in base64, or as the `AUTH PLAIN`
//! string (`\0user\0password` in base64) lettre would log at debug level.
//!
//! Secrets that belong to one feature are checked the same way (`assert_no_secret`) where that
//! feature is driven: a webhook endpoint's signing secrets (`webhook_endpoints.rs`) and the
//! WebSub secret tidings gives a hub (`sources_websub.rs`).

use base64::Engine;

use crate::helpers::{
    cli_in, dkim_keygen, import_subscribers, publish, smtp_deliver, stderr, stdout, Daemon,
    SinkOptions, SinkTls, SmtpSink, TestCa, TOKEN,
};

const USER: &str = "relay-user";
const MAIL_PASSWORD: &str = "mail-password-5b1e7c";
const URL_PASSWORD: &str = "url-password-9d2f4a";
const DB_PASSWORD: &str = "db-password-3c8e1b";
const MIGRATE_PASSWORD: &str = "migrate-password-7a6d0e";
const POSTMARK_PASSWORD: &str = "postmark-password-2e9b5f";
const MAILGUN_KEY: &str = "key-mailgun-secret-8f3a1c6d";
const RETURN_PATH: &str = "bounces@blog.example";

/// Every form a secret could be written in: as it is, in base64 (with and without padding, and
/// URL-safe), and inside `AUTH PLAIN`.
fn forms(secret: &str) -> Vec<String> {
    let b64 = |b: &[u8]| {
        [
            base64::engine::general_purpose::STANDARD.encode(b),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(b),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b),
        ]
    };
    let mut all = vec![secret.to_string()];
    all.extend(b64(secret.as_bytes()));
    all.extend(b64(format!("\0{USER}\0{secret}").as_bytes()));
    all
}

pub(crate) fn assert_no_secret(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        for form in forms(secret) {
            assert!(
                !text.contains(&form),
                "{what} holds a secret ({form:?} of {secret:?})"
            );
        }
    }
}

/// The lines of a PEM file's body: the key's contents, in base64.
fn pem_body(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_string)
        .collect()
}

/// The DSN a remote server would send back for `rcpt`.
fn dsn(rcpt: &str) -> Vec<u8> {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example>\r\n\
         To: {RETURN_PATH}\r\nSubject: Undelivered Mail Returned to Sender\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nThe mail system could not deliver it.\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; mx.example\r\n\r\n\
         Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n--B--\r\n"
    )
    .into_bytes()
}

#[test]
fn no_secret_reaches_the_log_at_trace_level() {
    // The relay's password given as mail.password, then written inside mail.transport.
    for in_url in [false, true] {
        secrets_stay_out_of_the_log(in_url);
    }
}

fn secrets_stay_out_of_the_log(in_url: bool) {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().expect("tmp");
    let ca_file = ca.write_ca(dir.path()).display().to_string();
    let relay_password = if in_url { URL_PASSWORD } else { MAIL_PASSWORD };
    let sink = SmtpSink::start_tls(
        SinkOptions {
            tls: SinkTls::StartTls,
            auth: Some((USER.into(), relay_password.into())),
            ..SinkOptions::default()
        },
        &ca,
    );
    let (key, _) = dkim_keygen(dir.path(), "rsa");
    let key_pem = std::fs::read_to_string(&key).expect("key");
    let key_path = key.display().to_string();
    let transport = if in_url {
        format!("smtp://{USER}:{URL_PASSWORD}@127.0.0.1:{}", sink.port)
    } else {
        format!("smtp://127.0.0.1:{}", sink.port)
    };
    let mut env: Vec<(String, String)> = [
        ("RUST_LOG", "trace"),
        ("TIDINGS_MAIL_TRANSPORT", transport.as_str()),
        ("TIDINGS_MAIL_TLS", "starttls"),
        ("TIDINGS_MAIL_TLS_CA_FILE", ca_file.as_str()),
        ("TIDINGS_MAIL_FROM", "Future Tech Blog <news@blog.example>"),
        ("TIDINGS_MAIL_RETURN_PATH", RETURN_PATH),
        ("TIDINGS_MAIL_INBOUND_BIND", "127.0.0.1:0"),
        ("TIDINGS_MAIL_DKIM_SELECTOR", "news"),
        ("TIDINGS_MAIL_DKIM_DOMAIN", "blog.example"),
        ("TIDINGS_MAIL_DKIM_PRIVATE_KEY", key_path.as_str()),
        ("TIDINGS_WEBHOOKS_POSTMARK_USERNAME", "postmark"),
        ("TIDINGS_WEBHOOKS_POSTMARK_PASSWORD", POSTMARK_PASSWORD),
        ("TIDINGS_WEBHOOKS_MAILGUN_SIGNING_KEY", MAILGUN_KEY),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if !in_url {
        env.push(("TIDINGS_MAIL_USERNAME".into(), USER.into()));
        env.push(("TIDINGS_MAIL_PASSWORD".into(), MAIL_PASSWORD.into()));
    }
    if crate::helpers::on_postgres() {
        // A password in database.url (the test server trusts loopback, so it is never asked for).
        let mut url = url::Url::parse(&crate::helpers::fresh_postgres_url()).expect("url");
        url.set_password(Some(DB_PASSWORD)).expect("password");
        env.push(("TIDINGS_DATABASE_URL".into(), url.to_string()));
    }
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut d = Daemon::start_with(&pairs);

    // A confirmation email (lettre's pooled transport, AUTH PLAIN) and a digest (tidings' own
    // session) through the relay, both authenticated.
    let r = d.post_form(
        "/subscribe",
        &[("email", "new@example.com"), ("cadence", "daily")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    sink.wait_for_received(1, 30);
    import_subscribers(&d, 2);
    publish(&d);
    let report = d
        .api("POST", "/api/digests/run", Some(r#"{"now": true}"#))
        .json();
    assert_eq!(report["sent"], 2, "{report}");
    let received = sink.received();
    assert_eq!(received.len(), 3);
    assert!(
        received.iter().all(|m| m.user.as_deref() == Some(USER)),
        "every message came through an authenticated session"
    );

    // A bounce to a digest's VERP return path, through the inbound listener.
    let digest = received
        .iter()
        .find(|m| m.mail_from.starts_with("bounces+"));
    let digest = digest.expect("a digest with a VERP return path");
    let replies = smtp_deliver(
        d.inbound.as_deref().expect("inbound"),
        "",
        &[&digest.mail_from],
        &dsn(&digest.rcpt_to[0]),
    );
    assert_eq!(replies.data, Some(250));

    // A provider webhook, signed with the key (a second reader bounced through Mailgun).
    let other = received
        .iter()
        .filter(|m| m.mail_from.starts_with("bounces+"))
        .find(|m| m.rcpt_to != digest.rcpt_to)
        .expect("the other digest");
    let event = serde_json::json!({
        "event": "failed", "severity": "permanent", "reason": "bounce",
        "id": "secrets-test-event", "timestamp": chrono::Utc::now().timestamp() as f64,
        "recipient": other.rcpt_to[0],
        "message": {"headers": {"to": other.rcpt_to[0], "from": "news@blog.example"}},
        "delivery-status": {"code": 550, "message": "No such user", "attempt-no": 1}
    });
    let r = d.request(
        "POST",
        "/webhooks/mailgun",
        &[("Content-Type", "application/json")],
        Some(
            crate::webhooks::mailgun_body(
                chrono::Utc::now().timestamp(),
                "8c2bd3a0d1f94e4b9e4c5a6f7b8c9d0e1f2a3b4c5d6e7f8091",
                MAILGUN_KEY,
                event,
            )
            .as_bytes(),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    // An API request with a wrong token, and one with the right token.
    let wrong = d.request(
        "GET",
        "/api/subscribers",
        &[("Authorization", "Bearer not-the-token-0123456789")],
        None,
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(d.api("GET", "/api/subscribers", None).status, 200);

    // `tidings migrate` to a database that is not there, its password in TIDINGS_MIGRATE_TO.
    let migrate_env: Vec<(String, String)> = d
        .env()
        .iter()
        .cloned()
        .chain([(
            "TIDINGS_MIGRATE_TO".to_string(),
            format!("postgres://tidings:{MIGRATE_PASSWORD}@127.0.0.1:1/none?connect_timeout=2"),
        )])
        .collect();
    let migrate = cli_in(&d.dir, &migrate_env, &["migrate"]);
    assert!(!migrate.status.success());
    assert!(d.stop().success());

    let log = d.log();
    assert!(
        log.contains("TRACE"),
        "the daemon logged at trace level:\n{log}"
    );
    let mut secrets: Vec<String> = [
        TOKEN,
        MAIL_PASSWORD,
        URL_PASSWORD,
        DB_PASSWORD,
        MIGRATE_PASSWORD,
        POSTMARK_PASSWORD,
        MAILGUN_KEY,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    secrets.extend(pem_body(&key_pem));
    assert_no_secret("the daemon's log", &log, &secrets);
    assert_no_secret("migrate's output", &stdout(&migrate), &secrets);
    assert_no_secret("migrate's errors", &stderr(&migrate), &secrets);
}

/// The console's secrets (a password, a session id, its CSRF token, an API token) reach
/// neither the daemon's log at trace level nor what the commands print on standard error.
#[test]
fn console_secrets_never_reach_the_log() {
    use crate::console_client::{add_account, Console};
    const PASSWORD: &str = "console-password-4e7a9c1b";
    let d = Daemon::start_with(&[("RUST_LOG", "trace")]);
    add_account(&d, "ann", "owner", PASSWORD);
    let added = d.cli(&["token", "add", "ci", "--role", "editor"]);
    let token = stdout(&added).trim().to_string();
    assert!(token.starts_with("tid_"));
    let mut ann = Console::new(&d);
    assert_eq!(ann.login("ann", "a wrong password, logged?").status, 401);
    assert_eq!(ann.login("ann", PASSWORD).status, 303);
    let session = ann.cookies["tidings_session"].clone();
    let csrf = ann.csrf();
    let auth = format!("Bearer {token}");
    assert_eq!(
        d.request("GET", "/api/articles", &[("Authorization", &auth)], None)
            .status,
        200
    );
    assert_eq!(
        d.request(
            "GET",
            "/api/articles",
            &[("Authorization", "Bearer tid_wrong")],
            None
        )
        .status,
        401
    );
    assert_eq!(ann.post("/admin/logout", &[("csrf", &csrf)]).status, 303);
    let listed = d.cli(&["token", "list"]);
    let secrets = [
        PASSWORD.to_string(),
        "a wrong password, logged?".to_string(),
        session,
        csrf,
        token,
    ];
    assert!(
        d.log().contains("TRACE") || d.log().contains("DEBUG"),
        "the log is verbose"
    );
    assert_no_secret("the daemon's log", &d.log(), &secrets);
    assert_no_secret("token add's standard error", &stderr(&added), &secrets);
    assert_no_secret(
        "token list",
        &format!("{}{}", stdout(&listed), stderr(&listed)),
        &secrets,
    );
}
