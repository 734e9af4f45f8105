//! Durable bytes for a [`ModelQualityState`], so the daemon can persist a window's partial
//! state and merge it later.
//!
//! ```text
//! offset  size  what
//! 0       4     magic "DRMQ" (driftd model quality)
//! 4       1     format version (FORMAT_VERSION)
//! 5       8     xxHash64 (seed 0) of the body, little-endian
//! 13      ..    postcard body: the state, its score table sorted and compacted
//! ```
//!
//! postcard is positional: any change to the serde form of the state needs a new
//! `FORMAT_VERSION`. Bad bytes of any kind — wrong magic, another version, truncation, a
//! flipped bit, a body that decodes to an impossible state — are a [`CodecError`], never a panic.

use super::state::ModelQualityState;

pub const MAGIC: [u8; 4] = *b"DRMQ";
pub const FORMAT_VERSION: u8 = 1;
const HEADER_LEN: usize = 13;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error(
        "not a driftd model-quality state: it starts with {found:02x?}, not the magic \"DRMQ\""
    )]
    WrongMagic { found: Vec<u8> },
    #[error(
        "model-quality state format version {0} is not supported (this driftd reads version {FORMAT_VERSION})"
    )]
    UnsupportedVersion(u8),
    #[error("model-quality state is corrupt: {0}")]
    Corrupt(String),
}

/// The bytes of `state`.
pub fn encode(state: &ModelQualityState) -> Vec<u8> {
    let mut canonical = state.clone();
    canonical.compact();
    // postcard fails only on sequences of unknown length, which the state has none of.
    let body = postcard::to_stdvec(&canonical).expect("a state always serializes");
    let mut bytes = Vec::with_capacity(HEADER_LEN + body.len());
    bytes.extend_from_slice(&MAGIC);
    bytes.push(FORMAT_VERSION);
    bytes.extend_from_slice(&twox_hash::XxHash64::oneshot(0, &body).to_le_bytes());
    bytes.extend_from_slice(&body);
    bytes
}

/// The state `bytes` hold.
pub fn decode(bytes: &[u8]) -> Result<ModelQualityState, CodecError> {
    if bytes.len() < HEADER_LEN {
        if !MAGIC.starts_with(&bytes[..bytes.len().min(4)]) {
            return Err(CodecError::WrongMagic {
                found: bytes[..bytes.len().min(4)].to_vec(),
            });
        }
        return Err(CodecError::Corrupt(format!(
            "{} bytes, shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        )));
    }
    if bytes[..4] != MAGIC {
        return Err(CodecError::WrongMagic {
            found: bytes[..4].to_vec(),
        });
    }
    if bytes[4] != FORMAT_VERSION {
        return Err(CodecError::UnsupportedVersion(bytes[4]));
    }
    let checksum = u64::from_le_bytes(bytes[5..13].try_into().expect("8 bytes"));
    let body = &bytes[HEADER_LEN..];
    if twox_hash::XxHash64::oneshot(0, body) != checksum {
        return Err(CodecError::Corrupt(
            "the body does not match its checksum (truncated or damaged)".into(),
        ));
    }
    let (mut state, rest): (ModelQualityState, _) =
        postcard::take_from_bytes(body).map_err(|e| CodecError::Corrupt(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::Corrupt(format!(
            "{} bytes after the state",
            rest.len()
        )));
    }
    state.validate().map_err(CodecError::Corrupt)?;
    state.compact();
    Ok(state)
}
