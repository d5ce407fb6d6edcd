//! `tidings digest run|preview`: send digests from the command line, stopping as gently as the
//! daemon does on SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use chrono::Utc;

use crate::config::Config;

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
    /// Resume a run that was paused because its sender looked blocked (a wave of 5.7.x bounces):
    /// its held-back digests are due again.
    Resume {
        /// The run's id (in the log line that paused it, and in `GET /digests/{id}`).
        run: i64,
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

fn parse_at(at: Option<&str>) -> anyhow::Result<chrono::DateTime<Utc>> {
    match at {
        None => Ok(Utc::now()),
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| anyhow::anyhow!("--at: '{s}' is not an RFC 3339 date-time")),
    }
}

pub fn digest(config: &Config, cmd: DigestCommand) -> anyhow::Result<ExitCode> {
    use crate::digest::{Digests, RunOptions};
    if let DigestCommand::Resume { run } = cmd {
        let store = super::open_store(config)?;
        let resumed = super::block_on(
            store.write(move |db| crate::digest::ledger::resume(db, run, Utc::now())),
        )??;
        return match resumed {
            Some(n) => {
                println!("resumed run {run}: {n} digests due again (the daemon's next tick or `tidings digest run` sends them)");
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!("error: run: {run} is not paused");
                Ok(ExitCode::FAILURE)
            }
        };
    }
    use std::sync::Arc;
    let store = super::open_store(config)?;
    let config = Arc::new(config.clone());
    // lettre's SMTP pool needs the runtime around it from creation to drop.
    super::block_on(async move {
        // Before anything is claimed: SIGTERM or Ctrl-C stops the run like the daemon's (no new
        // digests, the ones in flight finished and recorded), never mid-send.
        let stop = tokio_util::sync::CancellationToken::new();
        crate::shutdown::cancel_on_signal(stop.clone());
        let digests = Arc::new(Digests::new(
            config.clone(),
            store.clone(),
            Arc::new(crate::mail::Mailer::open(&config, &store).await?),
            Arc::new(crate::mail::templates::Templates::load(
                &config.mail.templates_dir,
            )?),
            stop.clone(),
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
                    indicatif::ProgressStyle::with_template(
                        "{bar:40} {pos}/{len} digests ({eta} left)",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                let shown = bar.clone();
                let progress: Arc<dyn Fn(u64, u64) + Send + Sync> = Arc::new(move |total, done| {
                    shown.set_length(total);
                    shown.set_position(done);
                });
                let report = if dry_run {
                    // Streamed as planned: a million plans never sit in memory.
                    let out = Arc::new(std::sync::Mutex::new(std::io::BufWriter::new(
                        std::io::stdout(),
                    )));
                    let sink = out.clone();
                    let each: crate::digest::PlanSink = Arc::new(move |p| {
                        use std::io::Write;
                        let mut out = sink
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        let _ = writeln!(
                            out,
                            "{}: {} ({})",
                            p.email,
                            p.summary,
                            p.articles.join("; ")
                        );
                    });
                    let report = digests.dry_run_each(opts, Some(progress), each).await?;
                    use std::io::Write;
                    let _ = out
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .flush();
                    report
                } else {
                    // A stop is bounded by server.shutdown_seconds, as the daemon's is: sends
                    // still going near it are cut off and handed back to the next run.
                    let run = digests.run(opts, Some(progress));
                    match digests.deadline.within("the digest run", run).await {
                        Some(report) => report?,
                        None => {
                            bar.finish_and_clear();
                            eprintln!("stopped on request: server.shutdown_seconds ran out; what was not recorded is sent by the next run");
                            return Ok(ExitCode::FAILURE);
                        }
                    }
                };
                bar.finish_and_clear();
                if dry_run {
                    println!(
                        "dry run: {} due, {} would get a digest, {} unfinished from earlier runs",
                        report.due, report.planned, report.resumed
                    );
                } else {
                    if stop.is_cancelled() {
                        println!(
                            "stopped on request: {} digests left for the next run",
                            report.waiting
                        );
                    }
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
            DigestCommand::Resume { .. } => Ok(ExitCode::SUCCESS),
            DigestCommand::Preview { email, html, at } => {
                let email = match crate::subscribers::SubscriberEmail::parse(&email) {
                    Ok(e) => e,
                    Err(p) => {
                        eprintln!("error: email: {p}");
                        return Ok(ExitCode::FAILURE);
                    }
                };
                let preview = match digests.preview(email, parse_at(at.as_deref())?).await {
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
    })?
}
