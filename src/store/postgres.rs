//! PostgreSQL: a deadpool-postgres pool; migrations (refinery) under an advisory lock, so two
//! nodes starting together take turns; each closure runs on a blocking thread that drives the
//! async client, so the same SQL code serves both backends. Every connection (the pool, the
//! recorder's own, `LISTEN`) is made by one `Connector`, with the TLS of `tls.rs`.

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};

use super::sql::{lock_key, Driver, Pg};
use super::{Db, Error, Mode};

pub mod tls;
pub use tls::{MakeTls, SslMode, Tls};

mod embedded {
    refinery::embed_migrations!("src/migrations/postgres");
}

/// `database.url` parsed once: tokio-postgres' settings (told only whether to ask for TLS) and
/// the `sslmode`/`sslrootcert` that tidings enforces itself.
#[derive(Debug, Clone)]
pub struct Target {
    pub config: tokio_postgres::Config,
    pub tls: Tls,
}

impl Target {
    /// A `postgres://` URL with libpq's parameters; `sslmode=allow` is refused.
    pub fn parse(url: &str) -> Result<Target, String> {
        let (rest, tls) = Tls::split_url(url)?;
        let mut config = tokio_postgres::Config::from_str(&rest)
            .map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
        config.ssl_mode(tls.client_mode());
        Ok(Target { config, tls })
    }
}

/// What every connection to the database is made with (cheap to clone).
#[derive(Clone)]
pub struct Connector {
    pub config: tokio_postgres::Config,
    pub make_tls: MakeTls,
}

impl Connector {
    /// Reads `sslrootcert`, when there is one, and builds the TLS client.
    pub fn new(target: &Target) -> Result<Connector, String> {
        Ok(Connector {
            config: target.config.clone(),
            make_tls: target.tls.make_tls()?,
        })
    }
}

/// What tests and tools connect with, following `sslmode` and `sslrootcert` as the daemon does:
/// `let (config, tls) = connect_config(url)?; config.connect(tls).await`.
pub fn connect_config(url: &str) -> Result<(tokio_postgres::Config, MakeTls), String> {
    let connector = Connector::new(&Target::parse(url)?)?;
    Ok((connector.config, connector.make_tls))
}

pub struct Pool {
    pool: deadpool_postgres::Pool,
    connector: Connector,
    io: Io,
}

/// Why `Pool::open` failed: no connection could be made, or the schema could not be migrated.
#[derive(Debug)]
pub enum OpenFailure {
    Connect(String),
    Setup(String),
}

/// A runtime of the pool's own, with one thread, that drives its connections. On the
/// application's runtime a connection's task waits its turn behind every SMTP session, and each
/// statement is a round trip through it: a digest batch's claim took 17 ms there. Threads that
/// are not async (the ledger's recorder, the publisher) and the blocking threads that run
/// closures wait on it for each statement.
struct Io {
    handle: tokio::runtime::Handle,
    /// Taken when dropped.
    runtime: Option<Box<tokio::runtime::Runtime>>,
}

impl Io {
    fn start() -> Result<Io, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tidings-postgres")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the database thread: {e}"))?;
        Ok(Io {
            handle: runtime.handle().clone(),
            runtime: Some(Box::new(runtime)),
        })
    }

    /// `f` on this runtime (connections it opens are driven here), awaited from any other.
    async fn run<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, Error> {
        self.handle
            .spawn(f)
            .await
            .map_err(|e| Error::Task(e.to_string()))
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        // A runtime may not be dropped where blocking is not allowed (inside another runtime).
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A PostgreSQL error with what the server said (the client's own `Display` is terse).
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

/// Why a connection could not be made, on one line: what the server said, or the whole chain of
/// causes (tokio-postgres' own text for a TLS failure is only "error performing TLS handshake").
pub fn connect_error(e: &tokio_postgres::Error) -> String {
    if e.as_db_error().is_some() {
        return describe(e);
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    let text = match text.strip_prefix("error performing TLS handshake: ") {
        Some(rest) => format!("TLS: {rest}"),
        None => text,
    };
    text.replace(['\n', '\r'], " ")
}

/// `postgres://user:secret@host/db?password=secret` → `postgres://user@host/db`: the password is
/// dropped wherever libpq lets it be written, in the user part or as a parameter.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(None);
            }
            if u.query_pairs().any(|(k, _)| k == "password") {
                let kept: Vec<(String, String)> = u
                    .query_pairs()
                    .filter(|(k, _)| k != "password")
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                if kept.is_empty() {
                    u.set_query(None);
                } else {
                    u.query_pairs_mut().clear().extend_pairs(kept);
                }
            }
            u.to_string()
        }
        Err(_) => "postgres://…".into(),
    }
}

/// A deadpool pool of at most `size` connections made by `connector`, opened when first used.
fn connections(connector: &Connector, size: usize) -> Result<deadpool_postgres::Pool, String> {
    let manager = Manager::from_config(
        connector.config.clone(),
        connector.make_tls.clone(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| e.to_string())
}

impl Pool {
    /// Connects (the first connection runs the migrations, so a wrong password, CA or host
    /// name ends here).
    pub async fn open(target: &Target, size: u32) -> Result<Pool, OpenFailure> {
        let connector = Connector::new(target).map_err(OpenFailure::Setup)?;
        let pool = connections(&connector, size.max(2) as usize).map_err(OpenFailure::Setup)?;
        let io = Io::start().map_err(OpenFailure::Setup)?;
        let migrating = pool.clone();
        io.run(async move { migrate(&migrating).await })
            .await
            .map_err(|e| OpenFailure::Setup(e.to_string()))??;
        Ok(Pool {
            pool,
            connector,
            io,
        })
    }

    /// What the pool connects with (for a `LISTEN` connection of its own).
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// The runtime that drives the pool's connections.
    pub fn io(&self) -> tokio::runtime::Handle {
        self.io.handle.clone()
    }

    pub async fn get(&self) -> Result<deadpool_postgres::Object, Error> {
        let pool = self.pool.clone();
        self.io
            .run(async move { pool.get().await })
            .await?
            .map_err(|e| Error::Pool(pool_error(&e)))
    }

    /// `f` on `client`, in a transaction unless `mode` is `Read`.
    pub(super) fn run_on<T, E>(
        client: deadpool_postgres::Object,
        runtime: Driver,
        mode: Mode,
        f: impl FnOnce(&Db) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<Error>,
    {
        let pg = Pg {
            client,
            runtime,
            transaction: mode != Mode::Read,
        };
        let db = Db::Pg(&pg);
        match mode {
            Mode::Read => return f(&db),
            Mode::Snapshot => db
                .execute_batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .map_err(E::from)?,
            Mode::Write | Mode::Durable => db.execute_batch("BEGIN").map_err(E::from)?,
        }
        let mut guard = Rollback {
            pg: &pg,
            open: true,
        };
        let value = f(&db)?;
        db.execute_batch("COMMIT").map_err(E::from)?;
        guard.open = false;
        Ok(value)
    }

    /// `run_on` from a thread that is not async.
    pub fn run_blocking<T, E>(
        &self,
        mode: Mode,
        f: impl FnOnce(&Db) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<Error>,
    {
        let io = self.io();
        let client = io.block_on(self.get()).map_err(E::from)?;
        Self::run_on(client, Driver::Shared(io), mode, f)
    }

    /// A connection of its own for one thread that is not async, driven on that thread.
    pub fn dedicated(&self) -> Result<Dedicated, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a database runtime: {e}"))?;
        let pool = connections(&self.connector, 1)?;
        Ok(Dedicated {
            runtime: std::sync::Arc::new(runtime),
            pool,
        })
    }
}

/// One connection, opened on first use (and again after it broke), whose statements and I/O
/// run on the thread that owns it: a statement costs the round trip to the server and no hop
/// through the pool's thread. The ledger's recorder commits every group of sent digests
/// through one (BENCHMARKS.md, "Larger groups and the recorder's own connection on PostgreSQL").
pub struct Dedicated {
    runtime: std::sync::Arc<tokio::runtime::Runtime>,
    /// Of one connection: deadpool reopens it when it broke.
    pool: deadpool_postgres::Pool,
}

impl Dedicated {
    /// `f` on this connection, in a transaction unless `mode` is `Read`.
    pub fn run<T, E>(&self, mode: Mode, f: impl FnOnce(&Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<Error>,
    {
        let client = self
            .runtime
            .block_on(self.pool.get())
            .map_err(|e| E::from(Error::Pool(pool_error(&e))))?;
        Pool::run_on(client, Driver::Own(self.runtime.clone()), mode, f)
    }
}

/// Rolls back a transaction that `f` left by an error or a panic, before the connection goes
/// back to the pool.
struct Rollback<'a> {
    pg: &'a Pg,
    open: bool,
}

impl Drop for Rollback<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = Db::Pg(self.pg).execute_batch("ROLLBACK");
        }
    }
}

/// Brings the database at `url` to migration `version` and no further: a test of what a later
/// migration does to rows written before it.
#[cfg(test)]
pub(crate) async fn migrate_to(url: &str, version: u32) {
    let (config, tls) = connect_config(url).expect("url");
    let (mut client, connection) = config.connect(tls).await.expect("connect");
    tokio::spawn(connection);
    let mut runner = embedded::migrations::runner().set_target(refinery::Target::Version(version));
    runner
        .set_migration_table_name("tidings_schema_history")
        .run_async(&mut client)
        .await
        .expect("migrate");
}

/// Brings the schema up to date under an advisory lock, so that two nodes starting together
/// take turns.
async fn migrate(pool: &deadpool_postgres::Pool) -> Result<(), OpenFailure> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| OpenFailure::Connect(pool_error(&e)))?;
    let key = lock_key("tidings migrations");
    client
        .execute("SELECT pg_advisory_lock($1)", &[&key])
        .await
        .map_err(|e| OpenFailure::Setup(describe(&e)))?;
    let migrated = embedded::migrations::runner()
        .set_migration_table_name("tidings_schema_history")
        .run_async(&mut **client)
        .await
        .map_err(|e| OpenFailure::Setup(format!("cannot migrate: {e}")));
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&key])
        .await;
    migrated?;
    Ok(())
}

fn pool_error(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => connect_error(e),
        other => other.to_string(),
    }
}

/// Calls `changed` for every notification on `channel`, for as long as `shutdown` allows, on a
/// connection of its own. When that connection drops, it reconnects (backing off up to 10 s)
/// and calls `changed` once more: notifications sent while it was down are lost, so the caller
/// re-reads what they were about.
pub async fn listen(
    connector: Connector,
    channel: &'static str,
    changed: impl Fn() + Send + 'static,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use futures_util::StreamExt;
    let mut wait = std::time::Duration::from_millis(100);
    let mut first = true;
    loop {
        let connected = tokio::select! {
            c = connector.config.connect(connector.make_tls.clone()) => c,
            _ = shutdown.cancelled() => return,
        };
        match connected {
            Err(e) => {
                tracing::warn!(error = %connect_error(&e), "cannot connect for notifications; retrying")
            }
            Ok((client, mut connection)) => {
                // The connection is driven by a task of its own, which hands notifications over;
                // its end (the server went away) closes the channel.
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(m) = messages.next().await {
                        match m {
                            Ok(tokio_postgres::AsyncMessage::Notification(_)) => {
                                if tx.send(()).is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %describe(&e), "notification connection lost; reconnecting");
                                return;
                            }
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {channel}")).await {
                    Err(e) => tracing::warn!(error = %describe(&e), "cannot LISTEN; retrying"),
                    Ok(()) => {
                        wait = std::time::Duration::from_millis(100);
                        if !first {
                            tracing::info!(channel, "notifications back: catching up");
                        }
                        first = false;
                        changed();
                        loop {
                            tokio::select! {
                                m = rx.recv() => match m {
                                    Some(()) => changed(),
                                    None => break,
                                },
                                _ = shutdown.cancelled() => {
                                    driver.abort();
                                    return;
                                }
                            }
                        }
                    }
                }
                driver.abort();
                drop(client);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return,
        }
        wait = (wait * 2).min(std::time::Duration::from_secs(10));
    }
}

#[cfg(test)]
mod redact_tests {
    use super::redact;

    #[test]
    fn the_password_is_dropped_from_the_user_part_and_from_the_parameters() {
        assert_eq!(
            redact("postgres://app:s3cret@db.example/tidings"),
            "postgres://app@db.example/tidings"
        );
        assert_eq!(
            redact("postgres://app@db.example/tidings?password=s3cret"),
            "postgres://app@db.example/tidings"
        );
        let kept = redact(
            "postgres://app@db.example/tidings?sslmode=verify-full&password=s3cret&sslrootcert=%2Fca.pem",
        );
        assert!(!kept.contains("s3cret"), "{kept}");
        assert!(
            kept.contains("sslmode=verify-full") && kept.contains("sslrootcert="),
            "{kept}"
        );
        assert_eq!(redact("not a url s3cret"), "postgres://…");
    }
}
