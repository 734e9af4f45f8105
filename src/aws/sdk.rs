//! The SDK configuration and SDK error text.

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::Connection;

/// The SDK configuration: credentials from the SDK's default chain (environment, profile, web
/// identity, container or instance role), never from driftd's own config. Every call has a
/// connect timeout and a per-attempt timeout, so a stalled connection fails (and is retried)
/// instead of hanging.
pub async fn sdk_config(connection: &Connection<'_>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(connection.connect_timeout)
            .operation_attempt_timeout(connection.request_timeout)
            .build(),
    );
    if let Some(region) = connection.region {
        loader = loader.region(Region::new(region.to_string()));
    }
    if let Some(profile) = connection.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = connection.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// An SDK error as one line: the service's error code and message, or the transport failure.
/// Never the request itself, whose signed headers must not reach a log.
pub fn error_text<E, R>(error: &SdkError<E, R>) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    match error.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("error"),
            service.message().unwrap_or("(no message)")
        ),
        None => DisplayErrorContext(error).to_string(),
    }
}

/// Whether retrying could help: throttling, server errors and transport failures, not a
/// request the service refused as invalid.
pub fn is_retryable<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or_default();
            status >= 500
                || status == 429
                || code.contains("Throttl")
                || code == "RequestLimitExceeded"
                || code == "SlowDown"
        }
        _ => false,
    }
}
