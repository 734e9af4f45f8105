#![no_main]
//! Persisted model-quality state.
//! The body is `driftd::fuzz::model_quality_codec`, which the stable tests also run on every seed and
//! regression (src/fuzz.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| driftd::fuzz::model_quality_codec(data));
