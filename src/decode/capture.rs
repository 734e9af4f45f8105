//! SageMaker data capture JSON Lines (FORMATS.md §1.3): one inference event per line, its
//! request and response payloads carried as text (`CSV`, `JSON`) or base64 (`BASE64`).
//!
//! A feature row is the output payload's columns followed by the input payload's (Model
//! Monitor's `output_columns_position = START`), or the reverse for `End`. A payload may hold
//! several rows (several CSV lines, or JSON Lines); row `i` of the output pairs with row `i` of
//! the input, and every row repeats its event's metadata in [`Chunk::events`].
//!
//! This is the hot path, so a chunk's lines are read sequentially, parsed in parallel with
//! borrowed strings (a CSV payload without quotes or escapes is never copied until it lands in
//! an Arrow array), and then checked and assembled in input order.

use std::borrow::Cow;
use std::io::BufRead;
use std::sync::{Arc, LazyLock};

use arrow::array::{ArrayBuilder, ArrayRef, Int64Builder, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use base64::Engine;
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::json::{Flat, NameTemplate, Text, flatten_object, is_container, scalar_text};
use super::lines::{LineReader, Lines};
use super::table::{self, Columns, RowRef, Run};
use super::{
    Chunk, DecodeError, DecodeOptions, Decoder, EVENT_ID, INFERENCE_ID, INFERENCE_TIME,
    OutputColumnsPosition, Quarantine, RejectReason,
};

pub struct CaptureDecoder {
    lines: LineReader,
    state: State,
}

/// Everything but the reader, so a batch can be decoded while the next one is read.
struct State {
    source_name: String,
    settings: Settings,
    columns: Columns,
    /// The first accepted record's input and output shapes. Columns are matched by position
    /// or name, so a record shaped differently on either side would misalign them.
    first_input: Option<Shape>,
    first_output: Option<Shape>,
}

/// What the parallel parse needs from the options.
struct Settings {
    template: NameTemplate,
    output_first: bool,
    with_events: bool,
}

impl CaptureDecoder {
    pub fn new(
        reader: Box<dyn BufRead + Send>,
        source_name: String,
        options: &DecodeOptions,
    ) -> Self {
        Self {
            lines: LineReader::new(reader, options.chunk_rows, options.limits.max_record_bytes),
            state: State {
                source_name,
                settings: Settings {
                    template: NameTemplate::parse(&options.array_element_name)
                        .with_limits(&options.limits),
                    output_first: options.output_columns_position == OutputColumnsPosition::Start,
                    with_events: !options.without_events,
                },
                columns: Columns::new(options.limits.max_columns),
                first_input: None,
                first_output: None,
            },
        }
    }
}

impl Decoder for CaptureDecoder {
    fn next_chunk(&mut self, quarantine: &mut Quarantine) -> Result<Option<Chunk>, DecodeError> {
        let state = &mut self.state;
        loop {
            match self
                .lines
                .with_batch(|lines| state.decode(lines, quarantine))
            {
                Ok(Some(Some(chunk))) => return Ok(Some(chunk)),
                // Every record of the batch was rejected: read on.
                Ok(Some(None)) => {}
                Ok(None) => return Ok(None),
                Err(error) => return Err(DecodeError::io(&state.source_name, error)),
            }
        }
    }
}

impl State {
    fn decode(&mut self, lines: &Lines, quarantine: &mut Quarantine) -> Option<Chunk> {
        lines.reject_too_long(&self.source_name, quarantine);
        let settings = &self.settings;
        let parsed: Vec<Parsed> = lines
            .par_chunks(TASK_LINES)
            .map(|lines| Parsed::new(lines, settings))
            .collect();

        let mut rows = Vec::with_capacity(lines.len());
        let mut events = (settings.with_events).then(|| EventsBuilder::with_capacity(lines.len()));
        let records = parsed
            .iter()
            .flat_map(|task| task.records.iter().map(move |r| (task, r)));
        for (i, (task, record)) in records.enumerate() {
            let misshapen = record.as_ref().ok().and_then(|record| {
                check_shape(record.input, self.first_input)
                    .and(check_shape(record.output, self.first_output))
                    .err()
            });
            match (record, misshapen.as_ref()) {
                (Ok(record), None) => {
                    self.first_input = self.first_input.or(record.input);
                    self.first_output = self.first_output.or(record.output);
                    let first_row = rows.len();
                    for row in 0..record.rows {
                        rows.push(record.row(row, &task.arena));
                        if let Some(events) = &mut events {
                            events.push(
                                &record.event_id,
                                record.inference_id.as_deref(),
                                record.inference_time,
                            );
                        }
                    }
                    self.columns.admit_record(
                        rows[first_row..].iter().copied(),
                        &self.source_name,
                        lines.get(i),
                        quarantine,
                    );
                }
                (Err(rejection), _) | (Ok(_), Some(rejection)) => {
                    let (line, raw) = lines.get(i);
                    quarantine.reject(
                        &self.source_name,
                        line,
                        rejection.reason,
                        &rejection.detail,
                        raw,
                    );
                }
            }
        }
        let features = (!rows.is_empty()).then(|| self.columns.batch(&rows));
        drop(rows);
        // Freeing a chunk's records is a measurable share of the work; spread it too.
        parsed.into_par_iter().for_each(drop);
        Some(Chunk {
            features: features?,
            events: events.map(EventsBuilder::finish),
        })
    }
}

// --- The record as written -------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaptureRecord<'a> {
    #[serde(borrow)]
    capture_data: Option<CaptureData<'a>>,
    #[serde(borrow)]
    event_metadata: Option<EventMetadata<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaptureData<'a> {
    #[serde(borrow)]
    endpoint_input: Option<Payload<'a>>,
    #[serde(borrow)]
    endpoint_output: Option<Payload<'a>>,
    /// Batch transform captures carry the output here (FORMATS.md §7.1).
    #[serde(borrow)]
    batch_transform_output: Option<Payload<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    #[serde(borrow)]
    observed_content_type: Option<Text<'a>>,
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
    #[serde(borrow)]
    inference_id: Option<Text<'a>>,
    #[serde(borrow)]
    inference_time: Option<Text<'a>>,
}

// --- The record as parsed --------------------------------------------------------------------

/// Lines per parallel parse task.
const TASK_LINES: usize = 128;

/// One task's records. Their values share one arena: a few allocations per task rather than
/// several per record, which matters at a million records a second.
struct Parsed<'a> {
    arena: Flat<'a>,
    records: Vec<Result<Record<'a>, Rejection>>,
}

impl<'a> Parsed<'a> {
    fn new(lines: impl ExactSizeIterator<Item = &'a [u8]>, settings: &Settings) -> Self {
        // Room for a typical wide record's values; it grows for wider ones.
        let mut arena = Flat {
            keys: Vec::new(),
            values: Vec::with_capacity(lines.len() * 32),
        };
        let records = lines
            .map(|line| {
                let (values, keys) = (arena.values.len(), arena.keys.len());
                let record = parse_record(line, settings, &mut arena);
                if record.is_err() {
                    arena.values.truncate(values);
                    arena.keys.truncate(keys);
                }
                record
            })
            .collect();
        Self { arena, records }
    }
}

struct Record<'a> {
    event_id: Cow<'a, str>,
    inference_id: Option<Cow<'a, str>>,
    /// Seconds since the Unix epoch.
    inference_time: i64,
    input: Option<Shape>,
    output: Option<Shape>,
    /// The payloads in column order; both hold `rows` rows.
    first: Option<Cells>,
    second: Option<Cells>,
    rows: usize,
}

impl<'a> Record<'a> {
    /// Row `i`: the first payload's row `i`, then the second's, whose positions continue after
    /// the first's (as Spark names the columns of a headerless CSV of the concatenation).
    fn row<'r>(&self, i: usize, arena: &'r Flat<'a>) -> RowRef<'r, 'a> {
        let offset = self
            .first
            .as_ref()
            .and_then(|cells| cells.width)
            .unwrap_or(0);
        RowRef([
            self.first
                .as_ref()
                .map_or(Run::EMPTY, |cells| cells.row(i, 0, arena)),
            self.second
                .as_ref()
                .map_or(Run::EMPTY, |cells| cells.row(i, offset, arena)),
        ])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Csv,
    Json,
    Base64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Json,
}

/// How one side of a record lays out its columns.
#[derive(Debug, Clone, Copy)]
struct Shape {
    side: &'static str,
    encoding: Encoding,
    format: Format,
    /// See [`Cells::width`].
    width: Option<usize>,
}

/// Where one payload's rows sit in the task's arena.
struct Cells {
    /// Start of the payload's values in the arena.
    values: usize,
    /// Start of its keys (object rows only; their keys run in step with their values).
    keys: usize,
    rows: usize,
    /// Fields per row for positional rows (CSV, a JSON array or scalar), the same for every
    /// row; `None` for JSON objects, whose columns are matched by name.
    width: Option<usize>,
    /// Where each object row ends, relative to `values` (positional rows need only `width`).
    ends: Vec<usize>,
}

impl Cells {
    /// Rows pushed to `arena` from now on.
    fn start(arena: &Flat) -> Self {
        Self {
            values: arena.values.len(),
            keys: arena.keys.len(),
            rows: 0,
            width: None,
            ends: Vec::new(),
        }
    }

    /// Closes the row made of the values pushed since the last one; every row of a payload
    /// must have the first row's width, or its values would land in other columns.
    fn end_row(&mut self, arena: &Flat, positional: bool, side: &str) -> Result<(), Rejection> {
        let pushed = arena.values.len() - self.values;
        let start = self.ends.last().copied().unwrap_or(0) + self.width.unwrap_or(0) * self.rows;
        let width = positional.then(|| pushed - start);
        if self.rows > 0 && width != self.width {
            return Err(Rejection::new(
                RejectReason::WrongColumnCount,
                format!(
                    "{side}: row {} has {} but row 1 has {}",
                    self.rows + 1,
                    describe_width(width),
                    describe_width(self.width)
                ),
            ));
        }
        self.width = width;
        if !positional {
            self.ends.push(pushed);
        }
        self.rows += 1;
        Ok(())
    }

    fn row<'r, 'a>(&self, i: usize, offset: usize, arena: &'r Flat<'a>) -> Run<'r, 'a> {
        match self.width {
            Some(width) => Run::Positional {
                values: &arena.values[self.values + i * width..self.values + (i + 1) * width],
                offset,
            },
            None => {
                let start = if i == 0 { 0 } else { self.ends[i - 1] };
                let end = self.ends[i];
                Run::Named {
                    keys: &arena.keys[self.keys + start..self.keys + end],
                    values: &arena.values[self.values + start..self.values + end],
                }
            }
        }
    }
}

struct Rejection {
    reason: RejectReason,
    detail: String,
}

impl Rejection {
    fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }

    fn missing(field: &str) -> Self {
        Self::new(RejectReason::MissingField, format!("no {field}"))
    }
}

const INPUT: &str = "endpointInput";
const OUTPUT: &str = "endpointOutput";
const BATCH_OUTPUT: &str = "batchTransformOutput";

/// Parses one line, appending its payloads' values to `arena` (the caller rolls them back
/// when the record is rejected).
fn parse_record<'a>(
    line: &'a [u8],
    settings: &Settings,
    arena: &mut Flat<'a>,
) -> Result<Record<'a>, Rejection> {
    let bad_json = |e: &dyn std::fmt::Display| Rejection::new(RejectReason::BadJson, e.to_string());
    // Validating the line once is cheaper than serde_json validating each string in it.
    let line = std::str::from_utf8(line).map_err(|e| bad_json(&e))?;
    // The envelope goes through a SIMD parser (whether it beats serde_json here is not yet
    // measured cleanly: README "Performance"); a line it refuses is parsed again by
    // serde_json, whose message (and verdict) the quarantine has always carried.
    let record: CaptureRecord<'a> = match sonic_rs::from_str(line) {
        Ok(record) => record,
        Err(_) => serde_json::from_str(line).map_err(|e| bad_json(&e))?,
    };
    let capture = record
        .capture_data
        .ok_or_else(|| Rejection::missing("captureData"))?;
    let metadata = record
        .event_metadata
        .ok_or_else(|| Rejection::missing("eventMetadata"))?;
    let event_id = metadata
        .event_id
        .ok_or_else(|| Rejection::missing("eventMetadata.eventId"))?
        .0;
    let time = metadata
        .inference_time
        .ok_or_else(|| Rejection::missing("eventMetadata.inferenceTime"))?
        .0;
    let inference_time = chrono::DateTime::parse_from_rfc3339(&time)
        .map_err(|e| {
            Rejection::new(
                RejectReason::BadTime,
                format!("inferenceTime {time:?}: {e}"),
            )
        })?
        .timestamp();

    let output = match (capture.endpoint_output, capture.batch_transform_output) {
        (Some(payload), _) => Some((OUTPUT, payload)),
        (None, Some(payload)) => Some((BATCH_OUTPUT, payload)),
        (None, None) => None,
    };
    let input = capture.endpoint_input.map(|payload| (INPUT, payload));
    if input.is_none() && output.is_none() {
        return Err(Rejection::missing(
            "captureData.endpointInput or captureData.endpointOutput",
        ));
    }
    let output = output
        .map(|(side, payload)| decode_side(side, payload, settings, arena))
        .transpose()?;
    let input = input
        .map(|(side, payload)| decode_side(side, payload, settings, arena))
        .transpose()?;
    let input_shape = input.as_ref().map(|(shape, _)| *shape);
    let output_shape = output.as_ref().map(|(shape, _)| *shape);
    let (first, second) = if settings.output_first {
        (output, input)
    } else {
        (input, output)
    };
    if let (Some((first, first_cells)), Some((second, second_cells))) = (&first, &second)
        && first_cells.rows != second_cells.rows
    {
        return Err(Rejection::new(
            RejectReason::RowCountMismatch,
            format!(
                "{} holds {} rows but {} holds {}",
                first.side, first_cells.rows, second.side, second_cells.rows
            ),
        ));
    }
    let first = first.map(|(_, cells)| cells);
    let second = second.map(|(_, cells)| cells);
    let rows = first
        .as_ref()
        .or(second.as_ref())
        .map_or(0, |cells| cells.rows);
    if rows == 0 {
        return Err(Rejection::missing("rows in captureData (empty payload)"));
    }
    Ok(Record {
        event_id,
        inference_id: metadata.inference_id.map(|t| t.0),
        inference_time,
        input: input_shape,
        output: output_shape,
        first,
        second,
        rows,
    })
}

fn decode_side<'a>(
    side: &'static str,
    payload: Payload<'a>,
    settings: &Settings,
    arena: &mut Flat<'a>,
) -> Result<(Shape, Cells), Rejection> {
    let encoding_text = payload
        .encoding
        .ok_or_else(|| Rejection::missing(&format!("{side}.encoding")))?
        .0;
    let encoding = if encoding_text.eq_ignore_ascii_case("CSV") {
        Encoding::Csv
    } else if encoding_text.eq_ignore_ascii_case("JSON") {
        Encoding::Json
    } else if encoding_text.eq_ignore_ascii_case("BASE64") {
        Encoding::Base64
    } else {
        return Err(Rejection::new(
            RejectReason::UnsupportedEncoding,
            format!("{side}.encoding {encoding_text:?}"),
        ));
    };
    let data = payload
        .data
        .ok_or_else(|| Rejection::missing(&format!("{side}.data")))?
        .0;
    let (format, data) = match encoding {
        Encoding::Csv => (Format::Csv, data),
        Encoding::Json => (Format::Json, data),
        Encoding::Base64 => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data.as_bytes())
                .map_err(|e| {
                    Rejection::new(RejectReason::BadBase64, format!("{side}.data: {e}"))
                })?;
            let text = String::from_utf8(bytes).map_err(|_| {
                Rejection::new(
                    RejectReason::BadBase64,
                    format!("{side}.data does not decode to UTF-8 text"),
                )
            })?;
            let content_type = payload.observed_content_type.map(|t| t.0);
            (
                base64_format(content_type.as_deref(), &text),
                Cow::Owned(text),
            )
        }
    };
    let template = &settings.template;
    let cells = match data {
        Cow::Borrowed(text) => payload_rows(side, format, text, template, arena)?,
        // Escaped or decoded text lives only in this function, so its values are copied out.
        Cow::Owned(text) => {
            let mut local = Flat::default();
            let cells = payload_rows(side, format, &text, template, &mut local)?;
            let cells = Cells {
                values: arena.values.len(),
                keys: arena.keys.len(),
                ..cells
            };
            arena.keys.extend(local.keys);
            arena.values.extend(
                local
                    .values
                    .into_iter()
                    .map(|v| v.map(|v| Cow::Owned(v.into_owned()))),
            );
            cells
        }
    };
    let shape = Shape {
        side,
        encoding,
        format,
        width: cells.width,
    };
    Ok((shape, cells))
}

/// The payload format of BASE64 data follows its content type; SageMaker also base64-encodes
/// content types it was not told about (the real example in FORMATS.md §1.3 is JSON sent as
/// `text/html`), so otherwise the text itself decides.
fn base64_format(content_type: Option<&str>, text: &str) -> Format {
    let content_type = content_type.unwrap_or_default().to_ascii_lowercase();
    if content_type.contains("csv") {
        Format::Csv
    } else if content_type.contains("json") || text.trim_start().starts_with(['{', '[']) {
        Format::Json
    } else {
        Format::Csv
    }
}

fn describe_width(width: Option<usize>) -> String {
    match width {
        Some(n) => format!("{n} fields"),
        None => "a JSON object".to_string(),
    }
}

fn payload_rows<'t>(
    side: &str,
    format: Format,
    text: &'t str,
    template: &NameTemplate,
    arena: &mut Flat<'t>,
) -> Result<Cells, Rejection> {
    match format {
        Format::Csv => csv_rows(side, text, arena),
        Format::Json => json_rows(side, text, template, arena),
    }
}

/// One row per non-empty line; an empty field is null, as Spark reads CSV.
fn csv_rows<'t>(side: &str, text: &'t str, arena: &mut Flat<'t>) -> Result<Cells, Rejection> {
    // Without quotes every value borrows from the record, and one SIMD scan for separators
    // does all the splitting; a quote anywhere hands the payload to the full CSV parser.
    let bytes = text.as_bytes();
    let mut cells = Cells::start(arena);
    let field = |start: usize, end: usize| (start < end).then(|| Cow::Borrowed(&text[start..end]));
    let (mut line_start, mut field_start) = (0, 0);
    let separators = memchr::memchr3_iter(b',', b'\n', b'"', bytes).chain([bytes.len()]);
    for i in separators {
        match bytes.get(i) {
            Some(b',') => {
                arena.values.push(field(field_start, i));
                field_start = i + 1;
            }
            Some(b'"') => {
                arena.values.truncate(cells.values);
                return quoted_csv_rows(side, text, arena);
            }
            _ => {
                let end = if i > field_start && bytes[i - 1] == b'\r' {
                    i - 1
                } else {
                    i
                };
                if line_start < end {
                    arena.values.push(field(field_start, end));
                    cells.end_row(arena, true, side)?;
                }
                line_start = i + 1;
                field_start = i + 1;
            }
        }
    }
    Ok(cells)
}

fn quoted_csv_rows(side: &str, text: &str, arena: &mut Flat) -> Result<Cells, Rejection> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut record = csv::StringRecord::new();
    let mut cells = Cells::start(arena);
    // Reading from memory cannot fail, and the text is already UTF-8.
    while let Ok(true) = reader.read_record(&mut record) {
        for value in record.iter() {
            arena
                .values
                .push((!value.is_empty()).then(|| Cow::Owned(value.to_string())));
        }
        cells.end_row(arena, true, side)?;
    }
    Ok(cells)
}

/// One row per JSON value (JSON Lines, or a single document across several lines): an object
/// is flattened into named columns, an array of scalars or a lone scalar gives positional ones.
fn json_rows<'t>(
    side: &str,
    text: &'t str,
    template: &NameTemplate,
    arena: &mut Flat<'t>,
) -> Result<Cells, Rejection> {
    let bad =
        |e: serde_json::Error| Rejection::new(RejectReason::BadJson, format!("{side}.data: {e}"));
    let mut cells = Cells::start(arena);
    for value in serde_json::Deserializer::from_str(text).into_iter::<&RawValue>() {
        let value = value.map_err(bad)?;
        match value.get().as_bytes().first() {
            Some(b'{') => {
                flatten_object(value, template, arena).map_err(bad)?;
                cells.end_row(arena, false, side)?;
            }
            Some(b'[') => {
                let elements: Vec<&RawValue> = serde_json::from_str(value.get()).map_err(bad)?;
                for element in elements {
                    // Model Monitor needs flat rows; a record preprocessor is the tool for more.
                    if is_container(element) {
                        return Err(Rejection::new(
                            RejectReason::BadJson,
                            format!("{side}.data: a top-level JSON array may hold only scalars"),
                        ));
                    }
                    arena.values.push(scalar_text(element).map_err(bad)?);
                }
                cells.end_row(arena, true, side)?;
            }
            _ => {
                arena.values.push(scalar_text(value).map_err(bad)?);
                cells.end_row(arena, true, side)?;
            }
        }
    }
    Ok(cells)
}

/// A later record must keep the first accepted record's encoding, format and width per side.
fn check_shape(shape: Option<Shape>, first: Option<Shape>) -> Result<(), Rejection> {
    let (Some(shape), Some(first)) = (shape, first) else {
        return Ok(());
    };
    if (shape.encoding, shape.format) != (first.encoding, first.format) {
        return Err(Rejection::new(
            RejectReason::MixedEncoding,
            format!(
                "{} is {:?} ({:?}) but the first record's was {:?} ({:?})",
                shape.side, shape.encoding, shape.format, first.encoding, first.format
            ),
        ));
    }
    if shape.width != first.width {
        return Err(Rejection::new(
            RejectReason::WrongColumnCount,
            format!(
                "{} has {} per row but the first record's had {}",
                shape.side,
                describe_width(shape.width),
                describe_width(first.width)
            ),
        ));
    }
    Ok(())
}

// --- Events ----------------------------------------------------------------------------------

static EVENTS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(EVENT_ID, DataType::Utf8, false),
        Field::new(INFERENCE_ID, DataType::Utf8, true),
        Field::new(INFERENCE_TIME, DataType::Int64, false),
    ]))
});

struct EventsBuilder {
    event_id: StringBuilder,
    inference_id: StringBuilder,
    inference_time: Int64Builder,
}

impl EventsBuilder {
    fn with_capacity(rows: usize) -> Self {
        Self {
            event_id: StringBuilder::with_capacity(rows, rows * 36),
            inference_id: StringBuilder::with_capacity(rows, 0),
            inference_time: Int64Builder::with_capacity(rows),
        }
    }

    fn push(&mut self, event_id: &str, inference_id: Option<&str>, inference_time: i64) {
        self.event_id.append_value(event_id);
        self.inference_id.append_option(inference_id);
        self.inference_time.append_value(inference_time);
    }

    fn finish(mut self) -> RecordBatch {
        let rows = self.inference_time.len();
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.inference_id.finish()),
            Arc::new(self.inference_time.finish()),
        ];
        table::batch(EVENTS_SCHEMA.clone(), arrays, rows)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::decode::testing::{decode, events, names, options, row, rows};
    use crate::decode::{InputFormat, RejectReason};

    /// 2022-04-18T00:21:48Z
    const T0: i64 = 1_650_241_308;

    fn side(encoding: &str, content_type: &str, data: &str) -> serde_json::Value {
        json!({"observedContentType": content_type, "mode": "X", "data": data, "encoding": encoding})
    }

    fn line(
        input: Option<serde_json::Value>,
        output: Option<serde_json::Value>,
        event_id: &str,
    ) -> String {
        let mut capture = serde_json::Map::new();
        if let Some(input) = input {
            capture.insert("endpointInput".into(), input);
        }
        if let Some(output) = output {
            capture.insert("endpointOutput".into(), output);
        }
        json!({
            "captureData": capture,
            "eventMetadata": {"eventId": event_id, "inferenceTime": "2022-04-18T00:21:48Z"},
            "eventVersion": "0"
        })
        .to_string()
    }

    fn csv_line(input: &str, output: &str, event_id: &str) -> String {
        line(
            Some(side("CSV", "text/csv", input)),
            Some(side("CSV", "text/csv; charset=utf-8", output)),
            event_id,
        )
    }

    fn capture_options(position: OutputColumnsPosition) -> DecodeOptions {
        DecodeOptions {
            output_columns_position: position,
            ..options(InputFormat::Capture)
        }
    }

    /// The issue-18 shape: a JSON key that differs on every record. Past `limits.max_columns`
    /// the new keys are refused, counted per record, and every record keeps its other values.
    #[test]
    fn a_key_per_record_stops_at_max_columns_and_records_keep_their_other_values() {
        let records = 40;
        let input: Vec<String> = (0..records)
            .map(|i| {
                let payload = json!({"a": 1, "b": 1.5, format!("k{i}"): i}).to_string();
                let output = side("JSON", "application/json", r#"{"score": 0.5}"#);
                line(
                    Some(side("JSON", "application/json", &payload)),
                    Some(output),
                    &format!("e{i}"),
                )
            })
            .collect();
        let options = DecodeOptions {
            chunk_rows: 16,
            limits: crate::decode::Limits {
                max_columns: 5,
                ..Default::default()
            },
            ..capture_options(OutputColumnsPosition::Start)
        };
        let (chunks, quarantine) = decode(&input.join("\n"), &options);
        let last = &chunks.last().unwrap().features;
        assert_eq!(names(last), ["score", "a", "b", "k0", "k1"]);
        let kept: usize = chunks.iter().map(|c| c.features.num_rows()).sum();
        assert_eq!(kept, records);
        for chunk in &chunks {
            for values in rows(&chunk.features) {
                assert_eq!(values[..3], row(&[Some("0.5"), Some("1"), Some("1.5")]));
            }
        }
        assert_eq!(quarantine.counts()[&RejectReason::TooManyColumns], 38);
        let reject = quarantine.recent().last().unwrap();
        assert_eq!(reject.line, 40);
        assert!(
            reject.detail.contains("limits.max_columns (5)"),
            "{}",
            reject.detail
        );
    }

    #[test]
    fn csv_payloads_output_first_with_events() {
        let input = [
            csv_line("1,2.0,,x", "0.5", "e1"),
            // The real record shape, with an inferenceId and fractional seconds.
            r#"{"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT","data":"3,4,5,\"y,z\"","encoding":"CSV"},"endpointOutput":{"observedContentType":"text/csv; charset=utf-8","mode":"OUTPUT","data":"0.25","encoding":"CSV"}},"eventMetadata":{"eventId":"e2","inferenceId":"i2","inferenceTime":"2022-04-18T00:21:49.750Z"},"eventVersion":"0"}"#.to_string(),
        ]
        .join("\n");
        let (chunks, quarantine) = decode(&input, &capture_options(OutputColumnsPosition::Start));
        assert_eq!(quarantine.total(), 0);
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            names(&chunks[0].features),
            ["_c0", "_c1", "_c2", "_c3", "_c4"]
        );
        assert_eq!(
            rows(&chunks[0].features),
            [
                row(&[Some("0.5"), Some("1"), Some("2.0"), None, Some("x")]),
                row(&[Some("0.25"), Some("3"), Some("4"), Some("5"), Some("y,z")]),
            ]
        );
        assert_eq!(
            events(&chunks[0]),
            [
                ("e1".into(), None, T0),
                ("e2".into(), Some("i2".into()), T0 + 1)
            ]
        );
        assert_eq!(
            names(chunks[0].events.as_ref().unwrap()),
            [EVENT_ID, INFERENCE_ID, INFERENCE_TIME]
        );
    }

    #[test]
    fn output_columns_at_the_end() {
        let (chunks, _) = decode(
            &csv_line("1,2.0,,x", "0.5", "e1"),
            &capture_options(OutputColumnsPosition::End),
        );
        assert_eq!(
            rows(&chunks[0].features),
            [row(&[Some("1"), Some("2.0"), None, Some("x"), Some("0.5")])]
        );
    }

    #[test]
    fn json_payloads_are_flattened_and_keep_number_text() {
        let input = line(
            Some(side(
                "JSON",
                "application/json",
                r#"{"instances": [1.0, 2.0, 5]}"#,
            )),
            Some(side(
                "JSON",
                "application/json",
                r#"{"predictions": {"score": 0.50, "label": "yes"}}"#,
            )),
            "e1",
        );
        let (chunks, _) = decode(&input, &capture_options(OutputColumnsPosition::Start));
        assert_eq!(
            names(&chunks[0].features),
            [
                "predictions.score",
                "predictions.label",
                "instances_0",
                "instances_1",
                "instances_2"
            ]
        );
        assert_eq!(
            rows(&chunks[0].features),
            [row(&[
                Some("0.50"),
                Some("yes"),
                Some("1.0"),
                Some("2.0"),
                Some("5")
            ])]
        );
    }

    #[test]
    fn json_arrays_and_scalars_are_positional_and_template_names_elements() {
        let input = line(
            Some(side("JSON", "application/json", "[1, 2.5, null]")),
            Some(side("JSON", "application/json", "0.75")),
            "e1",
        );
        let (chunks, _) = decode(&input, &capture_options(OutputColumnsPosition::Start));
        assert_eq!(names(&chunks[0].features), ["_c0", "_c1", "_c2", "_c3"]);
        assert_eq!(
            rows(&chunks[0].features),
            [row(&[Some("0.75"), Some("1"), Some("2.5"), None])]
        );

        let input = line(
            Some(side("JSON", "application/json", r#"{"f": [7, 8]}"#)),
            None,
            "e1",
        );
        let options = DecodeOptions {
            array_element_name: "{key}[{index}]".into(),
            ..capture_options(OutputColumnsPosition::Start)
        };
        let (chunks, _) = decode(&input, &options);
        assert_eq!(names(&chunks[0].features), ["f[0]", "f[1]"]);
    }

    #[test]
    fn several_rows_in_one_payload_repeat_the_event() {
        // FORMATS.md §1.3: two JSON Lines rows in one `data`.
        let input = line(
            Some(side(
                "JSON",
                "application/jsonlines",
                "{\"features\":[28,2]}\n{\"features\":[43,3]}",
            )),
            Some(side(
                "JSON",
                "application/jsonlines",
                "{\"predicted_label\":0,\"score\":0.25}\n{\"predicted_label\":1,\"score\":0.75}\n",
            )),
            "e1",
        );
        let csv = csv_line("1,2\r\n3,4\n", "0.1\n0.9", "e2");
        let (chunks, quarantine) = decode(&input, &capture_options(OutputColumnsPosition::Start));
        assert_eq!(quarantine.total(), 0);
        assert_eq!(
            names(&chunks[0].features),
            ["predicted_label", "score", "features_0", "features_1"]
        );
        assert_eq!(
            rows(&chunks[0].features),
            [
                row(&[Some("0"), Some("0.25"), Some("28"), Some("2")]),
                row(&[Some("1"), Some("0.75"), Some("43"), Some("3")]),
            ]
        );
        assert_eq!(
            events(&chunks[0]),
            [("e1".into(), None, T0), ("e1".into(), None, T0)]
        );

        let (chunks, _) = decode(&csv, &capture_options(OutputColumnsPosition::Start));
        assert_eq!(
            rows(&chunks[0].features),
            [
                row(&[Some("0.1"), Some("1"), Some("2")]),
                row(&[Some("0.9"), Some("3"), Some("4")]),
            ]
        );
    }

    #[test]
    fn base64_payloads_follow_content_type_or_content() {
        // The output is the real record from FORMATS.md §1.3: JSON sent as text/html.
        let input = [
            line(
                Some(side("BASE64", "text/csv", "MSwy")),
                Some(side(
                    "BASE64",
                    "text/html; charset=utf-8",
                    "eyJtZWRpYW5faG91c2VfdmFsdWUiOiBbNDc4MDQ2LjY2LCAyMDY1NTEuMDFdfQ==",
                )),
                "e1",
            ),
            line(
                Some(side("BASE64", "text/csv", "Myw0")),
                Some(side(
                    "BASE64",
                    "application/json",
                    "eyJtZWRpYW5faG91c2VfdmFsdWUiOiBbMSwgMi4wXX0=",
                )),
                "e2",
            ),
        ]
        .join("\n");
        let (chunks, quarantine) = decode(&input, &capture_options(OutputColumnsPosition::Start));
        assert_eq!(quarantine.total(), 0);
        assert_eq!(
            names(&chunks[0].features),
            ["median_house_value_0", "median_house_value_1", "_c0", "_c1"]
        );
        assert_eq!(
            rows(&chunks[0].features),
            [
                row(&[Some("478046.66"), Some("206551.01"), Some("1"), Some("2")]),
                row(&[Some("1"), Some("2.0"), Some("3"), Some("4")]),
            ]
        );
    }

    #[test]
    fn batch_transform_output_counts_as_output() {
        let input = json!({
            "captureData": {"batchTransformOutput": side("JSON", "application/jsonlines",
                r#"{"SageMakerOutput":{"score":0.04},"features":[29,2]}"#)},
            "eventMetadata": {"eventId": "b1", "inferenceTime": "2023-01-21T01:29:04Z"},
        })
        .to_string();
        let (chunks, _) = decode(&input, &capture_options(OutputColumnsPosition::Start));
        assert_eq!(
            names(&chunks[0].features),
            ["SageMakerOutput.score", "features_0", "features_1"]
        );
        assert_eq!(
            rows(&chunks[0].features),
            [row(&[Some("0.04"), Some("29"), Some("2")])]
        );
        // 2023-01-21T01:29:04Z
        assert_eq!(events(&chunks[0]), [("b1".into(), None, 1_674_264_544)]);
    }

    #[test]
    fn later_chunks_keep_earlier_columns_and_add_new_ones() {
        let input = [
            line(
                Some(side("JSON", "application/json", r#"{"a": 1}"#)),
                None,
                "e1",
            ),
            line(
                Some(side("JSON", "application/json", r#"{"b": 2}"#)),
                None,
                "e2",
            ),
            line(
                Some(side("JSON", "application/json", r#"{"c": 3, "a": 4}"#)),
                None,
                "e3",
            ),
        ]
        .join("\n");
        let options = DecodeOptions {
            chunk_rows: 2,
            ..capture_options(OutputColumnsPosition::Start)
        };
        let (chunks, _) = decode(&input, &options);
        assert_eq!(chunks.len(), 2);
        assert_eq!(names(&chunks[0].features), ["a", "b"]);
        assert_eq!(
            rows(&chunks[0].features),
            [row(&[Some("1"), None]), row(&[None, Some("2")])]
        );
        assert_eq!(names(&chunks[1].features), ["a", "b", "c"]);
        assert_eq!(
            rows(&chunks[1].features),
            [row(&[Some("4"), None, Some("3")])]
        );
        assert_eq!(events(&chunks[1]), [("e3".into(), None, T0)]);
    }

    #[test]
    fn nested_values_in_a_top_level_json_array_are_rejected() {
        let input = [
            line(
                Some(side("JSON", "application/json", "[[0.1, 0.9]]")),
                None,
                "nested",
            ),
            line(
                Some(side("JSON", "application/json", "[0.1, 0.9]")),
                None,
                "flat",
            ),
        ]
        .join("\n");
        let (chunks, quarantine) = decode(&input, &capture_options(OutputColumnsPosition::Start));
        let rejected: Vec<_> = quarantine.recent().map(|r| (r.line, r.reason)).collect();
        assert_eq!(rejected, [(1, RejectReason::BadJson)]);
        assert_eq!(
            rows(&chunks[0].features),
            [row(&[Some("0.1"), Some("0.9")])]
        );
    }

    #[test]
    fn malformed_records_are_skipped_and_counted_with_their_line() {
        let no_time = r#"{"captureData":{"endpointInput":{"data":"1,2","encoding":"CSV"}},"eventMetadata":{"eventId":"x"}}"#;
        let input = [
            /* 1 */ csv_line("1,2", "0.1", "good1"),
            /* 2 */ "{\"captureData\": ".to_string(),
            /* 3 */
            line(
                Some(side("BASE64", "text/csv", "!!not base64")),
                None,
                "b64",
            ),
            /* 4 */ csv_line("1,2,3", "0.1", "wide"),
            /* 5 */
            line(
                Some(side("JSON", "application/json", "[1,2]")),
                Some(side("CSV", "text/csv", "0.1")),
                "json",
            ),
            /* 6 */ csv_line("1,2\n3,4", "0.1", "rows"),
            /* 7 */
            r#"{"eventMetadata":{"eventId":"x","inferenceTime":"2022-04-18T00:21:48Z"}}"#
                .to_string(),
            /* 8 */ line(None, None, "neither"),
            /* 9 */
            csv_line("1,2", "0.1", "good2").replace("2022-04-18T00:21:48Z", "yesterday"),
            /* 10 */ line(Some(side("XML", "text/xml", "<a/>")), None, "xml"),
            /* 11 */ String::new(),
            /* 12 */ no_time.to_string(),
            /* 13 */
            line(
                Some(side("JSON", "application/json", "{\"a\": [1,")),
                None,
                "truncated",
            ),
            /* 14 */ csv_line("5,6", "0.9", "good3"),
        ]
        .join("\n");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quarantine.jsonl");
        let mut quarantine = Quarantine::to_file(&path).unwrap();
        let reader = Box::new(std::io::Cursor::new(input.into_bytes()));
        let mut decoder = CaptureDecoder::new(
            reader,
            "s3://b/k".into(),
            &capture_options(OutputColumnsPosition::Start),
        );
        let mut chunks = Vec::new();
        while let Some(chunk) = decoder.next_chunk(&mut quarantine).unwrap() {
            chunks.push(chunk);
        }

        let rejected: Vec<(u64, String)> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|r| {
                (
                    r["line"].as_u64().unwrap(),
                    r["reason"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let expected = [
            (2, "bad_json"),
            (3, "bad_base64"),
            (4, "wrong_column_count"),
            (5, "mixed_encoding"),
            (6, "row_count_mismatch"),
            (7, "missing_field"),
            (8, "missing_field"),
            (9, "bad_time"),
            (10, "unsupported_encoding"),
            (12, "missing_field"),
            (13, "bad_json"),
        ];
        assert_eq!(
            rejected,
            expected.map(|(line, reason)| (line, reason.to_string()))
        );
        assert_eq!(quarantine.counts()[&RejectReason::BadJson], 2);
        assert_eq!(quarantine.counts()[&RejectReason::MissingField], 3);
        assert_eq!(quarantine.total(), 11);
        let good: Vec<String> = chunks
            .iter()
            .flat_map(events)
            .map(|(id, _, _)| id)
            .collect();
        assert_eq!(good, ["good1", "good3"]);
        assert_eq!(
            rows(&chunks[0].features),
            [
                row(&[Some("0.1"), Some("1"), Some("2")]),
                row(&[Some("0.9"), Some("5"), Some("6")])
            ]
        );
    }

    /// The envelope is parsed by sonic-rs, with serde_json only for lines it refuses; every
    /// verdict must stay serde_json's, or a record would be kept or rejected by the parser's
    /// whim. Each line here is one of the edge cases where JSON parsers commonly differ.
    #[test]
    fn the_simd_parser_agrees_with_serde_json_on_every_edge_of_the_envelope() {
        let body = r#""captureData":{"endpointInput":{"data":"1,2","encoding":"CSV"}}"#;
        let meta = |id: &str| {
            format!(r#""eventMetadata":{{"eventId":{id},"inferenceTime":"2022-04-18T00:21:48Z"}}"#)
        };
        let lines = [
            format!("{{{body},{}}}", meta(r#""plain""#)),
            format!("{{{body},{}}}", meta(r#""esc\"aped\\\/\u00e9\n""#)),
            format!("{{{body},{}}}", meta(r#""\ud83d\ude00 pair""#)),
            format!("{{{body},{}}}", meta(r#""\ud800 lone lead""#)),
            format!("{{{body},{}}}", meta(r#""\udc00 lone trail""#)),
            format!("{{{body},{}}}", meta(r#""\uZZZZ""#)),
            format!("{{{body},{}}}", meta("\"raw\tcontrol\"")),
            format!("{{{body},{}}}", meta("\"raw\u{1}control\"")),
            format!("{{{body},{}}}", meta("42")),
            format!("{{{body},{}}}", meta("null")),
            format!("{{{body},{},\"captureData\":null}}", meta(r#""dup""#)),
            format!("{{{body},{},}}", meta(r#""trailing comma""#)),
            format!("{{{body},{}}} x", meta(r#""trailing text""#)),
            format!("{{{body},{}}}{{}}", meta(r#""two values""#)),
            format!(
                "{{{body},{},\"extra\":[1e999,-0,{{\"a\":[[[]]]}}]}}",
                meta(r#""extra""#)
            ),
            format!("{{{body},{},\"extra\":01}}", meta(r#""leading zero""#)),
            format!("{{{body},{},\"extra\":1.}}", meta(r#""bad number""#)),
            format!("{{{body},{},\"extra\":tru}}", meta(r#""bad literal""#)),
            format!(" \t{{{body},{}}}\r", meta(r#""padded""#)),
            format!("[{{{body},{}}}]", meta(r#""array""#)),
            format!("{{{body},{}", meta(r#""cut""#)),
            format!("{{{body},{}}}", meta(r#""unterminated"#)),
            format!(
                "{{\"captureData\":{{\"endpointInput\":{{\"data\":\"1\",\"encoding\":\"CSV\",\"data\":\"2\"}}}},{}}}",
                meta(r#""dup inner""#)
            ),
            String::new(),
        ];
        for line in &lines {
            let simd = sonic_rs::from_str::<CaptureRecord>(line);
            let serde = serde_json::from_str::<CaptureRecord>(line);
            assert_eq!(simd.is_ok(), serde.is_ok(), "verdicts differ on {line:?}");
            if let (Ok(simd), Ok(serde)) = (simd, serde) {
                let id = |r: &CaptureRecord| {
                    (r.event_metadata.as_ref())
                        .and_then(|m| m.event_id.as_ref())
                        .map(|t| t.0.to_string())
                };
                assert_eq!(id(&simd), id(&serde), "event ids differ on {line:?}");
                let data = |r: &CaptureRecord| {
                    (r.capture_data.as_ref())
                        .and_then(|c| c.endpoint_input.as_ref())
                        .and_then(|p| p.data.as_ref())
                        .map(|t| t.0.to_string())
                };
                assert_eq!(data(&simd), data(&serde), "data differs on {line:?}");
            }
        }
    }
}
