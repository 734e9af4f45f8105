#![no_main]
//! `driftd run` config files.
//! The body is `driftd::fuzz::config`, which the stable tests also run on every seed and
//! regression (src/fuzz.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| driftd::fuzz::config(data));
