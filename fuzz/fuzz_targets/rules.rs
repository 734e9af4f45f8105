#![no_main]
//! Rules files (TOML).

use driftd::rules::RuleSet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = RuleSet::from_toml(std::path::Path::new("rules.toml"), text);
    }
});
