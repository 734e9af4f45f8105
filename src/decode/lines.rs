//! Reads an object's lines in bounded batches, each into one reusable buffer with its lines'
//! numbers, so the line formats can parse a batch in parallel and still report where a bad
//! record was. The next batch is read while the current one is decoded.
//!
//! Memory stays bounded whatever the input: a line longer than `max_record_bytes` is read past
//! without being held (see [`read_line`]) and a batch stops growing at [`BATCH_BYTES`].

use std::io::{BufRead, Read};

use rayon::prelude::*;

use super::{Quarantine, RejectReason};

/// A batch stops taking lines once its buffer holds this many bytes, so a batch of
/// `chunk_rows` wide records does not grow without bound.
const BATCH_BYTES: usize = 64 << 20;

/// How much of a line over the limit is kept for the quarantine: enough to recognise it.
pub(crate) const TOO_LONG_PREFIX_BYTES: usize = 256;

/// What [`read_line`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineRead {
    /// The reader is exhausted; nothing was appended.
    End,
    /// A line of at most `max` bytes (without its terminator) was appended, terminator
    /// included.
    Fits,
    /// A longer line was read to its end; only its first [`TOO_LONG_PREFIX_BYTES`] were
    /// appended. `bytes` is its full length, terminator included.
    TooLong { bytes: u64 },
}

/// Appends the next line of `reader` to `buffer` if it is at most `max` bytes long without its
/// `\n` or `\r\n`. A longer line is consumed up to and including its newline, but `buffer`
/// never grows by more than `max + 2` bytes while it is read, and keeps only its prefix.
pub(crate) fn read_line(
    reader: &mut dyn BufRead,
    buffer: &mut Vec<u8>,
    max: u64,
) -> std::io::Result<LineRead> {
    let start = buffer.len();
    // Room for the terminator, so a line of exactly `max` bytes plus "\r\n" fits.
    let cap = max.saturating_add(2);
    let n = (&mut *reader).take(cap).read_until(b'\n', buffer)? as u64;
    if n == 0 {
        return Ok(LineRead::End);
    }
    let mut bytes = n;
    // Stopped at the cap, not at a newline: the line is too long and its rest is read past,
    // never held.
    let capped = n == cap && buffer.last() != Some(&b'\n');
    if capped {
        bytes += reader.skip_until(b'\n')? as u64;
    }
    let mut end = buffer.len();
    while end > start && matches!(buffer[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    if capped || (end - start) as u64 > max {
        buffer.truncate(start + TOO_LONG_PREFIX_BYTES.min(end - start));
        return Ok(LineRead::TooLong { bytes });
    }
    Ok(LineRead::Fits)
}

/// The `record_too_large` reject of a line of `bytes` bytes at `line`, `prefix` its start.
pub(crate) fn reject_too_long(
    quarantine: &mut Quarantine,
    source: &str,
    line: u64,
    bytes: u64,
    max: u64,
    prefix: &[u8],
) {
    let detail = format!(
        "a line of {bytes} bytes, more than limits.max_record_bytes ({max}); skipped (the \
         record holds its first {} bytes)",
        prefix.len()
    );
    quarantine.reject(source, line, RejectReason::RecordTooLarge, &detail, prefix);
}

/// One batch of non-blank lines, without their line terminators, and the lines over the
/// record limit that were skipped while reading it.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    buffer: Vec<u8>,
    spans: Vec<Span>,
    /// Lines over the limit: `start..end` holds their prefix.
    too_long: Vec<TooLong>,
    /// The record limit the batch was read with, for the quarantine's message.
    max_record_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    line: u64,
}

#[derive(Debug, Clone, Copy)]
struct TooLong {
    span: Span,
    bytes: u64,
}

impl Lines {
    /// Replaces the batch with up to `limits.lines` lines (fewer once the buffer holds
    /// `limits.bytes`; a line over the record limit counts as one); `lines_read` counts every line consumed, blank ones included, so
    /// line numbers are positions in the object. Returns `true` once the reader is exhausted.
    fn fill(
        &mut self,
        reader: &mut dyn BufRead,
        limits: &BatchLimits,
        lines_read: &mut u64,
    ) -> std::io::Result<bool> {
        self.buffer.clear();
        self.spans.clear();
        self.too_long.clear();
        self.max_record_bytes = limits.max_record_bytes;
        while self.spans.len() + self.too_long.len() < limits.lines
            && self.buffer.len() < limits.bytes
        {
            let start = self.buffer.len();
            let read = read_line(reader, &mut self.buffer, limits.max_record_bytes)?;
            if read == LineRead::End {
                return Ok(true);
            }
            *lines_read += 1;
            if let LineRead::TooLong { bytes } = read {
                self.too_long.push(TooLong {
                    span: Span {
                        start,
                        end: self.buffer.len(),
                        line: *lines_read,
                    },
                    bytes,
                });
                continue;
            }
            let mut end = self.buffer.len();
            while end > start && matches!(self.buffer[end - 1], b'\n' | b'\r') {
                end -= 1;
            }
            // A UTF-8 byte order mark would otherwise make the first record unparseable.
            let text_start =
                if *lines_read == 1 && self.buffer[start..end].starts_with(b"\xEF\xBB\xBF") {
                    start + 3
                } else {
                    start
                };
            if self.buffer[text_start..end]
                .iter()
                .all(u8::is_ascii_whitespace)
            {
                self.buffer.truncate(start);
                continue;
            }
            self.spans.push(Span {
                start: text_start,
                end,
                line: *lines_read,
            });
        }
        Ok(false)
    }

    /// Counts the batch's lines that were over the record limit as `record_too_large`, with
    /// their line numbers. The decoders call it first thing for each batch, so these rejects
    /// come before the batch's other ones.
    pub(crate) fn reject_too_long(&self, source: &str, quarantine: &mut Quarantine) {
        for too_long in &self.too_long {
            let span = too_long.span;
            reject_too_long(
                quarantine,
                source,
                span.line,
                too_long.bytes,
                self.max_record_bytes,
                &self.buffer[span.start..span.end],
            );
        }
    }

    /// Nothing at all was read into the batch.
    fn is_empty(&self) -> bool {
        self.spans.is_empty() && self.too_long.is_empty()
    }

    /// The `i`-th line of the batch and its 1-based line number.
    pub(crate) fn get(&self, i: usize) -> (u64, &[u8]) {
        let span = self.spans[i];
        (span.line, &self.buffer[span.start..span.end])
    }

    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    /// The batch's lines in runs of `n`, in order, for rayon tasks that each take a run.
    pub(crate) fn par_chunks(
        &self,
        n: usize,
    ) -> impl IndexedParallelIterator<Item = impl ExactSizeIterator<Item = &[u8]>> {
        self.spans
            .par_chunks(n)
            .map(|spans| spans.iter().map(|span| &self.buffer[span.start..span.end]))
    }

    /// The batch's lines, in order, for rayon.
    pub(crate) fn par_iter(&self) -> impl IndexedParallelIterator<Item = &[u8]> {
        self.spans
            .par_iter()
            .with_min_len(64)
            .map(|span| &self.buffer[span.start..span.end])
    }
}

/// How far [`Lines::fill`] goes.
#[derive(Debug, Clone, Copy)]
struct BatchLimits {
    lines: usize,
    bytes: usize,
    max_record_bytes: u64,
}

/// Hands out batches of at most `max` lines.
pub(crate) struct LineReader {
    reader: Box<dyn BufRead + Send>,
    limits: BatchLimits,
    lines_read: u64,
    current: Lines,
    /// The batch after `current`, read while `current` was being decoded.
    ahead: Lines,
    state: Ahead,
}

enum Ahead {
    /// Nothing read yet.
    Unread,
    /// `ahead` holds the next batch; `end` if the reader is exhausted after it.
    Read {
        end: bool,
    },
    /// Reading the next batch failed; reported after the current batch is delivered.
    Failed(std::io::Error),
    End,
}

impl LineReader {
    /// Batches of at most `max` lines, skipping (and reporting through
    /// [`Lines::reject_too_long`]) lines longer than `max_record_bytes`.
    pub(crate) fn new(reader: Box<dyn BufRead + Send>, max: usize, max_record_bytes: u64) -> Self {
        Self {
            reader,
            limits: BatchLimits {
                lines: max.max(1),
                bytes: BATCH_BYTES,
                max_record_bytes: max_record_bytes.max(1),
            },
            lines_read: 0,
            current: Lines::default(),
            ahead: Lines::default(),
            state: Ahead::Unread,
        }
    }

    /// Runs `work` on the next batch while reading the one after it on another rayon worker
    /// (reading is sequential, so otherwise a core idles while it runs). `None` at the end.
    pub(crate) fn with_batch<R: Send>(
        &mut self,
        work: impl FnOnce(&Lines) -> R + Send,
    ) -> std::io::Result<Option<R>> {
        let end = match std::mem::replace(&mut self.state, Ahead::End) {
            Ahead::Unread => {
                self.current
                    .fill(&mut *self.reader, &self.limits, &mut self.lines_read)?
            }
            Ahead::Read { end } => {
                std::mem::swap(&mut self.current, &mut self.ahead);
                end
            }
            Ahead::Failed(error) => return Err(error),
            Ahead::End => return Ok(None),
        };
        if self.current.is_empty() {
            return Ok(None);
        }
        if end {
            return Ok(Some(work(&self.current)));
        }
        let (reader, ahead, limits, lines_read) = (
            &mut self.reader,
            &mut self.ahead,
            &self.limits,
            &mut self.lines_read,
        );
        let (read, result) = rayon::join(
            || ahead.fill(&mut **reader, limits, lines_read),
            || work(&self.current),
        );
        self.state = match read {
            Ok(end) => Ahead::Read { end },
            Err(error) => Ahead::Failed(error),
        };
        Ok(Some(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every batch as (line number, text) pairs.
    fn batches(input: &'static [u8], max: usize) -> Vec<Vec<(u64, Vec<u8>)>> {
        let mut reader = LineReader::new(Box::new(input), max, u64::MAX);
        let mut out = Vec::new();
        while let Some(batch) = reader
            .with_batch(|lines| {
                (0..lines.len())
                    .map(|i| (lines.get(i).0, lines.get(i).1.to_vec()))
                    .collect()
            })
            .unwrap()
        {
            out.push(batch);
        }
        out
    }

    #[test]
    fn skips_blank_lines_but_counts_them_and_stops_at_max() {
        assert_eq!(
            batches(b"\xEF\xBB\xBFa\r\n\n  \nb\nc", 2),
            [
                vec![(1, b"a".to_vec()), (4, b"b".to_vec())],
                vec![(5, b"c".to_vec())],
            ]
        );
        assert!(batches(b"", 2).is_empty());
        assert!(batches(b"\n\n", 2).is_empty());
    }

    #[test]
    fn a_read_error_comes_after_the_batch_before_it() {
        struct FailsAfter(&'static [u8]);
        impl std::io::Read for FailsAfter {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() {
                    return Err(std::io::Error::other("disk on fire"));
                }
                let n = self.0.len().min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut reader = LineReader::new(
            Box::new(std::io::BufReader::new(FailsAfter(b"a\nb\nc"))),
            2,
            100,
        );
        assert_eq!(reader.with_batch(|lines| lines.len()).unwrap(), Some(2));
        assert_eq!(
            reader
                .with_batch(|lines| lines.len())
                .unwrap_err()
                .to_string(),
            "disk on fire"
        );
    }

    /// `len` bytes of `x` and then `tail`, generated as they are read (never held whole).
    struct Generated {
        left: u64,
        tail: &'static [u8],
    }

    impl std::io::Read for Generated {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.left > 0 {
                let n = buf.len().min(self.left.try_into().unwrap_or(usize::MAX));
                buf[..n].fill(b'x');
                self.left -= n as u64;
                return Ok(n);
            }
            let n = buf.len().min(self.tail.len());
            buf[..n].copy_from_slice(&self.tail[..n]);
            self.tail = &self.tail[n..];
            Ok(n)
        }
    }

    /// Drains `reader`: every batch's (line, text) pairs and its too-long (line, bytes, prefix).
    #[allow(clippy::type_complexity)]
    fn drain(reader: &mut LineReader) -> (Vec<(u64, Vec<u8>)>, Vec<(u64, u64, Vec<u8>)>) {
        let (mut good, mut too_long) = (Vec::new(), Vec::new());
        while let Some((g, t)) = reader
            .with_batch(|lines| {
                let good: Vec<_> = (0..lines.len())
                    .map(|i| (lines.get(i).0, lines.get(i).1.to_vec()))
                    .collect();
                let too_long: Vec<_> = lines
                    .too_long
                    .iter()
                    .map(|t| {
                        let prefix = lines.buffer[t.span.start..t.span.end].to_vec();
                        (t.span.line, t.bytes, prefix)
                    })
                    .collect();
                (good, too_long)
            })
            .unwrap()
        {
            good.extend(g);
            too_long.extend(t);
        }
        (good, too_long)
    }

    #[test]
    fn a_line_over_the_limit_is_read_past_without_being_held() {
        // 256 MiB without a newline, between two good lines, with a 1 KiB limit.
        let huge = 256u64 << 20;
        let input =
            std::io::Cursor::new(b"first\n".to_vec()).chain(std::io::BufReader::new(Generated {
                left: huge,
                tail: b"\nlast\n",
            }));
        let mut reader = LineReader::new(Box::new(std::io::BufReader::new(input)), 100, 1024);
        let (good, too_long) = drain(&mut reader);
        assert_eq!(good, [(1, b"first".to_vec()), (3, b"last".to_vec())]);
        assert_eq!(too_long.len(), 1);
        let (line, bytes, prefix) = &too_long[0];
        assert_eq!((*line, *bytes), (2, huge + 1));
        assert_eq!(prefix, &vec![b'x'; TOO_LONG_PREFIX_BYTES]);
        // Never more than the limit (plus a terminator) was buffered for the line.
        for lines in [&reader.current, &reader.ahead] {
            assert!(
                lines.buffer.capacity() <= 4096,
                "{}",
                lines.buffer.capacity()
            );
        }
    }

    #[test]
    fn the_limit_counts_the_line_without_its_terminator() {
        let mut buffer = Vec::new();
        let mut read = |input: &'static [u8]| {
            buffer.clear();
            let mut reader: &[u8] = input;
            let result = read_line(&mut reader, &mut buffer, 4).unwrap();
            (result, buffer.clone(), reader)
        };
        assert_eq!(
            read(b"abcd\r\nnext"),
            (LineRead::Fits, b"abcd\r\n".to_vec(), &b"next"[..])
        );
        assert_eq!(read(b"abcd"), (LineRead::Fits, b"abcd".to_vec(), &b""[..]));
        assert_eq!(
            read(b"abcde\nnext"),
            (
                LineRead::TooLong { bytes: 6 },
                b"abcde".to_vec(),
                &b"next"[..]
            )
        );
        assert_eq!(
            read(b"abcdefgh\r\nnext"),
            (
                LineRead::TooLong { bytes: 10 },
                b"abcdef".to_vec(),
                &b"next"[..]
            )
        );
        // Over the limit at the end of the input, without a newline.
        assert_eq!(
            read(b"abcdefghij"),
            (
                LineRead::TooLong { bytes: 10 },
                b"abcdef".to_vec(),
                &b""[..]
            )
        );
        assert_eq!(read(b""), (LineRead::End, Vec::new(), &b""[..]));
    }

    #[test]
    fn too_long_lines_count_towards_a_batch_and_a_batch_of_only_those_is_not_the_end() {
        let mut reader = LineReader::new(Box::new(&b"toolong\nlonger!\nok\n"[..]), 2, 3);
        let sizes: Vec<(usize, usize)> = std::iter::from_fn(|| {
            reader
                .with_batch(|lines| (lines.len(), lines.too_long.len()))
                .unwrap()
        })
        .collect();
        assert_eq!(sizes, [(0, 2), (1, 0)]);
    }

    #[test]
    fn a_batch_stops_growing_at_its_byte_budget() {
        let mut reader = LineReader::new(Box::new(&b"aaaa\nbbbb\ncccc\n"[..]), 100, 100);
        reader.limits.bytes = 8;
        let sizes: Vec<usize> =
            std::iter::from_fn(|| reader.with_batch(|lines| lines.len()).unwrap()).collect();
        assert_eq!(sizes, [2, 1]);
    }
}
