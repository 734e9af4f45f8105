#![no_main]
//! SQS message bodies: S3 event notifications, raw or wrapped by SNS or EventBridge.
//! The body is `driftd::fuzz::sqs_event`, which the stable tests also run on every seed and
//! regression (src/fuzz.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| driftd::fuzz::sqs_event(data));
