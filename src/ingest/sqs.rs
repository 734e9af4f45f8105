//! AWS mode's source of objects: S3 event notifications read from an SQS queue. Parsing the
//! messages is pure and lives in [`super::notice`]; [`SqsQueue`] does the I/O.

use std::time::Duration;

use crate::aws::error_text;
use aws_sdk_sqs::Client;
use tokio_util::sync::CancellationToken;

pub use super::notice::{
    AllowList, EventError, MAX_KEY_BYTES, Notice, ObjectEvent, decode_key, key_problem,
    parse_message, shorten,
};

/// A received message, until it is deleted or released.
#[derive(Debug, Clone)]
pub struct Received {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub receive_count: u32,
}

/// The queue: long-poll receive, visibility heartbeats, delete, release.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
    visibility_timeout: Duration,
    wait_time: Duration,
}

impl SqsQueue {
    pub fn new(
        client: Client,
        url: String,
        visibility_timeout: Duration,
        wait_time: Duration,
    ) -> Self {
        Self {
            client,
            url,
            visibility_timeout,
            wait_time,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the queue exists and may be read (at start-up).
    pub async fn check(&self) -> Result<(), crate::sinks::retry::Attempt> {
        self.client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .map(|_| ())
            .map_err(crate::sinks::retry::attempt)
    }

    /// Long-polls for up to 10 messages (SQS's maximum per call).
    pub async fn receive(&self) -> Result<Vec<Received>, String> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .wait_time_seconds(self.wait_time.as_secs() as i32)
            .visibility_timeout(self.visibility_timeout.as_secs() as i32)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .send()
            .await
            .map_err(|e| format!("ReceiveMessage on {}: {}", self.url, error_text(&e)))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let receive_count = m
                    .attributes
                    .as_ref()
                    .and_then(|a| {
                        a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
                    })
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                Some(Received {
                    message_id: m.message_id.unwrap_or_default(),
                    receipt_handle: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                    receive_count,
                })
            })
            .collect())
    }

    /// Deletes a message whose work is done (or that is refused for good).
    pub async fn delete(&self, message: &Received) -> Result<(), String> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(&message.receipt_handle)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "DeleteMessage {} on {}: {}",
                    message.message_id,
                    self.url,
                    error_text(&e)
                )
            })
    }

    /// Makes a message visible again at once (shutdown: another consumer takes it over).
    pub async fn release(&self, message: &Received) -> Result<(), String> {
        self.set_visibility(&message.receipt_handle, Duration::ZERO)
            .await
            .map_err(|e| format!("releasing message {}: {e}", message.message_id))
    }

    async fn set_visibility(&self, receipt_handle: &str, timeout: Duration) -> Result<(), String> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(timeout.as_secs() as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "ChangeMessageVisibility on {}: {}",
                    self.url,
                    error_text(&e)
                )
            })
    }

    /// Keeps `message` invisible while it is being worked on: every third of the visibility
    /// timeout its timeout is extended again, until the heartbeat is stopped or dropped.
    pub fn heartbeat(&self, message: &Received) -> Heartbeat {
        let token = CancellationToken::new();
        let queue = self.clone();
        let receipt = message.receipt_handle.clone();
        let id = message.message_id.clone();
        let stop = token.clone();
        let period = (self.visibility_timeout / 3).max(Duration::from_millis(500));
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(period) => {}
                }
                if let Err(error) = queue
                    .set_visibility(&receipt, queue.visibility_timeout)
                    .await
                {
                    tracing::warn!(message_id = %id, %error, "visibility heartbeat failed; the message may be delivered again");
                }
            }
        });
        Heartbeat {
            token,
            task: Some(task),
        }
    }
}

/// A message's visibility heartbeat. Dropping it stops further extensions; [`Heartbeat::stop`]
/// also waits for one in flight, so that a release or delete that follows is not overtaken.
#[derive(Debug)]
pub struct Heartbeat {
    token: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Heartbeat {
    pub async fn stop(mut self) {
        self.token.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.token.cancel();
    }
}
