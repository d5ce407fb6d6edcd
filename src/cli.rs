//! The command line: `serve`, `article add|list|remove`, `import`, `backup`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use clap::{Parser, Subcommand, ValueEnum};

use crate::catalog::import::{import_entries, read_source};
use crate::catalog::{rfc3339, ArticleInput, ArticleJson, Catalog, CatalogError, Upserted};
use crate::config::Config;

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
}

#[derive(Subcommand, Debug)]
pub enum DigestCommand {
    /// Send the digests that are due (safe while the daemon runs, on the same database).
    Run {
        /// Treat every confirmed subscriber as due now (still only what is new to each).
        #[arg(long)]
        now: bool,
        /// Show who would get what; send and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Plan as if the clock said this time (RFC 3339); for rehearsals and tests.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
    /// Show the next digest one subscriber would get, and why, without sending or changing anything.
    Preview {
        email: String,
        /// Also write the digest's HTML to this file.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// As if the clock said this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum SubscriberCommand {
    /// Add a subscriber (pending, and sent a confirmation email, unless --confirmed), or update one.
    Add {
        email: String,
        /// A tag slug to follow; repeat for more (none = every tag).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// daily or weekly (default: subscribers.default_cadence).
        #[arg(long)]
        cadence: Option<String>,
        /// IANA time zone (default: subscribers.default_time_zone).
        #[arg(long)]
        time_zone: Option<String>,
        /// Add as confirmed, without a confirmation email (they opted in elsewhere).
        #[arg(long)]
        confirmed: bool,
    },
    /// List subscribers.
    List {
        /// Only this status: pending, confirmed, unsubscribed or bounced.
        #[arg(long)]
        status: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Delete a subscriber and everything about them.
    Remove { email: String },
    /// Import a CSV file (header email,tags,cadence,time_zone,status; tags as slugs separated by ;).
    Import { file: PathBuf },
    /// Write every subscriber as CSV to standard output.
    Export,
}

#[derive(Subcommand, Debug)]
pub enum DkimCommand {
    /// Write a new private key and print the DNS TXT record to publish.
    Keygen {
        /// rsa (2048 bits, accepted everywhere) or ed25519 (RFC 8463).
        #[arg(long, value_enum, default_value = "rsa")]
        algorithm: crate::mail::dkim::Algorithm,
        /// Where to write the private key (PKCS#8 PEM, mode 0600).
        #[arg(long, default_value = "data/dkim.pem")]
        out: PathBuf,
        /// Selector (default: mail.dkim.selector, else "tidings").
        #[arg(long)]
        selector: Option<String>,
        /// Domain (default: mail.dkim.domain, else the From address's domain).
        #[arg(long)]
        domain: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ArticleCommand {
    /// Add an article, or update the one with the same slug.
    Add {
        #[arg(long)]
        title: String,
        #[arg(long)]
        url: String,
        /// A tag's display name; repeat for more (the first is the primary tag).
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[arg(long)]
        summary: Option<String>,
        /// HTML file, or Markdown if it ends in .md/.markdown.
        #[arg(long, value_name = "FILE")]
        content_file: Option<PathBuf>,
        /// Publication time, RFC 3339 (default: now).
        #[arg(long)]
        published: Option<String>,
        /// URL slug (default: made from the title).
        #[arg(long)]
        slug: Option<String>,
        #[arg(long)]
        author: Option<String>,
        #[arg(long)]
        image: Option<String>,
        #[arg(long = "reading-time", value_name = "MINUTES")]
        reading_time: Option<u32>,
    },
    /// List articles, newest first.
    List {
        /// Only articles with this tag slug.
        #[arg(long)]
        tag: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove the article with this slug.
    Remove { slug: String },
}

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(crate::daemon::serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Article(cmd) => article(&config, cmd),
        Command::Import { path } => import(&config, &path),
        Command::Backup { file } => backup(&config, &file),
        Command::Subscriber(cmd) => subscriber(&config, cmd),
        Command::Dkim(DkimCommand::Keygen {
            algorithm,
            out,
            selector,
            domain,
        }) => dkim_keygen(&config, algorithm, &out, selector, domain),
        Command::Digest(cmd) => digest(&config, cmd),
    }
}

fn open(config: &Config) -> anyhow::Result<Catalog> {
    Ok(Catalog::open(&config.database.path)?)
}

fn article(config: &Config, cmd: ArticleCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ArticleCommand::Add {
            title,
            url,
            tags,
            summary,
            content_file,
            published,
            slug,
            author,
            image,
            reading_time,
        } => {
            let mut raw = ArticleJson {
                slug,
                title: Some(title),
                url: Some(url),
                summary,
                author,
                published_at: published,
                tags: Some(tags),
                image,
                reading_time_minutes: reading_time,
                ..ArticleJson::default()
            };
            if let Some(file) = content_file {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("--content-file {}: cannot read", file.display()))?;
                let markdown = file
                    .extension()
                    .is_some_and(|e| e == "md" || e == "markdown");
                if markdown {
                    raw.content_markdown = Some(text);
                } else {
                    raw.content_html = Some(text);
                }
            }
            let input = match ArticleInput::parse(raw) {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("error: {}: {}", cli_flag(&e.field), e.problem);
                    return Ok(ExitCode::FAILURE);
                }
            };
            let mut catalog = open(config)?;
            match catalog.upsert(&input, Utc::now()) {
                Ok((outcome, article)) => {
                    let word = match outcome {
                        Upserted::Created => "added",
                        Upserted::Updated => "updated",
                        Upserted::Unchanged => "unchanged",
                    };
                    println!("{word} {} ({})", article.slug, article.id);
                    Ok(ExitCode::SUCCESS)
                }
                Err(CatalogError::Input(e)) => {
                    eprintln!("error: {}: {}", cli_flag(&e.field), e.problem);
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => Err(e.into()),
            }
        }
        ArticleCommand::List { tag, limit, json } => {
            let catalog = open(config)?;
            let articles = catalog.newest(tag.as_deref(), limit, 0)?;
            for a in &articles {
                if json {
                    println!("{}", serde_json::to_string(&a.view())?);
                } else {
                    let tags: Vec<&str> = a.tags.iter().map(|t| t.name.as_str()).collect();
                    println!(
                        "{}  {}  {}  [{}]",
                        rfc3339(&a.published_at),
                        a.slug,
                        a.title,
                        tags.join(", ")
                    );
                }
            }
            if !json {
                eprintln!("{} of {} articles", articles.len(), catalog.count()?);
            }
            Ok(ExitCode::SUCCESS)
        }
        ArticleCommand::Remove { slug } => {
            let mut catalog = open(config)?;
            if catalog.remove(&slug, Utc::now())? {
                println!("removed {slug}");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("error: no article with slug '{slug}'");
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

/// The flag that sets a JSON field, for error messages.
fn cli_flag(field: &str) -> String {
    match field {
        "published_at" => "--published".into(),
        "content_html" | "content_markdown" => "--content-file".into(),
        "reading_time_minutes" => "--reading-time".into(),
        f if f.starts_with("tags[") => format!("--tag ({f})"),
        f => format!("--{f}"),
    }
}

fn import(config: &Config, source: &str) -> anyhow::Result<ExitCode> {
    let entries = read_source(source)?;
    let mut catalog = open(config)?;
    let bar = indicatif::ProgressBar::new(entries.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} articles ({eta} left)")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = import_entries(&mut catalog, entries, || bar.inc(1))?;
    bar.finish_and_clear();
    for (position, label, problem) in &report.rejected {
        eprintln!("entry {position} ({label}): {problem}");
    }
    println!("imported from {source}: {report}");
    Ok(if report.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn backup(config: &Config, file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let catalog = open(config)?;
    let tmp = {
        let mut name = file.as_os_str().to_owned();
        name.push(".partial");
        PathBuf::from(name)
    };
    let _ = std::fs::remove_file(&tmp);
    catalog
        .connection()
        .backup(rusqlite::MAIN_DB, &tmp, None)
        .with_context(|| format!("cannot write backup {}", tmp.display()))?;
    std::fs::rename(&tmp, file)
        .with_context(|| format!("cannot move the backup into place at {}", file.display()))?;
    println!(
        "backed up {} to {}",
        config.database.path.display(),
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn subscriber(config: &Config, cmd: SubscriberCommand) -> anyhow::Result<ExitCode> {
    use crate::subscribers::csv::{admin_upsert, SubscriberJson, Upserted};
    use crate::subscribers::flow::FlowError;
    use crate::subscribers::{store, Status, SubscriberEmail};
    let mut conn = crate::db::open(&config.database.path)?;
    let report_input = |e: FlowError| -> anyhow::Result<ExitCode> {
        match e {
            FlowError::Input(e) => {
                eprintln!("error: {}: {}", e.field, e.problem);
                Ok(ExitCode::FAILURE)
            }
            other => Err(other.into()),
        }
    };
    match cmd {
        SubscriberCommand::Add {
            email,
            tags,
            cadence,
            time_zone,
            confirmed,
        } => {
            let raw = SubscriberJson {
                email: Some(email),
                status: confirmed.then(|| "confirmed".to_string()),
                tags: (!tags.is_empty()).then_some(tags),
                cadence,
                time_zone,
            };
            let (outcome, s) = match admin_upsert(&mut conn, config, raw, Status::Pending) {
                Ok(done) => done,
                Err(e) => return report_input(e),
            };
            let word = match outcome {
                Upserted::Created => "added",
                Upserted::Updated => "updated",
                Upserted::Unchanged => "unchanged",
            };
            println!("{word} {} ({})", s.email, s.status.as_str());
            if outcome == Upserted::Created && s.status == Status::Pending {
                drop(conn);
                send_confirmation(config, s)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        SubscriberCommand::List { status, json } => {
            let status = match status.as_deref().map(Status::parse).transpose() {
                Ok(s) => s,
                Err(p) => {
                    eprintln!("error: --status: {p}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let all = store::list(&conn, status)?;
            for s in &all {
                if json {
                    println!("{}", serde_json::to_string(&s.view())?);
                } else {
                    let tags = if s.preferences.tags.is_empty() {
                        "all tags".to_string()
                    } else {
                        s.preferences.tags.join(", ")
                    };
                    println!(
                        "{}  {}  {}  {}  [{}]",
                        s.email,
                        s.status.as_str(),
                        s.preferences.cadence.as_str(),
                        s.preferences.time_zone.name(),
                        tags
                    );
                }
            }
            if !json {
                eprintln!("{} subscribers", all.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        SubscriberCommand::Remove { email } => {
            let email = match SubscriberEmail::parse(&email) {
                Ok(e) => e,
                Err(p) => {
                    eprintln!("error: email: {p}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            if store::delete(&conn, &email)? {
                println!("removed {email}");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("error: no subscriber {email}");
                Ok(ExitCode::FAILURE)
            }
        }
        SubscriberCommand::Import { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let report = match crate::subscribers::csv::import(&mut conn, config, &bytes) {
                Ok(r) => r,
                Err(e) => return report_input(e),
            };
            for (line, problem) in &report.rejected {
                eprintln!("line {line}: {problem}");
            }
            println!("imported from {}: {report}", file.display());
            Ok(if report.rejected.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        SubscriberCommand::Export => {
            let n = crate::subscribers::csv::export(&conn, std::io::stdout().lock())?;
            eprintln!("{n} subscribers");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Sends a confirmation email for a subscriber an admin added as pending.
fn send_confirmation(config: &Config, s: crate::subscribers::Subscriber) -> anyhow::Result<()> {
    use crate::subscribers::flow::Subscriptions;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let subscriptions = std::sync::Arc::new(Subscriptions {
            config: std::sync::Arc::new(config.clone()),
            db: std::sync::Arc::new(std::sync::Mutex::new(crate::db::open(
                &config.database.path,
            )?)),
            mailer: std::sync::Arc::new(crate::mail::Mailer::from_config(config)?),
            templates: std::sync::Arc::new(crate::mail::templates::Templates::load(
                &config.mail.templates_dir,
            )?),
        });
        let id = subscriptions
            .resend_confirmation(s)
            .await
            .map_err(|e| anyhow::anyhow!("cannot send the confirmation email: {e}"))?;
        println!("confirmation email sent ({id})");
        Ok(())
    })
}

fn dkim_keygen(
    config: &Config,
    algorithm: crate::mail::dkim::Algorithm,
    out: &std::path::Path,
    selector: Option<String>,
    domain: Option<String>,
) -> anyhow::Result<ExitCode> {
    use crate::mail::dkim;
    if out.exists() {
        eprintln!(
            "error: {} exists; move it away first (it may be the key your DNS record publishes)",
            out.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let selector = selector
        .or_else(|| config.mail.dkim.selector.clone())
        .unwrap_or_else(|| "tidings".into());
    let domain = match domain.or_else(|| config.mail.dkim.domain.clone()) {
        Some(d) => d,
        None => config
            .mail
            .from
            .parse::<lettre::message::Mailbox>()
            .map(|m| m.email.domain().to_string())
            .map_err(|e| anyhow::anyhow!("config key mail.from: {e}"))?,
    };
    let (pem, value) =
        dkim::generate(algorithm).map_err(|e| anyhow::anyhow!("cannot generate a key: {e}"))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    write_private(out, pem.as_bytes())
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote the private key to {}", out.display());
    println!();
    println!("Publish this DNS TXT record:");
    println!("{}", dkim::dns_record(&selector, &domain, &value));
    println!();
    println!("Then set in tidings.toml:");
    println!("[mail.dkim]");
    println!("selector = \"{selector}\"");
    println!("domain = \"{domain}\"");
    println!("private_key = \"{}\"", out.display());
    Ok(ExitCode::SUCCESS)
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

fn parse_at(at: Option<&str>) -> anyhow::Result<chrono::DateTime<Utc>> {
    match at {
        None => Ok(Utc::now()),
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| anyhow::anyhow!("--at: '{s}' is not an RFC 3339 date-time")),
    }
}

fn digest(config: &Config, cmd: DigestCommand) -> anyhow::Result<ExitCode> {
    use crate::digest::{Digests, RunOptions};
    use std::sync::Arc;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let config = Arc::new(config.clone());
    // lettre's SMTP pool needs the runtime around it from creation to drop.
    runtime.block_on(async move {
    let digests = Arc::new(Digests::new(
        config.clone(),
        open(&config)?,
        Arc::new(crate::mail::Mailer::from_config(&config)?),
        Arc::new(crate::mail::templates::Templates::load(&config.mail.templates_dir)?),
        tokio_util::sync::CancellationToken::new(),
    ));
    match cmd {
        DigestCommand::Run { now, dry_run, at } => {
            let opts = RunOptions {
                now: parse_at(at.as_deref())?,
                force: now,
                dry_run,
            };
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} digests ({eta} left)")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let shown = bar.clone();
            let progress: Arc<dyn Fn(u64, u64) + Send + Sync> = Arc::new(move |total, done| {
                shown.set_length(total);
                shown.set_position(done);
            });
            let stop = digests.stop.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    stop.cancel();
                }
            });
            let report = if dry_run {
                // Streamed as planned: a million plans never sit in memory.
                let out = Arc::new(std::sync::Mutex::new(std::io::BufWriter::new(
                    std::io::stdout(),
                )));
                let sink = out.clone();
                let each: crate::digest::PlanSink = Arc::new(move |p| {
                    use std::io::Write;
                    let mut out = sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let _ = writeln!(out, "{}: {} ({})", p.email, p.summary, p.articles.join("; "));
                });
                let report = digests.dry_run_each(opts, Some(progress), each).await?;
                use std::io::Write;
                let _ = out
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .flush();
                report
            } else {
                digests.run(opts, Some(progress)).await?
            };
            bar.finish_and_clear();
            if dry_run {
                println!(
                    "dry run: {} due, {} would get a digest, {} unfinished from earlier runs",
                    report.due, report.planned, report.resumed
                );
            } else {
                println!(
                    "digest run: {} due, {} planned, {} resumed; {} sent, {} failed, {} retried, {} skipped, {} waiting",
                    report.due, report.planned, report.resumed, report.sent, report.failed,
                    report.retried, report.skipped, report.waiting
                );
            }
            Ok(if report.failed > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        DigestCommand::Preview { email, html, at } => {
            let email = match crate::subscribers::SubscriberEmail::parse(&email) {
                Ok(e) => e,
                Err(p) => {
                    eprintln!("error: email: {p}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let preview = match digests.preview(&email, parse_at(at.as_deref())?) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            for line in &preview.lines {
                println!("{line}");
            }
            if let (Some(path), Some(body)) = (html, preview.html) {
                std::fs::write(&path, body)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("wrote {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
    })
}
