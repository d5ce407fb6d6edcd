//! The daemon as an admin runs it: first start, health, logs, configuration, clean stop.

use std::process::Stdio;

use crate::helpers::{cli_in, signal, stderr, tidings, titles, wait_exit, Daemon};

#[test]
fn first_start_loads_the_sample_catalog() {
    let d = Daemon::start_with(&[("TIDINGS_CATALOG_LOAD_SAMPLE", "true")]);
    let t = titles(&d.get("/feed.xml").body);
    assert_eq!(t.len(), 6, "{t:?}");
    assert_eq!(
        t[0],
        "Big Science & Hugging Face: Democratizing AI Together"
    );
    assert!(t.contains(&"BigScience LLM: The Open Revolution in Large Language Models".to_string()));
    let open = titles(&d.get("/tags/open-science/feed.xml").body);
    assert!(open.contains(&"Big Science & Hugging Face: Democratizing AI Together".to_string()));
    assert_eq!(d.get("/tags/machine-learning/atom.xml").status, 200);
}

#[test]
fn sample_is_not_loaded_again_once_the_catalog_was_used() {
    let mut d = Daemon::start_with(&[("TIDINGS_CATALOG_LOAD_SAMPLE", "true")]);
    for slug in [
        "big-science-hugging-face-democratizing-ai",
        "blake-lemoine-google-ai-sentience-ethics",
    ] {
        assert_eq!(
            d.api("DELETE", &format!("/api/articles/{slug}"), None)
                .status,
            204
        );
    }
    d.restart();
    assert_eq!(titles(&d.get("/feed.xml").body).len(), 4);
}

#[test]
fn healthz_answers_when_the_database_does() {
    let d = Daemon::start();
    let r = d.get("/healthz");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        "database: ok\nmail: ok\n",
        "the file outbox is there"
    );
    let sink = crate::helpers::SmtpSink::start();
    let port = sink.port;
    drop(sink);
    let down = Daemon::start_with(&[
        (
            "TIDINGS_MAIL_TRANSPORT",
            &format!("smtp://127.0.0.1:{port}"),
        ),
        ("TIDINGS_MAIL_TLS", "none"),
    ]);
    let r = down.get("/healthz");
    assert_eq!(r.status, 200, "feeds can still be served");
    assert_eq!(r.text(), "database: ok\nmail: unreachable\n");
}

#[test]
fn sigterm_stops_the_daemon_with_exit_code_zero() {
    let mut d = Daemon::start();
    d.publish(&crate::helpers::article(
        "a",
        "A",
        &["AI"],
        "2026-05-27T09:00:00Z",
    ));
    let status = d.stop();
    assert_eq!(status.code(), Some(0), "{}", d.log());
    assert!(d.log().contains("stopped"), "{}", d.log());
}

/// `--log-format json` makes every log line on stderr a JSON object, for `serve` and for a CLI
/// command alike; without it the same lines are for people.
#[test]
fn json_logs_with_log_format_json() {
    // The CLI: a fresh database, so the migration is logged.
    let dir = tempfile::tempdir().expect("tmp");
    let env = vec![(
        "TIDINGS_DATABASE_PATH".to_string(),
        dir.path().join("cli.db").display().to_string(),
    )];
    let out = cli_in(
        dir.path(),
        &env,
        &["--log-format", "json", "digest", "run", "--dry-run"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_all_json(&stderr(&out));
    let env = vec![(
        "TIDINGS_DATABASE_PATH".to_string(),
        dir.path().join("cli-human.db").display().to_string(),
    )];
    let human = stderr(&cli_in(dir.path(), &env, &["digest", "run", "--dry-run"]));
    assert!(
        human.contains("migrated") && !human.trim_start().starts_with('{'),
        "{human}"
    );

    // The daemon.
    let dir = tempfile::tempdir().expect("tmp");
    let env = vec![
        ("TIDINGS_SERVER_BIND".to_string(), "127.0.0.1:0".to_string()),
        (
            "TIDINGS_CATALOG_LOAD_SAMPLE".to_string(),
            "false".to_string(),
        ),
    ];
    let mut child = tidings(dir.path(), &env)
        .args(["--log-format", "json", "serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).expect("line");
    assert!(line.starts_with("listening on"), "{line}");
    signal(&child, libc::SIGTERM);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert!(wait_exit(&mut child, 30).success());
    assert!(err.contains("tidings is serving"), "{err}");
    assert_all_json(&err);
}

fn assert_all_json(err: &str) {
    let lines: Vec<&str> = err.lines().filter(|l| !l.is_empty()).collect();
    assert!(!lines.is_empty(), "nothing was logged");
    for l in lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v.get("level").is_some(), "{l}");
    }
}

#[test]
fn config_file_from_dash_dash_config_and_env_overrides_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("custom.toml");
    std::fs::write(
        &cfg,
        format!(
            "[site]\ntitle = \"Configured Blog\"\nbase_url = \"https://configured.example\"\n[database]\npath = \"{}\"\n[catalog]\nload_sample = false\n[server]\nbind = \"127.0.0.1:0\"\n[feeds]\nmirror_dir = \"{}\"\n",
            dir.path().join("c.db").display(),
            dir.path().join("m").display()
        ),
    )
    .expect("write");
    // A ./tidings.toml in the working directory is ignored when --config names another file.
    std::fs::write(
        dir.path().join("tidings.toml"),
        "[site]\ntitle = \"Wrong Blog\"\n",
    )
    .expect("write");
    let env = vec![("TIDINGS_SITE_TITLE".to_string(), "Env Blog".to_string())];
    let mut child = tidings(dir.path(), &env)
        .args(["--config", cfg.to_str().expect("path"), "serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("line");
    let base = line.trim().trim_start_matches("listening on ").to_string();
    let body = ureq::get(format!("{base}/atom.xml"))
        .call()
        .expect("get")
        .body_mut()
        .read_to_string()
        .expect("body");
    let _ = child.kill();
    let _ = child.wait();
    assert!(body.contains("<title>Env Blog</title>"), "{body}");
    assert!(
        body.contains("https://configured.example/atom.xml"),
        "{body}"
    );
}

#[test]
fn a_bad_config_value_stops_start_up_with_a_message_naming_the_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let env = vec![("TIDINGS_FEEDS_ITEMS".to_string(), "0".to_string())];
    let out = tidings(dir.path(), &env)
        .arg("serve")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("feeds.items"), "{}", stderr(&out));
    assert!(
        !dir.path().join("data").exists(),
        "nothing is created when the configuration is refused"
    );
}

#[test]
fn metrics_count_feed_requests_304s_and_digests() {
    let sink = crate::helpers::SmtpSink::start();
    let d = Daemon::start_mailing(&sink, &[]);
    d.publish(&crate::helpers::article(
        "a",
        "A",
        &["AI"],
        &chrono::Utc::now().to_rfc3339(),
    ));
    let etag = d.get("/feed.xml").header("etag").expect("etag");
    d.get_with("/feed.xml", &[("If-None-Match", &etag)]);
    d.api(
        "POST",
        "/api/subscribers",
        Some(r#"{"email":"m@example.com","status":"confirmed"}"#),
    );
    d.publish(&crate::helpers::article(
        "b",
        "B",
        &["AI"],
        &chrono::Utc::now().to_rfc3339(),
    ));
    d.api("POST", "/api/digests/run", Some(r#"{"now": true}"#));
    let r = d.get("/metrics");
    assert_eq!(r.status, 200);
    let text = r.text();
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
    };
    assert_eq!(value("tidings_feed_requests_total"), 2.0);
    assert_eq!(value("tidings_feed_not_modified_total"), 1.0);
    assert_eq!(value("tidings_digests_sent_total"), 1.0);
    assert_eq!(value("tidings_digest_queue_depth"), 0.0);
    assert!(text.contains("tidings_digest_send_seconds"), "{text}");
}

/// A request that promises a body and never sends it is answered and closed after
/// `server.body_timeout_seconds`, rather than held open forever.
#[test]
fn a_stalled_request_body_is_dropped_after_the_body_timeout() {
    use std::io::{Read, Write};
    let d = Daemon::start_with(&[("TIDINGS_SERVER_BODY_TIMEOUT_SECONDS", "1")]);
    let addr = d.base.trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).expect("connect");
    s.write_all(
        format!(
            "POST /api/articles HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
            crate::helpers::TOKEN
        )
        .as_bytes(),
    )
    .expect("send");
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .expect("timeout");
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    // Returns at the server's close: the answer, then end of stream.
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("body"), "{answer}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "closed after {:?}",
        started.elapsed()
    );
    assert_eq!(
        d.api("GET", "/api/articles", None).json()["total"],
        0,
        "nothing written"
    );
}

/// With `server.max_connections` open, the next connection is served only once one of them
/// closes.
#[test]
fn connections_past_the_cap_wait_for_a_free_slot() {
    use std::io::{Read, Write};
    let d = Daemon::start_with(&[("TIDINGS_SERVER_MAX_CONNECTIONS", "2")]);
    let addr = d.base.trim_start_matches("http://").to_string();
    // Two connections that send nothing hold both slots.
    let held: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(&addr).expect("connect"))
        .collect();
    // Let the server accept both before the third arrives.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let waiting = std::thread::spawn({
        let addr = addr.clone();
        move || {
            let mut s = std::net::TcpStream::connect(&addr).expect("connect");
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .expect("send");
            let mut answer = Vec::new();
            let _ = s.read_to_end(&mut answer);
            (
                std::time::Instant::now(),
                String::from_utf8_lossy(&answer).into_owned(),
            )
        }
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    let freed = std::time::Instant::now();
    drop(held);
    let (answered, answer) = waiting.join().expect("third connection");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answered > freed, "served only once a slot was free");
}
