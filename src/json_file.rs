//! JSON files read with errors that name the file, line and column, and written atomically.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: cannot read: {error}")]
    Read {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("{path}: line {line}, column {column}: {error}", line = error.line(), column = error.column())]
    Parse {
        path: PathBuf,
        #[source]
        error: serde_json::Error,
    },
    #[error("{path}: cannot write: {error}")]
    Write {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, FileError> {
    let text = std::fs::read_to_string(path).map_err(|error| FileError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    serde_json::from_str(&text).map_err(|error| FileError::Parse {
        path: path.to_path_buf(),
        error,
    })
}

/// Writes pretty JSON through a temporary file and a rename, so a reader never sees half a file.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), FileError> {
    let mut text = serde_json::to_vec_pretty(value).map_err(|error| FileError::Write {
        path: path.to_path_buf(),
        error: std::io::Error::other(error),
    })?;
    text.push(b'\n');
    write_atomically(path, &text)
}

/// Writes `bytes` to `path` (making its folder) through a temporary file beside it, an fsync
/// and a rename: a reader sees the old file or the whole new one, even after a crash.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let write = || -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let mut file = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|error| FileError::Write {
        path: path.to_path_buf(),
        error,
    })
}
