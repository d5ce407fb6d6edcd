//! The `tidings` binary: parses the command line and hands over to `tidings::cli`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = tidings::cli::Cli::parse();
    tidings::cli::init_logging(cli.log_format);
    match tidings::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
