#![no_main]
//! CSV objects, with a header when the first byte is odd and without one otherwise.
//! The body is `driftd::fuzz::csv`, which the stable tests also run on every seed and
//! regression (src/fuzz.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| driftd::fuzz::csv(data));
