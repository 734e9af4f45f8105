//! CSV, with or without a header line, read the way Spark (and so Model Monitor) reads it:
//! headerless columns are `_c0, _c1, …`, an empty field is null.
//!
//! The parser reads through [`CappedLines`], which keeps memory bounded by
//! `limits.max_record_bytes`: a physical line over it is skipped and the parser sees an empty
//! line in its place (so line numbers stay right); a record that runs on past it across lines
//! (an unclosed quote) is skipped, and parsing starts afresh at the next line.

use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::sync::Arc;

use arrow::array::{ArrayRef, StringBuilder};
use arrow::datatypes::SchemaRef;
use csv::ByteRecord;

use super::lines::{LineRead, read_line, reject_too_long};
use super::table::{batch, utf8_schema};
use super::{Chunk, DecodeError, DecodeOptions, Decoder, LimitExceeded, Quarantine, RejectReason};

pub struct CsvDecoder {
    reader: csv::Reader<CappedLines>,
    source_name: String,
    chunk_rows: usize,
    max_columns: usize,
    header: bool,
    /// Known once the header (or, without one, the first record) has been read.
    schema: Option<SchemaRef>,
    record: ByteRecord,
    done: bool,
    /// Lines before the parser's first line: after a runaway record the parser is replaced by
    /// a fresh one, whose line numbers start again at 1.
    line_offset: u64,
}

impl CsvDecoder {
    pub fn new(
        reader: Box<dyn BufRead + Send>,
        source_name: String,
        options: &DecodeOptions,
    ) -> Self {
        Self {
            reader: parser(CappedLines::new(reader, options.limits.max_record_bytes)),
            source_name,
            chunk_rows: options.chunk_rows.max(1),
            max_columns: options.limits.max_columns,
            header: options.header,
            schema: None,
            record: ByteRecord::new(),
            done: false,
            line_offset: 0,
        }
    }

    /// The next record into `self.record`; `false` (and `done`) at the end of the object.
    /// Lines and records over the record limit are counted in `quarantine` and skipped.
    fn read_record(&mut self, quarantine: &mut Quarantine) -> Result<bool, DecodeError> {
        loop {
            let read = self.reader.read_byte_record(&mut self.record);
            let lines = self.reader.get_mut();
            for (line, bytes, prefix) in lines.too_long.drain(..) {
                reject_too_long(
                    quarantine,
                    &self.source_name,
                    line,
                    bytes,
                    lines.max_record_bytes,
                    &prefix,
                );
            }
            let error = match read {
                Ok(read) => {
                    let next_record = self.reader.position().byte();
                    self.reader.get_mut().record_start = next_record;
                    self.done = !read;
                    return Ok(read);
                }
                Err(error) => error,
            };
            let runaway = matches!(error.kind(), csv::ErrorKind::Io(error)
                if error.get_ref().is_some_and(|e| e.is::<RunawayRecord>()));
            if !runaway {
                return Err(self.error(error));
            }
            // The record is dropped with the parser that holds it; a fresh parser takes over
            // from the next line.
            let start = self.line(&self.record);
            let mut lines = std::mem::replace(
                &mut self.reader,
                parser(CappedLines::new(Box::new(std::io::empty()), 1)),
            )
            .into_inner();
            let detail = format!(
                "a record still open after {} bytes (at line {}), more than \
                 limits.max_record_bytes ({}); an unclosed quote? Skipped; reading goes on \
                 from line {}",
                lines.handed - lines.record_start,
                lines.lines_read,
                lines.max_record_bytes,
                lines.lines_read + 1
            );
            quarantine.reject(
                &self.source_name,
                start,
                RejectReason::RecordTooLarge,
                &detail,
                b"",
            );
            self.line_offset = lines.lines_read;
            // The rest of the line the record was stopped in belongs to it.
            lines.at = lines.line.len();
            lines.handed = 0;
            lines.record_start = 0;
            self.reader = parser(lines);
        }
    }

    /// The line of the object where `record` starts.
    /// Quarantines the current record.
    fn reject(&self, quarantine: &mut Quarantine, reason: RejectReason, detail: &str) {
        let line = self.line(&self.record);
        // The reader keeps fields, not the raw line; joined with commas they show what was read.
        let raw = self.record.iter().collect::<Vec<_>>().join(&b","[..]);
        quarantine.reject(&self.source_name, line, reason, detail, &raw);
    }

    fn line(&self, record: &ByteRecord) -> u64 {
        self.line_offset + record.position().map_or(0, |p| p.line())
    }

    fn error(&self, error: csv::Error) -> DecodeError {
        match error.into_kind() {
            csv::ErrorKind::Io(error) => DecodeError::io(&self.source_name, error),
            kind => DecodeError::Malformed {
                source_name: self.source_name.clone(),
                message: format!("{kind:?}"),
            },
        }
    }
}

fn parser(lines: CappedLines) -> csv::Reader<CappedLines> {
    // Flexible so that a record with the wrong number of fields is ours to count and skip,
    // instead of an error that would end the object.
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(lines)
}

/// The text under the CSV parser, read one physical line at a time, each at most
/// `max_record_bytes` long. A longer line is read past without being held; the parser gets an
/// empty line instead (which it skips) and the line is listed in `too_long`. A read while
/// the parser's current record already holds more than `max_record_bytes` fails with
/// [`RunawayRecord`].
struct CappedLines {
    reader: Box<dyn BufRead + Send>,
    max_record_bytes: u64,
    /// The line being handed out, and how much of it has been.
    line: Vec<u8>,
    at: usize,
    /// Lines read so far, over the limit or not: the object's line number of `line`.
    lines_read: u64,
    /// (line number, full length, first bytes) of each line skipped as too long, until the
    /// decoder takes them.
    too_long: Vec<(u64, u64, Vec<u8>)>,
    /// Bytes handed to the current parser, and where in them its current record starts (set
    /// by the decoder from the parser's position after each record).
    handed: u64,
    record_start: u64,
    /// A read error held back while the bytes before it were handed out.
    failed: Option<std::io::Error>,
}

/// A CSV record that ran on past the record limit without ending.
#[derive(Debug, thiserror::Error)]
#[error("a CSV record ran on past limits.max_record_bytes")]
struct RunawayRecord;

impl CappedLines {
    fn new(reader: Box<dyn BufRead + Send>, max_record_bytes: u64) -> Self {
        Self {
            reader,
            max_record_bytes: max_record_bytes.max(1),
            line: Vec::new(),
            at: 0,
            lines_read: 0,
            too_long: Vec::new(),
            handed: 0,
            record_start: 0,
            failed: None,
        }
    }

    /// The next line into `line`; `false` at the end of the text.
    fn next_line(&mut self) -> std::io::Result<bool> {
        self.line.clear();
        self.at = 0;
        match read_line(&mut *self.reader, &mut self.line, self.max_record_bytes)? {
            LineRead::End => return Ok(false),
            LineRead::Fits => {}
            LineRead::TooLong { bytes } => {
                self.too_long
                    .push((self.lines_read + 1, bytes, std::mem::take(&mut self.line)));
                self.line.push(b'\n');
            }
        }
        self.lines_read += 1;
        Ok(true)
    }
}

impl Read for CappedLines {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        // The parser asks for more only once it has taken everything handed out, so here
        // `handed - record_start` is exactly what its unfinished record holds (the slack is a
        // line terminator).
        let limit = self.max_record_bytes.saturating_add(2);
        if self.handed - self.record_start > limit {
            return Err(std::io::Error::other(RunawayRecord));
        }
        let mut n = 0;
        while n < buf.len() {
            if self.at == self.line.len() {
                // Past the limit for the current record (if it has not ended in what this read
                // hands out): stop at this line, so a runaway is caught at the next read with
                // no later line already given to it.
                if n > 0 && self.handed + n as u64 - self.record_start > limit {
                    break;
                }
                match self.next_line() {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(error) if n == 0 => return Err(error),
                    // Hand out what is here; the error comes with the next read.
                    Err(error) => {
                        self.failed = Some(error);
                        break;
                    }
                }
            }
            let take = (buf.len() - n).min(self.line.len() - self.at);
            buf[n..n + take].copy_from_slice(&self.line[self.at..self.at + take]);
            self.at += take;
            n += take;
        }
        self.handed += n as u64;
        Ok(n)
    }
}

impl Decoder for CsvDecoder {
    fn next_chunk(&mut self, quarantine: &mut Quarantine) -> Result<Option<Chunk>, DecodeError> {
        if self.header && self.schema.is_none() && !self.done && self.read_record(quarantine)? {
            if self.record.len() > self.max_columns {
                return Err(DecodeError::Limit {
                    source_name: self.source_name.clone(),
                    error: LimitExceeded {
                        key: "limits.max_columns",
                        message: format!(
                            "the header has {} fields, more than limits.max_columns ({}); not \
                             read (raise limits.max_columns in the config to read it)",
                            self.record.len(),
                            self.max_columns
                        ),
                    },
                });
            }
            self.schema = Some(header_schema(&self.record));
        }
        while !self.done {
            let mut builders: Vec<StringBuilder> = Vec::new();
            let mut rows = 0;
            for _ in 0..self.chunk_rows {
                if !self.read_record(quarantine)? {
                    break;
                }
                if self.schema.is_none() && self.record.len() > self.max_columns {
                    // The first record would set the columns: too wide, it is skipped and the
                    // next one tried.
                    let detail = format!(
                        "{} fields, more than limits.max_columns ({})",
                        self.record.len(),
                        self.max_columns
                    );
                    self.reject(quarantine, RejectReason::TooManyColumns, &detail);
                    continue;
                }
                let schema = self.schema.get_or_insert_with(|| {
                    let names: Vec<String> =
                        (0..self.record.len()).map(|i| format!("_c{i}")).collect();
                    utf8_schema(&names)
                });
                let width = schema.fields().len();
                if self.record.len() != width {
                    let detail = format!("{} fields, expected {width}", self.record.len());
                    self.reject(quarantine, RejectReason::WrongColumnCount, &detail);
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
    // Counted once, not per name: a header of many thousand fields is quadratic otherwise.
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for name in &lower {
        *copies.entry(name).or_insert(0) += 1;
    }
    let safe: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            if name.is_empty() {
                format!("_c{i}")
            } else if copies[lower[i].as_str()] > 1 {
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
    use crate::decode::{DecodeOptions, InputFormat, Limits, RejectReason};

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

    #[test]
    fn rows_wider_than_max_columns_are_refused() {
        let narrow = |header| DecodeOptions {
            limits: Limits {
                max_columns: 3,
                ..Limits::default()
            },
            ..csv_options(header, 10)
        };
        // Without a header the first record sets the columns: a too-wide one is skipped.
        let (chunks, quarantine) = decode("1,2,3,4\n5,6\n7,8\n", &narrow(false));
        assert_eq!(names(&chunks[0].features), ["_c0", "_c1"]);
        assert_eq!(chunks[0].features.num_rows(), 2);
        let reject = quarantine.recent().next().unwrap();
        assert_eq!(
            (reject.line, reject.reason),
            (1, RejectReason::TooManyColumns)
        );
        assert_eq!(reject.detail, "4 fields, more than limits.max_columns (3)");

        // A header too wide fails the object: every row would be misread.
        let mut quarantine = crate::decode::Quarantine::in_memory();
        let reader = Box::new(std::io::Cursor::new(b"a,b,c,d\n1,2,3,4\n".to_vec()));
        let decoder = crate::decode::open_reader(reader, "wide.csv".into(), &narrow(true));
        match crate::decode::testing::try_drain(decoder, &mut quarantine) {
            Err(crate::decode::DecodeError::Limit { error, .. }) => {
                assert_eq!(error.key, "limits.max_columns");
                assert!(error.message.contains("4 fields"), "{}", error.message);
            }
            other => panic!("expected a limit error, got {other:?}"),
        }
    }

    fn limited(max_record_bytes: u64) -> DecodeOptions {
        DecodeOptions {
            limits: Limits {
                max_record_bytes,
                ..Limits::default()
            },
            ..csv_options(true, 100)
        }
    }

    #[test]
    fn a_line_over_the_record_limit_is_skipped_and_line_numbers_stay_right() {
        let long = "7".repeat(1 << 20);
        let input = format!("a,b\n1,2\n{long},{long}\n3,4\n5\n6,\"x\ny\"\n");
        let (chunks, quarantine) = decode(&input, &limited(1024));
        let rejected: Vec<_> = quarantine.recent().map(|r| (r.line, r.reason)).collect();
        assert_eq!(
            rejected,
            [
                (3, RejectReason::RecordTooLarge),
                (5, RejectReason::WrongColumnCount)
            ]
        );
        let detail = &quarantine.recent().next().unwrap().detail;
        assert!(
            detail.contains(&format!("{} bytes", 2 * long.len() + 2)),
            "{detail}"
        );
        assert_eq!(
            rows(&chunks[0].features),
            [
                row(&[Some("1"), Some("2")]),
                row(&[Some("3"), Some("4")]),
                row(&[Some("6"), Some("x\ny")])
            ]
        );
    }

    #[test]
    fn a_record_left_open_past_the_limit_is_skipped_and_parsing_resumes() {
        // Line 3 opens a quote that never closes: without a limit the rest of the object
        // would become one field.
        let input = format!("a,b\n1,2\n\"open,3\n{}6\n7,8\n", "4,5\n".repeat(40));
        let (chunks, quarantine) = decode(&input, &limited(64));
        let rejected: Vec<_> = quarantine.recent().map(|r| (r.line, r.reason)).collect();
        assert_eq!(
            rejected,
            [
                (3, RejectReason::RecordTooLarge),
                (44, RejectReason::WrongColumnCount)
            ]
        );
        let detail = &quarantine.recent().next().unwrap().detail;
        assert!(detail.contains("unclosed quote"), "{detail}");
        let decoded = rows(&chunks[0].features);
        assert_eq!(decoded[0], row(&[Some("1"), Some("2")]));
        assert_eq!(decoded[decoded.len() - 1], row(&[Some("7"), Some("8")]));
        // Resumed at a line boundary within the 40 lines of "4,5".
        let resumed = decoded.len() - 2;
        assert!((20..40).contains(&resumed), "{resumed}");
        assert!(
            decoded[1..decoded.len() - 1]
                .iter()
                .all(|r| *r == row(&[Some("4"), Some("5")]))
        );

        // A quoted record spanning lines within the limit is untouched.
        let (chunks, quarantine) = decode("a,b\n\"x\ny\",1\n", &limited(64));
        assert_eq!(quarantine.total(), 0);
        assert_eq!(rows(&chunks[0].features), [row(&[Some("x\ny"), Some("1")])]);
    }
}
