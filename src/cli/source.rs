//! `tidings source add|list|show|remove|poll`: blogs that live elsewhere, followed through
//! their feeds.

use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Subcommand;

use crate::config::Config;
use crate::sources::{AddSource, Source, SourceError, Sources};

#[derive(Subcommand, Debug)]
pub enum SourceCommand {
    /// Follow a feed (RSS, Atom or JSON Feed): its entries become articles. The first fetch
    /// adds what the feed has without mailing anyone.
    Add {
        /// The feed's http(s) URL.
        url: String,
        /// A tag every entry gets (repeatable), beside the feed's own categories.
        #[arg(long = "tag", value_name = "NAME")]
        tags: Vec<String>,
        /// A name for it (default: the host); its articles' slugs start with it.
        #[arg(long)]
        name: Option<String>,
    },
    /// The sources, with their state and next fetch.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// One source in full: its state, validators, last fetch and error, next fetch, entries.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Stop following a source; the articles it brought stay.
    Remove { id: i64 },
    /// Fetch a source now (also one that is not due, or gone).
    Poll { id: i64 },
}

fn when(us: Option<i64>) -> String {
    us.and_then(DateTime::<Utc>::from_timestamp_micros)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| "-".into())
}

fn next(s: &Source) -> String {
    match s.state.as_str() {
        "gone" => "never (gone)".into(),
        _ => when(Some(s.next_fetch_us)),
    }
}

pub fn source(config: &Config, cmd: SourceCommand) -> anyhow::Result<ExitCode> {
    let store = super::open_store(config)?;
    let sources = Sources::new(config, store).map_err(|e| anyhow::anyhow!("sources: {e}"))?;
    let failed = |e: SourceError| -> anyhow::Result<ExitCode> {
        match e {
            SourceError::Store(e) => Err(e.into()),
            SourceError::Invalid { field, problem } => {
                let field = match field.as_str() {
                    "tags" => "--tag",
                    "name" => "--name",
                    other => other,
                };
                eprintln!("error: {field}: {problem}");
                Ok(ExitCode::FAILURE)
            }
            other => {
                eprintln!("error: {other}");
                Ok(ExitCode::FAILURE)
            }
        }
    };
    match cmd {
        SourceCommand::Add { url, tags, name } => {
            match super::block_on(sources.add(AddSource { url, tags, name }))? {
                Ok(s) => {
                    println!("{}", s.id);
                    eprintln!(
                        "following {} as source {} ({}); its articles are named {}-…",
                        s.url, s.id, s.name, s.slug
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => failed(e),
            }
        }
        SourceCommand::List { json } => {
            let all = match super::block_on(sources.list())? {
                Ok(all) => all,
                Err(e) => return failed(e),
            };
            for s in &all {
                if json {
                    println!("{}", serde_json::to_string(s)?);
                } else {
                    println!(
                        "{}\t{}\t{}\t{} entries\tlast {}\tnext {}\t{}",
                        s.id,
                        s.state,
                        s.url,
                        s.entries,
                        when(s.last_fetch_us),
                        next(s),
                        s.last_error.as_deref().unwrap_or("")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        SourceCommand::Show { id, json } => {
            let s = match super::block_on(sources.get(id))? {
                Ok(s) => s,
                Err(e) => return failed(e),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
                return Ok(ExitCode::SUCCESS);
            }
            let rows = [
                ("id", s.id.to_string()),
                ("name", s.name.clone()),
                ("url", s.url.clone()),
                ("added as", s.added_url.clone()),
                ("articles named", format!("{}-…", s.slug)),
                ("tags", s.tags.join(", ")),
                ("state", s.state.clone()),
                (
                    "identity",
                    match &s.identity_note {
                        Some(note) => format!("{} ({note})", s.identity),
                        None => s.identity.clone(),
                    },
                ),
                ("entries", s.entries.to_string()),
                ("first read", when(s.seeded_us)),
                ("last fetch", when(s.last_fetch_us)),
                (
                    "last status",
                    s.last_status.map(|v| v.to_string()).unwrap_or("-".into()),
                ),
                ("last error", s.last_error.clone().unwrap_or("-".into())),
                ("last success", when(s.last_success_us)),
                ("failures in a row", s.errors.to_string()),
                ("interval", format!("{} min", s.interval_s / 60)),
                ("next fetch", next(&s)),
                ("etag", s.etag.clone().unwrap_or("-".into())),
                (
                    "last modified",
                    s.last_modified.clone().unwrap_or("-".into()),
                ),
                (
                    "moving to",
                    match &s.moved_to {
                        Some(to) => format!("{to} (seen on {} polls)", s.moved_seen),
                        None => "-".into(),
                    },
                ),
                ("websub hub", s.hub.clone().unwrap_or("-".into())),
                ("websub", s.websub_state.clone()),
            ];
            for (k, v) in rows {
                println!("{k:<18} {v}");
            }
            Ok(ExitCode::SUCCESS)
        }
        SourceCommand::Remove { id } => match super::block_on(sources.remove(id))? {
            Ok(s) => {
                eprintln!("removed source {id} ({}); its articles stay", s.url);
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => failed(e),
        },
        SourceCommand::Poll { id } => match super::block_on(sources.poll_now(id))? {
            Ok(report) => {
                println!("{}", serde_json::to_string(&report)?);
                Ok(match report.error {
                    Some(e) if report.applied.is_none() => {
                        eprintln!("error: {e}");
                        ExitCode::FAILURE
                    }
                    _ => ExitCode::SUCCESS,
                })
            }
            Err(e) => failed(e),
        },
    }
}
