//! Loading and checking settings: defaults, files, environment variables, errors.
use super::*;
use crate::secret::Secret;

fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tidings.toml");
    std::fs::write(&path, toml).expect("write");
    Config::load_with_env(Some(&path), |name| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
}

#[test]
fn database_url_names_the_backend_and_conflicts_with_path() {
    let c = load("", &[("TIDINGS_DATABASE_URL", "sqlite:other/x.db")]).expect("sqlite url");
    assert_eq!(c.database.path, PathBuf::from("other/x.db"));
    assert!(matches!(
        c.database.location(),
        crate::store::Location::Sqlite(_)
    ));
    let c = load(
        "[database]\nurl = \"postgres://u:p@127.0.0.1:5432/t?sslmode=disable\"\npool_size = 4\n",
        &[],
    )
    .expect("postgres url");
    assert!(matches!(
        c.database.location(),
        crate::store::Location::Postgres(_)
    ));
    assert_eq!(c.database.pool_size, 4);
    let both = load(
        "[database]\npath = \"a.db\"\n",
        &[("TIDINGS_DATABASE_URL", "sqlite:b.db")],
    )
    .expect_err("both");
    assert!(both.to_string().contains("database.url"), "{both}");
    let bad = load("", &[("TIDINGS_DATABASE_URL", "mysql://x")]).expect_err("scheme");
    assert!(bad.to_string().contains("database.url"), "{bad}");
    let bad = load("[database]\npool_size = 0\n", &[]).expect_err("pool");
    assert!(bad.to_string().contains("database.pool_size"), "{bad}");
}

#[test]
fn database_url_takes_libpq_sslmodes_and_refuses_allow() {
    for mode in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
        let url = format!("postgres://u:p@db.example/t?sslmode={mode}&sslrootcert=/etc/ca.pem");
        load("", &[("TIDINGS_DATABASE_URL", &url)]).expect(mode);
    }
    let allow = load(
        "",
        &[(
            "TIDINGS_DATABASE_URL",
            "postgres://u:p@db.example/t?sslmode=allow",
        )],
    )
    .expect_err("allow");
    let text = allow.to_string();
    assert!(
        text.contains("database.url") && text.contains("sslmode=allow"),
        "{text}"
    );
    assert!(!text.contains("u:p@"), "{text}");
}

#[test]
fn defaults_run_as_shipped() {
    let c = load("", &[]).expect("defaults load");
    assert_eq!(c.server.bind, "127.0.0.1:8080");
    assert_eq!(c.database.path, PathBuf::from("data/tidings.db"));
    assert_eq!(c.site.base_url, "http://127.0.0.1:8080");
    assert_eq!(c.feeds.items, 50);
    assert_eq!(c.feeds.max_age, 300);
    assert!(c.admin.token.is_none());
}

#[test]
fn environment_overrides_file_key_by_key() {
    let c = load(
        "[server]\nbind = \"127.0.0.1:9000\"\n[feeds]\nitems = 10\n",
        &[
            ("TIDINGS_SERVER_BIND", "127.0.0.1:0"),
            ("TIDINGS_FEEDS_MAX_AGE", "60"),
            ("TIDINGS_ADMIN_TOKEN", "0123456789abcdef0123"),
            ("TIDINGS_SITE_BASE_URL", "https://blog.example/"),
        ],
    )
    .expect("loads");
    assert_eq!(c.server.bind, "127.0.0.1:0");
    assert_eq!(c.feeds.items, 10);
    assert_eq!(c.feeds.max_age, 60);
    assert_eq!(
        c.admin.token.as_ref().map(Secret::expose),
        Some("0123456789abcdef0123")
    );
    assert_eq!(c.site.base_url, "https://blog.example");
}

/// A configuration printed with `{:?}` (as a log line might) shows no secret.
#[test]
fn debug_output_shows_no_secret() {
    let c = load(
        "[database]\nurl = \"postgres://u:db-secret@127.0.0.1:5432/t?sslmode=disable\"\n",
        &[
            ("TIDINGS_ADMIN_TOKEN", "token-secret-0123456789"),
            (
                "TIDINGS_MAIL_TRANSPORT",
                "smtp://u:url-secret@relay.example:587",
            ),
            ("TIDINGS_MAIL_USERNAME", "u"),
            ("TIDINGS_MAIL_PASSWORD", "mail-secret"),
            ("TIDINGS_WEBHOOKS_POSTMARK_USERNAME", "p"),
            ("TIDINGS_WEBHOOKS_POSTMARK_PASSWORD", "postmark-secret"),
            ("TIDINGS_WEBHOOKS_MAILGUN_SIGNING_KEY", "mailgun-secret"),
        ],
    )
    .expect("loads");
    let shown = format!("{c:?} {:?}", c.database.location());
    for secret in [
        "db-secret",
        "token-secret",
        "url-secret",
        "mail-secret",
        "postmark-secret",
        "mailgun-secret",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("relay.example:587") && shown.contains("[redacted]"));
}

#[test]
fn env_names_follow_the_key_path() {
    assert_eq!(env_name("mail.dkim.selector"), "TIDINGS_MAIL_DKIM_SELECTOR");
    assert_eq!(env_name("server.bind"), "TIDINGS_SERVER_BIND");
}

#[test]
fn bad_values_name_the_key() {
    let e = load("[feeds]\nitems = 0\n", &[]).unwrap_err().to_string();
    assert!(e.contains("feeds.items"), "{e}");
    let e = load("[feeds]\nitemz = 3\n", &[]).unwrap_err().to_string();
    assert!(e.contains("itemz"), "{e}");
    let e = load("", &[("TIDINGS_FEEDS_ITEMS", "many")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("TIDINGS_FEEDS_ITEMS"), "{e}");
    let e = load("[site]\nbase_url = \"not a url\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("site.base_url"), "{e}");
    let e = load("", &[("TIDINGS_ADMIN_TOKEN", "short")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("admin.token"), "{e}");
}

#[test]
fn the_effective_settings_name_every_key_and_redact_every_secret() {
    let c = load(
        "[admin]\ntoken = \"admin-token-0123456789\"\n[mail]\npassword = \"mail-pass\"\n\
         transport = \"smtp://u:url-pass@127.0.0.1:25\"\n",
        &[],
    )
    .expect("valid");
    let all = c.effective();
    assert_eq!(all.len(), KEYS.len());
    for (key, value) in &all {
        assert_ne!(value, "?", "{key} is missing from the effective settings");
        for secret in ["admin-token-0123456789", "mail-pass", "url-pass"] {
            assert!(!value.contains(secret), "{key} shows a secret");
        }
    }
    let get = |k: &str| {
        all.iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("admin.token").as_deref(), Some("[redacted]"));
    assert_eq!(get("mail.password").as_deref(), Some("[redacted]"));
    assert_eq!(get("feeds.items").as_deref(), Some("50"));
    assert_eq!(get("feeds.websub_hub").as_deref(), Some("unset"));
}

#[test]
fn audience_counts_by_default_and_its_cap_is_checked() {
    let c = load("", &[]).expect("defaults load");
    assert!(c.audience.enabled);
    assert_eq!(c.audience.max_reported, 1_000_000);
    let c = load(
        "[audience]\nenabled = false\n",
        &[("TIDINGS_AUDIENCE_MAX_REPORTED", "5000")],
    )
    .expect("loads");
    assert!(!c.audience.enabled);
    assert_eq!(c.audience.max_reported, 5000);
    for bad in ["0", "-3", "lots"] {
        let e = load("", &[("TIDINGS_AUDIENCE_MAX_REPORTED", bad)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("AUDIENCE_MAX_REPORTED") || e.contains("audience.max_reported"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn webhook_endpoint_settings_default_and_are_checked() {
    let c = load("", &[]).expect("defaults load");
    let w = &c.webhook_endpoints;
    assert_eq!(
        (w.timeout_seconds, w.rotation_hours, w.disable_after_hours),
        (15, 24, 120)
    );
    assert_eq!(w.retry_schedule, "0s,5s,5m,30m,2h,5h,10h,10h");
    assert!(!w.allow_private);
    assert_eq!(w.keep_days, 30);
    for (env, bad, key) in [
        (
            "TIDINGS_WEBHOOK_ENDPOINTS_KEEP_DAYS",
            "0",
            "webhook_endpoints.keep_days",
        ),
        (
            "TIDINGS_WEBHOOK_ENDPOINTS_RETRY_SCHEDULE",
            "5x",
            "webhook_endpoints.retry_schedule",
        ),
        (
            "TIDINGS_WEBHOOK_ENDPOINTS_TIMEOUT_SECONDS",
            "0",
            "webhook_endpoints.timeout_seconds",
        ),
        (
            "TIDINGS_WEBHOOK_ENDPOINTS_CONCURRENCY",
            "0",
            "webhook_endpoints.concurrency",
        ),
    ] {
        let e = load("", &[(env, bad)]).unwrap_err().to_string();
        assert!(e.contains(key), "{bad}: {e}");
    }
}

#[test]
fn instant_is_a_default_cadence_and_its_delay_is_checked() {
    let c = load("", &[]).expect("defaults");
    assert_eq!(c.digest.instant_delay_seconds, 600);
    let c = load(
        "[subscribers]\ndefault_cadence = \"instant\"\n[digest]\ninstant_delay_seconds = 5\n",
        &[],
    )
    .expect("instant");
    assert_eq!(c.subscribers.default_cadence, "instant");
    assert_eq!(c.digest.instant_delay_seconds, 5);
    let e = load("[subscribers]\ndefault_cadence = \"hourly\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("subscribers.default_cadence"), "{e}");
    assert!(e.contains("daily, weekly or instant"), "{e}");
    let e = load("", &[("TIDINGS_DIGEST_INSTANT_DELAY_SECONDS", "90000")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("digest.instant_delay_seconds"), "{e}");
}

#[test]
fn source_settings_default_take_a_list_and_are_checked() {
    let c = load("", &[]).expect("defaults load");
    let s = &c.sources;
    assert_eq!(
        (s.min_interval_minutes, s.max_interval_minutes, s.per_host),
        (15, 1440, 2)
    );
    assert_eq!(
        (s.timeout_seconds, s.max_bytes, s.max_entries),
        (20, 10 * 1024 * 1024, 500)
    );
    assert!(s.allow_private.is_empty());
    let env = load(
        "",
        &[("TIDINGS_SOURCES_ALLOW_PRIVATE", "127.0.0.2, 10.0.0.0/8")],
    )
    .unwrap();
    assert_eq!(env.sources.allow_private, ["127.0.0.2", "10.0.0.0/8"]);
    let toml = load("[sources]\nallow_private = [\"::1\"]\n", &[]).unwrap();
    assert_eq!(toml.sources.allow_private, ["::1"]);
    for (env, bad, key) in [
        (
            "TIDINGS_SOURCES_ALLOW_PRIVATE",
            "localhost",
            "sources.allow_private",
        ),
        ("TIDINGS_SOURCES_PER_HOST", "0", "sources.per_host"),
        (
            "TIDINGS_SOURCES_MAX_INTERVAL_MINUTES",
            "5",
            "sources.max_interval_minutes",
        ),
        ("TIDINGS_SOURCES_MAX_BYTES", "10", "sources.max_bytes"),
        ("TIDINGS_SOURCES_MAX_ENTRIES", "0", "sources.max_entries"),
    ] {
        let e = load("", &[(env, bad)]).unwrap_err().to_string();
        assert!(e.contains(key), "{bad}: {e}");
    }
}
