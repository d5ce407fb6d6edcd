//! The command line: the commands and their arguments (clap), one file per noun, and `run`.

mod admin;
mod article;
mod audience;
mod digest;
mod dkim;
mod inbound;
mod mail;
mod migrate;
mod source;
mod subscriber;
mod suppression;
mod webhook_endpoint;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;

pub use self::admin::{AdminCommand, TokenCommand};
pub use self::article::ArticleCommand;
pub use self::digest::DigestCommand;
pub use self::dkim::DkimCommand;
pub use self::mail::MailCommand;
pub use self::source::SourceCommand;
pub use self::subscriber::SubscriberCommand;
pub use self::suppression::SuppressionCommand;
pub use self::webhook_endpoint::WebhookEndpointCommand;

#[derive(Parser, Debug)]
#[command(
    name = "tidings",
    version,
    about = "Article catalog, feeds and email digests for a blog"
)]
pub struct Cli {
    /// Configuration file (default: ./tidings.toml if present, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: HTTP server, feed cache, static mirror.
    Serve,
    /// Add, list or remove articles.
    #[command(subcommand)]
    Article(ArticleCommand),
    /// Import articles from a JSON file, a folder of Markdown files, or an RSS/Atom feed (file or URL).
    Import {
        /// JSON file (array of articles), folder of .md files, feed file, or http(s) URL of a feed.
        path: String,
    },
    /// Copy the database consistently (safe while the daemon runs).
    Backup {
        /// Where to write the copy.
        file: PathBuf,
    },
    /// Add, list, remove, import or export subscribers.
    #[command(subcommand)]
    Subscriber(SubscriberCommand),
    /// DKIM keys for signing mail.
    #[command(subcommand)]
    Dkim(DkimCommand),
    /// Send or preview digests.
    #[command(subcommand)]
    Digest(DigestCommand),
    /// The outbox of single emails.
    #[command(subcommand)]
    Mail(MailCommand),
    /// Handle one raw message that came back (a bounce, complaint or mailto unsubscribe) from
    /// FILE or standard input, as the inbound listener would; for an MTA's pipe transport.
    /// Exit 0 when handled or ignored, 75 when the MTA should retry.
    Inbound {
        /// The raw message (RFC 5322); standard input if absent.
        file: Option<PathBuf>,
        /// The envelope recipient (repeatable), e.g. Postfix's ${original_recipient}; default
        /// the X-Original-To or Delivered-To header.
        #[arg(long = "to")]
        to: Vec<String>,
        /// The envelope sender, e.g. Postfix's ${sender}.
        #[arg(long)]
        from: Option<String>,
    },
    /// Addresses no email goes to: list, add, lift, import, export.
    #[command(subcommand)]
    Suppression(SuppressionCommand),
    /// Who reads the feeds: hosted readers' reported subscribers (suspect ones flagged), other
    /// readers told apart by address and User-Agent each day, and the 7-day mean.
    Audience {
        /// Days to show, up to today (1-365).
        #[arg(long, default_value_t = crate::audience::report::DEFAULT_DAYS, value_parser = crate::audience::report::parse_days)]
        days: i64,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Copy this SQLite database into an empty PostgreSQL database (every table, ids and keys
    /// included, so feeds, ETags and links in sent emails keep working).
    Migrate {
        /// The PostgreSQL URL to copy into; TIDINGS_MIGRATE_TO may give it instead, so the
        /// password stays out of the process list.
        #[arg(long)]
        to: Option<crate::secret::SecretUrl>,
    },
    /// Console accounts: add, list, remove, password.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// API tokens for programs: add, list, remove.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Outgoing webhooks: where events are sent (add, list, remove, rotate).
    #[command(subcommand)]
    WebhookEndpoint(WebhookEndpointCommand),
    /// Blogs followed through their feeds: add, list, show, remove, poll.
    #[command(subcommand)]
    Source(SourceCommand),
}

/// The most lettre may log (see `init_logging`).
const LETTRE_AT_MOST: &str = "lettre=info";
/// The most tokio-postgres may log: at debug level it logs every statement's parameters, and
/// some are secrets (a webhook endpoint's signing secret, which HMAC needs as it is).
const POSTGRES_AT_MOST: &str = "tokio_postgres=info";

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        // lettre logs every SMTP command at debug level, `AUTH PLAIN <base64 of the password>`
        // among them: never below info, whatever RUST_LOG asks.
        .add_directive(LETTRE_AT_MOST.parse().expect("a valid directive"))
        .add_directive(POSTGRES_AT_MOST.parse().expect("a valid directive"));
    // Colours only on a terminal: a log file or journald gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The process's one async runtime: the daemon runs on it, and the commands drive the store
/// (whose PostgreSQL connections live on it) with `block_on`.
pub(crate) fn runtime() -> anyhow::Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    if let Some(r) = RUNTIME.get() {
        return Ok(r);
    }
    let built = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(RUNTIME.get_or_init(|| built))
}

/// Runs `f` to completion on the runtime (from a command, never from async code).
pub(crate) fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    Ok(runtime()?.block_on(f))
}

/// The database `database.url` (or `database.path`) names, migrated.
pub(crate) fn open_store(config: &Config) -> anyhow::Result<crate::store::Store> {
    Ok(block_on(crate::store::Store::open(
        &config.database.location(),
        config.database.pool_size,
    ))??)
}

/// `f` in one transaction, from a command.
pub(crate) fn write<T, E: From<crate::store::Error>>(
    store: &crate::store::Store,
    f: impl FnOnce(&crate::store::Db) -> Result<T, E>,
) -> Result<T, E> {
    store.blocking(crate::store::Mode::Write, f)
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.config.as_deref())?;
    crate::webhook_endpoints::configure(&config);
    let change = change(&cli.command);
    let code = command(&config, cli.command)?;
    if let Some((action, target)) = change.filter(|_| code == ExitCode::SUCCESS) {
        let store = open_store(&config)?;
        write(&store, |db| {
            crate::admin::audit::record(
                db,
                &crate::admin::Actor::cli(),
                &action,
                target.as_deref(),
                None,
                chrono::Utc::now().timestamp_micros(),
            )
        })?;
    }
    Ok(code)
}

/// The audit log's name for a command that changes something, and what it acts on; `None`
/// for a command that only reads.
fn change(command: &Command) -> Option<(String, Option<String>)> {
    use self::admin::{AdminCommand as A, TokenCommand as T};
    use self::webhook_endpoint::WebhookEndpointCommand as W;
    let (action, target): (&str, Option<&str>) = match command {
        Command::Article(ArticleCommand::Add { title, slug, .. }) => {
            ("article.add", Some(slug.as_deref().unwrap_or(title)))
        }
        Command::Article(ArticleCommand::Remove { slug }) => ("article.remove", Some(slug)),
        Command::Import { path, .. } => ("article.import", Some(path)),
        Command::Subscriber(SubscriberCommand::Add { email, .. }) => {
            ("subscriber.add", Some(email))
        }
        Command::Subscriber(SubscriberCommand::Remove { email }) => {
            ("subscriber.remove", Some(email))
        }
        Command::Subscriber(SubscriberCommand::Import { .. }) => ("subscriber.import", None),
        Command::Digest(DigestCommand::Run { dry_run: false, .. }) => ("digest.run", None),
        Command::Digest(DigestCommand::Resume { .. }) => ("digest.resume", None),
        Command::Suppression(SuppressionCommand::Add { email, .. }) => {
            ("suppression.add", Some(email))
        }
        Command::Suppression(SuppressionCommand::Remove { email }) => {
            ("suppression.remove", Some(email))
        }
        Command::Suppression(SuppressionCommand::Import { .. }) => ("suppression.import", None),
        Command::Admin(A::Add { name, .. }) => ("account.add", Some(name.as_str())),
        Command::Admin(A::Remove { name }) => ("account.remove", Some(name.as_str())),
        Command::Admin(A::Password { name }) => ("account.password", Some(name.as_str())),
        Command::Token(T::Add { name, .. }) => ("token.add", Some(name.as_str())),
        Command::Token(T::Remove { name }) => ("token.remove", Some(name.as_str())),
        // A URL's path may have capitals: kept as given.
        Command::WebhookEndpoint(W::Add { url, .. }) => {
            return Some(("webhook_endpoint.add".into(), Some(url.trim().to_string())))
        }
        Command::WebhookEndpoint(W::Remove { id }) => {
            return Some((
                "webhook_endpoint.remove".into(),
                Some(format!("webhook-endpoint {id}")),
            ))
        }
        Command::Source(SourceCommand::Add { url, .. }) => {
            return Some(("source.add".into(), Some(url.trim().to_string())))
        }
        Command::Source(SourceCommand::Remove { id }) => {
            return Some(("source.remove".into(), Some(format!("source {id}"))))
        }
        Command::WebhookEndpoint(W::Rotate { id }) => {
            return Some((
                "webhook_endpoint.rotate".into(),
                Some(format!("webhook-endpoint {id}")),
            ))
        }
        _ => return None,
    };
    // Addresses and names as the tables keep them (lower-cased); slugs and paths as given.
    let target = target.map(|t| match action.split('.').next() {
        Some("article") => t.trim().to_string(),
        _ => t.trim().to_lowercase(),
    });
    let detail = match command {
        Command::Digest(DigestCommand::Resume { run }) => Some(format!("run {run}")),
        _ => target,
    };
    Some((action.to_string(), detail))
}

fn command(config: &Config, command: Command) -> anyhow::Result<ExitCode> {
    let config = config.clone();
    match command {
        Command::Serve => {
            block_on(crate::daemon::serve(config))??;
            Ok(ExitCode::SUCCESS)
        }
        Command::Article(cmd) => article::article(&config, cmd),
        Command::Import { path } => article::import(&config, &path),
        Command::Backup { file } => article::backup(&config, &file),
        Command::Subscriber(cmd) => subscriber::subscriber(&config, cmd),
        Command::Dkim(DkimCommand::Keygen {
            algorithm,
            out,
            selector,
            domain,
        }) => dkim::dkim_keygen(&config, algorithm, &out, selector, domain),
        Command::Digest(cmd) => digest::digest(&config, cmd),
        Command::Mail(cmd) => mail::mail(&config, cmd),
        Command::Inbound { file, to, from } => inbound::inbound(&config, file, to, from),
        Command::Suppression(cmd) => suppression::suppression(&config, cmd),
        Command::Migrate { to } => migrate::migrate(&config, to),
        Command::Admin(cmd) => admin::admin(&config, cmd),
        Command::Token(cmd) => admin::token(&config, cmd),
        Command::Audience { days, json } => audience::audience(&config, days, json),
        Command::WebhookEndpoint(cmd) => webhook_endpoint::webhook_endpoint(&config, cmd),
        Command::Source(cmd) => source::source(&config, cmd),
    }
}
