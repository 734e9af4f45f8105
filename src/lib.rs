//! driftd: data-quality, drift and bias monitoring for models in production, reading and
//! writing SageMaker Model Monitor's files. See DESIGN.md for the flow of one object.

pub mod analyze;
pub mod attribution;
pub mod aws;
pub mod baseline;
pub mod bias;
pub mod config;
pub mod daemon;
pub mod decode;
pub mod events;
pub mod format;
pub mod ingest;
pub mod json_file;
pub mod model_quality;
pub mod pipeline;
pub mod profile;
pub mod report;
pub mod rules;
pub mod s3_uri;
pub mod safe_name;
pub mod sinks;
pub mod store;
pub mod window;
