#![no_main]
//! Fuzz target: see `checks::feed_import`.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::feed_import(data));
