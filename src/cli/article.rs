//! `tidings article add|list|remove`, `import` and `backup`: the catalog from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::config::Config;

use chrono::Utc;

use crate::catalog::import::{import_entries, read_source};
use crate::catalog::{rfc3339, ArticleInput, ArticleJson, Catalog, CatalogError, Upserted};

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

fn open(config: &Config) -> anyhow::Result<Catalog> {
    Ok(Catalog::new(super::open_store(config)?))
}

pub fn article(config: &Config, cmd: ArticleCommand) -> anyhow::Result<ExitCode> {
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
            let catalog = open(config)?;
            match super::block_on(catalog.upsert(input, Utc::now()))? {
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
            let articles = super::block_on(catalog.newest(tag, limit, 0))??;
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
                let total = super::block_on(catalog.count())??;
                eprintln!("{} of {} articles", articles.len(), total);
            }
            Ok(ExitCode::SUCCESS)
        }
        ArticleCommand::Remove { slug } => {
            let catalog = open(config)?;
            if super::block_on(catalog.remove(slug.clone(), Utc::now()))?? {
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

pub fn import(config: &Config, source: &str) -> anyhow::Result<ExitCode> {
    let entries = read_source(source)?;
    let catalog = open(config)?;
    let bar = indicatif::ProgressBar::new(entries.total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} articles ({eta} left)")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = super::block_on(import_entries(&catalog, entries, || bar.inc(1)))??;
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

pub fn backup(config: &Config, file: &std::path::Path) -> anyhow::Result<ExitCode> {
    if let crate::store::Location::Postgres(_) = config.database.location() {
        anyhow::bail!(
            "tidings backup copies a SQLite database; on PostgreSQL use pg_dump (see the README's Backups)"
        );
    }
    // A consistent copy through SQLite's online backup, while the daemon may be writing.
    let source = crate::db::open(&config.database.path)?;
    let tmp = {
        let mut name = file.as_os_str().to_owned();
        name.push(".partial");
        PathBuf::from(name)
    };
    let _ = std::fs::remove_file(&tmp);
    source
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
