//! Parses feed files with the `feed-rs` crate, as a feed reader built on it would.
//!
//! Usage: `cargo run -q --example feedcheck -- FILE...`
//!
//! Prints one line per file, `ok <path> <format> <entries> entries`, or `error <path>: <why>`,
//! and exits non-zero if any file could not be read or parsed (or no file was given).
//! Used by `scripts/conformance.sh`, which compares the counts with what each feed should hold.

use std::fs::File;
use std::io::BufReader;
use std::process::ExitCode;

use feed_rs::model::FeedType;

fn main() -> ExitCode {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: feedcheck FILE...");
        return ExitCode::from(2);
    }
    let mut failures = 0usize;
    for path in &paths {
        match check(path) {
            Ok((kind, entries)) => println!("ok {path} {kind} {entries} entries"),
            Err(why) => {
                failures += 1;
                println!("error {path}: {why}");
            }
        }
    }
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("feedcheck: {failures} of {} files failed", paths.len());
        ExitCode::FAILURE
    }
}

/// The feed's format and its number of entries; an error if it cannot be parsed or an entry
/// lacks what every format here must carry (an id and a title).
fn check(path: &str) -> Result<(&'static str, usize), String> {
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let feed = feed_rs::parser::parse(BufReader::new(file)).map_err(|e| e.to_string())?;
    let kind = match feed.feed_type {
        FeedType::Atom => "atom",
        FeedType::JSON => "json",
        FeedType::RSS0 => "rss0",
        FeedType::RSS1 => "rss1",
        FeedType::RSS2 => "rss2",
    };
    for (i, entry) in feed.entries.iter().enumerate() {
        if entry.id.trim().is_empty() {
            return Err(format!("entry {i} has no id"));
        }
        if entry.title.is_none() {
            return Err(format!("entry {i} ({}) has no title", entry.id));
        }
    }
    Ok((kind, feed.entries.len()))
}
