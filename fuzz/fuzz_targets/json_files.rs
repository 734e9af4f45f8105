#![no_main]
//! statistics.json, constraints.json, analysis_config.json and analysis.json.
//! The body is `driftd::fuzz::json_files`, which the stable tests also run on every seed and
//! regression (src/fuzz.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| driftd::fuzz::json_files(data));
