//! Helpers for the decoders' tests: run a decoder to the end and read columns back as text.

use arrow::array::{Array, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;

use super::{Chunk, DecodeOptions, Decoder, InputFormat, Quarantine, open_reader};

/// Decodes `input` (already decompressed) with `options`, collecting every chunk.
pub(crate) fn decode(input: &str, options: &DecodeOptions) -> (Vec<Chunk>, Quarantine) {
    let reader = Box::new(std::io::Cursor::new(input.as_bytes().to_vec()));
    let decoder = open_reader(reader, "test-source".to_string(), options);
    drain(decoder)
}

pub(crate) fn drain(mut decoder: Box<dyn Decoder>) -> (Vec<Chunk>, Quarantine) {
    let mut quarantine = Quarantine::in_memory();
    let mut chunks = Vec::new();
    while let Some(chunk) = decoder.next_chunk(&mut quarantine).unwrap() {
        chunks.push(chunk);
    }
    (chunks, quarantine)
}

pub(crate) fn options(format: InputFormat) -> DecodeOptions {
    DecodeOptions {
        format,
        ..DecodeOptions::default()
    }
}

pub(crate) fn names(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

/// The rows of `batch` as text, `None` for null; every column must be `Utf8`.
pub(crate) fn rows(batch: &RecordBatch) -> Vec<Vec<Option<String>>> {
    (0..batch.num_rows())
        .map(|row| {
            batch
                .columns()
                .iter()
                .map(|column| {
                    let column = column.as_any().downcast_ref::<StringArray>().unwrap();
                    column.is_valid(row).then(|| column.value(row).to_string())
                })
                .collect()
        })
        .collect()
}

/// An expected row, `None` for null.
pub(crate) fn row(values: &[Option<&str>]) -> Vec<Option<String>> {
    values.iter().map(|v| v.map(str::to_string)).collect()
}

/// (event_id, inference_id, inference_time) per row of a capture chunk's events.
pub(crate) fn events(chunk: &Chunk) -> Vec<(String, Option<String>, i64)> {
    let events = chunk.events.as_ref().unwrap();
    let ids = events
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let inference_ids = events
        .column(1)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let times = events
        .column(2)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    (0..events.num_rows())
        .map(|i| {
            (
                ids.value(i).to_string(),
                inference_ids
                    .is_valid(i)
                    .then(|| inference_ids.value(i).to_string()),
                times.value(i),
            )
        })
        .collect()
}
