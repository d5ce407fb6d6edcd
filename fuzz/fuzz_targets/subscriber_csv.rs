#![no_main]
//! Fuzz target: see `checks::subscriber_csv`.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::subscriber_csv(data));
