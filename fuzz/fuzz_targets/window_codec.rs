#![no_main]
//! Persisted window state: corrupt or truncated bytes must be an error, never a panic or a
//! huge allocation.

use driftd::window::{StateKind, codec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = codec::decode(data, &StateKind::DataQuality);
});
