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
    migrations()
        .to_latest(&mut conn)
        .map_err(|e| DbError::Migrate {
            path: shown,
            message: e.to_string(),
        })?;
    Ok(conn)
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
