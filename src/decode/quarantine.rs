//! Where malformed records go: counted by reason, and written with their source and line.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a record was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Not valid JSON (the line, or a JSON payload inside a capture record), or JSON of a shape
    /// that has no columns (a JSON Lines row that is not an object).
    BadJson,
    BadBase64,
    /// A CSV record (or a capture record's CSV / JSON-array side) whose field count differs from
    /// the header's or the first record's, so its values would land in the wrong columns.
    WrongColumnCount,
    /// A capture record whose input or output encoding differs from the first accepted one's.
    MixedEncoding,
    /// A capture record whose input and output payloads hold different numbers of rows.
    RowCountMismatch,
    MissingField,
    /// An `inferenceTime` that is not RFC 3339.
    BadTime,
    /// A capture `encoding` other than CSV, JSON or BASE64.
    UnsupportedEncoding,
    /// A line (or a CSV record) longer than `limits.max_record_bytes`; skipped without being
    /// held in memory, and quarantined with only its first bytes.
    RecordTooLarge,
    /// A value a monitor needs is missing or unreadable: a model-quality label that is not a
    /// number, a binary label other than 0 or 1.
    BadValue,
    /// A record with a value whose column would be past `limits.max_columns`. Unlike the other
    /// reasons the record is still used, without the refused values.
    TooManyColumns,
}

impl RejectReason {
    /// The snake_case name used in the quarantine file and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::BadJson => "bad_json",
            RejectReason::BadBase64 => "bad_base64",
            RejectReason::WrongColumnCount => "wrong_column_count",
            RejectReason::MixedEncoding => "mixed_encoding",
            RejectReason::RowCountMismatch => "row_count_mismatch",
            RejectReason::MissingField => "missing_field",
            RejectReason::BadTime => "bad_time",
            RejectReason::UnsupportedEncoding => "unsupported_encoding",
            RejectReason::RecordTooLarge => "record_too_large",
            RejectReason::BadValue => "bad_value",
            RejectReason::TooManyColumns => "too_many_columns",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rejected record as kept in memory (without the record itself, which may be large).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub source: String,
    pub line: u64,
    pub reason: RejectReason,
    pub detail: String,
}

/// Counts rejected records by reason and, with [`Quarantine::to_file`], appends each one to a
/// JSON Lines file so an operator can see exactly what was skipped.
#[derive(Debug, Default)]
pub struct Quarantine {
    counts: BTreeMap<RejectReason, u64>,
    recent: VecDeque<Reject>,
    file: Option<QuarantineFile>,
}

#[derive(Debug)]
struct QuarantineFile {
    path: PathBuf,
    file: File,
    /// A full disk should not flood the log with one warning per bad record.
    warned: bool,
}

/// The quarantine file keeps at most this much of a record; enough to see what is wrong.
const MAX_RECORD_BYTES: usize = 64 * 1024;
/// How many rejects [`Quarantine::recent`] remembers.
const RECENT: usize = 8;

impl Quarantine {
    /// Counts only (plus the last few rejects, for messages and tests).
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Counts, and appends every reject to `path` as one JSON object per line:
    /// `{"source","line","reason","detail","record"}`. Each line is written with a single
    /// `write` to a file opened for appending, so several decoders may share one file.
    pub fn to_file(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Self {
            file: Some(QuarantineFile {
                path,
                file,
                warned: false,
            }),
            ..Self::default()
        })
    }

    /// Counts the record as rejected for `reason` and writes it to the file, if any.
    /// `line` is the 1-based line of the (decompressed) object where the record starts.
    pub fn reject(
        &mut self,
        source: &str,
        line: u64,
        reason: RejectReason,
        detail: &str,
        record: &[u8],
    ) {
        *self.counts.entry(reason).or_insert(0) += 1;
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(Reject {
            source: source.to_string(),
            line,
            reason,
            detail: detail.to_string(),
        });
        if let Some(sink) = &mut self.file {
            sink.write(source, line, reason, detail, record);
        }
    }

    pub fn counts(&self) -> &BTreeMap<RejectReason, u64> {
        &self.counts
    }

    /// The counts by reason name (`bad_json`, …), as the metrics and summaries name them.
    pub fn counts_by_name(&self) -> BTreeMap<String, u64> {
        self.counts
            .iter()
            .map(|(reason, count)| (reason.as_str().to_string(), *count))
            .collect()
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The last few rejects, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &Reject> {
        self.recent.iter()
    }

    /// Adds `other`'s counts to these (e.g. one quarantine per worker, summed per window).
    pub fn merge_counts(&mut self, other: &Quarantine) {
        for (reason, n) in &other.counts {
            *self.counts.entry(*reason).or_insert(0) += n;
        }
    }
}

impl QuarantineFile {
    fn write(
        &mut self,
        source: &str,
        line: u64,
        reason: RejectReason,
        detail: &str,
        record: &[u8],
    ) {
        let record = String::from_utf8_lossy(truncate(record, MAX_RECORD_BYTES));
        let entry = serde_json::json!({
            "source": source,
            "line": line,
            "reason": reason,
            "detail": detail,
            "record": record,
        });
        let mut bytes = entry.to_string().into_bytes();
        bytes.push(b'\n');
        if let Err(error) = self.file.write_all(&bytes)
            && !self.warned
        {
            self.warned = true;
            tracing::warn!(path = %self.path.display(), %error, "cannot write to the quarantine file; rejects are still counted");
        }
    }
}

/// At most `max` bytes, cut on a UTF-8 boundary when the bytes are text.
fn truncate(bytes: &[u8], max: usize) -> &[u8] {
    if bytes.len() <= max {
        return bytes;
    }
    let mut end = max;
    // Step back over continuation bytes (10xxxxxx) so a multi-byte character is not split.
    while end > 0 && (bytes[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    &bytes[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_reason_and_merges() {
        let mut a = Quarantine::in_memory();
        a.reject("s3://b/k", 3, RejectReason::BadJson, "eof", b"{");
        a.reject("s3://b/k", 7, RejectReason::BadJson, "eof", b"{");
        a.reject("s3://b/k", 9, RejectReason::BadTime, "x", b"{}");
        let mut b = Quarantine::in_memory();
        b.reject("other", 1, RejectReason::BadJson, "eof", b"[");
        b.merge_counts(&a);
        assert_eq!(b.counts()[&RejectReason::BadJson], 3);
        assert_eq!(b.counts()[&RejectReason::BadTime], 1);
        assert_eq!(b.total(), 4);
        let last = a.recent().last().unwrap();
        assert_eq!((last.line, last.reason), (9, RejectReason::BadTime));
    }

    #[test]
    fn file_gets_one_json_object_per_reject_and_truncates_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.jsonl");
        let mut q = Quarantine::to_file(&path).unwrap();
        q.reject(
            "a.jsonl",
            2,
            RejectReason::MissingField,
            "no captureData",
            b"{\"x\":1}",
        );
        // 'é' is two bytes; 64 KiB of them must not be cut in the middle of one.
        let long = "é".repeat(40 * 1024);
        q.reject("a.jsonl", 5, RejectReason::BadJson, "eof", long.as_bytes());
        drop(q);
        // Appends rather than truncating.
        let mut q = Quarantine::to_file(&path).unwrap();
        q.reject(
            "b.csv",
            1,
            RejectReason::WrongColumnCount,
            "3 fields, expected 2",
            b"1,2,3",
        );

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            serde_json::json!({"source": "a.jsonl", "line": 2, "reason": "missing_field",
                               "detail": "no captureData", "record": "{\"x\":1}"})
        );
        assert_eq!(lines[1]["record"].as_str().unwrap().len(), 64 * 1024);
        assert_eq!(lines[2]["reason"], "wrong_column_count");
        assert_eq!(lines[2]["record"], "1,2,3");
    }
}
