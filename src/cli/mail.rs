//! `tidings mail queue`: the outbox, what is waiting and why.

use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand, Debug)]
pub enum MailCommand {
    /// List the single emails (confirmation, welcome) waiting to be sent, and why they wait.
    Queue {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

pub fn mail(config: &Config, cmd: MailCommand) -> anyhow::Result<ExitCode> {
    let store = super::open_store(config)?;
    match cmd {
        MailCommand::Queue { json } => {
            let waiting = super::write(&store, crate::outbox::waiting)?;
            for w in &waiting {
                if json {
                    println!("{}", serde_json::to_string(w)?);
                    continue;
                }
                let why = match (w.state.as_str(), &w.last_error) {
                    ("sending", Some(e)) => format!(
                        "being sent again (claim lapses {}); attempt {} failed: {e}",
                        w.next_attempt_at, w.attempts
                    ),
                    ("sending", None) => {
                        format!("being sent (claim lapses {})", w.next_attempt_at)
                    }
                    (_, Some(e)) => format!(
                        "attempt {} failed: {e}; next try {}",
                        w.attempts, w.next_attempt_at
                    ),
                    (_, None) => format!("not tried yet; due {}", w.next_attempt_at),
                };
                println!(
                    "{}  {}  {}  queued {}  expires {}  {}",
                    w.id, w.template, w.email, w.queued_at, w.expires_at, why
                );
            }
            if !json {
                eprintln!("{} emails waiting", waiting.len());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
