//! A window's outputs uploaded to S3 in Model Monitor's layout (FORMATS.md §1.8):
//! `{uri}/{endpoint}/{monitor}/yyyy/mm/dd/hh/` (batch: `{uri}/{monitor}/yyyy/mm/dd/hh/`), the
//! same files the local output directory gets (for bias, driftd's `bias_groups.json` too: the
//! compliance report reads the windows back from here).

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

use super::retry::{SinkError, with_retries};
use crate::s3_uri::S3Uri;
use crate::sinks::retry::attempt;

pub struct S3ReportSink {
    client: Client,
    bucket: String,
    /// Key prefix without a trailing `/` (may be empty).
    prefix: String,
    max_attempts: u32,
}

impl S3ReportSink {
    pub fn new(client: Client, uri: &S3Uri, max_attempts: u32) -> Self {
        Self {
            client,
            bucket: uri.bucket.clone(),
            prefix: uri.prefix.clone(),
            max_attempts,
        }
    }

    /// Whether the bucket exists and is reachable (at start-up).
    pub async fn check(&self) -> Result<(), crate::sinks::retry::Attempt> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(attempt)
    }

    /// `s3://bucket/prefix/{relative_dir}/`: where a window's files go.
    pub fn window_uri(&self, relative_dir: &str) -> String {
        format!(
            "s3://{}/{}/",
            self.bucket,
            self.window_key_prefix(relative_dir)
        )
    }

    fn window_key_prefix(&self, relative_dir: &str) -> String {
        if self.prefix.is_empty() {
            relative_dir.to_string()
        } else {
            format!("{}/{relative_dir}", self.prefix)
        }
    }

    /// Uploads a window's files (from [`super::file::window_files`]) under its directory: all but the main
    /// file (`statistics.json`, `analysis.json`) at once, then the main file, so a reader that
    /// sees it finds the rest already there. At once, because a window's alerts and metrics
    /// wait for its report.
    pub async fn write(
        &self,
        relative_dir: &str,
        files: &[(String, String)],
    ) -> Result<(), SinkError> {
        let dir = self.window_key_prefix(relative_dir);
        let Some((main, rest)) = files.split_first() else {
            return Ok(());
        };
        let mut uploads = tokio::task::JoinSet::new();
        for (name, body) in rest {
            let upload = self.put(format!("{dir}/{name}"), body.clone());
            uploads.spawn(upload);
        }
        let mut failed = None;
        while let Some(done) = uploads.join_next().await {
            if let Err(error) = done.expect("an upload does not panic") {
                failed.get_or_insert(error);
            }
        }
        if let Some(error) = failed {
            return Err(error);
        }
        self.put(format!("{dir}/{}", main.0), main.1.clone()).await
    }

    /// One PutObject, with retries; owns what it needs, so that uploads can run side by side.
    fn put(
        &self,
        key: String,
        body: String,
    ) -> impl std::future::Future<Output = Result<(), SinkError>> + Send + 'static {
        let (client, bucket, attempts) =
            (self.client.clone(), self.bucket.clone(), self.max_attempts);
        async move {
            let content_type = if key.ends_with(".jsonl") {
                "application/x-ndjson"
            } else {
                "application/json"
            };
            with_retries(
                &format!("S3 PutObject s3://{bucket}/{key}"),
                attempts,
                || async {
                    (client.put_object())
                        .bucket(&bucket)
                        .key(&key)
                        .content_type(content_type)
                        .body(ByteStream::from(body.clone().into_bytes()))
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(attempt)
                },
            )
            .await
        }
    }
}
