#![no_main]
//! Fuzz target: see `checks::conditional_headers`.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::conditional_headers(data));
