//! One test binary: the real daemon, real HTTP, real SQLite; one file per capability.

mod helpers;

mod articles;
mod cli;
mod daemon;
mod digest;
mod docs;
mod feeds;
mod reliability;
mod subscribe;
