//! Helpers for the decoders' tests: run a decoder to the end and read columns back as text.

use arrow::array::{Array, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;

use super::{Chunk, DecodeError, DecodeOptions, Decoder, InputFormat, Quarantine, open_reader};

/// Decodes `input` (already decompressed) with `options`, collecting every chunk.
pub(crate) fn decode(input: &str, options: &DecodeOptions) -> (Vec<Chunk>, Quarantine) {
    decode_into(input, options, Quarantine::in_memory())
}

/// [`decode`] with rejects going to `quarantine` (e.g. one writing a file).
pub(crate) fn decode_into(
    input: &str,
    options: &DecodeOptions,
    mut quarantine: Quarantine,
) -> (Vec<Chunk>, Quarantine) {
    let reader = Box::new(std::io::Cursor::new(input.as_bytes().to_vec()));
    let mut decoder = open_reader(reader, "test-source".to_string(), options);
    let mut chunks = Vec::new();
    while let Some(chunk) = decoder.next_chunk(&mut quarantine).unwrap() {
        chunks.push(chunk);
    }
    (chunks, quarantine)
}

pub(crate) fn drain(decoder: Box<dyn Decoder>) -> (Vec<Chunk>, Quarantine) {
    let mut quarantine = Quarantine::in_memory();
    let chunks = try_drain(decoder, &mut quarantine).unwrap();
    (chunks, quarantine)
}

/// Every chunk, or the error that ended the object.
pub(crate) fn try_drain(
    mut decoder: Box<dyn Decoder>,
    quarantine: &mut Quarantine,
) -> Result<Vec<Chunk>, DecodeError> {
    let mut chunks = Vec::new();
    while let Some(chunk) = decoder.next_chunk(quarantine)? {
        chunks.push(chunk);
    }
    Ok(chunks)
}

/// `len` zero bytes gzipped, compressed as they are made: a decompression bomb.
pub(crate) fn gzip_zeros(len: usize) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    write_zeros(&mut encoder, len);
    encoder.finish().unwrap()
}

/// `len` zero bytes as zstd.
pub(crate) fn zstd_zeros(len: usize) -> Vec<u8> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    write_zeros(&mut encoder, len);
    encoder.finish().unwrap()
}

fn write_zeros(out: &mut impl std::io::Write, mut len: usize) {
    let zeros = vec![0u8; 1 << 20];
    while len > 0 {
        let n = len.min(zeros.len());
        out.write_all(&zeros[..n]).unwrap();
        len -= n;
    }
}

/// The quarantine file at `path`, one JSON value per reject.
pub(crate) fn quarantined(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
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

/// A batch of nullable text columns, as the decoders give CSV fields.
pub(crate) fn text_batch(columns: &[(&str, &[Option<&str>])]) -> RecordBatch {
    use std::sync::Arc;
    let schema = arrow::datatypes::Schema::new(
        (columns.iter())
            .map(|(name, _)| {
                arrow::datatypes::Field::new(*name, arrow::datatypes::DataType::Utf8, true)
            })
            .collect::<Vec<_>>(),
    );
    let arrays = (columns.iter())
        .map(|(_, values)| Arc::new(StringArray::from(values.to_vec())) as _)
        .collect();
    RecordBatch::try_new(Arc::new(schema), arrays).unwrap()
}
