#![no_main]
//! Fuzz target: see `checks_webhooks::webhook_auth`.

#[path = "../checks_webhooks.rs"]
mod checks_webhooks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks_webhooks::webhook_auth(data));
