//! What the text-decoder targets share: decode a whole object, as the pipeline does, and
//! bound what a hostile input may make.

use driftd::decode::{DecodeOptions, Decoder, InputFormat, Limits, Quarantine};

/// Small limits, so a fuzzer reaches them with small inputs.
pub fn options(format: InputFormat, header: bool) -> DecodeOptions {
    DecodeOptions {
        format,
        header,
        chunk_rows: 64,
        limits: Limits {
            max_record_bytes: 64 * 1024,
            max_columns: 256,
            max_json_depth: 8,
            max_key_bytes: 128,
            ..Limits::default()
        },
        ..DecodeOptions::default()
    }
}

/// Every chunk of `decoder`; an error ends the object, as it does in the pipeline. No chunk
/// may have more columns than the limit allows.
pub fn drain(mut decoder: Box<dyn Decoder>, options: &DecodeOptions) {
    let mut quarantine = Quarantine::in_memory();
    while let Ok(Some(chunk)) = decoder.next_chunk(&mut quarantine) {
        assert!(chunk.features.num_columns() <= options.limits.max_columns);
    }
}

pub fn reader(data: &[u8]) -> Box<dyn std::io::BufRead + Send> {
    Box::new(std::io::Cursor::new(data.to_vec()))
}
