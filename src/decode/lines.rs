//! Reads an object's lines in bounded batches, each into one reusable buffer with its lines'
//! numbers, so the line formats can parse a batch in parallel and still report where a bad
//! record was. The next batch is read while the current one is decoded.

use std::io::BufRead;

use rayon::prelude::*;

/// One batch of non-blank lines, without their line terminators.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    buffer: Vec<u8>,
    spans: Vec<Span>,
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    line: u64,
}

impl Lines {
    /// Replaces the batch with up to `max` lines; `lines_read` counts every line consumed,
    /// blank ones included, so line numbers are positions in the object. Returns `true` once
    /// the reader is exhausted.
    fn fill(
        &mut self,
        reader: &mut dyn BufRead,
        max: usize,
        lines_read: &mut u64,
    ) -> std::io::Result<bool> {
        self.buffer.clear();
        self.spans.clear();
        while self.spans.len() < max {
            let start = self.buffer.len();
            if reader.read_until(b'\n', &mut self.buffer)? == 0 {
                return Ok(true);
            }
            *lines_read += 1;
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

/// Hands out batches of at most `max` lines.
pub(crate) struct LineReader {
    reader: Box<dyn BufRead + Send>,
    max: usize,
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
    pub(crate) fn new(reader: Box<dyn BufRead + Send>, max: usize) -> Self {
        Self {
            reader,
            max: max.max(1),
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
                    .fill(&mut *self.reader, self.max, &mut self.lines_read)?
            }
            Ahead::Read { end } => {
                std::mem::swap(&mut self.current, &mut self.ahead);
                end
            }
            Ahead::Failed(error) => return Err(error),
            Ahead::End => return Ok(None),
        };
        if self.current.len() == 0 {
            return Ok(None);
        }
        if end {
            return Ok(Some(work(&self.current)));
        }
        let (reader, ahead, max, lines_read) = (
            &mut self.reader,
            &mut self.ahead,
            self.max,
            &mut self.lines_read,
        );
        let (read, result) = rayon::join(
            || ahead.fill(&mut **reader, max, lines_read),
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
        let mut reader = LineReader::new(Box::new(input), max);
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
        let mut reader =
            LineReader::new(Box::new(std::io::BufReader::new(FailsAfter(b"a\nb\nc"))), 2);
        assert_eq!(reader.with_batch(|lines| lines.len()).unwrap(), Some(2));
        assert_eq!(
            reader
                .with_batch(|lines| lines.len())
                .unwrap_err()
                .to_string(),
            "disk on fire"
        );
    }
}
