//! Opening the SQLite database: its folder, WAL mode, and the schema migrations every start applies.

use std::path::Path;

use rusqlite::Connection;
use rusqlite_migration::{Migrations, M};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "cannot create the database folder {path}: {source} (set [database] path in tidings.toml)"
    )]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open database {path}: {source} (set [database] path in tidings.toml)")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("cannot migrate database {path}: {message}")]
    Migrate { path: String, message: String },
}

/// The schema, one migration per step; never edit a released step, add a new one.
pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("migrations/001_catalog.sql")),
        M::up(include_str!("migrations/002_subscribers.sql")),
        M::up(include_str!("migrations/003_digests.sql")),
        M::up(include_str!(
            "migrations/004_link_key_and_ledger_indexes.sql"
        )),
        M::up(include_str!(
            "migrations/005_outbox_suppressions_events.sql"
        )),
        M::up(include_str!(
            "migrations/006_instances_and_shared_limits.sql"
        )),
        M::up(include_str!("migrations/007_sent_log.sql")),
        M::up(include_str!("migrations/008_message_id_at_claim.sql")),
        M::up(include_str!("migrations/009_admin_accounts.sql")),
        M::up(include_str!("migrations/010_history.sql")),
        M::up(include_str!("migrations/011_audience.sql")),
        M::up(include_str!("migrations/012_subscriber_search.sql")),
        M::up(include_str!("migrations/013_subscriber_counts.sql")),
        M::up(include_str!("migrations/014_webhook_endpoints.sql")),
        M::up(include_str!("migrations/015_feed_versions.sql")),
        // Rebuilds `subscribers` (foreign keys are off while migrating: see `open`).
        M::up(include_str!("migrations/016_instant_cadence.sql")).foreign_key_check(),
        M::up(include_str!("migrations/017_sources.sql")),
    ])
}

/// Opens (creating if needed) the database at `path`, with WAL, foreign keys and a busy timeout,
/// and brings its schema up to date.
pub fn open(path: &Path) -> Result<Connection, DbError> {
    let shown = path.display().to_string();
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|source| DbError::Folder {
                path: parent.display().to_string(),
                source,
            })?;
        }
    }
    let mut conn = Connection::open(path).map_err(|source| DbError::Open {
        path: shown.clone(),
        source,
    })?;
    configure(&conn).map_err(|source| DbError::Open {
        path: shown.clone(),
        source,
    })?;
    migrate(&mut conn).map_err(|message| DbError::Migrate {
        path: shown,
        message,
    })?;
    Ok(conn)
}

/// Brings the schema up to date with foreign keys off, as SQLite asks for a step that rebuilds a
/// table (dropping the old one would otherwise cascade to every row that names it); a step that
/// does says `foreign_key_check`, and the keys are on again afterwards, whatever happened.
fn migrate(conn: &mut Connection) -> Result<(), String> {
    let pending = migrations()
        .pending_migrations(conn)
        .map_err(|e| e.to_string())?;
    if pending == 0 {
        return Ok(());
    }
    conn.pragma_update(None, "foreign_keys", "OFF")
        .map_err(|e| e.to_string())?;
    let migrated = migrations().to_latest(conn).map_err(|e| e.to_string());
    let restored = conn
        .pragma_update(None, "foreign_keys", "ON")
        .map_err(|e| e.to_string());
    migrated.and(restored)
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Room for every statement a hot path prepares (rusqlite keeps 16): the claim, the
    // ledger's groups and the id lists (`IdList`, a few sizes each) stay prepared.
    conn.set_prepared_statement_cache_capacity(128);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        assert!(super::migrations().validate().is_ok());
    }

    /// A list from before the search index (012) is searchable once the daemon has upgraded it.
    #[test]
    fn subscribers_from_before_the_search_index_are_found_after_the_upgrade() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.db");
        {
            let mut conn = rusqlite::Connection::open(&path).expect("open");
            super::migrations().to_version(&mut conn, 8).expect("008");
            conn.execute(
                "INSERT INTO subscribers (email, status, cadence, time_zone, created_at) \
                 VALUES ('Old.Reader@example.org', 'confirmed', 'daily', 'UTC', '2024-01-01T00:00:00Z')",
                [],
            )
            .expect("insert");
        }
        let conn = super::open(&path).expect("upgrades");
        let found: String = conn
            .query_row(
                "SELECT s.email FROM subscriber_search JOIN subscribers s ON s.id = subscriber_search.rowid \
                 WHERE subscriber_search MATCH '\"d.rea\"'",
                [],
                |r| r.get(0),
            )
            .expect("found");
        assert_eq!(found, "Old.Reader@example.org");
    }

    /// 016 rebuilds `subscribers` to let `instant` in: every row that names a subscriber still
    /// names them, the counts and the search index still hold, and foreign keys work after.
    #[test]
    fn the_instant_cadence_upgrade_keeps_every_row_that_names_a_subscriber() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.db");
        {
            let mut conn = rusqlite::Connection::open(&path).expect("open");
            conn.pragma_update(None, "foreign_keys", "ON").expect("fk");
            super::migrations().to_version(&mut conn, 15).expect("015");
            conn.execute_batch(
                "INSERT INTO subscribers (id, email, status, cadence, time_zone, created_at, window_start_us, bounces) \
                 VALUES (7, 'ada@example.org', 'confirmed', 'weekly', 'Europe/Paris', '2024-01-01T00:00:00Z', 5, 1); \
                 INSERT INTO subscriber_tags (subscriber_id, tag_slug) VALUES (7, 'ai'); \
                 INSERT INTO tokens (hash, subscriber_id, purpose, created_us, expires_us) VALUES (x'01', 7, 'preferences', 1, 2); \
                 INSERT INTO digest_runs (id, now_us, manual, subject, html, deliveries) VALUES (1, 1, 0, '', '', 1); \
                 INSERT INTO deliveries (run_id, subscriber_id, state, window_end_us, articles, next_attempt_us) \
                 VALUES (1, 7, 'sent', 9, '[]', 0); \
                 INSERT INTO outbox (subscriber_id, template, state, created_us, expires_us, next_attempt_us) \
                 VALUES (7, 'welcome', 'sent', 1, 2, 0); \
                 INSERT INTO events (at_us, email, subscriber_id, kind, source) VALUES (1, 'ada@example.org', 7, 'confirmed', 'web');",
            )
            .expect("rows");
            let refused = conn.execute(
                "INSERT INTO subscribers (email, status, cadence, time_zone, created_at) \
                 VALUES ('x@example.org', 'confirmed', 'instant', 'UTC', '2024-01-01T00:00:00Z')",
                [],
            );
            assert!(refused.is_err(), "015 knows no instant cadence");
        }
        let conn = super::open(&path).expect("upgrades");
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect(sql) };
        for table in ["subscriber_tags", "tokens", "deliveries", "outbox"] {
            assert_eq!(
                count(&format!(
                    "SELECT count(*) FROM {table} WHERE subscriber_id = 7"
                )),
                1,
                "{table}"
            );
        }
        assert_eq!(
            count("SELECT count(*) FROM events WHERE subscriber_id = 7"),
            1
        );
        assert_eq!(
            count("SELECT window_start_us + bounces FROM subscribers WHERE id = 7"),
            6
        );
        assert_eq!(
            count("SELECT n FROM subscriber_counts WHERE status = 'confirmed'"),
            1
        );
        conn.execute(
            "INSERT INTO subscribers (email, status, cadence, time_zone, created_at) \
             VALUES ('Bea@example.org', 'confirmed', 'instant', 'UTC', '2024-01-01T00:00:00Z')",
            [],
        )
        .expect("instant is a cadence now");
        assert_eq!(
            count("SELECT n FROM subscriber_counts WHERE status = 'confirmed'"),
            2,
            "the counting triggers are back"
        );
        assert_eq!(
            count("SELECT count(*) FROM subscriber_search_queue WHERE id = 8"),
            1,
            "the search triggers are back"
        );
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(fk, 1, "foreign keys are on again");
        conn.execute("DELETE FROM subscribers WHERE id = 7", [])
            .expect("delete");
        assert_eq!(
            count("SELECT count(*) FROM subscriber_tags WHERE subscriber_id = 7"),
            0,
            "deleting still cascades to the rows that name the subscriber"
        );
        assert_eq!(
            count("SELECT count(*) FROM events WHERE subscriber_id IS NULL"),
            1
        );
    }

    #[test]
    fn open_creates_folder_and_uses_wal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/more/tidings.db");
        let conn = super::open(&path).expect("opens");
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(mode, "wal");
        assert!(path.exists());
    }
}
