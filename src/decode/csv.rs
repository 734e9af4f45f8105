//! CSV, with or without a header line, read the way Spark (and so Model Monitor) reads it:
//! headerless columns are `_c0, _c1, …`, an empty field is null.

use std::io::BufRead;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringBuilder};
use arrow::datatypes::SchemaRef;
use csv::ByteRecord;

use super::table::{batch, utf8_schema};
use super::{Chunk, DecodeError, DecodeOptions, Decoder, Quarantine, RejectReason};

pub struct CsvDecoder {
    reader: csv::Reader<Box<dyn BufRead + Send>>,
    source_name: String,
    chunk_rows: usize,
    header: bool,
    /// Known once the header (or, without one, the first record) has been read.
    schema: Option<SchemaRef>,
    record: ByteRecord,
    done: bool,
}

impl CsvDecoder {
    pub fn new(
        reader: Box<dyn BufRead + Send>,
        source_name: String,
        options: &DecodeOptions,
    ) -> Self {
        Self {
            // Flexible so that a record with the wrong number of fields is ours to count and
            // skip, instead of an error that would end the object.
            reader: csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(reader),
            source_name,
            chunk_rows: options.chunk_rows.max(1),
            header: options.header,
            schema: None,
            record: ByteRecord::new(),
            done: false,
        }
    }

    /// The next record into `self.record`; `false` (and `done`) at the end of the object.
    fn read_record(&mut self) -> Result<bool, DecodeError> {
        match self.reader.read_byte_record(&mut self.record) {
            Ok(read) => {
                self.done = !read;
                Ok(read)
            }
            Err(error) => Err(self.error(error)),
        }
    }

    fn error(&self, error: csv::Error) -> DecodeError {
        match error.into_kind() {
            csv::ErrorKind::Io(error) => DecodeError::Io {
                source_name: self.source_name.clone(),
                error,
            },
            kind => DecodeError::Malformed {
                source_name: self.source_name.clone(),
                message: format!("{kind:?}"),
            },
        }
    }
}

impl Decoder for CsvDecoder {
    fn next_chunk(&mut self, quarantine: &mut Quarantine) -> Result<Option<Chunk>, DecodeError> {
        if self.header && self.schema.is_none() && !self.done && self.read_record()? {
            self.schema = Some(header_schema(&self.record));
        }
        while !self.done {
            let mut builders: Vec<StringBuilder> = Vec::new();
            let mut rows = 0;
            for _ in 0..self.chunk_rows {
                if !self.read_record()? {
                    break;
                }
                let schema = self.schema.get_or_insert_with(|| {
                    let names: Vec<String> =
                        (0..self.record.len()).map(|i| format!("_c{i}")).collect();
                    utf8_schema(&names)
                });
                let width = schema.fields().len();
                if self.record.len() != width {
                    let line = self.record.position().map_or(0, |p| p.line());
                    // The reader keeps fields, not the raw line; joined with commas they show
                    // what was read.
                    let raw = self.record.iter().collect::<Vec<_>>().join(&b","[..]);
                    let detail = format!("{} fields, expected {width}", self.record.len());
                    quarantine.reject(
                        &self.source_name,
                        line,
                        RejectReason::WrongColumnCount,
                        &detail,
                        &raw,
                    );
                    continue;
                }
                if builders.is_empty() {
                    builders = (0..width).map(|_| StringBuilder::new()).collect();
                }
                for (builder, field) in builders.iter_mut().zip(self.record.iter()) {
                    if field.is_empty() {
                        builder.append_null();
                    } else {
                        // As Spark decodes text: invalid UTF-8 becomes U+FFFD, not an error.
                        builder.append_value(String::from_utf8_lossy(field));
                    }
                }
                rows += 1;
            }
            if let (Some(schema), true) = (&self.schema, rows > 0) {
                let arrays = builders
                    .iter_mut()
                    .map(|b| Arc::new(b.finish()) as ArrayRef)
                    .collect();
                return Ok(Some(Chunk {
                    features: batch(schema.clone(), arrays, rows),
                    events: None,
                }));
            }
        }
        Ok(None)
    }
}

/// Spark's `CSVUtils.makeSafeHeader`: an empty name becomes `_c{i}`, and every copy of a
/// name that occurs more than once (case-insensitively) gets its index appended.
fn header_schema(record: &ByteRecord) -> SchemaRef {
    let names: Vec<String> = record
        .iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let lower: Vec<String> = names.iter().map(|n| n.to_lowercase()).collect();
    let safe: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            if name.is_empty() {
                format!("_c{i}")
            } else if lower.iter().filter(|l| **l == lower[i]).count() > 1 {
                format!("{name}{i}")
            } else {
                name.clone()
            }
        })
        .collect();
    utf8_schema(&safe)
}

#[cfg(test)]
mod tests {
    use crate::decode::testing::{decode, names, options, row, rows};
    use crate::decode::{DecodeOptions, InputFormat, RejectReason};

    fn csv_options(header: bool, chunk_rows: usize) -> DecodeOptions {
        DecodeOptions {
            header,
            chunk_rows,
            ..options(InputFormat::Csv)
        }
    }

    #[test]
    fn header_names_columns_and_empty_fields_are_null() {
        let input = "age,score,city\n31,2.0,\n\"4,5\",,\"New\nYork\"\n";
        let (chunks, quarantine) = decode(input, &csv_options(true, 100));
        assert_eq!(quarantine.total(), 0);
        assert_eq!(names(&chunks[0].features), ["age", "score", "city"]);
        assert_eq!(
            rows(&chunks[0].features),
            [
                row(&[Some("31"), Some("2.0"), None]),
                row(&[Some("4,5"), None, Some("New\nYork")]),
            ]
        );
        assert!(chunks[0].events.is_none());
    }

    #[test]
    fn without_header_columns_are_positional() {
        let (chunks, _) = decode("1,2\r\n\r\n3,4\r\n", &csv_options(false, 100));
        assert_eq!(names(&chunks[0].features), ["_c0", "_c1"]);
        assert_eq!(
            rows(&chunks[0].features),
            [row(&[Some("1"), Some("2")]), row(&[Some("3"), Some("4")])]
        );
    }

    #[test]
    fn header_names_are_made_safe_like_spark() {
        let (chunks, _) = decode("\u{feff}a,A,,b\n1,2,3,4\n", &csv_options(true, 100));
        assert_eq!(names(&chunks[0].features), ["a0", "A1", "_c2", "b"]);
    }

    #[test]
    fn records_with_the_wrong_field_count_are_skipped_with_their_line() {
        // Line 2 opens a quoted field that ends on line 3, so the bad record after it is line 4.
        let input = "a,b\n\"multi\nline\",1\n1,2,3\n4\n5,6\n";
        let (chunks, quarantine) = decode(input, &csv_options(true, 100));
        let rejected: Vec<_> = quarantine.recent().map(|r| (r.line, r.reason)).collect();
        assert_eq!(
            rejected,
            [
                (4, RejectReason::WrongColumnCount),
                (5, RejectReason::WrongColumnCount)
            ]
        );
        assert_eq!(
            rows(&chunks[0].features),
            [
                row(&[Some("multi\nline"), Some("1")]),
                row(&[Some("5"), Some("6")])
            ]
        );

        // Without a header the first record sets the width.
        let (chunks, quarantine) = decode("1,2\n3\n4,5\n", &csv_options(false, 100));
        assert_eq!(quarantine.counts()[&RejectReason::WrongColumnCount], 1);
        assert_eq!(
            rows(&chunks[0].features),
            [row(&[Some("1"), Some("2")]), row(&[Some("4"), Some("5")])]
        );
    }

    #[test]
    fn chunks_hold_at_most_chunk_rows_records() {
        let (chunks, _) = decode("h\n1\n2\n3\n", &csv_options(true, 2));
        let sizes: Vec<usize> = chunks.iter().map(|c| c.features.num_rows()).collect();
        assert_eq!(sizes, [2, 1]);
        assert_eq!(names(&chunks[1].features), ["h"]);
        assert!(decode("h\n", &csv_options(true, 2)).0.is_empty());
    }
}
