#![no_main]
//! CSV objects, with a header when the first byte is odd and without one otherwise.

mod common;

use driftd::decode::{InputFormat, open_reader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let header = data.first().is_some_and(|b| b % 2 == 1);
    let options = common::options(InputFormat::Csv, header);
    common::drain(
        open_reader(common::reader(data), "fuzz".into(), &options),
        &options,
    );
});
