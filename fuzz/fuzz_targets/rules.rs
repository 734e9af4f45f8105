#![no_main]
//! Rules files (TOML).
//! The body is `driftd::fuzz::rules`, which the stable tests also run on every seed and
//! regression (src/fuzz.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| driftd::fuzz::rules(data));
