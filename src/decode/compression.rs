//! gzip and zstd, recognised by their magic bytes rather than by a file name: S3 keys of
//! compressed captures do not always end in `.gz`, and a plain file named `.gz` should still read.
use std::io::{BufRead, BufReader, Cursor, Read};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Large enough that line splitting and decompression work on big blocks.
const BUFFER_BYTES: usize = 256 * 1024;

/// Wraps `reader` in a decompressor when its first bytes say gzip or zstd.
pub fn decompressing_reader(
    mut reader: Box<dyn Read + Send>,
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
    Ok(if head.starts_with(&GZIP_MAGIC) {
        // Multi-member: `cat a.gz b.gz` and many gzip writers produce several members.
        Box::new(BufReader::with_capacity(
            BUFFER_BYTES,
            flate2::read::MultiGzDecoder::new(BufReader::with_capacity(BUFFER_BYTES, whole)),
        ))
    } else if head == ZSTD_MAGIC {
        Box::new(BufReader::with_capacity(
            BUFFER_BYTES,
            zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(
                BUFFER_BYTES,
                whole,
            ))?,
        ))
    } else {
        Box::new(BufReader::with_capacity(BUFFER_BYTES, whole))
    })
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
}
