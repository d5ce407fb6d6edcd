//! `tidings webhook-endpoint add|list|remove|rotate`: where events are sent (outgoing webhooks).

use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use crate::config::Config;
use crate::webhook_endpoints::service::{endpoint_json, rfc3339};
use crate::webhook_endpoints::{EndpointError, WebhookEndpoints};

#[derive(Subcommand, Debug)]
pub enum WebhookEndpointCommand {
    /// Add an endpoint; its secret (whsec_…) is printed this once.
    Add {
        /// The http(s) URL events are POSTed to.
        url: String,
        /// An event type it gets (repeatable; none: every type), e.g. subscriber.created.
        #[arg(long = "event", value_name = "TYPE")]
        events: Vec<String>,
    },
    /// List the endpoints (never their secrets).
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Remove an endpoint, with its deliveries and their log.
    Remove { id: i64 },
    /// A new secret, printed this once; the old one still signs for
    /// webhook_endpoints.rotation_hours.
    Rotate { id: i64 },
}

pub fn webhook_endpoint(config: &Config, cmd: WebhookEndpointCommand) -> anyhow::Result<ExitCode> {
    let store = super::open_store(config)?;
    let endpoints = WebhookEndpoints::new(Arc::new(config.clone()), store);
    let failed = |e: EndpointError| -> anyhow::Result<ExitCode> {
        match e {
            EndpointError::Input { field, message } => {
                let field = match field {
                    "event_types" => "--event",
                    other => other,
                };
                eprintln!("error: {field}: {message}");
                Ok(ExitCode::FAILURE)
            }
            EndpointError::Store(e) => Err(e.into()),
            other => {
                eprintln!("error: {other}");
                Ok(ExitCode::FAILURE)
            }
        }
    };
    match cmd {
        WebhookEndpointCommand::Add { url, events } => {
            match super::block_on(endpoints.create(&url, &events))? {
                Ok((endpoint, secret)) => {
                    println!("{}", endpoint.id);
                    println!("{}", secret.expose());
                    eprintln!(
                        "added webhook endpoint {} for {}; keep the secret above, it is not shown again",
                        endpoint.id, endpoint.url
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => failed(e),
            }
        }
        WebhookEndpointCommand::List { json } => {
            let all = match super::block_on(endpoints.list())? {
                Ok(all) => all,
                Err(e) => return failed(e),
            };
            for e in &all {
                if json {
                    println!("{}", endpoint_json(e));
                } else {
                    let types = match e.event_types.is_empty() {
                        true => "all events".to_string(),
                        false => e.event_types.join(","),
                    };
                    println!(
                        "{}  {}  {}  {}  last success {}",
                        e.id,
                        if e.enabled { "enabled" } else { "disabled" },
                        e.url,
                        types,
                        e.last_success_us
                            .map(rfc3339)
                            .unwrap_or_else(|| "never".into())
                    );
                }
            }
            if !json {
                eprintln!("{} webhook endpoint(s)", all.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        WebhookEndpointCommand::Remove { id } => match super::block_on(endpoints.delete(id))? {
            Ok(()) => {
                eprintln!("removed webhook endpoint {id}");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => failed(e),
        },
        WebhookEndpointCommand::Rotate { id } => match super::block_on(endpoints.rotate(id))? {
            Ok((endpoint, secret)) => {
                println!("{}", secret.expose());
                eprintln!(
                    "new secret for webhook endpoint {id}; the old one still signs until {}",
                    endpoint
                        .previous_secret_until_us
                        .map(rfc3339)
                        .unwrap_or_else(|| "now".into())
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => failed(e),
        },
    }
}
