#![no_main]
//! Persisted window state, every kind the codec has: data quality, bias, model quality,
//! predictions and bias rows waiting for labels, feature attribution, multivariate drift.
//! The body is `driftd::fuzz::window_codec`, which the stable tests also run on every seed and
//! regression (src/fuzz.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| driftd::fuzz::window_codec(data));
