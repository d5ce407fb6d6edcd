//! `tidings admin add|list|remove|password` (console accounts) and `tidings token
//! add|list|remove` (API tokens for programs).

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use clap::Subcommand;

use crate::admin::accounts::{self, Password};
use crate::admin::{tokens, Name, Role};
use crate::config::Config;

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Add a console account. The password is read from standard input, or generated and
    /// printed once when standard input is a terminal or empty.
    Add {
        #[arg(value_parser = parse_name)]
        name: Name,
        /// owner, editor or viewer.
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// List the accounts and their roles.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Remove an account; its sessions end.
    Remove {
        #[arg(value_parser = parse_name)]
        name: Name,
    },
    /// Set a new password (standard input, or generated and printed once); the account's
    /// sessions end.
    Password {
        #[arg(value_parser = parse_name)]
        name: Name,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Add an API token with a role; the token is printed once and only its hash is kept.
    Add {
        #[arg(value_parser = parse_name)]
        name: Name,
        /// owner, editor or viewer.
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// List the API tokens, their roles and last use.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Remove an API token: it stops working at once.
    Remove {
        #[arg(value_parser = parse_name)]
        name: Name,
    },
}

/// NAME as clap reads it: checked once, the error naming the argument.
fn parse_name(raw: &str) -> Result<Name, String> {
    Name::parse("NAME", raw).map_err(|e| e.message)
}

fn parse_role(raw: &str) -> Result<Role, String> {
    Role::parse(raw)
}

fn fail(field: &str, problem: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("error: {field}: {problem}");
    Ok(ExitCode::FAILURE)
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// The password from standard input (its first line), or `None` when there is nothing to read
/// (a terminal, or empty input): then one is generated.
fn password_from_stdin() -> anyhow::Result<Option<Result<Password, String>>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(None);
    }
    let mut text = String::new();
    stdin.lock().take(4096).read_to_string(&mut text)?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Ok(None);
    }
    Ok(Some(Password::parse(line)))
}

/// The new password and whether it was generated (then it is printed once).
fn new_password() -> anyhow::Result<Result<(Password, bool), String>> {
    Ok(match password_from_stdin()? {
        Some(Ok(p)) => Ok((p, false)),
        Some(Err(e)) => Err(e),
        None => Ok((Password::generate(), true)),
    })
}

pub fn admin(config: &Config, cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    let store = super::open_store(config)?;
    match cmd {
        AdminCommand::Add { name, role } => {
            let (password, generated) = match new_password()? {
                Ok(p) => p,
                Err(e) => return fail("password (standard input)", e),
            };
            let phc = accounts::hash_password(&password)?;
            let added = super::write(&store, |db| accounts::add(db, &name, role, &phc, now_us()))?;
            if !added {
                return fail("NAME", format!("an account named '{name}' exists already"));
            }
            eprintln!("added {name} ({role})");
            if generated {
                eprintln!("its password, shown once:");
                println!("{}", password.expose());
            }
            Ok(ExitCode::SUCCESS)
        }
        AdminCommand::List { json } => {
            let all = super::write(&store, accounts::list)?;
            for a in &all {
                if json {
                    println!("{}", serde_json::to_string(a)?);
                } else {
                    println!("{}  {}  created {}", a.name, a.role, time(a.created_us));
                }
            }
            if !json {
                eprintln!("{} account(s)", all.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        AdminCommand::Remove { name } => {
            if !super::write(&store, |db| accounts::remove(db, &name))? {
                return fail("NAME", format!("no account named '{name}'"));
            }
            eprintln!("removed {name}; its sessions have ended");
            Ok(ExitCode::SUCCESS)
        }
        AdminCommand::Password { name } => {
            let (password, generated) = match new_password()? {
                Ok(p) => p,
                Err(e) => return fail("password (standard input)", e),
            };
            let phc = accounts::hash_password(&password)?;
            if !super::write(&store, |db| {
                accounts::set_password(db, &name, &phc, now_us())
            })? {
                return fail("NAME", format!("no account named '{name}'"));
            }
            eprintln!("new password set for {name}; its sessions have ended");
            if generated {
                eprintln!("the password, shown once:");
                println!("{}", password.expose());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn token(config: &Config, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    let store = super::open_store(config)?;
    match cmd {
        TokenCommand::Add { name, role } => {
            let Some(token) = super::write(&store, |db| tokens::add(db, &name, role, now_us()))?
            else {
                return fail("NAME", format!("a token named '{name}' exists already"));
            };
            eprintln!("added token {name} ({role}); shown once, only its hash is kept:");
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::List { json } => {
            let all = super::write(&store, tokens::list)?;
            for t in &all {
                if json {
                    println!("{}", serde_json::to_string(t)?);
                } else {
                    println!(
                        "{}  {}  created {}  last used {}",
                        t.name,
                        t.role,
                        time(t.created_us),
                        t.last_used_us.map(time).unwrap_or_else(|| "never".into())
                    );
                }
            }
            if !json {
                eprintln!("{} token(s)", all.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Remove { name } => {
            if !super::write(&store, |db| tokens::remove(db, &name))? {
                return fail("NAME", format!("no token named '{name}'"));
            }
            eprintln!("removed token {name}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn time(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "?".into())
}
