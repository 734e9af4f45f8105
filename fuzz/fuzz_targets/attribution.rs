#![no_main]
//! Capture of a feature-attribution monitor: attributions read out of the model's response
//! (Clarify online explainability, or a model's own contributions at a JSON path).
//! The body is `driftd::fuzz::attribution`, which the stable tests also run on every seed and
//! regression (src/fuzz.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| driftd::fuzz::attribution(data));
