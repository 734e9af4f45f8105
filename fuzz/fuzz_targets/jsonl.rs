#![no_main]
//! Flat JSON Lines objects.

mod common;

use driftd::decode::{InputFormat, open_reader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = common::options(InputFormat::Jsonl, false);
    common::drain(
        open_reader(common::reader(data), "fuzz".into(), &options),
        &options,
    );
});
