//! The daemon as an admin runs it: first start, health, logs, configuration, clean stop.

use crate::helpers::{titles, Daemon};

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

#[test]
fn json_logs_with_log_format_json() {
    let d = Daemon::start();
    let out = d.cli(&["--log-format", "json", "article", "list"]);
    assert!(out.status.success());
    // `article list` logs the migration check at most; the daemon's own log is human by default.
    assert!(d.log().contains("tidings is serving"));
    let dir = tempfile::tempdir().expect("tmp");
    let mut child = std::process::Command::new(crate::helpers::bin())
        .args(["--log-format", "json", "serve"])
        .env("TIDINGS_SERVER_BIND", "127.0.0.1:0")
        .env("TIDINGS_DATABASE_PATH", dir.path().join("x.db"))
        .env("TIDINGS_FEEDS_MIRROR_DIR", dir.path().join("m"))
        .env("TIDINGS_CATALOG_LOAD_SAMPLE", "false")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).expect("line");
    assert!(line.starts_with("listening on"));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    let _ = child.wait();
    let lines: Vec<&str> = err.lines().filter(|l| !l.is_empty()).collect();
    assert!(!lines.is_empty());
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
    let mut child = std::process::Command::new(crate::helpers::bin())
        .args(["--config", cfg.to_str().expect("path"), "serve"])
        .env("TIDINGS_SITE_TITLE", "Env Blog")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
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
    let out = std::process::Command::new(crate::helpers::bin())
        .arg("serve")
        .env("TIDINGS_FEEDS_ITEMS", "0")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("feeds.items"));
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
