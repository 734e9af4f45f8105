//! driftd's integration tests, in one test binary so that the library and the AWS SDK are
//! linked once rather than once per file. Each module is one area; `common` holds the helpers
//! (the `driftd` binary, the Python oracles, the AWS emulator harness).

mod common;

mod attribution;
mod aws_attribution;
mod aws_durability;
mod aws_e2e;
mod aws_label_join;
mod aws_multivariate;
mod aws_outage;
mod bias_drift;
mod bias_oracle;
mod cbpe;
mod check_oracle;
mod embedded_durability;
mod label_join;
mod model_quality_oracle;
mod multivariate;
mod observability;
mod oracle_smoke;
mod quickstart;
mod report_bias;
mod run_attribution;
mod run_bias;
mod run_embedded;
mod run_estimate;
mod run_model_quality;
mod run_multivariate;
mod sagemaker_compat;
mod sagemaker_real_bias;
mod sagemaker_real_dq;
mod sagemaker_real_mq;
mod store_s3;
