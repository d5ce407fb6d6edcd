#![no_main]
//! Fuzz target: see `checks::markdown_front_matter`.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::markdown_front_matter(data));
