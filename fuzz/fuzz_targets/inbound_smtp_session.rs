#![no_main]
//! Fuzz target: see `checks_feedback::inbound_smtp_session`.

#[path = "../checks_feedback.rs"]
mod checks_feedback;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks_feedback::inbound_smtp_session(data));
