//! `tidings migrate --to postgres://…`: moves this installation's SQLite database into an empty
//! PostgreSQL database (`store::copy`), then checks that every table arrived whole.

use std::process::ExitCode;

use crate::config::Config;
use crate::secret::SecretUrl;
use crate::store::{copy, Location, Store};

/// The environment variable that may give the target instead of `--to`, so the password does not
/// show in the process list.
pub const TARGET_ENV: &str = "TIDINGS_MIGRATE_TO";

pub fn migrate(config: &Config, to: Option<SecretUrl>) -> anyhow::Result<ExitCode> {
    let Some(target_url) = to
        .or_else(|| std::env::var(TARGET_ENV).ok().map(SecretUrl::new))
        .map(|u| u.expose().to_string())
    else {
        eprintln!("error: --to: give the PostgreSQL URL to copy into (or set {TARGET_ENV})");
        return Ok(ExitCode::FAILURE);
    };
    if !(target_url.starts_with("postgres://") || target_url.starts_with("postgresql://")) {
        eprintln!("error: --to: must be a postgres:// URL");
        return Ok(ExitCode::FAILURE);
    }
    let Location::Sqlite(path) = config.database.location() else {
        eprintln!(
            "error: database.url: the source is already PostgreSQL; migrate copies a SQLite database"
        );
        return Ok(ExitCode::FAILURE);
    };
    if !path.exists() {
        eprintln!("error: database.path: {} does not exist", path.display());
        return Ok(ExitCode::FAILURE);
    }
    let target_location = Location::Postgres(target_url);
    super::block_on(async move {
        let source = Store::open(&Location::Sqlite(path.clone()), 1).await?;
        let target = match Store::open(&target_location, 4).await {
            Ok(target) => target,
            // The URL came from --to (or TIDINGS_MIGRATE_TO), not from database.url.
            Err(crate::store::OpenError::Connect { url, tls, message }) => {
                eprintln!("error: --to: cannot connect to PostgreSQL at {url} ({tls}): {message}");
                return Ok(ExitCode::FAILURE);
            }
            Err(e) => return Err(e.into()),
        };
        let copied = match copy::sqlite_to_postgres(&source, &target).await {
            Ok(c) => c,
            Err(copy::CopyError::NotEmpty { table }) => {
                eprintln!(
                    "error: --to: the target database is not empty ({table} has rows); nothing was copied"
                );
                return Ok(ExitCode::FAILURE);
            }
            Err(e) => return Err(anyhow::Error::from(e)),
        };
        let (from, into) = (copy::counts(&source).await?, copy::counts(&target).await?);
        if from != into {
            anyhow::bail!("the copy does not match the source: {from:?} against {into:?}");
        }
        println!(
            "copied {} into {}: {copied}",
            path.display(),
            target_location.describe()
        );
        println!(
            "set database.url (or TIDINGS_DATABASE_URL) to the new database and start the daemon"
        );
        Ok(ExitCode::SUCCESS)
    })?
}
