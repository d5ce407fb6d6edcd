//! `tidings suppression list|add|remove|import|export`: addresses no email goes to.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::config::Config;
use crate::subscribers::suppressions::{self, Reason};
use crate::subscribers::SubscriberEmail;

#[derive(Subcommand, Debug)]
pub enum SuppressionCommand {
    /// List suppressed addresses.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Suppress an address: no email of any kind goes to it (a subscriber becomes unsubscribed).
    Add {
        email: String,
        /// hard_bounce, soft_bounces, bounces, complaint or admin (the default).
        #[arg(long)]
        reason: Option<String>,
        /// A note kept with the entry.
        #[arg(long)]
        note: Option<String>,
    },
    /// Lift a suppression; the subscriber stays unsubscribed (only they can subscribe again).
    Remove { email: String },
    /// Import a CSV file (header email[,reason,note]), e.g. another tool's suppression list.
    Import { file: PathBuf },
    /// Write the list as CSV (email,reason,note,created_at) to standard output.
    Export,
}

pub fn suppression(config: &Config, cmd: SuppressionCommand) -> anyhow::Result<ExitCode> {
    let store = super::open_store(config)?;
    let fail = |field: &str, problem: &str| {
        eprintln!("error: {field}: {problem}");
        Ok(ExitCode::FAILURE)
    };
    match cmd {
        SuppressionCommand::List { json } => {
            let all = super::write(&store, suppressions::list)?;
            for s in &all {
                if json {
                    println!("{}", serde_json::to_string(s)?);
                } else {
                    println!(
                        "{}  {}  {}  {}",
                        s.email,
                        s.reason.as_str(),
                        s.created_at,
                        s.note.as_deref().unwrap_or("")
                    );
                }
            }
            if !json {
                eprintln!("{} suppressed", all.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        SuppressionCommand::Add {
            email,
            reason,
            note,
        } => {
            let email = match SubscriberEmail::parse(&email) {
                Ok(e) => e,
                Err(p) => return fail("email", &p),
            };
            let reason = match Reason::parse(reason.as_deref().unwrap_or("admin")) {
                Ok(r) => r,
                Err(p) => return fail("--reason", &p),
            };
            let note = note.map(|n| crate::catalog::input::one_line(&n));
            let added = super::write(&store, |db| {
                suppressions::add(
                    db,
                    &email,
                    reason,
                    note.as_deref(),
                    "admin",
                    chrono::Utc::now(),
                )
            })?;
            let key = suppressions::key(email.as_str());
            if added {
                println!("suppressed {key} ({})", reason.as_str());
            } else {
                println!("{key} was already suppressed");
            }
            Ok(ExitCode::SUCCESS)
        }
        SuppressionCommand::Remove { email } => {
            let lifted = super::write(&store, |db| {
                suppressions::lift(db, &email, chrono::Utc::now())
            })?;
            let key = suppressions::key(&email);
            if lifted {
                println!("lifted {key} (a subscriber stays unsubscribed)");
                Ok(ExitCode::SUCCESS)
            } else {
                fail("email", &format!("{key} is not suppressed"))
            }
        }
        SuppressionCommand::Import { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let report = match super::write(&store, |db| suppressions::import(db, &bytes)) {
                Ok(r) => r,
                Err(crate::subscribers::flow::FlowError::Input(e)) => {
                    return fail(&e.field, &e.problem)
                }
                Err(e) => return Err(e.into()),
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
        SuppressionCommand::Export => {
            let n = super::write(&store, |db| {
                suppressions::export(db, std::io::stdout().lock())
            })?;
            eprintln!("{n} suppressed");
            Ok(ExitCode::SUCCESS)
        }
    }
}
