//! driftd: data-quality, drift and bias monitoring for models in production, reading and
//! writing SageMaker Model Monitor's files. See DESIGN.md for the flow of one object.
//!
//! Without the `aws` feature (on by default) the library leaves out everything that needs the
//! AWS SDK (the daemon, the state store, the report, the S3/SQS/CloudWatch/SNS clients) and
//! keeps the decoders, statistics, rules, config and window codec: what `fuzz/` builds.

pub mod analyze;
pub mod attribution;
pub mod aws;
pub mod baseline;
pub mod bias;
pub mod cbpe;
pub mod config;
#[cfg(feature = "aws")]
pub mod daemon;
pub mod decode;
pub mod estimate;
pub mod events;
pub mod format;
pub mod fuzz;
pub mod ingest;
pub mod json_file;
#[cfg(test)]
mod laws;
pub mod model_quality;
pub mod multivariate;
pub mod multivariate_run;
pub mod pipeline;
pub mod profile;
#[cfg(feature = "aws")]
pub mod report;
pub mod rules;
pub mod s3_uri;
pub mod safe_name;
pub mod sinks;
#[cfg(feature = "aws")]
pub mod store;
pub mod window;
