#![no_main]
//! Fuzz target: see `checks::form_body`.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::form_body(data));
