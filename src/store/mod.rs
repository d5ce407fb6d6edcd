//! The one way to the database: a `Store` over a pool, for SQLite (rusqlite) or PostgreSQL
//! (tokio-postgres with deadpool-postgres). Each noun's module keeps its SQL and calls
//! `Store::read` / `Store::write` with a closure that gets a `Db`; nothing else holds a
//! connection, and the `spawn_blocking` + pool + error mapping lives here, once.
//!
//! Why tokio-postgres: it is the async client the rest of the PostgreSQL ecosystem in Rust
//! (deadpool, refinery) builds on, it exposes `LISTEN/NOTIFY` as a stream on the connection,
//! and unlike sqlx it can share the build with rusqlite (both would link `libsqlite3-sys`).

pub mod copy;
pub mod postgres;
pub mod sql;
pub mod sqlite;

use std::sync::Arc;

pub use sql::{Column, Db, Param, Row};

/// This process's random instance id, drawn on first use: the owner of every lease it takes.
/// Never the process id, which two containers on one database may share (both PID 1).
pub fn instance_id() -> i64 {
    static ID: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *ID.get_or_init(|| rand::random::<i64>() & i64::MAX)
}

/// A failed statement, on either backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", postgres::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("no row")]
    NoRow,
    #[error("column {index}: {message}")]
    Column { index: usize, message: String },
    #[error("cannot get a database connection: {0}")]
    Pool(String),
    #[error("{0}")]
    Task(String),
}

impl Error {
    /// A UNIQUE or PRIMARY KEY constraint refused the row.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Error::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            Error::Postgres(e) => {
                e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
            }
            _ => false,
        }
    }
}

/// Which database, as `database.url` (or `database.path`) named it.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

/// Prints a PostgreSQL URL without its password.
impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(p) => f.debug_tuple("Sqlite").field(p).finish(),
            Location::Postgres(url) => f
                .debug_tuple("Postgres")
                .field(&crate::secret::redact_url(url))
                .finish(),
        }
    }
}

impl Location {
    /// The location without a password, for logs.
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(p) => format!("sqlite:{}", p.display()),
            Location::Postgres(url) => postgres::redact(url),
        }
    }
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Sqlite(#[from] crate::db::DbError),
    #[error("cannot open database {url}: {message} (set [database] url in tidings.toml or TIDINGS_DATABASE_URL)")]
    Postgres { url: String, message: String },
    /// `tls` says the `sslmode` in force; `message` is one line (the password is never in it).
    #[error("cannot connect to PostgreSQL at {url} (database.url, {tls}): {message}")]
    Connect {
        url: String,
        tls: String,
        message: String,
    },
}

/// What `Store::dedicated` gives: runs closures like `Store::blocking`.
pub enum Dedicated {
    Shared(Store),
    Own(postgres::Dedicated),
}

impl Dedicated {
    pub fn run<T, E>(&self, mode: Mode, f: impl FnOnce(&Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<Error>,
    {
        match self {
            Dedicated::Shared(store) => store.blocking(mode, f),
            Dedicated::Own(own) => own.run(mode, f),
        }
    }
}

/// The database, shared by every part of a process (cheap to clone).
#[derive(Clone)]
pub struct Store {
    backend: Arc<Backend>,
}

enum Backend {
    Sqlite(sqlite::Pool),
    Postgres(postgres::Pool),
}

impl Store {
    /// Opens the database and brings its schema up to date (under a lock, on PostgreSQL).
    pub async fn open(location: &Location, pool_size: u32) -> Result<Store, OpenError> {
        let backend = match location {
            Location::Sqlite(path) => {
                let path = path.clone();
                let pool =
                    tokio::task::spawn_blocking(move || sqlite::Pool::open(&path, pool_size))
                        .await
                        .map_err(|e| crate::db::DbError::Migrate {
                            path: location.describe(),
                            message: e.to_string(),
                        })??;
                Backend::Sqlite(pool)
            }
            Location::Postgres(url) => {
                let target =
                    postgres::Target::parse(url).map_err(|message| OpenError::Postgres {
                        url: postgres::redact(url),
                        message,
                    })?;
                let pool = postgres::Pool::open(&target, pool_size)
                    .await
                    .map_err(|failure| match failure {
                        postgres::OpenFailure::Connect(message) => OpenError::Connect {
                            url: postgres::redact(url),
                            tls: target.tls.to_string(),
                            message: match target.tls.hint(&message) {
                                Some(hint) => format!("{message} ({hint})"),
                                None => message,
                            },
                        },
                        postgres::OpenFailure::Setup(message) => OpenError::Postgres {
                            url: postgres::redact(url),
                            message,
                        },
                    })?;
                Backend::Postgres(pool)
            }
        };
        Ok(Store {
            backend: Arc::new(backend),
        })
    }

    /// Opens a SQLite database from a thread that is not async (the CLI, tests).
    pub fn open_sqlite(path: &std::path::Path, pool_size: u32) -> Result<Store, OpenError> {
        Ok(Store {
            backend: Arc::new(Backend::Sqlite(sqlite::Pool::open(path, pool_size)?)),
        })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(*self.backend, Backend::Postgres(_))
    }

    /// The PostgreSQL pool, for what only PostgreSQL has (`LISTEN`).
    pub fn postgres(&self) -> Option<&postgres::Pool> {
        match &*self.backend {
            Backend::Postgres(p) => Some(p),
            Backend::Sqlite(_) => None,
        }
    }

    /// Runs `f` outside a transaction (each statement on its own), on a blocking thread.
    pub async fn read<T, E>(
        &self,
        f: impl FnOnce(&Db) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        self.run(Mode::Read, f).await
    }

    /// Runs `f` in one transaction, committed when it returns `Ok` and rolled back otherwise.
    pub async fn write<T, E>(
        &self,
        f: impl FnOnce(&Db) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        self.run(Mode::Write, f).await
    }

    /// Runs `f` in one read-only transaction: every statement sees the same committed state.
    pub async fn snapshot<T, E>(
        &self,
        f: impl FnOnce(&Db) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        self.run(Mode::Snapshot, f).await
    }

    /// The same, from a thread that may block (the ledger's recorder, the CLI on SQLite).
    pub fn blocking<T, E>(&self, mode: Mode, f: impl FnOnce(&Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<Error>,
    {
        match &*self.backend {
            Backend::Sqlite(pool) => pool.run(mode, f),
            Backend::Postgres(pool) => pool.run_blocking(mode, f),
        }
    }

    /// A connection for one thread that is not async and runs statements often (the ledger's
    /// recorder): on PostgreSQL one of its own, driven on that thread; on SQLite the store's
    /// own, as `blocking` uses (one writer: a second would meet SQLite's busy handler).
    pub fn dedicated(&self) -> Result<Dedicated, String> {
        Ok(match &*self.backend {
            Backend::Sqlite(_) => Dedicated::Shared(self.clone()),
            Backend::Postgres(pool) => Dedicated::Own(pool.dedicated()?),
        })
    }

    async fn run<T, E>(
        &self,
        mode: Mode,
        f: impl FnOnce(&Db) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let store = self.clone();
        match &*self.backend {
            Backend::Sqlite(_) => tokio::task::spawn_blocking(move || store.blocking(mode, f))
                .await
                .map_err(|e| E::from(Error::Task(e.to_string())))?,
            Backend::Postgres(pool) => {
                let client = pool.get().await.map_err(E::from)?;
                let runtime = pool.io();
                tokio::task::spawn_blocking(move || {
                    postgres::Pool::run_on(client, sql::Driver::Shared(runtime), mode, f)
                })
                .await
                .map_err(|e| E::from(Error::Task(e.to_string())))?
            }
        }
    }
}

/// How `Store` runs a closure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Each statement on its own.
    Read,
    /// One read-only transaction: every statement sees the same committed state.
    Snapshot,
    /// One transaction, committed when the closure returns `Ok`.
    Write,
    /// `Write`, and on SQLite the commit is synced to disk (`synchronous=FULL`).
    Durable,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::{Error, Location, Store};

    /// A new, empty PostgreSQL database on the server `TIDINGS_TEST_POSTGRES_URL` names (a URL
    /// whose user may create databases), or `None` when it is not set.
    pub(crate) async fn fresh_postgres() -> Option<Location> {
        let admin = std::env::var("TIDINGS_TEST_POSTGRES_URL").ok()?;
        let (config, tls) =
            super::postgres::connect_config(&admin).expect("TIDINGS_TEST_POSTGRES_URL");
        let (client, connection) = config
            .connect(tls)
            .await
            .expect("connect to TIDINGS_TEST_POSTGRES_URL");
        tokio::spawn(connection);
        let name = format!("tidings_unit_{}", rand::random::<u32>());
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let mut url = url::Url::parse(&admin).expect("url");
        url.set_path(&name);
        Some(Location::Postgres(url.to_string()))
    }

    /// A fresh SQLite store, and a fresh PostgreSQL one when a server is configured.
    pub(crate) async fn both() -> Vec<(Store, Option<tempfile::TempDir>)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let lite = Store::open(&Location::Sqlite(dir.path().join("t.db")), 2)
            .await
            .expect("sqlite");
        let mut stores = vec![(lite, Some(dir))];
        if let Some(pg) = fresh_postgres().await {
            stores.push((Store::open(&pg, 4).await.expect("postgres"), None));
        }
        stores
    }

    async fn round_trip(store: &Store) {
        let id: i64 = store
            .write(|db| {
                db.query_row(
                    "INSERT INTO secrets (name, value) VALUES (?1, ?2) RETURNING length(name)",
                    crate::params!["k", vec![1u8, 2, 3]],
                    |r| r.get(0),
                )
            })
            .await
            .expect("insert");
        assert_eq!(id, 1);
        let (value, missing): (Vec<u8>, Option<String>) = store
            .read(|db| {
                let v = db.query_row(
                    "SELECT value FROM secrets WHERE name = ?1",
                    crate::params!["k"],
                    |r| r.get(0),
                )?;
                let m = db.query_opt(
                    "SELECT name FROM secrets WHERE name = ?1",
                    crate::params!["nope"],
                    |r| r.get(0),
                )?;
                Ok::<_, Error>((v, m))
            })
            .await
            .expect("read");
        assert_eq!(value, vec![1, 2, 3]);
        assert_eq!(missing, None);
        // A failed closure leaves nothing behind.
        let failed: Result<(), Error> = store
            .write(|db| {
                db.execute(
                    "INSERT INTO secrets (name, value) VALUES (?1, ?2)",
                    crate::params!["gone", vec![0u8]],
                )?;
                Err(Error::NoRow)
            })
            .await;
        assert!(failed.is_err());
        let dup = store
            .write(|db| {
                db.execute(
                    "INSERT INTO secrets (name, value) VALUES (?1, ?2)",
                    crate::params!["k", vec![0u8]],
                )
            })
            .await
            .expect_err("duplicate");
        assert!(dup.is_unique_violation(), "{dup}");
        let names: Vec<String> = store
            .read(|db| db.query_map("SELECT name FROM secrets ORDER BY name", &[], |r| r.get(0)))
            .await
            .expect("names");
        assert_eq!(names, vec!["k".to_string()]);
        let (now, flag, none): (i64, bool, Option<i64>) = store
            .write(|db| {
                db.lock("test")?;
                let now = db.now_us()?;
                let flag = db.query_row(
                    "SELECT EXISTS (SELECT 1 FROM secrets WHERE name = ?1)",
                    crate::params!["k"],
                    |r| r.get(0),
                )?;
                let none = db.query_row("SELECT max(id) FROM outbox", &[], |r| r.get(0))?;
                Ok::<_, Error>((now, flag, none))
            })
            .await
            .expect("clock");
        assert!((now - chrono::Utc::now().timestamp_micros()).abs() < 60_000_000);
        assert!(flag);
        assert_eq!(none, None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_same_sql_runs_on_each_backend() {
        for (store, _dir) in both().await {
            round_trip(&store).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL (TIDINGS_TEST_POSTGRES_URL); .ci/run sets it"]
    async fn postgres_is_there_when_asked_for() {
        let location = fresh_postgres().await.expect("TIDINGS_TEST_POSTGRES_URL");
        let store = Store::open(&location, 4).await.expect("open");
        assert!(store.is_postgres());
        round_trip(&store).await;
        // Opening again (a second node) finds the schema in place.
        Store::open(&location, 4).await.expect("open again");
    }
}
