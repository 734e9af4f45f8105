//! Flat JSON Lines: one object per line, nested keys flattened (see [`DecodeOptions`]).
//! Lines are parsed in parallel like capture records, then assembled in input order.

use std::io::BufRead;

use rayon::prelude::*;
use serde_json::value::RawValue;

use super::json::{Flat, NameTemplate, flatten_object};
use super::lines::{LineReader, Lines};
use super::table::{Columns, RowRef, Run};
use super::{Chunk, DecodeError, DecodeOptions, Decoder, Quarantine, RejectReason};

/// A decoder of one JSON document per line. What a line means is its `decode_batch`'s business:
/// a flat row here, a label in ground_truth.rs.
pub struct JsonlDecoder {
    lines: LineReader,
    source_name: String,
    template: NameTemplate,
    columns: Columns,
    decode_batch: BatchDecoder,
}

/// Turns a batch of lines into a chunk (`None` when every line was rejected), quarantining
/// the lines it cannot use.
pub(crate) type BatchDecoder =
    fn(&Lines, &str, &NameTemplate, &mut Columns, &mut Quarantine) -> Option<Chunk>;

impl JsonlDecoder {
    pub fn new(
        reader: Box<dyn BufRead + Send>,
        source_name: String,
        options: &DecodeOptions,
    ) -> Self {
        Self::with_batch_decoder(reader, source_name, options, decode_batch)
    }

    pub(crate) fn with_batch_decoder(
        reader: Box<dyn BufRead + Send>,
        source_name: String,
        options: &DecodeOptions,
        decode_batch: BatchDecoder,
    ) -> Self {
        Self {
            lines: LineReader::new(reader, options.chunk_rows, options.limits.max_record_bytes),
            source_name,
            template: NameTemplate::parse(&options.array_element_name).with_limits(&options.limits),
            columns: Columns::new(options.limits.max_columns),
            decode_batch,
        }
    }
}

impl Decoder for JsonlDecoder {
    fn next_chunk(&mut self, quarantine: &mut Quarantine) -> Result<Option<Chunk>, DecodeError> {
        let Self {
            lines,
            source_name,
            template,
            columns,
            decode_batch,
        } = self;
        loop {
            let batch = lines.with_batch(|lines| {
                decode_batch(lines, source_name, template, columns, quarantine)
            });
            match batch {
                Ok(Some(Some(chunk))) => return Ok(Some(chunk)),
                // Every line of the batch was rejected: read on.
                Ok(Some(None)) => {}
                Ok(None) => return Ok(None),
                Err(error) => return Err(DecodeError::io(source_name, error)),
            }
        }
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
    let parsed: Vec<Result<Flat, String>> = lines
        .par_iter()
        .map(|line| parse_line(line, template))
        .collect();
    let mut rows = Vec::with_capacity(parsed.len());
    for (i, parsed) in parsed.iter().enumerate() {
        match parsed {
            Ok(row) => {
                let row = RowRef::new(Run::Named {
                    keys: &row.keys,
                    values: &row.values,
                });
                columns.admit_record([row], source_name, lines.get(i), quarantine);
                rows.push(row);
            }
            Err(detail) => {
                let (line, raw) = lines.get(i);
                quarantine.reject(source_name, line, RejectReason::BadJson, detail, raw);
            }
        }
    }
    (!rows.is_empty()).then(|| Chunk {
        features: columns.batch(&rows),
        events: None,
    })
}

fn parse_line<'a>(line: &'a [u8], template: &NameTemplate) -> Result<Flat<'a>, String> {
    let value: &RawValue = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    if !value.get().starts_with('{') {
        return Err("not a JSON object".to_string());
    }
    let mut row = Flat::default();
    flatten_object(value, template, &mut row).map_err(|e| e.to_string())?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use crate::decode::testing::{decode, names, options, row, rows};
    use crate::decode::{InputFormat, RejectReason};

    #[test]
    fn objects_are_flattened_in_first_seen_order() {
        let input = "{\"a\": 1.0, \"b\": {\"c\": \"x\\ty\"}, \"d\": [1, 2]}\n{\"a\": 2, \"e\": null, \"f\": false}\n";
        let (chunks, quarantine) = decode(input, &options(InputFormat::Jsonl));
        assert_eq!(quarantine.total(), 0);
        assert_eq!(
            names(&chunks[0].features),
            ["a", "b.c", "d_0", "d_1", "e", "f"]
        );
        assert_eq!(
            rows(&chunks[0].features),
            [
                row(&[Some("1.0"), Some("x\ty"), Some("1"), Some("2"), None, None]),
                row(&[Some("2"), None, None, None, None, Some("false")]),
            ]
        );
    }

    #[test]
    fn lines_that_are_not_json_objects_are_skipped_with_their_line() {
        let input = "{\"a\": 1}\n[1, 2]\n\n{\"a\": \n{\"a\": 3}";
        let (chunks, quarantine) = decode(input, &options(InputFormat::Jsonl));
        let rejected: Vec<_> = quarantine.recent().map(|r| (r.line, r.reason)).collect();
        assert_eq!(
            rejected,
            [(2, RejectReason::BadJson), (4, RejectReason::BadJson)]
        );
        assert_eq!(
            rows(&chunks[0].features),
            [row(&[Some("1")]), row(&[Some("3")])]
        );
    }

    #[test]
    fn a_record_nested_past_the_limit_is_skipped_and_its_neighbours_kept() {
        let deep = format!("{{\"a\": 2, \"b\": {}1{}}}", "[".repeat(40), "]".repeat(40));
        let input = format!("{{\"a\": 1}}\n{deep}\n{{\"a\": 3}}\n");
        let (chunks, quarantine) = decode(&input, &options(InputFormat::Jsonl));
        let reject = quarantine.recent().next().unwrap();
        assert_eq!((reject.line, reject.reason), (2, RejectReason::BadJson));
        assert!(
            reject.detail.contains("limits.max_json_depth (32)"),
            "{}",
            reject.detail
        );
        assert_eq!(names(&chunks[0].features), ["a"]);
        assert_eq!(
            rows(&chunks[0].features),
            [row(&[Some("1")]), row(&[Some("3")])]
        );
    }
}
