#![no_main]
//! SQS message bodies: S3 event notifications, raw or wrapped by SNS or EventBridge.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = std::str::from_utf8(data) {
        let _ = driftd::ingest::sqs::parse_message(body);
    }
});
