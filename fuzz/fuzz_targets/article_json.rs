#![no_main]
//! Fuzz target: see `checks::article_json`.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::article_json(data));
