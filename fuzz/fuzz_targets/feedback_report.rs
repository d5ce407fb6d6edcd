#![no_main]
//! Fuzz target: see `checks_feedback::feedback_report`.

#[path = "../checks_feedback.rs"]
mod checks_feedback;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks_feedback::feedback_report(data));
