#![no_main]
//! Flat JSON Lines objects.
//! The body is `driftd::fuzz::jsonl`, which the stable tests also run on every seed and
//! regression (src/fuzz.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| driftd::fuzz::jsonl(data));
