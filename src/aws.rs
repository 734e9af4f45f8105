//! What every AWS client shares: the SDK configuration, and error text that is safe to log.
//! Only ingest and sinks make clients. A leaf: it knows nothing of driftd's config file.
//!
//! [`Connection`] is plain data (the config file names it), so it builds without the AWS SDK;
//! what calls the SDK is in `sdk`, built with the `aws` feature.

#[cfg(feature = "aws")]
mod sdk;
#[cfg(feature = "aws")]
pub use sdk::{error_text, is_retryable, sdk_config};

/// Where and how the clients connect; each `None` leaves the SDK's default.
#[derive(Debug, Clone, Default)]
pub struct Connection<'a> {
    pub region: Option<&'a str>,
    pub profile: Option<&'a str>,
    pub endpoint_url: Option<&'a str>,
    pub connect_timeout: std::time::Duration,
    pub request_timeout: std::time::Duration,
}
