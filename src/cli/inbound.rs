//! `tidings inbound [FILE]`: one raw message (a bounce, a complaint, a mailto unsubscribe) from a
//! file or standard input, handled as the inbound listener handles it. For an MTA's `pipe`
//! transport or a mailbox fetcher: exit 0 when the message was handled or ignored, 75
//! (EX_TEMPFAIL) when the MTA should try again later.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;

/// sysexits.h: the MTA keeps the message and retries.
const EX_TEMPFAIL: u8 = 75;

pub fn inbound(
    config: &Config,
    file: Option<PathBuf>,
    to: Vec<String>,
    from: Option<String>,
) -> anyhow::Result<ExitCode> {
    let cap = config.mail.inbound.max_message_bytes;
    let mut raw = Vec::new();
    let read = match &file {
        Some(path) => std::fs::File::open(path).and_then(|f| f.take(cap + 1).read_to_end(&mut raw)),
        None => std::io::stdin().lock().take(cap + 1).read_to_end(&mut raw),
    };
    if let Err(e) = read {
        let what = file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or("stdin".into());
        eprintln!("error: cannot read {what}: {e}");
        return Ok(ExitCode::from(EX_TEMPFAIL));
    }
    if raw.len() as u64 > cap {
        // Retrying would not make it smaller.
        eprintln!(
            "ignored: the message is larger than mail.inbound.max_message_bytes ({cap} bytes)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rcpt_to = if to.is_empty() {
        header_addresses(&raw, &["X-Original-To", "Delivered-To"])
    } else {
        to
    };
    let mail_from = from.or_else(|| header_addresses(&raw, &["Return-Path"]).into_iter().next());
    let outcome = (|| -> anyhow::Result<crate::feedback::apply::Handled> {
        let store = super::open_store(config)?;
        let keys = super::write(&store, crate::feedback::tags::Keys::load)?;
        let rules = crate::feedback::apply::Rules::new(config, keys)?;
        let msg = crate::feedback::apply::Inbound {
            mail_from: mail_from.as_deref(),
            rcpt_to: &rcpt_to,
            raw: &raw,
        };
        Ok(super::write(&store, |db| {
            crate::feedback::apply::handle(db, &rules, &msg, chrono::Utc::now())
        })?)
    })();
    match outcome {
        Ok(h) => {
            println!("inbound message {}: {}: {}", h.id, h.class, h.outcome);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e:#} (the message was not stored; try again later)");
            Ok(ExitCode::from(EX_TEMPFAIL))
        }
    }
}

/// The addresses in the first of `names` the message's header carries (an MTA's pipe adds
/// `X-Original-To` and `Delivered-To`).
fn header_addresses(raw: &[u8], names: &[&str]) -> Vec<String> {
    let Some(message) = mail_parser::MessageParser::default().parse_headers(raw) else {
        return Vec::new();
    };
    for name in names {
        if let Some(v) = message.header_raw(*name) {
            let v = v.trim().trim_matches(|c| c == '<' || c == '>').trim();
            if !v.is_empty() {
                return vec![v.to_string()];
            }
        }
    }
    Vec::new()
}
