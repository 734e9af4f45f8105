//! Where findings go. Each sink owns one destination: local files, stdout, and in AWS mode S3
//! reports, CloudWatch metrics and SNS alerts.

pub mod cloudwatch;
pub mod file;
pub mod retry;
pub mod s3_report;
pub mod sns;
pub mod stdout;

use chrono::{DateTime, Utc};

use crate::analyze::Findings;
use crate::analyze::metrics::MetricDatum;
use crate::baseline::Constraints;

/// Everything one closed window yields, as the sinks receive it.
#[derive(Debug, Clone)]
pub struct WindowReport {
    pub monitor: String,
    /// `None` for batch monitors (their paths name no endpoint).
    pub endpoint: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub rows: u64,
    /// The constraints the window was checked against.
    pub constraints: Constraints,
    pub findings: Findings,
    pub metrics: Vec<MetricDatum>,
    /// Model Monitor's layout below the output root, `/`-separated:
    /// `{endpoint}/{monitor}/yyyy/mm/dd/hh` (batch: `{monitor}/yyyy/mm/dd/hh`).
    pub relative_dir: String,
}
