#![no_main]
//! Persisted model-quality state.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = driftd::model_quality::decode(data);
});
