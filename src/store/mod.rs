//! The durable state store: a small key/value store for driftd's state that must survive a
//! restart and, in production, be shared by replicas — the ledger of processed objects, each
//! object's partial window state, window leases, rule state and the outbox of deliveries.
//!
//! Two backends behind one API, [`StateStore`]:
//!
//! * [`LocalStore`]: a directory on one machine. Each key is a file; writes go to a temporary
//!   file in the same directory that is fsynced and then renamed (or hard-linked) into place,
//!   and the directory is fsynced, so a write is durable once it returns and a reader never sees
//!   a partial file. Conditional writes are atomic across processes sharing the directory.
//! * [`S3Store`]: objects under `s3://bucket/prefix/`, shared by every replica. Conditional
//!   writes are S3's own: `If-None-Match: *` and `If-Match: <etag>` on PutObject.
//!
//! # Keys
//!
//! A key is a relative, `/`-separated path such as `ledger/ab12…` or
//! `parts/3/ep/1700000000/ab12…`. Every segment is non-empty, at most [`MAX_SEGMENT_BYTES`]
//! bytes, and does not start with `.` (which rules out `.` and `..`, and leaves names starting
//! with a dot to the local backend's temporary and lock files); no NUL, backslash or control
//! characters; at most [`MAX_KEY_BYTES`] bytes in all. Both backends apply the same rules, so a
//! key that works on one works on the other. A bad key is refused with
//! [`StoreError::InvalidKey`] before any I/O.
//!
//! Prefixes for [`StateStore::list`] match as strings, as S3's do: `parts/3` lists
//! `parts/3/…` and `parts/30/…`; end the prefix with `/` to list one "directory".
//!
//! # Versions and compare-and-swap
//!
//! [`StateStore::get_versioned`] returns a [`Version`] with the content; [`StateStore::replace`]
//! writes only if the key still has that version. On S3 the version is the object's ETag, which
//! for driftd's single-part PutObjects is the MD5 of the content; the local store uses a 128-bit
//! hash of the content. In both, the version therefore identifies the *content*, not the write:
//! rewriting a key with identical bytes keeps its version. That is a value compare-and-swap —
//! correct for state whose next value depends only on its current value, and the same on both
//! backends, so code tested against one behaves the same on the other. State that must detect
//! "someone rewrote the same bytes" (rare) needs a generation number or owner token in the
//! content itself.
//!
//! # What `false` means from a conditional write
//!
//! [`StateStore::put_new`] → `Ok(false)`: the key exists. [`StateStore::replace`] →
//! `Ok(false)`: the key is missing or its version is not the expected one; re-read and decide
//! again. On S3, a write whose response was lost is retried by the SDK, and the retry of a
//! conditional write that did succeed is refused by the condition it just satisfied: a `false`
//! can therefore mean "your own earlier attempt won". State that is written conditionally
//! (leases, the ledger) should carry the writer's identity so that the caller can re-read and
//! recognise its own write.
//!
//! S3 answers a conditional write that races another conditional write to the same key with
//! `409 ConditionalRequestConflict`. `replace` reports it as `Ok(false)` (the caller's
//! read-compare-swap loop re-reads and retries, which is what AWS advises). `put_new` reports it
//! as a retryable [`StoreError`] rather than `false`: `false` would claim the key exists, but
//! the racing write may yet fail, and a caller that took "exists" for "already done" would drop
//! work.

mod local;
mod s3;

pub use local::LocalStore;
pub use s3::S3Store;

/// The longest key, in bytes. S3's limit is 1024 bytes for the whole object key; this leaves
/// room for the store's prefix.
pub const MAX_KEY_BYTES: usize = 900;

/// The longest segment of a key, in bytes: a file name in the local store, which leaves room
/// for the temporary file's name within the usual 255-byte file-name limit.
pub const MAX_SEGMENT_BYTES: usize = 200;

/// Where driftd keeps its durable state: a local directory or an S3 prefix. Cheap to clone;
/// clones share the same store.
#[derive(Debug, Clone)]
pub enum StateStore {
    Local(LocalStore),
    S3(S3Store),
}

/// The version of a key's content, from [`StateStore::get_versioned`], to hand back to
/// [`StateStore::replace`]. Opaque: an S3 ETag or a local content hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(String);

impl Version {
    pub(crate) fn new(token: String) -> Self {
        Version(token)
    }

    /// The token as text, for logs.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A failed store operation: which store, which operation on which key, and why.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A key or prefix the store refuses (see the module docs); nothing was read or written.
    #[error("state store {store}: invalid key {key:?}: {reason}")]
    InvalidKey {
        store: String,
        key: String,
        reason: &'static str,
    },
    /// A store location that cannot be used: a malformed `s3://` URI, or a directory that
    /// cannot be created.
    #[error("state store {location:?}: {reason}")]
    InvalidLocation { location: String, reason: String },
    /// The backend failed: an I/O error, or an error from S3.
    #[error("state store {store}: {op} {key:?} failed: {message}")]
    Failed {
        store: String,
        op: &'static str,
        key: String,
        message: String,
        retryable: bool,
    },
}

impl StoreError {
    /// Whether trying again later could succeed: throttling, S3 server errors, network failures
    /// and timeouts, a conflicting concurrent S3 write, a full disk. Not a refused key, missing
    /// bucket, denied access or other error that needs someone to change something.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Failed { retryable, .. } => *retryable,
            StoreError::InvalidKey { .. } | StoreError::InvalidLocation { .. } => false,
        }
    }
}

impl StateStore {
    /// Writes `bytes` under `key`, replacing what was there. Durable once it returns.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        crate::events::telemetry().state_operation("put", key);
        match self {
            StateStore::Local(s) => s.put(key, bytes).await,
            StateStore::S3(s) => s.put(key, bytes).await,
        }
    }

    /// Writes `bytes` under `key` only if the key does not exist: `Ok(true)` if this call
    /// created it, `Ok(false)` if it already existed (then nothing was written). Atomic: of
    /// several concurrent callers, across processes and replicas, at most one gets `true`.
    pub async fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<bool, StoreError> {
        crate::events::telemetry().state_operation("put_new", key);
        match self {
            StateStore::Local(s) => s.put_new(key, bytes).await,
            StateStore::S3(s) => s.put_new(key, bytes).await,
        }
    }

    /// The content of `key`, or `None` if it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        crate::events::telemetry().state_operation("get", key);
        match self {
            StateStore::Local(s) => s.get(key).await,
            StateStore::S3(s) => s.get(key).await,
        }
    }

    /// The content of `key` and its [`Version`], for a later [`replace`](Self::replace).
    pub async fn get_versioned(&self, key: &str) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        crate::events::telemetry().state_operation("get_versioned", key);
        match self {
            StateStore::Local(s) => s.get_versioned(key).await,
            StateStore::S3(s) => s.get_versioned(key).await,
        }
    }

    /// Compare-and-swap: writes `bytes` only if `key` exists and its version is still
    /// `expected`. `Ok(false)` if it changed, was deleted or (S3) a concurrent conditional write
    /// was in progress; re-read and try again.
    pub async fn replace(
        &self,
        key: &str,
        bytes: Vec<u8>,
        expected: &Version,
    ) -> Result<bool, StoreError> {
        crate::events::telemetry().state_operation("replace", key);
        match self {
            StateStore::Local(s) => s.replace(key, bytes, expected).await,
            StateStore::S3(s) => s.replace(key, bytes, expected).await,
        }
    }

    /// Every key that starts with `prefix` (a string prefix, as in S3; `""` lists all), sorted
    /// by bytes.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        crate::events::telemetry().state_operation("list", prefix);
        match self {
            StateStore::Local(s) => s.list(prefix).await,
            StateStore::S3(s) => s.list(prefix).await,
        }
    }

    /// Deletes `key`. Deleting a key that does not exist succeeds.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        crate::events::telemetry().state_operation("delete", key);
        match self {
            StateStore::Local(s) => s.delete(key).await,
            StateStore::S3(s) => s.delete(key).await,
        }
    }

    /// Deletes every key of `keys` (those that do not exist succeed): on S3 one request per
    /// 1000 keys. Not atomic: on an error some keys may be gone.
    pub async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        for batch in keys.chunks(1000) {
            crate::events::telemetry().state_operation("delete_many", &batch[0]);
        }
        match self {
            StateStore::Local(s) => {
                for key in keys {
                    s.delete(key).await?;
                }
                Ok(())
            }
            StateStore::S3(s) => s.delete_many(keys).await,
        }
    }

    /// Where the store is, for logs: a directory path or `s3://bucket/prefix`.
    pub fn describe(&self) -> String {
        match self {
            StateStore::Local(s) => s.describe(),
            StateStore::S3(s) => s.describe(),
        }
    }
}

impl From<LocalStore> for StateStore {
    fn from(store: LocalStore) -> Self {
        StateStore::Local(store)
    }
}

impl From<S3Store> for StateStore {
    fn from(store: S3Store) -> Self {
        StateStore::S3(store)
    }
}

/// Checks `key` against the rules in the module docs; the reason it is refused otherwise.
pub(crate) fn check_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("a key must not be empty");
    }
    if key.len() > MAX_KEY_BYTES {
        return Err("a key must be at most 900 bytes");
    }
    if key.starts_with('/') {
        return Err("a key must be relative (no leading '/')");
    }
    for segment in key.split('/') {
        check_segment(segment)?;
    }
    Ok(())
}

/// Checks a list prefix: `""`, or a key, or a key followed by `/`, or a key whose last segment
/// is incomplete (which may then be anything a segment may start with).
pub(crate) fn check_prefix(prefix: &str) -> Result<(), &'static str> {
    if prefix.is_empty() {
        return Ok(());
    }
    check_key(prefix.strip_suffix('/').unwrap_or(prefix))
}

fn check_segment(segment: &str) -> Result<(), &'static str> {
    if segment.is_empty() {
        return Err("a key must not have empty segments ('//', or a trailing '/')");
    }
    if segment.starts_with('.') {
        return Err("a key segment must not start with '.' (this rules out '.' and '..')");
    }
    if segment.len() > MAX_SEGMENT_BYTES {
        return Err("a key segment must be at most 200 bytes");
    }
    if segment.contains(|c: char| c == '\\' || c.is_control()) {
        return Err("a key must not contain '\\', NUL or other control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_relative_paths_without_dot_or_empty_segments() {
        for good in [
            "ledger/ab12",
            "parts/3/ep/1700000000/ab12",
            "a",
            "lease/window-1700000000",
            "with space/and=equals",
        ] {
            assert_eq!(check_key(good), Ok(()), "{good}");
        }
        let long_segment = "x".repeat(MAX_SEGMENT_BYTES + 1);
        let long_key = vec!["x"; MAX_KEY_BYTES / 2 + 1].join("/");
        for bad in [
            "",
            "/abs",
            "a//b",
            "a/",
            "..",
            "a/../b",
            ".",
            "a/./b",
            ".hidden",
            "a/.tmp",
            "a\\b",
            "a\0b",
            "a\nb",
            long_segment.as_str(),
            long_key.as_str(),
        ] {
            assert!(check_key(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn prefixes_may_be_empty_or_end_in_a_slash() {
        for good in ["", "ledger/", "parts/3", "parts/3/", "a"] {
            assert_eq!(check_prefix(good), Ok(()), "{good}");
        }
        for bad in ["/", "/a", "a//", "../", "a/../", ".x"] {
            assert!(check_prefix(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn only_backend_failures_can_be_retryable() {
        let failed = |retryable| StoreError::Failed {
            store: "s3://b/p".into(),
            op: "get",
            key: "k".into(),
            message: "SlowDown: reduce your request rate".into(),
            retryable,
        };
        assert!(failed(true).is_retryable());
        assert!(!failed(false).is_retryable());
        let invalid = StoreError::InvalidKey {
            store: "/var/lib/driftd/state".into(),
            key: "../x".into(),
            reason: "r",
        };
        assert!(!invalid.is_retryable());
        assert_eq!(
            failed(true).to_string(),
            "state store s3://b/p: get \"k\" failed: SlowDown: reduce your request rate"
        );
    }
}
