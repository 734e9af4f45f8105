//! SageMaker ground-truth labels (FORMATS.md §7.1): JSON Lines, one label per line,
//!
//! ```json
//! {"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "…"}, "eventVersion": "0"}
//! ```
//!
//! `data` holds the label as the dataset stores it: with `CSV` encoding a CSV row (columns
//! `_c0, _c1, …`), with `JSON` a JSON document (an object's keys flattened as for JSON Lines
//! input, e.g. `{"label": 1}` → column `label`; an array or a scalar → `_c0, …`). A chunk's
//! `features` are the label columns, its `events` the `event_id` (the join key: the capture's
//! `inferenceId`, else its `eventId`) and `event_version` of each row.
//!
//! A malformed line — bad JSON, a missing `groundTruthData.data`, `groundTruthData.encoding`
//! or `eventMetadata.eventId`, another encoding, a `data` that is not one row — is counted and
//! quarantined with its source, line and the field at fault; the rest of the object is read.

use std::borrow::Cow;
use std::io::BufRead;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use arrow::array::{ArrayRef, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::json::{Flat, NameTemplate, Text, flatten_object, is_container, scalar_text};
use super::jsonl::JsonlDecoder;
use super::lines::Lines;
use super::table::{self, Columns, RowRef, Run};
use super::{
    Chunk, DecodeError, DecodeOptions, Decoder, EVENT_ID, EVENT_VERSION, Quarantine, RejectReason,
};

/// Opens a ground-truth file (gzip and zstd detected by magic bytes), within `options.limits`.
pub fn open_path(path: &Path, options: &DecodeOptions) -> Result<Box<dyn Decoder>, DecodeError> {
    let (reader, source_name) = super::open_text(path, options)?;
    Ok(Box::new(decoder(reader, source_name, options)))
}

/// A decoder of already decompressed ground-truth text; `source_name` names it in errors and
/// the quarantine (a path or `s3://bucket/key`).
pub fn decoder(
    reader: Box<dyn BufRead + Send>,
    source_name: String,
    options: &DecodeOptions,
) -> JsonlDecoder {
    JsonlDecoder::with_batch_decoder(reader, source_name, options, decode_batch)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    #[serde(borrow)]
    ground_truth_data: Option<GroundTruthData<'a>>,
    #[serde(borrow)]
    event_metadata: Option<EventMetadata<'a>>,
    #[serde(borrow)]
    event_version: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct GroundTruthData<'a> {
    #[serde(borrow)]
    data: Option<Text<'a>>,
    #[serde(borrow)]
    encoding: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventMetadata<'a> {
    #[serde(borrow)]
    event_id: Option<Text<'a>>,
}

/// One label, parsed: its values own their text (labels are short), named or positional.
struct Label<'a> {
    event_id: Cow<'a, str>,
    event_version: Option<Cow<'a, str>>,
    values: Flat<'static>,
    positional: bool,
}

struct Rejection {
    reason: RejectReason,
    detail: String,
}

fn missing(field: &str) -> Rejection {
    Rejection {
        reason: RejectReason::MissingField,
        detail: format!("no {field}"),
    }
}

fn decode_batch(
    lines: &Lines,
    source_name: &str,
    template: &NameTemplate,
    columns: &mut Columns,
    quarantine: &mut Quarantine,
) -> Option<Chunk> {
    lines.reject_too_long(source_name, quarantine);
    let parsed: Vec<Result<Label, Rejection>> = lines
        .par_iter()
        .map(|line| parse_line(line, template))
        .collect();
    let mut rows = Vec::with_capacity(parsed.len());
    let mut event_ids = StringBuilder::new();
    let mut event_versions = StringBuilder::new();
    for (i, parsed) in parsed.iter().enumerate() {
        match parsed {
            Ok(label) => {
                let run = if label.positional {
                    Run::Positional {
                        values: &label.values.values,
                        offset: 0,
                    }
                } else {
                    Run::Named {
                        keys: &label.values.keys,
                        values: &label.values.values,
                    }
                };
                let row = RowRef::new(run);
                columns.admit_record([row], source_name, lines.get(i), quarantine);
                rows.push(row);
                event_ids.append_value(&label.event_id);
                event_versions.append_option(label.event_version.as_deref());
            }
            Err(rejection) => {
                let (line, raw) = lines.get(i);
                quarantine.reject(source_name, line, rejection.reason, &rejection.detail, raw);
            }
        }
    }
    if rows.is_empty() {
        return None;
    }
    let events: Vec<ArrayRef> = vec![
        Arc::new(event_ids.finish()),
        Arc::new(event_versions.finish()),
    ];
    Some(Chunk {
        features: columns.batch(&rows),
        events: Some(table::batch(EVENTS_SCHEMA.clone(), events, rows.len())),
    })
}

static EVENTS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(EVENT_ID, DataType::Utf8, false),
        Field::new(EVENT_VERSION, DataType::Utf8, true),
    ]))
});

fn parse_line<'a>(line: &'a [u8], template: &NameTemplate) -> Result<Label<'a>, Rejection> {
    let bad_json = |detail: String| Rejection {
        reason: RejectReason::BadJson,
        detail,
    };
    let line = std::str::from_utf8(line).map_err(|e| bad_json(e.to_string()))?;
    let record: Record<'a> = serde_json::from_str(line).map_err(|e| bad_json(e.to_string()))?;
    let event_id = record
        .event_metadata
        .and_then(|m| m.event_id)
        .ok_or_else(|| missing("eventMetadata.eventId"))?
        .0;
    let data = record
        .ground_truth_data
        .ok_or_else(|| missing("groundTruthData"))?;
    let encoding = data
        .encoding
        .ok_or_else(|| missing("groundTruthData.encoding"))?
        .0;
    let text = data.data.ok_or_else(|| missing("groundTruthData.data"))?.0;
    let (values, positional) = if encoding.eq_ignore_ascii_case("CSV") {
        (csv_label(&text)?, true)
    } else if encoding.eq_ignore_ascii_case("JSON") {
        json_label(&text, template).map_err(|e| bad_json(format!("groundTruthData.data: {e}")))?
    } else {
        return Err(Rejection {
            reason: RejectReason::UnsupportedEncoding,
            detail: format!("groundTruthData.encoding {encoding:?} (CSV or JSON)"),
        });
    };
    if values.values.is_empty() {
        return Err(missing("groundTruthData.data (empty)"));
    }
    Ok(Label {
        event_id,
        event_version: record.event_version.map(|v| v.0),
        values,
        positional,
    })
}

/// One CSV row; an empty field is null, as Spark reads CSV.
fn csv_label(text: &str) -> Result<Flat<'static>, Rejection> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let mut values = Flat::default();
    if let Some(record) = records.next() {
        let record = record.map_err(|e| Rejection {
            reason: RejectReason::BadValue,
            detail: format!("groundTruthData.data: {e}"),
        })?;
        values.values = record
            .iter()
            .map(|v| (!v.is_empty()).then(|| Cow::Owned(v.to_string())))
            .collect();
    }
    if records.next().is_some() {
        return Err(Rejection {
            reason: RejectReason::BadValue,
            detail: "groundTruthData.data holds more than one CSV row; a label is one row".into(),
        });
    }
    Ok(values)
}

/// One JSON document: an object flattened, an array of scalars or a scalar positional.
fn json_label(text: &str, template: &NameTemplate) -> serde_json::Result<(Flat<'static>, bool)> {
    let value: &RawValue = serde_json::from_str(text.trim())?;
    let mut flat = Flat::default();
    let positional = match value.get().as_bytes().first() {
        Some(b'{') => {
            flatten_object(value, template, &mut flat)?;
            false
        }
        Some(b'[') => {
            let elements: Vec<&RawValue> = serde_json::from_str(value.get())?;
            for element in elements {
                if is_container(element) {
                    return Err(serde::de::Error::custom(
                        "a JSON array label may hold only scalars",
                    ));
                }
                flat.values.push(scalar_text(element)?);
            }
            true
        }
        _ => {
            flat.values.push(scalar_text(value)?);
            true
        }
    };
    let owned = Flat {
        keys: flat.keys,
        values: flat
            .values
            .into_iter()
            .map(|v| v.map(|v| Cow::Owned(v.into_owned())))
            .collect(),
    };
    Ok((owned, positional))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::record_batch::RecordBatch;

    use crate::decode::testing::{names, row, rows, try_drain};
    use crate::decode::{InputFormat, join_keys};

    fn decode(input: &str) -> (Vec<Chunk>, Quarantine) {
        let options = DecodeOptions {
            format: InputFormat::Jsonl,
            ..DecodeOptions::default()
        };
        let reader = Box::new(std::io::Cursor::new(input.as_bytes().to_vec()));
        let decoder = decoder(reader, "labels.jsonl".into(), &options);
        let mut quarantine = Quarantine::in_memory();
        let chunks = try_drain(Box::new(decoder), &mut quarantine).unwrap();
        (chunks, quarantine)
    }

    fn text_column(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
        use arrow::array::Array;
        let array = batch
            .column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        (0..array.len())
            .map(|i| array.is_valid(i).then(|| array.value(i).to_string()))
            .collect()
    }

    #[test]
    fn csv_labels_are_positional_with_their_event_ids() {
        let input = concat!(
            r#"{"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "a"}, "eventVersion": "0"}"#,
            "\n",
            r#"{"groundTruthData": {"data": "0,\"x, y\"", "encoding": "csv"}, "eventMetadata": {"eventId": "b"}}"#,
            "\n"
        );
        let (chunks, quarantine) = decode(input);
        assert_eq!(quarantine.total(), 0);
        let chunk = &chunks[0];
        assert_eq!(names(&chunk.features), ["_c0", "_c1"]);
        assert_eq!(
            rows(&chunk.features),
            [row(&[Some("1"), None]), row(&[Some("0"), Some("x, y")])]
        );
        let events = chunk.events.as_ref().unwrap();
        assert_eq!(join_keys(events).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(
            text_column(events, EVENT_VERSION),
            [Some("0".to_string()), None]
        );
    }

    #[test]
    fn json_labels_are_named_by_their_keys() {
        // The bias-drift notebook's labels (FORMATS.md §7.1), a bare scalar and an array.
        let input = concat!(
            r#"{"groundTruthData": {"data": "{\"label\": 1}", "encoding": "JSON"}, "eventMetadata": {"eventId": "e1"}, "eventVersion": "0"}"#,
            "\n",
            r#"{"groundTruthData": {"data": "{\"label\": 0, \"extra\": {\"k\": \"v\"}}", "encoding": "JSON"}, "eventMetadata": {"eventId": "e2"}, "eventVersion": "0"}"#,
            "\n"
        );
        let (chunks, _) = decode(input);
        assert_eq!(names(&chunks[0].features), ["label", "extra.k"]);
        assert_eq!(
            text_column(&chunks[0].features, "label"),
            [Some("1".to_string()), Some("0".to_string())]
        );
        let (chunks, _) = decode(concat!(
            r#"{"groundTruthData": {"data": "0.5", "encoding": "JSON"}, "eventMetadata": {"eventId": "e3"}}"#,
            "\n",
            r#"{"groundTruthData": {"data": "[2, \"b\"]", "encoding": "JSON"}, "eventMetadata": {"eventId": "e4"}}"#,
        ));
        assert_eq!(
            rows(&chunks[0].features),
            [row(&[Some("0.5"), None]), row(&[Some("2"), Some("b")])]
        );
    }

    #[test]
    fn malformed_labels_are_counted_with_line_and_field() {
        let good = r#"{"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "ok"}}"#;
        let input = [
            good,
            r#"{"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {}}"#,
            r#"{"groundTruthData": {"encoding": "CSV"}, "eventMetadata": {"eventId": "x"}}"#,
            r#"{"groundTruthData": {"data": "1"}, "eventMetadata": {"eventId": "x"}}"#,
            r#"{"groundTruthData": {"data": "MQ==", "encoding": "BASE64"}, "eventMetadata": {"eventId": "x"}}"#,
            r#"{"groundTruthData": {"data": "{\"label\": ", "encoding": "JSON"}, "eventMetadata": {"eventId": "x"}}"#,
            r#"{"groundTruthData": {"data": "1\n0", "encoding": "CSV"}, "eventMetadata": {"eventId": "x"}}"#,
            r#"{"eventMetadata": {"eventId": "x"}}"#,
            "not json",
            good,
        ]
        .join("\n");
        let (chunks, quarantine) = decode(&input);
        assert_eq!(chunks[0].features.num_rows(), 2);
        let rejects: Vec<(u64, RejectReason, String)> = quarantine
            .recent()
            .map(|r| (r.line, r.reason, r.detail.clone()))
            .collect();
        assert_eq!(quarantine.total(), 8);
        // The quarantine remembers the last eight.
        let expected = [
            (2, RejectReason::MissingField, "no eventMetadata.eventId"),
            (3, RejectReason::MissingField, "no groundTruthData.data"),
            (4, RejectReason::MissingField, "no groundTruthData.encoding"),
            (
                5,
                RejectReason::UnsupportedEncoding,
                "groundTruthData.encoding \"BASE64\" (CSV or JSON)",
            ),
        ];
        for (got, want) in rejects.iter().zip(expected) {
            assert_eq!((got.0, got.1, got.2.as_str()), want);
        }
        assert_eq!(rejects[4].0, 6);
        assert!(
            rejects[4].2.starts_with("groundTruthData.data: "),
            "{}",
            rejects[4].2
        );
        assert_eq!((rejects[5].0, rejects[5].1), (7, RejectReason::BadValue));
        assert_eq!(
            (rejects[6].0, rejects[6].1, rejects[6].2.as_str()),
            (8, RejectReason::MissingField, "no groundTruthData")
        );
        assert_eq!((rejects[7].0, rejects[7].1), (9, RejectReason::BadJson));
    }

    #[test]
    fn a_gzip_file_opens_by_path() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.jsonl");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder
            .write_all(
                br#"{"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "a"}}"#,
            )
            .unwrap();
        std::fs::write(&path, encoder.finish().unwrap()).unwrap();
        let decoder = open_path(&path, &DecodeOptions::default()).unwrap();
        let mut quarantine = Quarantine::in_memory();
        let chunks = try_drain(decoder, &mut quarantine).unwrap();
        assert_eq!(rows(&chunks[0].features), [row(&[Some("1")])]);
    }
}
