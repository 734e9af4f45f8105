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
    let write = || -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = path.with_extension("json.tmp");
        let mut text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
        text.push(b'\n');
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|error| FileError::Write {
        path: path.to_path_buf(),
        error,
    })
}
