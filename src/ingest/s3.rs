//! Fetching objects: a streaming GetObject handed to the synchronous decoders as a blocking
//! reader, so an object of any size is decoded in the memory of a few buffers. Batch transform
//! capture manifests are resolved to the objects they list.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::aws::error_text;
use crate::decode::Limits;
use crate::s3_uri::S3Uri;

const SHUTTING_DOWN: &str = "read stopped: driftd is shutting down";

/// A manifest lists keys, so it is small; a bigger object is not a manifest.
const MAX_MANIFEST_BYTES: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The event named an object that is gone (deleted since, or an emulator's early event).
    #[error("s3://{bucket}/{key}: no such object")]
    NotFound { bucket: String, key: String },
    #[error("s3://{bucket}/{key}: GetObject failed: {message}")]
    Get {
        bucket: String,
        key: String,
        message: String,
    },
    #[error("s3://{bucket}/{key}: {message}")]
    Manifest {
        bucket: String,
        key: String,
        message: String,
    },
    /// The object is bigger than `limits.max_object_bytes`; its body was not downloaded.
    #[error(
        "s3://{bucket}/{key}: the object is {size} bytes, more than limits.max_object_bytes \
         ({limit}); not read (raise limits.max_object_bytes in the config to read it)"
    )]
    TooLarge {
        bucket: String,
        key: String,
        size: u64,
        limit: u64,
    },
}

/// An object being read.
pub struct S3Object {
    pub bucket: String,
    pub key: String,
    /// The object's entity tag (quotes removed): with bucket and key, what identifies this
    /// version of the object for de-duplication.
    pub etag: String,
    /// Seconds since the epoch: the time of rows that carry none, when the key names no hour.
    pub last_modified: Option<i64>,
    /// The object's size as stored (S3's `Content-Length`), when S3 gave one.
    pub size: Option<u64>,
    pub body: ByteStream,
}

impl S3Object {
    pub fn source_name(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// Starts a streaming GetObject; the body is read as the decoder asks for it. Refuses an
/// object over the default `limits.max_object_bytes`; see [`get_object_within`].
pub async fn get_object(client: &Client, bucket: &str, key: &str) -> Result<S3Object, FetchError> {
    get_object_within(client, bucket, key, &Limits::default()).await
}

/// Starts a streaming GetObject; the body is read as the decoder asks for it. An object bigger
/// than `limits.max_object_bytes` (by its `Content-Length`) is refused with
/// [`FetchError::TooLarge`] before any of its body is read.
pub async fn get_object_within(
    client: &Client,
    bucket: &str,
    key: &str,
    limits: &Limits,
) -> Result<S3Object, FetchError> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| {
            if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                FetchError::NotFound {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                }
            } else {
                FetchError::Get {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                    message: error_text(&e),
                }
            }
        })?;
    let size = out.content_length.and_then(|n| u64::try_from(n).ok());
    // Dropping `out` here closes the connection with the body unread.
    check_size(bucket, key, size, limits)?;
    Ok(S3Object {
        bucket: bucket.to_string(),
        key: key.to_string(),
        etag: out.e_tag.unwrap_or_default().trim_matches('"').to_string(),
        last_modified: out.last_modified.map(|t| t.secs()),
        size,
        body: out.body,
    })
}

/// Copies the objects under `uri` whose path below it `wanted` accepts into `dest`, at that
/// path, and returns those paths sorted (`driftd report bias --windows s3://…` reads the
/// windows of the S3 report prefix so). Blocking: it runs its own small runtime. A key with an
/// empty, `.` or `..` segment would land outside `dest`; it is refused, naming it.
pub fn copy_prefix(
    connection: &crate::aws::Connection<'_>,
    uri: &S3Uri,
    dest: &Path,
    wanted: &dyn Fn(&str) -> bool,
) -> anyhow::Result<Vec<String>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let sdk = crate::aws::sdk_config(connection).await;
        // Emulators and VPC endpoints are addressed by URL, so S3 goes path-style there.
        let client = Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(connection.endpoint_url.is_some())
                .build(),
        );
        let base = if uri.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", uri.prefix)
        };
        let mut pages = client
            .list_objects_v2()
            .bucket(&uri.bucket)
            .prefix(&base)
            .into_paginator()
            .send();
        let mut paths = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page
                .map_err(|e| anyhow::anyhow!("{uri}: ListObjectsV2 failed: {}", error_text(&e)))?;
            for key in page.contents().iter().filter_map(|o| o.key()) {
                let Some(path) = key.strip_prefix(&base).filter(|p| wanted(p)) else {
                    continue;
                };
                if path
                    .split('/')
                    .any(|s| s.is_empty() || s == "." || s == "..")
                {
                    anyhow::bail!("s3://{}/{key}: not a path below {uri}", uri.bucket);
                }
                let object = get_object(&client, &uri.bucket, key).await?;
                let body = object.body.collect().await.map_err(|e| {
                    anyhow::anyhow!("s3://{}/{key}: reading the body: {e}", uri.bucket)
                })?;
                let target = dest.join(path);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&target, body.into_bytes())
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", target.display()))?;
                paths.push(path.to_string());
            }
        }
        paths.sort_unstable();
        Ok(paths)
    })
}

/// [`FetchError::TooLarge`] when `size` is over `limits.max_object_bytes`. An object of
/// unknown size passes; its decoder's own limits still apply.
fn check_size(
    bucket: &str,
    key: &str,
    size: Option<u64>,
    limits: &Limits,
) -> Result<(), FetchError> {
    match size {
        Some(size) if size > limits.max_object_bytes => Err(FetchError::TooLarge {
            bucket: bucket.to_string(),
            key: key.to_string(),
            size,
            limit: limits.max_object_bytes,
        }),
        _ => Ok(()),
    }
}

/// A [`ByteStream`] as a blocking [`Read`], for a thread outside the async runtime (e.g.
/// `spawn_blocking`). Only one network chunk is held at a time. Cancelling `cancel` makes the
/// next read fail, so a decode in progress stops at shutdown; so does a body that sends
/// nothing for `stall_timeout` (a stalled connection would otherwise hang the reader).
pub struct BlockingBody {
    handle: Handle,
    stream: ByteStream,
    current: Bytes,
    cancel: CancellationToken,
    stall_timeout: Duration,
}

impl BlockingBody {
    pub fn new(
        handle: Handle,
        stream: ByteStream,
        cancel: CancellationToken,
        stall_timeout: Duration,
    ) -> Self {
        Self {
            handle,
            stream,
            current: Bytes::new(),
            cancel,
            stall_timeout,
        }
    }
}

impl Read for BlockingBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            let next = self.handle.block_on(async {
                tokio::select! {
                    biased;
                    // Not ErrorKind::Interrupted: readers retry on that.
                    _ = self.cancel.cancelled() => Err(std::io::Error::other(SHUTTING_DOWN)),
                    next = tokio::time::timeout(self.stall_timeout, self.stream.next()) => {
                        next.map_err(|_| std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("the object's body stalled for {:?}", self.stall_timeout),
                        ))
                    }
                }
            })?;
            match next {
                None => return Ok(0),
                Some(Ok(bytes)) => self.current = bytes,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Reads a batch transform capture manifest (FORMATS.md §1.4):
/// `[{"prefix": "s3://bucket/prefix/"}, "key", …]`, the keys relative to the prefix.
/// Returns the (bucket, key) of every object it lists.
pub async fn read_manifest(object: S3Object) -> Result<Vec<(String, String)>, FetchError> {
    let error = |message: String| FetchError::Manifest {
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        message,
    };
    // Refused before reading when S3 said how big it is; checked again below otherwise.
    if let Some(size) = object.size.filter(|&n| n > MAX_MANIFEST_BYTES as u64) {
        return Err(error(format!(
            "a manifest of {size} bytes is too big (at most {MAX_MANIFEST_BYTES})"
        )));
    }
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| error(format!("reading the manifest: {e}")))?
        .into_bytes();
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(error(format!(
            "a manifest of {} bytes is too big (at most {MAX_MANIFEST_BYTES})",
            bytes.len()
        )));
    }
    parse_manifest(&bytes).map_err(error)
}

fn parse_manifest(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    let items: Vec<serde_json::Value> = serde_json::from_slice(bytes).map_err(|e| {
        format!("not a capture manifest (a JSON array starting with {{\"prefix\": …}}): {e}")
    })?;
    let prefix = items
        .first()
        .and_then(|first| first.get("prefix"))
        .and_then(|p| p.as_str())
        .ok_or("a capture manifest starts with {\"prefix\": \"s3://bucket/prefix/\"}")?;
    let rest = prefix
        .strip_prefix("s3://")
        .ok_or_else(|| format!("manifest prefix {prefix:?} is not an s3:// URI"))?;
    let (bucket, key_prefix) = rest.split_once('/').unwrap_or((rest, ""));
    items[1..]
        .iter()
        .map(|item| {
            let key = item
                .as_str()
                .ok_or_else(|| format!("manifest entry {item} is not a key"))?;
            Ok((bucket.to_string(), format!("{key_prefix}{key}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_over_max_object_bytes_is_refused_for_good() {
        let limits = Limits {
            max_object_bytes: 1000,
            ..Limits::default()
        };
        assert!(check_size("b", "k", Some(1000), &limits).is_ok());
        assert!(check_size("b", "k", None, &limits).is_ok());
        let error = check_size("b", "cap/x.jsonl.gz", Some(1001), &limits).unwrap_err();
        assert_eq!(
            error.to_string(),
            "s3://b/cap/x.jsonl.gz: the object is 1001 bytes, more than \
             limits.max_object_bytes (1000); not read (raise limits.max_object_bytes in the \
             config to read it)"
        );
    }

    #[test]
    fn a_manifest_lists_keys_under_its_prefix() {
        let manifest = br#"[{"prefix": "s3://out-bucket/transform-output/"}, "test-dataset.jsonl.out", "part/2.jsonl.out"]"#;
        assert_eq!(
            parse_manifest(manifest).unwrap(),
            [
                (
                    "out-bucket".to_string(),
                    "transform-output/test-dataset.jsonl.out".to_string()
                ),
                (
                    "out-bucket".to_string(),
                    "transform-output/part/2.jsonl.out".to_string()
                ),
            ]
        );
    }

    #[test]
    fn a_manifest_without_prefix_or_with_other_entries_is_an_error() {
        assert!(
            parse_manifest(br#"["a", "b"]"#)
                .unwrap_err()
                .contains("prefix")
        );
        assert!(
            parse_manifest(br#"[{"prefix": "/local/"}, "a"]"#)
                .unwrap_err()
                .contains("s3://")
        );
        assert!(
            parse_manifest(br#"[{"prefix": "s3://b/"}, 3]"#)
                .unwrap_err()
                .contains("not a key")
        );
        assert!(parse_manifest(b"{\"captureData\": {}}\n").is_err());
    }

    #[test]
    fn blocking_body_reads_a_stream_in_pieces_and_stops_when_cancelled() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let body = ByteStream::from(data.clone());
        let mut reader = BlockingBody::new(
            runtime.handle().clone(),
            body,
            CancellationToken::new(),
            Duration::from_secs(30),
        );
        let mut out = Vec::new();
        let mut buf = [0u8; 777];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, data);

        let cancel = CancellationToken::new();
        cancel.cancel();
        let mut reader = BlockingBody::new(
            runtime.handle().clone(),
            ByteStream::from(vec![1u8; 10]),
            cancel,
            Duration::from_secs(30),
        );
        assert_eq!(
            reader.read(&mut buf).unwrap_err().to_string(),
            SHUTTING_DOWN
        );
    }
}
