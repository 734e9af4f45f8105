//! The state store in S3: each key is the object `<prefix>/<key>` in one bucket, shared by every
//! replica.
//!
//! Conditional writes are S3's own, which are atomic in S3 itself:
//!
//! * [`put_new`](S3Store::put_new) is PutObject with `If-None-Match: *`; S3 answers
//!   `412 PreconditionFailed` if the key exists.
//! * [`replace`](S3Store::replace) is PutObject with `If-Match: <etag>` (the ETag from
//!   [`get_versioned`](S3Store::get_versioned), quotes and all); S3 answers
//!   `412 PreconditionFailed` if the object's ETag differs, and `404 NoSuchKey` if it is gone.
//! * Either may get `409 ConditionalRequestConflict` when another conditional write to the key
//!   is in flight. `replace` takes it for "changed" (`false`); `put_new` reports a retryable
//!   error, since `false` would claim the key exists (see the [module docs](super)).
//!
//! AWS supports both conditions on PutObject since August (`If-None-Match`) and November 2024
//! (`If-Match`), on general purpose buckets. S3-compatible stores that ignore them would make
//! every conditional write succeed; do not use one for replicas.
//!
//! The SDK retries throttling, 5xx and transport errors itself before an error reaches here;
//! what is still retryable after that is reported through [`StoreError::is_retryable`].
//!
//! Permissions: `s3:GetObject`, `s3:PutObject` and `s3:DeleteObject` on `prefix/*`, and
//! `s3:ListBucket` on the bucket — without it S3 answers a GetObject of a missing key with
//! `403 AccessDenied` instead of `404 NoSuchKey`, and `get` fails instead of returning `None`.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::{StoreError, Version, check_key, check_prefix};
use crate::aws::{error_text, is_retryable};
use crate::s3_uri::S3Uri;

/// S3's limit on an object key, in bytes.
const MAX_OBJECT_KEY_BYTES: usize = 1024;

/// The state store under an S3 prefix. Cheap to clone; clones share the client.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// Without a trailing '/'; empty for the bucket's root.
    prefix: String,
}

/// How S3 refused a conditional write, when it did.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// 412: the condition does not hold (the key exists, or has another ETag).
    PreconditionFailed,
    /// 409: another conditional write to the key is in progress.
    Conflict,
    /// 404 NoSuchKey: `If-Match` on a key that does not exist.
    NoSuchKey,
}

fn refusal<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> Option<Refusal> {
    let SdkError::ServiceError(service) = error else {
        return None;
    };
    let status = service.raw().status().as_u16();
    match (status, service.err().code()) {
        (_, Some("PreconditionFailed")) | (412, None) => Some(Refusal::PreconditionFailed),
        (_, Some("ConditionalRequestConflict" | "OperationAborted")) | (409, None) => {
            Some(Refusal::Conflict)
        }
        (_, Some("NoSuchKey")) => Some(Refusal::NoSuchKey),
        _ => None,
    }
}

impl S3Store {
    /// The store at `uri` (`s3://bucket` or `s3://bucket/some/prefix`), through `client`.
    /// The prefix must also be a valid store key, since every key goes under it.
    pub fn new(client: Client, uri: &S3Uri) -> Result<Self, StoreError> {
        if !uri.prefix.is_empty() {
            check_key(&uri.prefix).map_err(|reason| StoreError::InvalidLocation {
                location: uri.to_string(),
                reason: format!("the prefix {:?} is not valid: {reason}", uri.prefix),
            })?;
        }
        Ok(S3Store {
            client,
            bucket: uri.bucket.clone(),
            prefix: uri.prefix.clone(),
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The prefix keys are under, without a trailing '/'; empty for the bucket's root.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `s3://bucket/prefix`, for logs.
    pub fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// See [`StateStore::put`](super::StateStore::put).
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let object = self.object_key(key)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(object)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.failed("put", key, &e))?;
        Ok(())
    }

    /// See [`StateStore::put_new`](super::StateStore::put_new).
    pub async fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<bool, StoreError> {
        let object = self.object_key(key)?;
        let sent = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(object)
            .if_none_match("*")
            .body(ByteStream::from(bytes))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(e) => match refusal(&e) {
                Some(Refusal::PreconditionFailed) => Ok(false),
                Some(Refusal::Conflict) => Err(StoreError::Failed {
                    store: self.describe(),
                    op: "put_new",
                    key: key.to_string(),
                    message: format!(
                        "{} (another conditional write to the key was in progress; try again)",
                        error_text(&e)
                    ),
                    retryable: true,
                }),
                _ => Err(self.failed("put_new", key, &e)),
            },
        }
    }

    /// See [`StateStore::get`](super::StateStore::get).
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.fetch("get", key).await?.map(|(bytes, _)| bytes))
    }

    /// See [`StateStore::get_versioned`](super::StateStore::get_versioned).
    pub async fn get_versioned(&self, key: &str) -> Result<Option<(Vec<u8>, Version)>, StoreError> {
        match self.fetch("get", key).await? {
            None => Ok(None),
            Some((bytes, Some(etag))) => Ok(Some((bytes, Version::new(etag)))),
            Some((_, None)) => Err(StoreError::Failed {
                store: self.describe(),
                op: "get",
                key: key.to_string(),
                message: "S3 returned the object without an ETag, which compare-and-swap needs"
                    .to_string(),
                retryable: false,
            }),
        }
    }

    /// See [`StateStore::replace`](super::StateStore::replace).
    pub async fn replace(
        &self,
        key: &str,
        bytes: Vec<u8>,
        expected: &Version,
    ) -> Result<bool, StoreError> {
        let object = self.object_key(key)?;
        let sent = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(object)
            .if_match(expected.as_str())
            .body(ByteStream::from(bytes))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(e) => match refusal(&e) {
                Some(Refusal::PreconditionFailed | Refusal::NoSuchKey | Refusal::Conflict) => {
                    Ok(false)
                }
                None => Err(self.failed("replace", key, &e)),
            },
        }
    }

    /// See [`StateStore::list`](super::StateStore::list).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        check_prefix(prefix).map_err(|reason| self.invalid(prefix, reason))?;
        let base = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{base}{prefix}"))
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.failed("list", prefix, &e))?;
            for object in page.contents() {
                // Objects under the prefix that no key can name (a console "folder", say).
                if let Some(key) = object.key().and_then(|k| k.strip_prefix(&base))
                    && check_key(key).is_ok()
                {
                    keys.push(key.to_string());
                }
            }
        }
        keys.sort_unstable();
        Ok(keys)
    }

    /// See [`StateStore::delete`](super::StateStore::delete).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let object = self.object_key(key)?;
        let sent = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(object)
            .send()
            .await;
        match sent {
            // S3 answers 204 for a key that does not exist; NoSuchKey only in case.
            Ok(_) => Ok(()),
            Err(e) if refusal(&e) == Some(Refusal::NoSuchKey) => Ok(()),
            Err(e) => Err(self.failed("delete", key, &e)),
        }
    }

    /// See [`StateStore::delete_many`](super::StateStore::delete_many): DeleteObjects, up to
    /// 1000 keys a request.
    pub async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        for batch in keys.chunks(1000) {
            let objects = (batch.iter())
                .map(|key| {
                    let object = self.object_key(key)?;
                    Ok(ObjectIdentifier::builder()
                        .key(object)
                        .build()
                        .expect("the key is set"))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .expect("the objects are set");
            let first = &batch[0];
            let answer = (self.client.delete_objects())
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| self.failed("delete", first, &e))?;
            // A key that does not exist is deleted as far as S3 is concerned; any error is
            // a key left behind.
            if let Some(error) = answer.errors().first() {
                return Err(StoreError::Failed {
                    store: self.describe(),
                    op: "delete",
                    key: error.key().unwrap_or(first).to_string(),
                    message: format!(
                        "{}: {}",
                        error.code().unwrap_or("error"),
                        error.message().unwrap_or_default()
                    ),
                    retryable: true,
                });
            }
        }
        Ok(())
    }

    /// GetObject: the body and the ETag, or `None` if there is no such key.
    async fn fetch(
        &self,
        op: &'static str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, StoreError> {
        let object = self.object_key(key)?;
        let sent = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(object)
            .send()
            .await;
        let output = match sent {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(self.failed(op, key, &e)),
        };
        let etag = output.e_tag().map(str::to_string);
        let body = output
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Failed {
                store: self.describe(),
                op,
                key: key.to_string(),
                message: format!("reading the object's body failed: {e}"),
                retryable: true,
            })?;
        Ok(Some((body.into_bytes().to_vec(), etag)))
    }

    /// The object key for `key`, which must be valid.
    fn object_key(&self, key: &str) -> Result<String, StoreError> {
        check_key(key).map_err(|reason| self.invalid(key, reason))?;
        let object = if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        };
        if object.len() > MAX_OBJECT_KEY_BYTES {
            return Err(self.invalid(
                key,
                "with the store's prefix, the object key is longer than S3's 1024 bytes",
            ));
        }
        Ok(object)
    }

    fn invalid(&self, key: &str, reason: &'static str) -> StoreError {
        StoreError::InvalidKey {
            store: self.describe(),
            key: key.to_string(),
            reason,
        }
    }

    fn failed<E>(
        &self,
        op: &'static str,
        key: &str,
        error: &SdkError<E, HttpResponse>,
    ) -> StoreError
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        StoreError::Failed {
            store: self.describe(),
            op,
            key: key.to_string(),
            message: error_text(error),
            retryable: is_retryable(error) || refusal(error) == Some(Refusal::Conflict),
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::error::ErrorMetadata;
    use aws_sdk_s3::operation::put_object::PutObjectError;
    use aws_sdk_s3::primitives::SdkBody;

    use super::*;

    fn client() -> Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .build();
        Client::from_conf(config)
    }

    #[test]
    fn uris_name_a_bucket_and_an_optional_prefix() {
        for (uri, bucket, prefix, describe) in [
            ("s3://my-bucket", "my-bucket", "", "s3://my-bucket"),
            ("s3://my-bucket/", "my-bucket", "", "s3://my-bucket"),
            (
                "s3://my.bucket/driftd",
                "my.bucket",
                "driftd",
                "s3://my.bucket/driftd",
            ),
            (
                "s3://b12/driftd/state/",
                "b12",
                "driftd/state",
                "s3://b12/driftd/state",
            ),
        ] {
            let store = S3Store::new(client(), &S3Uri::parse(uri).unwrap()).unwrap();
            assert_eq!(
                (store.bucket(), store.prefix(), store.describe().as_str()),
                (bucket, prefix, describe),
                "{uri}"
            );
        }
    }

    #[test]
    fn object_keys_are_under_the_prefix_and_within_s3s_limit() {
        let store =
            S3Store::new(client(), &S3Uri::parse("s3://bucket/driftd/state").unwrap()).unwrap();
        assert_eq!(
            store.object_key("ledger/ab").unwrap(),
            "driftd/state/ledger/ab"
        );
        let root = S3Store::new(client(), &S3Uri::parse("s3://bucket").unwrap()).unwrap();
        assert_eq!(root.object_key("ledger/ab").unwrap(), "ledger/ab");

        let long_prefix = format!("s3://bucket/{}", vec!["p".repeat(100); 5].join("/"));
        let store = S3Store::new(client(), &S3Uri::parse(&long_prefix).unwrap()).unwrap();
        let long_key = vec!["k".repeat(100); 6].join("/");
        assert!(root.object_key(&long_key).is_ok());
        let error = store.object_key(&long_key).unwrap_err();
        assert!(error.to_string().contains("1024"), "{error}");
        assert!(matches!(
            store.object_key("a/../b"),
            Err(StoreError::InvalidKey { .. })
        ));
    }

    fn service_error(status: u16, code: Option<&str>) -> SdkError<PutObjectError, HttpResponse> {
        let mut meta = ErrorMetadata::builder().message("m");
        if let Some(code) = code {
            meta = meta.code(code);
        }
        SdkError::service_error(
            PutObjectError::generic(meta.build()),
            HttpResponse::new(status.try_into().unwrap(), SdkBody::empty()),
        )
    }

    /// moto never answers 409, so the mapping of S3's answers is checked here on its own.
    #[test]
    fn conditional_write_refusals_are_told_from_failures() {
        use Refusal::*;
        for (status, code, expected) in [
            (412, Some("PreconditionFailed"), Some(PreconditionFailed)),
            (412, None, Some(PreconditionFailed)),
            (409, Some("ConditionalRequestConflict"), Some(Conflict)),
            (409, None, Some(Conflict)),
            (404, Some("NoSuchKey"), Some(NoSuchKey)),
            (404, Some("NoSuchBucket"), None),
            (403, Some("AccessDenied"), None),
            (503, Some("SlowDown"), None),
            (500, Some("InternalError"), None),
        ] {
            let error = service_error(status, code);
            assert_eq!(refusal(&error), expected, "{status} {code:?}");
        }
        assert!(is_retryable(&service_error(503, Some("SlowDown"))));
        assert!(!is_retryable(&service_error(404, Some("NoSuchBucket"))));
    }
}
