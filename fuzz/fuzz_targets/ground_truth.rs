#![no_main]
//! Ground-truth (label) JSON Lines.
//! The body is `driftd::fuzz::ground_truth`, which the stable tests also run on every seed and
//! regression (src/fuzz.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| driftd::fuzz::ground_truth(data));
