//! gzip and zstd, recognised by their magic bytes rather than by a file name: S3 keys of
//! compressed captures do not always end in `.gz`, and a plain file named `.gz` should still read.
//!
//! A decompressed stream is watched for decompression bombs: once more than
//! [`RATIO_CHECK_AFTER_BYTES`] have come out, output more than
//! [`Limits::max_decompression_ratio`] times the compressed input consumed so far fails the read
//! with a [`LimitExceeded`].
use std::io::{BufRead, BufReader, Cursor, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{LimitExceeded, Limits, RATIO_CHECK_AFTER_BYTES};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Large enough that line splitting and decompression work on big blocks.
const BUFFER_BYTES: usize = 256 * 1024;

/// Wraps `reader` in a decompressor when its first bytes say gzip or zstd, with the default
/// [`Limits`]. Prefer [`decompressing_reader_with_limits`] with the configured ones.
pub fn decompressing_reader(
    reader: Box<dyn Read + Send>,
) -> std::io::Result<Box<dyn BufRead + Send>> {
    decompressing_reader_with_limits(reader, &Limits::default())
}

/// Wraps `reader` in a decompressor when its first bytes say gzip or zstd. A compressed stream
/// that grows past [`Limits::max_decompression_ratio`] fails with an [`std::io::Error`] holding
/// a [`LimitExceeded`] (see [`super::DecodeError::io`]).
pub fn decompressing_reader_with_limits(
    reader: Box<dyn Read + Send>,
    limits: &Limits,
) -> std::io::Result<Box<dyn BufRead + Send>> {
    open(
        reader,
        limits.max_decompression_ratio,
        RATIO_CHECK_AFTER_BYTES,
    )
}

fn open(
    mut reader: Box<dyn Read + Send>,
    max_ratio: f64,
    check_after: u64,
) -> std::io::Result<Box<dyn BufRead + Send>> {
    // Read the magic with `read` calls rather than one `fill_buf`: a network stream may hand
    // out fewer than four bytes at a time. The bytes are put back in front of the stream.
    let mut magic = [0u8; 4];
    let mut filled = 0;
    while filled < magic.len() {
        match reader.read(&mut magic[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = &magic[..filled];
    let whole = Cursor::new(head.to_vec()).chain(reader);
    let gzip = head.starts_with(&GZIP_MAGIC);
    if !gzip && head != ZSTD_MAGIC {
        return Ok(Box::new(BufReader::with_capacity(BUFFER_BYTES, whole)));
    }
    let consumed = Arc::new(AtomicU64::new(0));
    let input = Consumed {
        inner: BufReader::with_capacity(BUFFER_BYTES, whole),
        consumed: consumed.clone(),
    };
    let decompressed: Box<dyn Read + Send> = if gzip {
        // Multi-member: `cat a.gz b.gz` and many gzip writers produce several members.
        Box::new(flate2::bufread::MultiGzDecoder::new(input))
    } else {
        Box::new(zstd::stream::read::Decoder::with_buffer(input)?)
    };
    Ok(Box::new(BufReader::with_capacity(
        BUFFER_BYTES,
        RatioLimited {
            inner: decompressed,
            produced: 0,
            consumed,
            max_ratio,
            check_after,
        },
    )))
}

/// The compressed stream, counting the bytes the decompressor has consumed.
struct Consumed<R> {
    inner: R,
    consumed: Arc<AtomicU64>,
}

impl<R: BufRead> Read for Consumed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Consumed<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.consumed.fetch_add(amount as u64, Ordering::Relaxed);
        self.inner.consume(amount);
    }
}

/// The decompressed stream, failing once it has grown too far past the compressed input.
struct RatioLimited {
    inner: Box<dyn Read + Send>,
    produced: u64,
    consumed: Arc<AtomicU64>,
    max_ratio: f64,
    check_after: u64,
}

impl Read for RatioLimited {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.produced += n as u64;
        if self.produced > self.check_after {
            let consumed = self.consumed.load(Ordering::Relaxed);
            if self.produced as f64 > self.max_ratio * consumed as f64 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    LimitExceeded {
                        key: "limits.max_decompression_ratio",
                        message: format!(
                            "decompressed to {} bytes from {consumed} compressed bytes, more \
                             than limits.max_decompression_ratio ({}) times; a decompression \
                             bomb? Not read (raise limits.max_decompression_ratio in the config \
                             if the object is genuine)",
                            self.produced, self.max_ratio
                        ),
                    },
                ));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn read_all(bytes: Vec<u8>) -> std::io::Result<String> {
        let mut out = String::new();
        decompressing_reader(Box::new(Cursor::new(bytes)))?.read_to_string(&mut out)?;
        Ok(out)
    }

    fn gzip(text: &str) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(text.as_bytes()).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn plain_text_passes_through_even_when_shorter_than_the_magic() {
        assert_eq!(read_all(b"a,b\n1,2\n".to_vec()).unwrap(), "a,b\n1,2\n");
        assert_eq!(read_all(b"x".to_vec()).unwrap(), "x");
        assert_eq!(read_all(Vec::new()).unwrap(), "");
    }

    #[test]
    fn concatenated_gzip_members_are_all_read() {
        let mut bytes = gzip("first\n");
        bytes.extend(gzip("second\n"));
        assert_eq!(read_all(bytes).unwrap(), "first\nsecond\n");
    }

    #[test]
    fn zstd_is_recognised() {
        let bytes = zstd::encode_all(&b"{\"a\":1}\n"[..], 3).unwrap();
        assert_eq!(read_all(bytes).unwrap(), "{\"a\":1}\n");
    }

    #[test]
    fn corrupt_gzip_is_an_error() {
        let mut bytes = gzip("some text that compresses\n");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        bytes.truncate(bytes.len() - 4);
        assert!(read_all(bytes).is_err());
    }

    /// Reads `bytes` through the decompressor with the ratio checked after `check_after`.
    fn read_limited(bytes: Vec<u8>, max_ratio: f64, check_after: u64) -> std::io::Result<u64> {
        let mut reader = open(Box::new(Cursor::new(bytes)), max_ratio, check_after)?;
        std::io::copy(&mut reader, &mut std::io::sink())
    }

    /// Capture-like text: the same shape on every line, the numbers varying.
    fn captures(lines: usize) -> String {
        let mut rng = fastrand::Rng::with_seed(7);
        (0..lines)
            .map(|i| {
                format!(
                    "{{\"captureData\":{{\"endpointInput\":{{\"observedContentType\":\"text/csv\",\"mode\":\"INPUT\",\"data\":\"{},{},{:.1}\",\"encoding\":\"CSV\"}}}},\"eventMetadata\":{{\"eventId\":\"{i:08x}\",\"inferenceTime\":\"2022-04-18T00:21:48Z\"}},\"eventVersion\":\"0\"}}\n",
                    rng.u32(0..200),
                    rng.u32(0..20),
                    rng.f64() * 300.0
                )
            })
            .collect()
    }

    #[test]
    fn realistic_text_passes_the_ratio_check_and_a_bomb_does_not() {
        let text = captures(20_000);
        let check_after = 64 * 1024;
        assert!(text.len() as u64 > 10 * check_after);
        let gz = gzip(&text);
        let zst = zstd::encode_all(text.as_bytes(), 3).unwrap();
        for compressed in [gz.clone(), zst.clone()] {
            let ratio = text.len() as f64 / compressed.len() as f64;
            assert!(ratio < 50.0, "{ratio}");
            assert_eq!(
                read_limited(compressed, 200.0, check_after).unwrap(),
                text.len() as u64
            );
        }
        // The same text against a ratio it exceeds.
        for compressed in [gz, zst] {
            let error = read_limited(compressed, 2.0, check_after).unwrap_err();
            assert!(error.get_ref().unwrap().is::<LimitExceeded>(), "{error}");
        }
        // Nothing is checked before `check_after` bytes have come out.
        assert_eq!(
            read_limited(gzip(&"0".repeat(60_000)), 2.0, check_after).unwrap(),
            60_000
        );
        // Plain text is not compressed, so it has no ratio.
        assert!(read_limited(vec![b'a'; 1 << 20], 1.0, 1024).is_ok());
    }

    #[test]
    fn a_bomb_stops_soon_after_the_check_starts() {
        // 64 MiB of zeros, ratio ~1000; the read must stop at about `check_after`.
        let bomb = crate::decode::testing::gzip_zeros(64 << 20);
        let mut reader = open(Box::new(Cursor::new(bomb)), 200.0, 1 << 20).unwrap();
        let mut out = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        let error = loop {
            match reader.read(&mut buf) {
                Ok(0) => panic!("the bomb was read to its end"),
                Ok(n) => out += n as u64,
                Err(error) => break error,
            }
        };
        assert!(out < 4 << 20, "{out} bytes came out first");
        let message = error.to_string();
        assert!(
            message.contains("limits.max_decompression_ratio (200)"),
            "{message}"
        );
    }
}
