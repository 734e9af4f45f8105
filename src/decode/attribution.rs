//! Capture records → per-record attributions, for feature-attribution monitors. The capture's
//! output payload (`endpointOutput`, or `batchTransformOutput`) is the model's JSON response;
//! [`AttributionSource`] finds each record's attributions in it. A row per explained record, its
//! columns named [`column_name`]`(label, feature)` (Float64), and its event in
//! [`Chunk::events`] as the capture decoder gives it, so windows assign rows by `inferenceTime`.
//! Records the endpoint did not explain (`null` in `kernel_shap`) give no row.
//!
//! Bounded like the other decoders: lines by `limits.max_record_bytes`, columns by
//! `limits.max_columns` (a value for a further column is left out, its record counted under
//! `too_many_columns`).

use std::io::BufRead;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Builder, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use base64::Engine;
use indexmap::IndexMap;
use serde::Deserialize;

use super::lines::LineReader;
use super::table;
use super::{
    Chunk, DecodeError, DecodeOptions, Decoder, EVENT_ID, INFERENCE_ID, INFERENCE_TIME, Quarantine,
    RejectReason,
};
use crate::attribution::{AttributionSource, EXPECTED_FEATURE, column_name};

pub struct AttributionDecoder {
    lines: LineReader,
    state: State,
}

/// Everything but the reader, so a batch can be decoded while the next one is read.
struct State {
    source_name: String,
    attributions: Arc<AttributionSource>,
    max_columns: usize,
}

impl AttributionDecoder {
    pub fn new(
        reader: Box<dyn BufRead + Send>,
        source_name: String,
        options: &DecodeOptions,
        attributions: Arc<AttributionSource>,
    ) -> Self {
        Self {
            lines: LineReader::new(reader, options.chunk_rows, options.limits.max_record_bytes),
            state: State {
                source_name,
                attributions,
                max_columns: options.limits.max_columns,
            },
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaptureLine {
    capture_data: Option<CaptureData>,
    event_metadata: Option<EventMetadata>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaptureData {
    endpoint_output: Option<Payload>,
    batch_transform_output: Option<Payload>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    data: Option<String>,
    encoding: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventMetadata {
    event_id: Option<String>,
    inference_id: Option<String>,
    inference_time: Option<String>,
}

/// One capture line's explained records.
struct Parsed {
    event_id: String,
    inference_id: Option<String>,
    inference_time: i64,
    records: Vec<crate::attribution::RecordAttributions>,
}

impl State {
    fn parse(&self, line: &[u8]) -> Result<Parsed, (RejectReason, String)> {
        let bad_json = |e: &dyn std::fmt::Display| (RejectReason::BadJson, e.to_string());
        let missing = |field: &str| (RejectReason::MissingField, format!("no {field}"));
        let record: CaptureLine = serde_json::from_slice(line).map_err(|e| bad_json(&e))?;
        let metadata = record
            .event_metadata
            .ok_or_else(|| missing("eventMetadata"))?;
        let event_id = metadata
            .event_id
            .ok_or_else(|| missing("eventMetadata.eventId"))?;
        let time = metadata
            .inference_time
            .ok_or_else(|| missing("eventMetadata.inferenceTime"))?;
        let inference_time = chrono::DateTime::parse_from_rfc3339(&time)
            .map_err(|e| {
                (
                    RejectReason::BadTime,
                    format!("inferenceTime {time:?}: {e}"),
                )
            })?
            .timestamp();
        let capture = record.capture_data.ok_or_else(|| missing("captureData"))?;
        let (side, payload) = match (capture.endpoint_output, capture.batch_transform_output) {
            (Some(payload), _) => ("endpointOutput", payload),
            (None, Some(payload)) => ("batchTransformOutput", payload),
            (None, None) => return Err(missing("captureData.endpointOutput")),
        };
        let data = payload
            .data
            .ok_or_else(|| missing(&format!("{side}.data")))?;
        let encoding = payload
            .encoding
            .ok_or_else(|| missing(&format!("{side}.encoding")))?;
        let text = if encoding.eq_ignore_ascii_case("JSON") {
            data
        } else if encoding.eq_ignore_ascii_case("BASE64") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data.as_bytes())
                .map_err(|e| (RejectReason::BadBase64, format!("{side}.data: {e}")))?;
            String::from_utf8(bytes).map_err(|_| {
                (
                    RejectReason::BadBase64,
                    format!("{side}.data does not decode to UTF-8 text"),
                )
            })?
        } else {
            return Err((
                RejectReason::UnsupportedEncoding,
                format!("{side}.encoding {encoding:?}: attributions need a JSON response"),
            ));
        };
        let mut records = Vec::new();
        // A response is one JSON document or JSON Lines.
        for value in serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>() {
            let value = value.map_err(|e| bad_json(&format!("{side}.data: {e}")))?;
            let found = self
                .attributions
                .records(&value)
                .map_err(|e| (RejectReason::BadValue, format!("{side}.data: {e}")))?;
            records.extend(found.into_iter().flatten());
        }
        Ok(Parsed {
            event_id,
            inference_id: metadata.inference_id,
            inference_time,
            records,
        })
    }

    fn decode(&self, lines: &super::lines::Lines, quarantine: &mut Quarantine) -> Option<Chunk> {
        lines.reject_too_long(&self.source_name, quarantine);
        let mut columns: IndexMap<String, Vec<Option<f64>>> = IndexMap::new();
        let mut event_id = StringBuilder::new();
        let mut inference_id = StringBuilder::new();
        let mut inference_time = Int64Builder::new();
        let mut rows = 0usize;
        for i in 0..lines.len() {
            let (line_number, line) = lines.get(i);
            let parsed = match self.parse(line) {
                Ok(parsed) => parsed,
                Err((reason, detail)) => {
                    quarantine.reject(&self.source_name, line_number, reason, &detail, line);
                    continue;
                }
            };
            let mut refused = 0usize;
            for record in &parsed.records {
                let values = record
                    .values
                    .iter()
                    .map(|(l, f, v)| (column_name(l, f), *v));
                let expected = record
                    .expected
                    .iter()
                    .map(|(l, v)| (column_name(l, EXPECTED_FEATURE), *v));
                for (name, value) in values.chain(expected) {
                    if !columns.contains_key(&name) && columns.len() >= self.max_columns {
                        refused += 1;
                        continue;
                    }
                    let column = columns.entry(name).or_insert_with(|| vec![None; rows]);
                    column.resize(rows, None);
                    column.push(Some(value));
                }
                rows += 1;
                event_id.append_value(&parsed.event_id);
                inference_id.append_option(parsed.inference_id.as_deref());
                inference_time.append_value(parsed.inference_time);
            }
            if refused > 0 {
                quarantine.reject(
                    &self.source_name,
                    line_number,
                    RejectReason::TooManyColumns,
                    &format!(
                        "{refused} attributions left out: more than limits.max_columns ({}) label and feature pairs",
                        self.max_columns
                    ),
                    line,
                );
            }
        }
        if rows == 0 {
            return None;
        }
        let fields: Vec<Field> = columns
            .keys()
            .map(|name| Field::new(name, DataType::Float64, true))
            .collect();
        let arrays: Vec<ArrayRef> = columns
            .into_values()
            .map(|mut values| {
                values.resize(rows, None);
                Arc::new(Float64Array::from(values)) as ArrayRef
            })
            .collect();
        let features = table::batch(Arc::new(Schema::new(fields)), arrays, rows);
        let events = table::batch(
            Arc::new(Schema::new(vec![
                Field::new(EVENT_ID, DataType::Utf8, false),
                Field::new(INFERENCE_ID, DataType::Utf8, true),
                Field::new(INFERENCE_TIME, DataType::Int64, false),
            ])),
            vec![
                Arc::new(event_id.finish()),
                Arc::new(inference_id.finish()),
                Arc::new(inference_time.finish()),
            ],
            rows,
        );
        Some(Chunk {
            features,
            events: Some(events),
        })
    }
}

impl Decoder for AttributionDecoder {
    fn next_chunk(&mut self, quarantine: &mut Quarantine) -> Result<Option<Chunk>, DecodeError> {
        let state = &self.state;
        loop {
            match self
                .lines
                .with_batch(|batch| state.decode(batch, quarantine))
            {
                Ok(Some(Some(chunk))) => return Ok(Some(chunk)),
                Ok(Some(None)) => {}
                Ok(None) => return Ok(None),
                Err(error) => return Err(DecodeError::io(&state.source_name, error)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::attribution::{AttributionSpec, AttributionState};
    use crate::decode::InputFormat;

    fn capture(event: &str, time: &str, response: &serde_json::Value) -> String {
        json!({
            "captureData": {
                "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "1,2", "encoding": "CSV"},
                "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                   "data": response.to_string(), "encoding": "JSON"}
            },
            "eventMetadata": {"eventId": event, "inferenceTime": time},
            "eventVersion": "0"
        })
        .to_string()
    }

    fn explained(a: f64, b: f64) -> serde_json::Value {
        json!({"predictions": {"content_type": "text/csv", "data": "0.5\n"},
               "explanations": {"kernel_shap": [[
                   {"feature_header": "a", "attributions": [{"attribution": [a]}]},
                   {"feature_header": "b", "attributions": [{"attribution": [b]}]}]]}})
    }

    #[test]
    fn capture_lines_become_attribution_rows_with_their_events() {
        let base64 = json!({
            "captureData": {"endpointOutput": {"data":
                base64::engine::general_purpose::STANDARD.encode(explained(3.0, 0.0).to_string()),
                "encoding": "BASE64"}},
            "eventMetadata": {"eventId": "e3", "inferenceTime": "2026-11-01T00:00:03Z"}
        })
        .to_string();
        let text = [
            capture("e1", "2026-11-01T00:00:01Z", &explained(1.0, -2.0)),
            "{not json".to_string(),
            capture(
                "e2",
                "2026-11-01T00:00:02Z",
                &json!({"explanations": {"kernel_shap": [null]}}),
            ),
            capture("e4", "2026-11-01T00:00:04Z", &json!({"predictions": {}})),
            base64,
        ]
        .join("\n");
        let options = DecodeOptions {
            format: InputFormat::Capture,
            attributions: Some(Arc::new(AttributionSource::new(None, None, None))),
            ..DecodeOptions::default()
        };
        let mut decoder = crate::decode::open_reader(
            Box::new(std::io::Cursor::new(text.into_bytes())),
            "cap.jsonl".into(),
            &options,
        );
        let mut quarantine = Quarantine::in_memory();
        let chunk = decoder.next_chunk(&mut quarantine).unwrap().unwrap();
        assert!(decoder.next_chunk(&mut quarantine).unwrap().is_none());
        assert_eq!(chunk.features.num_rows(), 2);
        let events = chunk.events.as_ref().unwrap();
        assert_eq!(
            crate::decode::join_keys(events).collect::<Vec<_>>(),
            ["e1", "e3"]
        );
        let rejected: Vec<_> = quarantine
            .recent()
            .map(|r| (r.line, r.reason, r.detail.clone()))
            .collect();
        assert_eq!(rejected.len(), 2);
        assert_eq!((rejected[0].0, rejected[0].1), (2, RejectReason::BadJson));
        assert_eq!((rejected[1].0, rejected[1].1), (4, RejectReason::BadValue));
        assert!(
            rejected[1]
                .2
                .starts_with("endpointOutput.data: no explanations")
        );
        let mut state = AttributionState::new(&AttributionSpec::default());
        state.add_batch(&chunk.features);
        let global = &state.explanations().kernel_shap["label0"].global_shap_values;
        assert_eq!((global["a"], global["b"]), (2.0, 1.0));
    }
}
