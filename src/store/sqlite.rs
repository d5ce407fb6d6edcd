//! SQLite: one writer connection (writers take turns in-process, so SQLite's busy handler,
//! which sleeps in milliseconds, is only met across processes) and a pool of readers (r2d2).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use r2d2_sqlite::SqliteConnectionManager;

use super::{Db, Error, Mode};

pub struct Pool {
    path: PathBuf,
    writer: Mutex<rusqlite::Connection>,
    readers: r2d2::Pool<SqliteConnectionManager>,
}

impl Pool {
    /// Opens the file (creating it and its folder), migrates it, and opens `readers` readers.
    pub fn open(path: &Path, readers: u32) -> Result<Pool, crate::db::DbError> {
        let writer = crate::db::open(path)?;
        // Digest runs rewrite the same ledger and subscriber pages over and over: checkpoint the
        // WAL every ~40 MB rather than every ~4 MB, so each hot page is copied back once, not ten
        // times (BENCHMARKS.md, "How the sender reaches them").
        writer
            .pragma_update(None, "wal_autocheckpoint", 10_000)
            .map_err(|source| crate::db::DbError::Open {
                path: path.display().to_string(),
                source,
            })?;
        let manager = SqliteConnectionManager::file(path).with_init(|c| {
            c.busy_timeout(std::time::Duration::from_secs(10))?;
            c.pragma_update(None, "foreign_keys", "ON")?;
            c.set_prepared_statement_cache_capacity(128);
            c.pragma_update(None, "query_only", "ON")
        });
        let readers = r2d2::Pool::builder()
            .max_size(readers.max(1))
            .min_idle(Some(0))
            .build(manager)
            .map_err(|e| crate::db::DbError::Migrate {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        Ok(Pool {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn run<T, E>(&self, mode: Mode, f: impl FnOnce(&Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<Error>,
    {
        if matches!(mode, Mode::Read | Mode::Snapshot) {
            let conn = self
                .readers
                .get()
                .map_err(|e| E::from(Error::Pool(e.to_string())))?;
            if mode == Mode::Read {
                return f(&Db::Lite(&conn));
            }
            conn.execute_batch("BEGIN DEFERRED")
                .map_err(|e| E::from(e.into()))?;
            let result = f(&Db::Lite(&conn));
            // Read-only: ending it either way changes nothing.
            let _ = conn.execute_batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
            return result;
        }
        let mut conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if mode == Mode::Durable {
            conn.pragma_update(None, "synchronous", "FULL")
                .map_err(|e| E::from(e.into()))?;
        }
        let result = (|| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| E::from(e.into()))?;
            let value = f(&Db::Lite(&tx))?;
            tx.commit().map_err(|e| E::from(e.into()))?;
            Ok(value)
        })();
        if mode == Mode::Durable {
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(|e| E::from(e.into()))?;
        }
        result
    }
}
