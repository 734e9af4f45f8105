//! Retries for sink calls: exponential backoff with full jitter, so replicas that failed
//! together do not retry together.

use std::future::Future;
use std::time::Duration;

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};

const BASE: Duration = Duration::from_millis(200);
const CAP: Duration = Duration::from_secs(10);

/// A failed attempt: what went wrong, and whether another attempt could succeed.
#[derive(Debug)]
pub struct Attempt {
    pub message: String,
    pub retryable: bool,
}

/// A failed SDK call as an [`Attempt`].
pub fn attempt<E>(error: SdkError<E, HttpResponse>) -> Attempt
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    Attempt {
        retryable: crate::aws::is_retryable(&error),
        message: crate::aws::error_text(&error),
    }
}

/// A sink call that failed for good: what, after how many attempts, and whether the last
/// failure was permanent (the service refused the request: a missing bucket or topic, no
/// permission), so that trying again later would not help either.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    pub message: String,
    pub permanent: bool,
}

impl From<SinkError> for String {
    fn from(error: SinkError) -> Self {
        error.message
    }
}

/// The longest wait before retry `n` (1-based): 200ms · 2^(n-1), at most 10s.
pub fn backoff_ceiling(retry: u32) -> Duration {
    BASE.saturating_mul(1u32 << retry.saturating_sub(1).min(16))
        .min(CAP)
}

/// Runs `call` up to `attempts` times, waiting a random time up to [`backoff_ceiling`] between
/// tries. The error names `what`, the attempts made and the last failure.
pub async fn with_retries<T, F, Fut>(what: &str, attempts: u32, mut call: F) -> Result<T, SinkError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Attempt>>,
{
    let mut tried = 0;
    loop {
        tried += 1;
        match call().await {
            Ok(value) => return Ok(value),
            Err(failure) if failure.retryable && tried < attempts => {
                let wait = backoff_ceiling(tried).mul_f64(fastrand::f64());
                tracing::warn!(what, attempt = tried, error = %failure.message, retry_in_ms = wait.as_millis() as u64, "sink call failed; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(failure) => {
                return Err(SinkError {
                    message: format!(
                        "{what}: failed after {tried} attempt{}: {}{}",
                        if tried == 1 { "" } else { "s" },
                        if failure.retryable {
                            ""
                        } else {
                            "permanent error: "
                        },
                        failure.message
                    ),
                    permanent: !failure.retryable,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn the_backoff_ceiling_doubles_up_to_its_cap() {
        assert_eq!(backoff_ceiling(1), Duration::from_millis(200));
        assert_eq!(backoff_ceiling(2), Duration::from_millis(400));
        assert_eq!(backoff_ceiling(4), Duration::from_millis(1600));
        assert_eq!(backoff_ceiling(7), Duration::from_secs(10));
        assert_eq!(backoff_ceiling(40), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_failures_are_retried_and_others_are_not() {
        let calls = Cell::new(0);
        let result = with_retries("PutMetricData", 5, || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 3 {
                    Err(Attempt {
                        message: "Throttling".into(),
                        retryable: true,
                    })
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result, Ok(3));

        calls.set(0);
        let result: Result<(), SinkError> = with_retries("Publish", 5, || {
            calls.set(calls.get() + 1);
            async {
                Err(Attempt {
                    message: "InvalidParameter: bad topic".into(),
                    retryable: false,
                })
            }
        })
        .await;
        assert_eq!(calls.get(), 1);
        assert_eq!(
            result.unwrap_err(),
            SinkError {
                message:
                    "Publish: failed after 1 attempt: permanent error: InvalidParameter: bad topic"
                        .into(),
                permanent: true,
            }
        );

        calls.set(0);
        let result: Result<(), SinkError> = with_retries("PutObject", 3, || {
            calls.set(calls.get() + 1);
            async {
                Err(Attempt {
                    message: "SlowDown".into(),
                    retryable: true,
                })
            }
        })
        .await;
        assert_eq!(calls.get(), 3);
        let error = result.unwrap_err();
        assert!(error.message.contains("after 3 attempts") && !error.permanent);
    }
}
