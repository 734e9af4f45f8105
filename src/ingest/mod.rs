//! Where objects come from: a local directory (embedded mode), or S3 objects announced on an
//! SQS queue (AWS mode).

pub mod local;
pub mod notice;
#[cfg(feature = "aws")]
pub mod s3;
#[cfg(feature = "aws")]
pub mod sqs;
