//! Bytes → Arrow. Every decoder streams: it reads a bounded number of records, hands out a
//! [`Chunk`], and keeps going; no object is read whole into memory.
//!
//! Text formats (capture JSONL, CSV, JSON Lines) become `Utf8` columns holding each value's text
//! exactly as written, because Deequ — and so Model Monitor — classifies types from the text
//! (`"3.0"` is Fractional, `"3"` Integral). Parquet keeps its own column types.
//!
//! A malformed record never stops a run: it is counted by reason and written to the
//! [`Quarantine`] with its source and line. Only a malformed *object* (bad compression, a
//! Parquet file without a footer, an I/O error) is an error.

pub mod capture;
pub mod compression;
pub mod csv;
mod json;
pub mod jsonl;
mod lines;
pub mod parquet;
mod quarantine;
mod table;
#[cfg(test)]
mod testing;

use std::io::BufRead;
use std::path::Path;

use arrow::record_batch::RecordBatch;

pub use quarantine::{Quarantine, Reject, RejectReason};

/// Columns of [`Chunk::events`], one row per feature row.
pub const EVENT_ID: &str = "event_id";
pub const INFERENCE_ID: &str = "inference_id";
/// Seconds since the Unix epoch (UTC), from `eventMetadata.inferenceTime`.
pub const INFERENCE_TIME: &str = "inference_time";

/// Rows per chunk unless a caller asks otherwise: large enough for columnar kernels to pay off,
/// small enough that a chunk of wide records stays a few MB.
pub const DEFAULT_CHUNK_ROWS: usize = 16 * 1024;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// SageMaker data capture JSON Lines (`captureData.endpointInput/endpointOutput`).
    Capture,
    Csv,
    /// Flat JSON Lines: one object per line.
    Jsonl,
    Parquet,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum OutputColumnsPosition {
    /// Model Monitor's default: the model's output columns come before its input columns.
    Start,
    End,
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeOptions {
    pub format: InputFormat,
    /// CSV only: the first line holds column names. Without it columns are `_c0, _c1, …`.
    pub header: bool,
    /// Capture only: where the endpoint's output columns go.
    pub output_columns_position: OutputColumnsPosition,
    /// How an element of a JSON array is named; `{key}` is the array's (flattened) key and
    /// `{index}` the 0-based position. `"{key}_{index}"` turns `{"features":[1,2]}` into
    /// `features_0, features_1`; `"_c{index}"` lines the elements up with a headerless CSV.
    pub array_element_name: String,
    pub chunk_rows: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            format: InputFormat::Capture,
            header: false,
            output_columns_position: OutputColumnsPosition::Start,
            array_element_name: "{key}_{index}".to_string(),
            chunk_rows: DEFAULT_CHUNK_ROWS,
        }
    }
}

/// One batch of decoded records.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// The monitored columns. Consecutive chunks of one object may differ in columns (JSON keys
    /// that appear late); the profile lines them up by name.
    pub features: RecordBatch,
    /// Capture only: `event_id`, `inference_id` (nullable) and `inference_time` per row.
    pub events: Option<RecordBatch>,
}

/// An object that cannot be decoded at all. It goes to the dead-letter path; the run goes on.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{source_name}: cannot read: {error}")]
    Io {
        source_name: String,
        #[source]
        error: std::io::Error,
    },
    #[error("{source_name}: {message}")]
    Malformed {
        source_name: String,
        message: String,
    },
}

/// A streaming decoder: each call yields the next chunk, or `None` at the end of the object.
pub trait Decoder: Send {
    fn next_chunk(&mut self, quarantine: &mut Quarantine) -> Result<Option<Chunk>, DecodeError>;
}

/// Opens `path` (gzip and zstd detected by magic bytes) and returns the decoder for `options`.
pub fn open_path(path: &Path, options: &DecodeOptions) -> Result<Box<dyn Decoder>, DecodeError> {
    let source_name = path.display().to_string();
    if options.format == InputFormat::Parquet {
        return parquet::ParquetDecoder::open(path, options)
            .map(|d| Box::new(d) as Box<dyn Decoder>);
    }
    let file = std::fs::File::open(path).map_err(|error| DecodeError::Io {
        source_name: source_name.clone(),
        error,
    })?;
    let reader =
        compression::decompressing_reader(Box::new(file)).map_err(|error| DecodeError::Io {
            source_name: source_name.clone(),
            error,
        })?;
    Ok(open_reader(reader, source_name, options))
}

/// The decoder for a text format over an already decompressed stream; `source_name` is what
/// errors and the quarantine call this stream (a path or `s3://bucket/key`).
pub fn open_reader(
    reader: Box<dyn BufRead + Send>,
    source_name: String,
    options: &DecodeOptions,
) -> Box<dyn Decoder> {
    match options.format {
        InputFormat::Capture => {
            Box::new(capture::CaptureDecoder::new(reader, source_name, options))
        }
        InputFormat::Csv => Box::new(csv::CsvDecoder::new(reader, source_name, options)),
        InputFormat::Jsonl => Box::new(jsonl::JsonlDecoder::new(reader, source_name, options)),
        InputFormat::Parquet => unreachable!("Parquet needs random access; use open_path"),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::testing::{drain, names, options, row, rows};
    use super::*;

    fn gzip(text: &str) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(text.as_bytes()).unwrap();
        encoder.finish().unwrap()
    }

    const CAPTURE: &str = r#"{"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT","data":"132,10,182.9","encoding":"CSV"},"endpointOutput":{"observedContentType":"text/csv; charset=utf-8","mode":"OUTPUT","data":"0.036397725343704224","encoding":"CSV"}},"eventMetadata":{"eventId":"f04a8538-696c-4648-8064-8b680b2e3318","inferenceTime":"2022-04-18T00:21:48Z"},"eventVersion":"0"}"#;

    #[test]
    fn open_path_reads_gzip_and_zstd_whatever_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("capture.jsonl");
        std::fs::write(&gz, gzip(&format!("{CAPTURE}\n{CAPTURE}\n"))).unwrap();
        let (chunks, _) = drain(open_path(&gz, &options(InputFormat::Capture)).unwrap());
        assert_eq!(
            rows(&chunks[0].features),
            vec![
                row(&[
                    Some("0.036397725343704224"),
                    Some("132"),
                    Some("10"),
                    Some("182.9")
                ]);
                2
            ]
        );

        let zst = dir.path().join("data.csv.zst");
        std::fs::write(&zst, zstd::encode_all(&b"a,b\n1,2\n"[..], 3).unwrap()).unwrap();
        let csv = DecodeOptions {
            header: true,
            ..options(InputFormat::Csv)
        };
        let (chunks, _) = drain(open_path(&zst, &csv).unwrap());
        assert_eq!(names(&chunks[0].features), ["a", "b"]);
        assert_eq!(rows(&chunks[0].features), [row(&[Some("1"), Some("2")])]);

        let jsonl = dir.path().join("rows.jsonl.gz");
        std::fs::write(&jsonl, gzip("{\"a\": 1.0}\n")).unwrap();
        let (chunks, _) = drain(open_path(&jsonl, &options(InputFormat::Jsonl)).unwrap());
        assert_eq!(rows(&chunks[0].features), [row(&[Some("1.0")])]);
    }

    #[test]
    fn a_corrupt_gzip_object_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("capture.jsonl.gz");
        let mut bytes = gzip(&format!("{CAPTURE}\n").repeat(50));
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x55;
        std::fs::write(&path, bytes).unwrap();
        let mut decoder = open_path(&path, &options(InputFormat::Capture)).unwrap();
        let mut quarantine = Quarantine::in_memory();
        let error = loop {
            match decoder.next_chunk(&mut quarantine) {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("a corrupt stream must not end cleanly"),
                Err(error) => break error,
            }
        };
        assert!(matches!(error, DecodeError::Io { .. }));
        assert!(
            error.to_string().starts_with(&path.display().to_string()),
            "{error}"
        );
    }

    #[test]
    fn a_missing_file_is_an_io_error() {
        let error = open_path(
            Path::new("/nonexistent/capture.jsonl"),
            &options(InputFormat::Capture),
        )
        .err();
        assert!(matches!(error, Some(DecodeError::Io { .. })));
    }
}
