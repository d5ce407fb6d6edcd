//! Spawns the real `tidings` binary on port 0 with a fresh temporary database, and talks to it
//! over real HTTP.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-admin-token-0123456789abcdef";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tidings")
}

/// A running daemon and the folder holding its database, mirror and logs.
pub struct Daemon {
    child: Option<Child>,
    pub base: String,
    /// `host:port` of the inbound SMTP listener, when `mail.inbound.bind` is set.
    pub inbound: Option<String>,
    pub dir: PathBuf,
    env: Vec<(String, String)>,
    agent: ureq::Agent,
    _tmp: Option<tempfile::TempDir>,
}

pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Whether the test daemons run on PostgreSQL (`TIDINGS_TEST_BACKEND=postgres`, with
/// `TIDINGS_TEST_POSTGRES_URL` naming a server the tests may create databases on; `.ci/run`
/// runs the suite both ways), else on SQLite.
pub fn on_postgres() -> bool {
    std::env::var("TIDINGS_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// A new, empty database on the test PostgreSQL server: its URL.
pub fn fresh_postgres_url() -> String {
    let admin = std::env::var("TIDINGS_TEST_POSTGRES_URL")
        .expect("TIDINGS_TEST_BACKEND=postgres needs TIDINGS_TEST_POSTGRES_URL");
    let name = format!("tidings_test_{}", rand::random::<u64>());
    runtime().block_on(async {
        // The daemon's own code path: sslmode and sslrootcert are followed as it does.
        let (config, tls) = tidings::store::postgres::connect_config(&admin)
            .unwrap_or_else(|e| panic!("TIDINGS_TEST_POSTGRES_URL: {e}"));
        let (client, connection) = config
            .connect(tls)
            .await
            .expect("connect to TIDINGS_TEST_POSTGRES_URL");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
    });
    // Keeps the query (sslmode, sslrootcert): every test database is reached the same way.
    let mut url = url::Url::parse(&admin).expect("TIDINGS_TEST_POSTGRES_URL");
    url.set_path(&name);
    url.to_string()
}

/// One runtime for the tests' own async work (PostgreSQL set-up, state reads).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// The daemon's database, opened by the test to read its state (either backend).
pub struct TestDb {
    store: tidings::store::Store,
}

impl TestDb {
    /// Whether a connection of the ledger's kind (`Store::dedicated`, opened by the daemon's own
    /// code from the same `database.url`) is encrypted, read from `pg_stat_ssl`.
    pub fn dedicated_connection_uses_tls(&self) -> bool {
        let own = self.store.dedicated().expect("a dedicated connection");
        own.run(tidings::store::Mode::Read, |db| {
            db.query_row(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
                |r| r.get::<bool>(0),
            )
        })
        .expect("pg_stat_ssl")
    }

    pub fn query_row<T>(
        &self,
        sql: &str,
        params: &[&dyn tidings::store::Param],
        f: impl FnOnce(&tidings::store::Row) -> Result<T, tidings::store::Error>,
    ) -> Result<T, tidings::store::Error> {
        self.store.blocking(tidings::store::Mode::Write, |db| {
            db.query_row(sql, params, f)
        })
    }

    pub fn query_map<T>(
        &self,
        sql: &str,
        params: &[&dyn tidings::store::Param],
        f: impl FnMut(&tidings::store::Row) -> Result<T, tidings::store::Error>,
    ) -> Result<Vec<T>, tidings::store::Error> {
        self.store.blocking(tidings::store::Mode::Write, |db| {
            db.query_map(sql, params, f)
        })
    }

    /// `f` over the database through the store: the daemon's own read functions, on either
    /// backend.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&tidings::store::Db) -> Result<T, tidings::store::Error>,
    ) -> Result<T, tidings::store::Error> {
        self.store.blocking(tidings::store::Mode::Snapshot, f)
    }

    /// `f` over the database through the store, in one transaction.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&tidings::store::Db) -> Result<T, tidings::store::Error>,
    ) -> Result<T, tidings::store::Error> {
        self.store.blocking(tidings::store::Mode::Write, f)
    }

    pub fn execute(
        &self,
        sql: &str,
        params: &[&dyn tidings::store::Param],
    ) -> Result<usize, tidings::store::Error> {
        self.store
            .blocking(tidings::store::Mode::Write, |db| db.execute(sql, params))
    }
}

/// The environment every test daemon gets: its own database and mirror, a free port, no sample.
fn base_env(dir: &Path) -> Vec<(String, String)> {
    let database = if on_postgres() {
        ("TIDINGS_DATABASE_URL".to_string(), fresh_postgres_url())
    } else {
        (
            "TIDINGS_DATABASE_PATH".to_string(),
            dir.join("tidings.db").display().to_string(),
        )
    };
    vec![
        ("TIDINGS_SERVER_BIND".into(), "127.0.0.1:0".into()),
        database,
        (
            "TIDINGS_FEEDS_MIRROR_DIR".into(),
            dir.join("mirror").display().to_string(),
        ),
        ("TIDINGS_CATALOG_LOAD_SAMPLE".into(), "false".into()),
        ("TIDINGS_ADMIN_TOKEN".into(), TOKEN.into()),
        (
            "TIDINGS_SITE_BASE_URL".into(),
            "https://blog.example".into(),
        ),
    ]
}

impl Daemon {
    /// An empty catalog and an admin token.
    pub fn start() -> Daemon {
        Daemon::start_with(&[])
    }

    /// An empty catalog, sending mail to `sink`.
    pub fn start_mailing(sink: &SmtpSink, extra: &[(&str, &str)]) -> Daemon {
        let env = sink.env();
        let mut all: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.extend_from_slice(extra);
        Daemon::start_with(&all)
    }

    /// On SQLite whatever the suite's backend (a migration's source), sending mail to `sink`.
    pub fn start_mailing_on_sqlite(sink: &SmtpSink) -> Daemon {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("tidings.db").display().to_string();
        let mut env: Vec<(&str, &str)> = vec![("TIDINGS_DATABASE_PATH", &path)];
        let mail = sink.env();
        env.extend(mail.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        Daemon::start_in(tmp, &env, &["TIDINGS_DATABASE_URL"])
    }

    /// A node on the PostgreSQL database `url` (several may share one), mailing to `sink`.
    pub fn start_node(url: &str, sink: &SmtpSink, extra: &[(&str, &str)]) -> Daemon {
        let mail = sink.env();
        let mut env: Vec<(&str, &str)> = vec![("TIDINGS_DATABASE_URL", url)];
        env.extend(mail.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        env.extend_from_slice(extra);
        Daemon::start_in(
            tempfile::tempdir().expect("tempdir"),
            &env,
            &["TIDINGS_DATABASE_PATH"],
        )
    }

    /// Like `start`, with extra or overriding environment variables.
    pub fn start_with(extra: &[(&str, &str)]) -> Daemon {
        Daemon::start_in(tempfile::tempdir().expect("tempdir"), extra, &[])
    }

    /// Starts in `tmp` with the base environment, `extra` added or overriding, `unset` removed.
    fn start_in(tmp: tempfile::TempDir, extra: &[(&str, &str)], unset: &[&str]) -> Daemon {
        let dir = tmp.path().to_path_buf();
        let mut env = base_env(&dir);
        env.retain(|(k, _)| !unset.contains(&k.as_str()));
        for (k, v) in extra {
            env.retain(|(ek, _)| ek != k);
            env.push((k.to_string(), v.to_string()));
        }
        let mut d = Daemon {
            child: None,
            base: String::new(),
            inbound: None,
            dir,
            env,
            agent: agent(),
            _tmp: Some(tmp),
        };
        d.launch(&[]);
        d
    }

    /// Starts the binary with `args` before `serve`, and waits for its `listening on` line.
    fn launch(&mut self, args: &[&str]) {
        let stderr = std::fs::File::create(self.dir.join("daemon.log")).expect("log file");
        let mut child = tidings(&self.dir, &self.env)
            .args(args)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn tidings");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        self.inbound = None;
        let base = loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read stdout");
            if let Some(addr) = line.trim().strip_prefix("inbound on smtp://") {
                self.inbound = Some(addr.to_string());
                continue;
            }
            break line
                .trim()
                .strip_prefix("listening on ")
                .unwrap_or_else(|| panic!("daemon did not start: {line:?}\n{}", self.log()))
                .to_string();
        };
        self.base = base;
        self.child = Some(child);
    }

    /// Stops with SIGTERM and starts again on the same database.
    pub fn restart(&mut self) {
        let status = self.stop();
        assert!(status.success(), "daemon exit status {status:?}");
        self.launch(&[]);
    }

    /// SIGKILL, and nothing more (a node that died).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the daemon with SIGKILL (no chance to clean up) and starts it again on the same database.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.launch(&[]);
    }

    fn env_value(&self, key: &str) -> Option<String> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    /// Sends `sig` to the daemon (SIGSTOP and SIGCONT to pause it).
    pub fn signal(&self, sig: i32) {
        signal(self.child.as_ref().expect("running"), sig);
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(&child, libc::SIGTERM);
        wait_exit(&mut child, 30)
    }

    /// Points the (stopped) daemon at another database before `start_again`.
    pub fn use_database_url(&mut self, url: &str) {
        assert!(self.child.is_none(), "still running");
        self.env
            .retain(|(k, _)| k != "TIDINGS_DATABASE_PATH" && k != "TIDINGS_DATABASE_URL");
        self.env
            .push(("TIDINGS_DATABASE_URL".into(), url.to_string()));
    }

    /// Sets (or replaces) an environment variable for the next start.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Starts the daemon again on the same database after `stop`.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.launch(&[]);
    }

    /// The daemon's database, opened by the test (to read the ledger, the rows that did not change).
    pub fn db(&self) -> TestDb {
        let location = match self.env_value("TIDINGS_DATABASE_URL") {
            Some(url) => tidings::store::Location::Postgres(url),
            None => tidings::store::Location::Sqlite(PathBuf::from(
                self.env_value("TIDINGS_DATABASE_PATH")
                    .expect("database path"),
            )),
        };
        let store = runtime()
            .block_on(tidings::store::Store::open(&location, 2))
            .expect("open the database");
        TestDb { store }
    }

    /// One number from `/metrics` (a metric without labels).
    pub fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics").text();
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits until every single email queued so far was sent or failed; returns how many were sent.
    pub fn settled_emails(&self) -> usize {
        wait_until("queued emails to be sent", 15, || {
            let queued = self.metric("tidings_emails_queued_total");
            queued
                == self.metric("tidings_emails_sent_total")
                    + self.metric("tidings_emails_failed_total")
        });
        self.metric("tidings_emails_sent_total") as usize
    }

    /// The daemon's environment, for a CLI process of one's own.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub fn mirror(&self) -> PathBuf {
        self.dir.join("mirror")
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let result = match body {
            Some(b) => self.agent.run(builder.body(b.to_vec()).expect("request")),
            None => self.agent.run(builder.body(()).expect("request")),
        };
        let mut response =
            result.unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log()));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_vec()
            .unwrap_or_default();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], None)
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.request("GET", path, headers, None)
    }

    /// Posts a form (`application/x-www-form-urlencoded`), as a browser does.
    pub fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.request(
            "POST",
            path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(body.as_bytes()),
        )
    }

    /// An admin API call with the right token.
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> Resp {
        let auth = format!("Bearer {TOKEN}");
        self.request(
            method,
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.map(str::as_bytes),
        )
    }

    /// Publishes an article through the API and checks it was accepted.
    pub fn publish(&self, json: &str) -> serde_json::Value {
        let r = self.api("POST", "/api/articles", Some(json));
        assert!(
            r.status == 201 || r.status == 200,
            "publish failed: {} {}",
            r.status,
            r.text()
        );
        r.json()["article"].clone()
    }

    /// Runs a CLI command against this daemon's database and configuration.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli_in(&self.dir, &self.env, args)
    }

    /// Polls `path` until `pred` holds (for changes made by another process), up to 10 s.
    pub fn wait_for(&self, path: &str, pred: impl Fn(&Resp) -> bool) -> Resp {
        self.wait_for_with(path, &[], pred)
    }

    pub fn wait_for_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        pred: impl Fn(&Resp) -> bool,
    ) -> Resp {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.get_with(path, headers);
            if pred(&r) {
                return r;
            }
            if Instant::now() > deadline {
                panic!("{path} never matched; last: {} {}", r.status, r.text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Imports `n` confirmed subscribers `reader00000@example.com`, … through the CLI.
pub fn import_subscribers(d: &Daemon, n: usize) {
    let mut csv = String::from("email,status\n");
    for i in 0..n {
        csv.push_str(&format!("reader{i:05}@example.com,confirmed\n"));
    }
    let file = d.dir.join("list.csv");
    std::fs::write(&file, csv).expect("write");
    let out = d.cli(&["subscriber", "import", file.to_str().expect("path")]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Publishes one new article, tagged AI, published now.
pub fn publish(d: &Daemon) {
    publish_article(d, "news");
}

/// Publishes a new article with this slug, tagged AI, published now.
pub fn publish_article(d: &Daemon, slug: &str) {
    d.publish(
        &serde_json::json!({
            "slug": slug, "title": format!("Title {slug}"),
            "url": format!("https://blog.example/posts/{slug}"),
            "tags": ["AI"], "published_at": chrono::Utc::now().to_rfc3339(),
        })
        .to_string(),
    );
}

/// `POST /api/digests/run {"now": true}` on a thread of its own: the report, or `None` if the
/// daemon died under the request.
pub fn start_digest_run(d: &Daemon) -> std::thread::JoinHandle<Option<serde_json::Value>> {
    let base = d.base.clone();
    std::thread::spawn(move || {
        let mut r = ureq::post(format!("{base}/api/digests/run"))
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .send(r#"{"now": true}"#)
            .ok()?;
        serde_json::from_slice(&r.body_mut().read_to_vec().ok()?).ok()
    })
}

/// Deliveries not yet `sent`.
pub fn unfinished_deliveries(d: &Daemon) -> i64 {
    d.db()
        .query_row(
            "SELECT count(*) FROM deliveries WHERE state != 'sent'",
            &[],
            |r| r.get(0),
        )
        .expect("ledger")
}

/// Stops `d` with SIGSTOP at a moment it holds no transaction open (another process must be able
/// to write, and to lock the rows it takes over): SQLite's write lock is free, or no other
/// PostgreSQL session is in a transaction or a query.
pub fn pause_outside_transactions(d: &Daemon) {
    for _ in 0..50 {
        d.signal(libc::SIGSTOP);
        if outside_transactions(d) {
            return;
        }
        d.signal(libc::SIGCONT);
        std::thread::sleep(Duration::from_millis(30));
    }
    panic!("could not pause the daemon outside a transaction");
}

fn outside_transactions(d: &Daemon) -> bool {
    if on_postgres() || d.env_value("TIDINGS_DATABASE_URL").is_some() {
        let busy: i64 = d
            .db()
            .query_row(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')",
                &[],
                |r| r.get(0),
            )
            .expect("activity");
        return busy == 0;
    }
    let conn = rusqlite::Connection::open(d.dir.join("tidings.db")).expect("db");
    conn.busy_timeout(Duration::from_millis(300))
        .expect("timeout");
    conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK").is_ok()
}

/// How many digests each recipient received.
pub fn received(sink: &SmtpSink) -> std::collections::HashMap<String, usize> {
    let mut counts = std::collections::HashMap::new();
    for m in sink.messages() {
        *counts
            .entry(m.header("To").unwrap_or_default())
            .or_insert(0) += 1;
    }
    counts
}

/// Checks that every recipient's copies (one digest each in these tests) carry one Message-ID:
/// a copy sent again after a kill or a takeover repeats the first copy's id. Returns how many
/// copies were repeats, so a test can say whether its crash doubled anything.
pub fn assert_one_message_id_per_recipient(sink: &SmtpSink) -> usize {
    let mut ids: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    for m in sink.messages() {
        ids.entry(m.header("To").unwrap_or_default())
            .or_default()
            .push(m.header("Message-ID").unwrap_or_default());
    }
    let mut repeats = 0;
    for (to, copies) in &ids {
        let distinct: std::collections::BTreeSet<&String> = copies.iter().collect();
        assert_eq!(
            distinct.len(),
            1,
            "{to} got {} copies with different Message-IDs: {distinct:?}",
            copies.len()
        );
        assert!(!copies[0].is_empty(), "{to}: no Message-ID");
        repeats += copies.len() - 1;
    }
    repeats
}

/// The `tidings` binary with a cleared environment (only `PATH`, plus `env`), run in `dir`, with
/// no standard input: nothing from the developer's shell or checkout reaches it.
pub fn tidings(dir: &Path, env: &[(String, String)]) -> Command {
    let mut c = Command::new(bin());
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(dir)
        .stdin(Stdio::null());
    c
}

pub fn cli_in(dir: &Path, env: &[(String, String)], args: &[&str]) -> Output {
    tidings(dir, env).args(args).output().expect("run tidings")
}

/// Sends `signal` (e.g. `libc::SIGTERM`) to a child process.
pub fn signal(child: &Child, signal: i32) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) with a pid this test spawned and has not reaped yet.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal})");
}

/// Polls `done` every 50 ms until it holds, failing the test after `secs` seconds.
pub fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for a child to exit, failing the test after `secs` seconds.
pub fn wait_exit(child: &mut Child, secs: u64) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// A minimal article body with a tag list.
pub fn article(slug: &str, title: &str, tags: &[&str], published: &str) -> String {
    serde_json::json!({
        "slug": slug,
        "title": title,
        "url": format!("https://blog.example/posts/{slug}"),
        "summary": format!("Summary of {title}"),
        "content_html": format!("<p>Body of {title}</p>"),
        "published_at": published,
        "tags": tags,
    })
    .to_string()
}

/// Parses a served RSS or Atom feed with an independent parser (feed-rs).
pub fn parse_feed(bytes: &[u8]) -> feed_rs::model::Feed {
    feed_rs::parser::parse(bytes).unwrap_or_else(|e| {
        panic!(
            "feed does not parse: {e}\n{}",
            String::from_utf8_lossy(bytes)
        )
    })
}

pub fn titles(bytes: &[u8]) -> Vec<String> {
    parse_feed(bytes)
        .entries
        .into_iter()
        .map(|e| e.title.map(|t| t.content).unwrap_or_default())
        .collect()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub use crate::smtp_sink::{SinkOptions, SinkTls, SmtpSink, TestCa};

/// What the tests read off the sink.
impl SmtpSink {
    /// The environment that points a daemon at this sink (plain SMTP on 127.0.0.1).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "TIDINGS_MAIL_TRANSPORT".into(),
                format!("smtp://127.0.0.1:{}", self.port),
            ),
            ("TIDINGS_MAIL_TLS".into(), "none".into()),
            (
                "TIDINGS_MAIL_FROM".into(),
                "Future Tech Blog <news@blog.example>".into(),
            ),
        ]
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<Mail> {
        self.received().into_iter().map(Mail::from).collect()
    }

    /// Waits (up to 10 s) until at least `n` messages arrived, and returns them all.
    pub fn wait_for(&self, n: usize) -> Vec<Mail> {
        self.wait_for_received(n, 10)
            .into_iter()
            .map(Mail::from)
            .collect()
    }
}

impl From<crate::smtp_sink::Received> for Mail {
    fn from(r: crate::smtp_sink::Received) -> Mail {
        Mail { raw: r.raw }
    }
}

/// One message as it arrived (`SmtpSink::received` has the envelope too).
pub struct Mail {
    pub raw: Vec<u8>,
}

impl Mail {
    pub fn parsed(&self) -> mailparse::ParsedMail<'_> {
        mailparse::parse_mail(&self.raw).expect("valid MIME")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        use mailparse::MailHeaderMap;
        self.parsed().headers.get_first_value(name)
    }

    /// The decoded body of the first part with this MIME type.
    pub fn part(&self, mime: &str) -> String {
        fn find(p: &mailparse::ParsedMail<'_>, mime: &str) -> Option<String> {
            if p.ctype.mimetype == mime {
                return p.get_body().ok();
            }
            p.subparts.iter().find_map(|s| find(s, mime))
        }
        find(&self.parsed(), mime).unwrap_or_else(|| panic!("no {mime} part"))
    }

    pub fn text(&self) -> String {
        self.part("text/plain")
    }

    pub fn html(&self) -> String {
        self.part("text/html")
    }

    /// The path of the https URL in `List-Unsubscribe`.
    pub fn unsubscribe_path(&self, base: &str) -> String {
        let header = self.header("List-Unsubscribe").expect("List-Unsubscribe");
        header
            .split(',')
            .map(|p| p.trim().trim_start_matches('<').trim_end_matches('>'))
            .find(|u| u.starts_with(base))
            .unwrap_or_else(|| panic!("no {base} URL in {header}"))
            .trim_start_matches(base)
            .to_string()
    }

    /// The path of the first link in the text part that starts with `{base}{prefix}`.
    pub fn link(&self, base: &str, prefix: &str) -> String {
        let text = self.text();
        let start = format!("{base}{prefix}");
        let at = text
            .find(&start)
            .unwrap_or_else(|| panic!("no {start} link in:\n{text}"));
        let url: String = text[at..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        url.trim_start_matches(base).to_string()
    }
}

/// `tidings dkim keygen --algorithm ALGORITHM --selector news --domain blog.example` writing
/// `DIR/dkim.pem`: the key's path and what the command printed.
pub fn dkim_keygen(dir: &Path, algorithm: &str) -> (PathBuf, String) {
    let key = dir.join("dkim.pem");
    let out = cli_in(
        dir,
        &[],
        &[
            "dkim",
            "keygen",
            "--algorithm",
            algorithm,
            "--selector",
            "news",
            "--domain",
            "blog.example",
            "--out",
            key.to_str().expect("path"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    (key, stdout(&out))
}

/// The TXT record value (`v=DKIM1; k=...; p=...`) in the zone-file line `dkim keygen` prints.
pub fn dkim_record(printed: &str) -> String {
    printed
        .lines()
        .find(|l| l.contains(" IN TXT "))
        .unwrap_or_else(|| panic!("no TXT record in {printed}"))
        .split('"')
        .skip(1)
        .step_by(2)
        .collect::<Vec<_>>()
        .concat()
}

/// Whether mail-auth (an implementation tidings did not write) verifies the message's signature
/// against `record`, published for selector `news` of `blog.example` (as `dkim_keygen` made it).
pub fn dkim_verify(raw: &[u8], record: &str) -> Result<(), String> {
    crate::dkim_verify::dkim_verify(raw, "news", "blog.example", record)
}

/// What an SMTP server said to one message: each RCPT's code, and the code after the final dot
/// (`None` when no recipient was taken, so no DATA was sent).
#[derive(Debug)]
pub struct SmtpReplies {
    pub rcpt: Vec<u16>,
    pub data: Option<u16>,
}

/// Sends one message over plain SMTP to `addr` (`host:port`), as an MTA would, reading each reply.
pub fn smtp_deliver(addr: &str, from: &str, rcpts: &[&str], message: &[u8]) -> SmtpReplies {
    use std::io::{BufRead, Write};
    let stream = std::net::TcpStream::connect(addr).expect("connect to the listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut w = stream;
    let reply = |reader: &mut BufReader<std::net::TcpStream>| -> u16 {
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("reply");
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            }
        }
    };
    assert_eq!(reply(&mut reader), 220);
    w.write_all(b"EHLO mx.test\r\n").expect("write");
    assert_eq!(reply(&mut reader), 250);
    w.write_all(format!("MAIL FROM:<{from}>\r\n").as_bytes())
        .expect("write");
    assert_eq!(reply(&mut reader), 250);
    let mut codes = Vec::new();
    for r in rcpts {
        w.write_all(format!("RCPT TO:<{r}>\r\n").as_bytes())
            .expect("write");
        codes.push(reply(&mut reader));
    }
    if !codes.contains(&250) {
        let _ = w.write_all(b"QUIT\r\n");
        return SmtpReplies {
            rcpt: codes,
            data: None,
        };
    }
    w.write_all(b"DATA\r\n").expect("write");
    assert_eq!(reply(&mut reader), 354);
    let text = String::from_utf8_lossy(message).replace("\r\n", "\n");
    let mut body = String::new();
    for line in text.split('\n') {
        if line.starts_with('.') {
            body.push('.');
        }
        body.push_str(line);
        body.push_str("\r\n");
    }
    body.push_str(".\r\n");
    w.write_all(body.as_bytes()).expect("write");
    let data = reply(&mut reader);
    let _ = w.write_all(b"QUIT\r\n");
    SmtpReplies {
        rcpt: codes,
        data: Some(data),
    }
}
