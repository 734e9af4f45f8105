#![no_main]
//! The SageMaker capture line decoder, every payload encoding (CSV, JSON, BASE64).

mod common;

use driftd::decode::{InputFormat, open_reader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = common::options(InputFormat::Capture, false);
    common::drain(
        open_reader(common::reader(data), "fuzz".into(), &options),
        &options,
    );
});
