//! `tidings dkim keygen`: a signing key and the DNS record that publishes it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::config::Config;

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

pub fn dkim_keygen(
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
