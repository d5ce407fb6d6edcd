//! One test binary: the real daemon, real HTTP, real SQLite; one file per capability.

#[path = "../support/dkim_verify.rs"]
mod dkim_verify;
#[path = "../support/feed_server.rs"]
mod feed_server;
mod helpers;
#[path = "../support/pg_cluster.rs"]
mod pg_cluster;
#[path = "../support/postfix.rs"]
mod postfix;
#[path = "../support/smtp_sink.rs"]
mod smtp_sink;
#[path = "../support/webhook_receiver.rs"]
mod webhook_receiver;

mod api_edge;
mod articles;
mod audience;
mod cli;
mod console;
mod console_client;
mod console_pages;
mod console_sources;
mod console_subscribers;
mod daemon;
mod digest;
mod digest_runs;
mod docs;
mod feed_cache;
mod feedback;
mod feeds;
mod golden;
mod history;
mod instant;
mod lists;
mod migrate;
mod nodes;
mod outbox;
mod pg_tls;
mod postfix_relay;
mod reliability;
mod secrets;
mod sources;
mod sources_client;
mod sources_hostile;
mod sources_websub;
mod stopping;
mod subscribe;
mod suppressions;
mod tls;
mod webhook_delivery;
mod webhook_endpoints;
mod webhooks;
