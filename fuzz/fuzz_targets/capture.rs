#![no_main]
//! The SageMaker capture line decoder, every payload encoding (CSV, JSON, BASE64).
//! The body is `driftd::fuzz::capture`, which the stable tests also run on every seed and
//! regression (src/fuzz.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| driftd::fuzz::capture(data));
