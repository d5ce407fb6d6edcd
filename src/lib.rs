//! tidings: a blog's article catalog in SQLite, served as RSS, Atom and JSON feeds (site-wide and
//! per tag), with email digests for subscribers.

pub mod admin;
pub mod audience;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod db;
pub mod digest;
pub mod feedback;
pub mod feeds;
pub mod html;
pub mod mail;
pub mod metrics;
pub mod outbox;
pub mod schedule;
pub mod secret;
pub mod shutdown;
pub mod sources;
pub mod store;
pub mod subscribers;
pub mod web;
pub mod webhook_endpoints;
