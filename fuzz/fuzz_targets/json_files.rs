#![no_main]
//! The JSON files driftd reads: statistics.json, constraints.json (data and model quality),
//! analysis_config.json and analysis.json. Every input is tried as each of them.

use driftd::baseline::{constraints::Constraints, statistics::Statistics};
use driftd::bias::{config::BiasSpec, report::Analysis};
use driftd::model_quality::ModelQualityConstraints;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<Statistics>(data);
    let _ = serde_json::from_slice::<Constraints>(data);
    let _ = serde_json::from_slice::<ModelQualityConstraints>(data);
    let _ = serde_json::from_slice::<Analysis>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = BiasSpec::from_json(text, "analysis_config.json");
    }
});
