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

pub mod attribution;
pub mod capture;
pub mod compression;
pub mod csv;
pub mod ground_truth;
mod json;
pub mod jsonl;
mod lines;
pub mod parquet;
mod quarantine;
mod table;
#[cfg(test)]
pub(crate) mod testing;

use std::io::BufRead;
use std::path::Path;

use arrow::record_batch::RecordBatch;

pub use quarantine::{Quarantine, Reject, RejectReason};

/// Columns of [`Chunk::events`], one row per feature row.
pub const EVENT_ID: &str = "event_id";
pub const INFERENCE_ID: &str = "inference_id";
/// Seconds since the Unix epoch (UTC), from `eventMetadata.inferenceTime`.
pub const INFERENCE_TIME: &str = "inference_time";
/// Ground truth only: the label's `eventVersion` (nullable).
pub const EVENT_VERSION: &str = "event_version";

/// The join key of each row of a chunk's events: the capture's `inferenceId` when it has one,
/// else its `eventId` (FORMATS.md §7.1). A ground-truth chunk's events have no inference id,
/// so its keys are its `eventMetadata.eventId`s, which is what labels carry.
pub fn join_keys(events: &RecordBatch) -> impl Iterator<Item = &str> {
    use arrow::array::{Array, StringArray};
    let text = |name| {
        events
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
    };
    let event_ids = text(EVENT_ID).expect("events have an event_id column");
    let inference_ids = text(INFERENCE_ID);
    (0..events.num_rows()).map(move |row| match inference_ids {
        Some(ids) if ids.is_valid(row) => ids.value(row),
        _ => event_ids.value(row),
    })
}

/// Rows per chunk unless a caller asks otherwise: large enough for columnar kernels to pay off,
/// small enough that a chunk of wide records stays a few MB.
pub const DEFAULT_CHUNK_ROWS: usize = 16 * 1024;

/// Bounds that keep one hostile or broken object from taking a long-running process down: a
/// multi-GB "line" without a newline, a decompression bomb, an object far bigger than any
/// capture file. A record over a limit is counted and skipped (quarantine reason
/// `record_too_large`); an object over one fails as a whole ([`DecodeError::Limit`], or
/// `FetchError::TooLarge` before an S3 download) and goes to the dead-letter path.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// The longest record (line, without its line terminator) a text decoder keeps, in bytes;
    /// default 32 MiB. A longer line is read past without being held in memory, counted under
    /// `record_too_large` with its line number, and decoding goes on with the next line. For
    /// CSV a record may span lines (a quoted newline); a physical line over the limit is
    /// skipped, and a record still open after this many bytes (an unclosed quote) is skipped
    /// and parsing resumes at the next line. Not applied to Parquet, whose reader bounds its
    /// own row groups and pages.
    ///
    /// A capture record is usually a few KB, but one real-time record carries a request and a
    /// response of up to 6 MB each, 4/3 bigger again when BASE64-encoded: about 16 MB at the
    /// extreme. 32 MiB leaves room for that and for JSON escaping. Memory per decoder is a
    /// couple of batches, each of at most 64 MiB plus one record.
    pub max_record_bytes: u64,
    /// How many times bigger than its compressed size a gzip or zstd object may grow,
    /// checked once [`RATIO_CHECK_AFTER_BYTES`] have come out; default 200. Text captures
    /// compress well under 50× (the tests' capture-like text: under 50× with gzip and zstd);
    /// zeros compress ~1000× with gzip and far more with zstd. An object over the ratio fails
    /// whole as a likely decompression bomb.
    pub max_decompression_ratio: f64,
    /// The biggest object read at all, in bytes, as stored (compressed size for a compressed
    /// object); default 10 GiB. Checked from S3's `Content-Length` before the body is
    /// downloaded, and from the file's metadata for a local path.
    pub max_object_bytes: u64,
    /// The most columns one object's text decoder makes; default 10,000 (wide real models have
    /// hundreds). A value whose name would be a further column is left out, and its record is
    /// counted under `too_many_columns` but keeps its other values: a key that differs on every
    /// record (an id used as a key) otherwise makes every later chunk, and the profile, one
    /// column wider per record. A JSON record with more values than this on its own is skipped
    /// (`bad_json`) while it is flattened, before its values take memory. For a headerless CSV
    /// object, whose first record sets the columns, this is also the most fields a CSV row may
    /// have.
    pub max_columns: usize,
    /// How deeply JSON objects and arrays may nest inside one record; default 32. A deeper
    /// record is skipped (`bad_json`, naming this limit).
    pub max_json_depth: usize,
    /// The longest column name a JSON record may make (a key, with its parents' keys and the
    /// array element names), in bytes; default 1,024. A record with a longer one is skipped
    /// (`bad_json`, naming this limit).
    pub max_key_bytes: usize,
    /// Labels of a label-joined model-quality monitor (one series) that may wait for their
    /// prediction at once; default 10,000,000 (~0.3 GB of state). Past it a label is refused
    /// and counted (`label_join.json`'s `skipped_rows`, the `labels_refused` metric).
    pub max_pending_labels: usize,
    /// The most rows one window of a label-joined monitor holds while it waits for its labels
    /// (`[limits.max_window_rows]`, by kind). A part (one object's rows of the window) that
    /// would take the window past it is refused whole when the finaliser merges the window.
    pub max_window_rows: WindowRows,
}

/// `limits.max_window_rows`: a label-joined window's rows are held, all of them, until the
/// window closes for labels, and the finaliser holds the whole window in memory to join it.
/// Other windows are mergeable states whose size does not grow with their rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowRows {
    /// A label-joined model-quality window's predictions; default 20,000,000. Each is 32 bytes
    /// (a 16-byte key and a 16-byte value), and the join sorts a copy of them: about 1.3 GB at
    /// the limit. 20 million in a 1-hour window is 5,500 captured predictions a second for the
    /// whole hour.
    pub predictions: u64,
    /// A label-joined bias window's rows; default 2,000,000. A row keeps its 16-byte key and
    /// every column as text: about 50 bytes a value (a 24-byte `Option<String>` and its heap
    /// block), so 0.6 KB for a 10-column row and about 1.2 GB at the limit. A proportion over 2
    /// million rows has a standard error under 0.04 percentage points.
    pub bias_rows: u64,
}

impl Default for WindowRows {
    fn default() -> Self {
        Self {
            predictions: 20_000_000,
            bias_rows: 2_000_000,
        }
    }
}

/// Decompressed bytes that may come out of an object before [`Limits::max_decompression_ratio`]
/// is checked: a small object of one short record repeated compresses far better than any
/// sensible ratio and is harmless.
pub const RATIO_CHECK_AFTER_BYTES: u64 = 64 << 20;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_record_bytes: 32 << 20,
            max_decompression_ratio: 200.0,
            max_object_bytes: 10 << 30,
            max_columns: 10_000,
            max_json_depth: 32,
            max_key_bytes: 1024,
            max_pending_labels: 10_000_000,
            max_window_rows: WindowRows::default(),
        }
    }
}

impl Limits {
    /// What is wrong with these limits, in words naming the config key to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_record_bytes == 0 {
            return Err("limits.max_record_bytes must be at least 1".to_string());
        }
        if self.max_decompression_ratio.is_nan() || self.max_decompression_ratio < 1.0 {
            return Err(format!(
                "limits.max_decompression_ratio must be a number of at least 1, not {}",
                self.max_decompression_ratio
            ));
        }
        if self.max_object_bytes == 0 {
            return Err("limits.max_object_bytes must be at least 1".to_string());
        }
        for (key, value) in [
            ("limits.max_columns", self.max_columns),
            ("limits.max_json_depth", self.max_json_depth),
            ("limits.max_key_bytes", self.max_key_bytes),
        ] {
            if value == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        for (key, value) in [
            (
                "limits.max_window_rows.predictions",
                self.max_window_rows.predictions,
            ),
            (
                "limits.max_window_rows.bias_rows",
                self.max_window_rows.bias_rows,
            ),
        ] {
            if value == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        Ok(())
    }
}

/// An object ran into one of the [`Limits`]. Readers that enforce a limit return it inside an
/// [`std::io::Error`]; [`DecodeError::io`] turns it into [`DecodeError::Limit`].
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct LimitExceeded {
    /// The config key that sets the limit, e.g. `limits.max_decompression_ratio`.
    pub key: &'static str,
    /// What happened and what to change.
    pub message: String,
}

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
    /// SageMaker ground-truth labels (`groundTruthData`, `eventMetadata.eventId`): the label
    /// files of a model-quality monitor's `ground_truth_path`.
    #[serde(rename = "ground_truth")]
    #[value(name = "ground-truth")]
    GroundTruth,
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
    pub limits: Limits,
    /// Capture only: read the records' attributions out of the response instead of its columns
    /// (feature-attribution monitors; set from the monitor's config, not a config key itself).
    #[serde(skip)]
    pub attributions: Option<std::sync::Arc<crate::attribution::AttributionSource>>,
    /// Capture only: leave [`Chunk::events`] out, for readers that only profile the features
    /// (copying every record's ids is a measurable share of decoding).
    #[serde(skip)]
    pub without_events: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            format: InputFormat::Capture,
            header: false,
            output_columns_position: OutputColumnsPosition::Start,
            array_element_name: "{key}_{index}".to_string(),
            chunk_rows: DEFAULT_CHUNK_ROWS,
            limits: Limits::default(),
            attributions: None,
            without_events: false,
        }
    }
}

/// One batch of decoded records.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// The monitored columns. Consecutive chunks of one object may differ in columns (JSON keys
    /// that appear late); the profile lines them up by name.
    pub features: RecordBatch,
    /// Capture: `event_id`, `inference_id` (nullable) and `inference_time` per row; ground
    /// truth: `event_id` and `event_version` (nullable). See [`join_keys`].
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
    /// The object ran into one of the [`Limits`]; `error` names the limit and its config key.
    #[error("{source_name}: {error}")]
    Limit {
        source_name: String,
        #[source]
        error: LimitExceeded,
    },
}

impl DecodeError {
    /// A read error of `source_name`: [`DecodeError::Limit`] when a limit-enforcing reader
    /// raised it, [`DecodeError::Io`] otherwise.
    pub fn io(source_name: &str, error: std::io::Error) -> Self {
        if error.get_ref().is_some_and(|e| e.is::<LimitExceeded>()) {
            let inner = error.into_inner().expect("checked above");
            let error = *inner.downcast::<LimitExceeded>().expect("checked above");
            return DecodeError::Limit {
                source_name: source_name.to_string(),
                error,
            };
        }
        DecodeError::Io {
            source_name: source_name.to_string(),
            error,
        }
    }
}

/// That `batch` has no column `name`, which the setting `setting` names, and the columns it has.
pub fn missing_column(
    setting: &str,
    name: &str,
    batch: &arrow::record_batch::RecordBatch,
) -> String {
    let names: Vec<String> = (batch.schema().fields().iter())
        .map(|f| format!("{:?}", f.name()))
        .collect();
    format!(
        "no column {name:?} (the {setting}); the columns are {}",
        names.join(", ")
    )
}

/// Any Arrow column as Utf8 text (text formats already are; Parquet numbers print as numbers).
/// A type with no text form (a nested column) reads as missing values.
pub fn as_text(array: &arrow::array::ArrayRef) -> arrow::array::ArrayRef {
    use arrow::datatypes::DataType;
    if array.data_type() == &DataType::Utf8 {
        return array.clone();
    }
    arrow::compute::cast(array, &DataType::Utf8)
        .unwrap_or_else(|_| arrow::array::new_null_array(&DataType::Utf8, array.len()))
}

/// A streaming decoder: each call yields the next chunk, or `None` at the end of the object.
pub trait Decoder: Send {
    fn next_chunk(&mut self, quarantine: &mut Quarantine) -> Result<Option<Chunk>, DecodeError>;
}

/// Opens `path` (gzip and zstd detected by magic bytes) and returns the decoder for `options`.
/// A file bigger than [`Limits::max_object_bytes`] is refused before it is read.
pub fn open_path(path: &Path, options: &DecodeOptions) -> Result<Box<dyn Decoder>, DecodeError> {
    if options.format == InputFormat::Parquet {
        check_file_size(path, &options.limits)?;
        return parquet::ParquetDecoder::open(path, options)
            .map(|d| Box::new(d) as Box<dyn Decoder>);
    }
    let (reader, source_name) = open_text(path, options)?;
    Ok(open_reader(reader, source_name, options))
}

/// The file's name for errors, once its size is known to be within the limits.
fn check_file_size(path: &Path, limits: &Limits) -> Result<String, DecodeError> {
    let source_name = path.display().to_string();
    let size = std::fs::metadata(path)
        .map_err(|error| DecodeError::io(&source_name, error))?
        .len();
    check_object_size(&source_name, size, limits)?;
    Ok(source_name)
}

/// The decompressed text of the file at `path` (gzip and zstd detected by magic bytes, within
/// `options.limits`), and the name errors give it.
fn open_text(
    path: &Path,
    options: &DecodeOptions,
) -> Result<(Box<dyn BufRead + Send>, String), DecodeError> {
    let source_name = check_file_size(path, &options.limits)?;
    let file = std::fs::File::open(path).map_err(|error| DecodeError::io(&source_name, error))?;
    let reader = compression::decompressing_reader_with_limits(Box::new(file), &options.limits)
        .map_err(|error| DecodeError::io(&source_name, error))?;
    Ok((reader, source_name))
}

/// [`DecodeError::Limit`] when an object of `size` bytes is over [`Limits::max_object_bytes`].
pub fn check_object_size(source_name: &str, size: u64, limits: &Limits) -> Result<(), DecodeError> {
    if size <= limits.max_object_bytes {
        return Ok(());
    }
    Err(DecodeError::Limit {
        source_name: source_name.to_string(),
        error: LimitExceeded {
            key: "limits.max_object_bytes",
            message: format!(
                "the object is {size} bytes, more than limits.max_object_bytes ({}); not read \
                 (raise limits.max_object_bytes in the config to read it)",
                limits.max_object_bytes
            ),
        },
    })
}

/// The decoder for a text format over an already decompressed stream; `source_name` is what
/// errors and the quarantine call this stream (a path or `s3://bucket/key`).
pub fn open_reader(
    reader: Box<dyn BufRead + Send>,
    source_name: String,
    options: &DecodeOptions,
) -> Box<dyn Decoder> {
    match (options.format, &options.attributions) {
        (InputFormat::Capture, Some(attributions)) => {
            Box::new(attribution::AttributionDecoder::new(
                reader,
                source_name,
                options,
                attributions.clone(),
            ))
        }
        (InputFormat::Capture, None) => {
            Box::new(capture::CaptureDecoder::new(reader, source_name, options))
        }
        (InputFormat::Csv, _) => Box::new(csv::CsvDecoder::new(reader, source_name, options)),
        (InputFormat::Jsonl, _) => Box::new(jsonl::JsonlDecoder::new(reader, source_name, options)),
        (InputFormat::GroundTruth, _) => {
            Box::new(ground_truth::decoder(reader, source_name, options))
        }
        (InputFormat::Parquet, _) => unreachable!("Parquet needs random access; use open_path"),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::testing::{
        decode_into, drain, gzip_zeros, names, options, quarantined, row, rows, try_drain,
        zstd_zeros,
    };
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
    fn the_join_key_is_the_inference_id_else_the_event_id() {
        let with_id = CAPTURE.replace(
            r#""eventId":"f04a8538-696c-4648-8064-8b680b2e3318""#,
            r#""eventId":"e2","inferenceId":"i2""#,
        );
        let (chunks, _) = super::testing::decode(
            &format!("{CAPTURE}\n{with_id}\n"),
            &options(InputFormat::Capture),
        );
        let events = chunks[0].events.as_ref().unwrap();
        assert_eq!(
            join_keys(events).collect::<Vec<_>>(),
            ["f04a8538-696c-4648-8064-8b680b2e3318", "i2"]
        );
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

    fn with_limits(format: InputFormat, limits: Limits) -> DecodeOptions {
        DecodeOptions {
            limits,
            ..options(format)
        }
    }

    #[test]
    fn a_line_over_the_record_limit_is_skipped_and_quarantined_in_every_text_format() {
        // A capture record whose input payload is 20 MiB, between two good records.
        let huge_capture = CAPTURE.replace("132,10,182.9", &"1,".repeat(10 << 20));
        let huge_text = "9".repeat(20 << 20);
        let cases = [
            (
                InputFormat::Capture,
                CAPTURE,
                huge_capture.as_str(),
                CAPTURE,
            ),
            (
                InputFormat::Jsonl,
                "{\"a\": 1}",
                huge_text.as_str(),
                "{\"a\": 2}",
            ),
            (InputFormat::Csv, "1,2", huge_text.as_str(), "3,4"),
        ];
        for (format, first, huge, last) in cases {
            let input = format!("{first}\n{huge}\n{last}\n");
            let limits = Limits {
                max_record_bytes: 8 << 20,
                ..Limits::default()
            };
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("quarantine.jsonl");
            let (chunks, quarantine) = decode_into(
                &input,
                &with_limits(format, limits),
                Quarantine::to_file(&path).unwrap(),
            );
            let decoded: usize = chunks.iter().map(|c| c.features.num_rows()).sum();
            assert_eq!(decoded, 2, "{format:?}");
            assert_eq!(quarantine.total(), 1, "{format:?}");
            assert_eq!(quarantine.counts()[&RejectReason::RecordTooLarge], 1);
            let rejects = quarantined(&path);
            assert_eq!(rejects.len(), 1);
            let reject = &rejects[0];
            assert_eq!(reject["source"], "test-source");
            assert_eq!(reject["line"], 2, "{format:?}");
            assert_eq!(reject["reason"], "record_too_large");
            let detail = reject["detail"].as_str().unwrap();
            assert!(
                detail.contains(&format!("{} bytes", huge.len() + 1))
                    && detail.contains("limits.max_record_bytes"),
                "{detail}"
            );
            let record = reject["record"].as_str().unwrap();
            assert!(
                huge.starts_with(record) && record.len() <= 256,
                "{format:?}"
            );
        }
    }

    #[test]
    fn a_one_mib_line_is_skipped_with_a_one_kib_limit() {
        let limits = Limits {
            max_record_bytes: 1024,
            ..Limits::default()
        };
        let long = "x".repeat(1 << 20);
        let input = format!("{{\"a\": 1}}\n\n{{\"a\": \"{long}\"}}\n{{\"a\": 3}}");
        let (chunks, quarantine) = decode_into(
            &input,
            &with_limits(InputFormat::Jsonl, limits),
            Quarantine::in_memory(),
        );
        assert_eq!(
            rows(&chunks[0].features),
            [row(&[Some("1")]), row(&[Some("3")])]
        );
        let rejected: Vec<_> = quarantine.recent().map(|r| (r.line, r.reason)).collect();
        assert_eq!(rejected, [(3, RejectReason::RecordTooLarge)]);
    }

    /// Decodes the file at `path` to its end or its first error.
    fn decode_file(path: &Path, options: &DecodeOptions) -> Result<usize, DecodeError> {
        let mut quarantine = Quarantine::in_memory();
        let chunks = try_drain(open_path(path, options)?, &mut quarantine)?;
        Ok(chunks.iter().map(|c| c.features.num_rows()).sum())
    }

    #[test]
    fn a_decompression_bomb_fails_naming_the_object_and_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        // 200 MiB of zeros: ~200 KB as gzip, far less as zstd.
        let bombs = [
            ("bomb.jsonl.gz", gzip_zeros(200 << 20)),
            ("bomb.jsonl.zst", zstd_zeros(200 << 20)),
        ];
        for (name, bytes) in bombs {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            for format in [InputFormat::Capture, InputFormat::Jsonl, InputFormat::Csv] {
                let error = decode_file(&path, &options(format)).unwrap_err();
                let DecodeError::Limit { error: limit, .. } = &error else {
                    panic!("{name} {format:?}: expected a limit error, got {error}");
                };
                assert_eq!(limit.key, "limits.max_decompression_ratio");
                let message = error.to_string();
                assert!(
                    message.starts_with(&format!("{}: ", path.display()))
                        && message.contains("raise limits.max_decompression_ratio"),
                    "{message}"
                );
            }
            // The limit is the operator's to raise.
            let generous = Limits {
                max_decompression_ratio: 1e9,
                ..Limits::default()
            };
            assert!(decode_file(&path, &with_limits(InputFormat::Csv, generous)).is_ok());
        }
    }

    #[test]
    fn normal_compressed_captures_pass_the_ratio_limit() {
        let dir = tempfile::tempdir().unwrap();
        // Real captures are repetitive (~30x here) but nowhere near a bomb's ratio. These are
        // small; compression.rs checks realistic text past the point where the ratio applies.
        let text = format!("{CAPTURE}\n").repeat(1000);
        let gz = dir.path().join("capture.jsonl.gz");
        std::fs::write(&gz, gzip(&text)).unwrap();
        let zst = dir.path().join("capture.jsonl.zst");
        std::fs::write(&zst, zstd::encode_all(text.as_bytes(), 3).unwrap()).unwrap();
        for path in [gz, zst] {
            assert_eq!(
                decode_file(&path, &options(InputFormat::Capture)).unwrap(),
                1000
            );
        }
    }

    #[test]
    fn a_file_over_max_object_bytes_is_refused_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.jsonl");
        std::fs::write(&path, format!("{CAPTURE}\n")).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        let tight = Limits {
            max_object_bytes: 100,
            ..Limits::default()
        };
        for format in [InputFormat::Capture, InputFormat::Parquet] {
            let error = open_path(&path, &with_limits(format, tight)).err().unwrap();
            let message = error.to_string();
            assert!(matches!(
                &error,
                DecodeError::Limit { error, .. } if error.key == "limits.max_object_bytes"
            ));
            assert_eq!(
                message,
                format!(
                    "{}: the object is {size} bytes, more than limits.max_object_bytes (100); \
                     not read (raise limits.max_object_bytes in the config to read it)",
                    path.display()
                )
            );
        }
        let exact = Limits {
            max_object_bytes: size,
            ..Limits::default()
        };
        assert_eq!(
            decode_file(&path, &with_limits(InputFormat::Capture, exact)).unwrap(),
            1
        );
    }

    #[test]
    fn limits_default_and_validate() {
        let limits = Limits::default();
        assert_eq!(limits.max_record_bytes, 32 << 20);
        assert_eq!(limits.max_decompression_ratio, 200.0);
        assert_eq!(limits.max_object_bytes, 10 << 30);
        assert_eq!(limits.validate(), Ok(()));
        let zero_ratio = Limits {
            max_decompression_ratio: 0.5,
            ..limits
        };
        assert!(
            zero_ratio
                .validate()
                .unwrap_err()
                .contains("limits.max_decompression_ratio")
        );
        let nan = Limits {
            max_decompression_ratio: f64::NAN,
            ..limits
        };
        assert!(nan.validate().is_err());
        // A config section may set any subset of the fields.
        let parsed: Limits = toml::from_str("max_record_bytes = 1024").unwrap();
        assert_eq!(
            parsed,
            Limits {
                max_record_bytes: 1024,
                ..Limits::default()
            }
        );
        assert!(toml::from_str::<Limits>("max_recod_bytes = 1").is_err());
    }
}
