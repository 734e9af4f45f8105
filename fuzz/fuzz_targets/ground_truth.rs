#![no_main]
//! Ground-truth (label) JSON Lines.

mod common;

use driftd::decode::{InputFormat, ground_truth};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = common::options(InputFormat::Jsonl, false);
    let decoder = ground_truth::decoder(common::reader(data), "fuzz".into(), &options);
    common::drain(Box::new(decoder), &options);
});
