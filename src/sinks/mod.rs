//! Where findings go. Each sink owns one destination: local files, stdout, the operators'
//! `/metrics` endpoint, and in AWS mode S3 reports, CloudWatch metrics, and rule actions on SNS
//! or SQS.

#[cfg(feature = "aws")]
pub mod actions;
#[cfg(feature = "aws")]
pub mod cloudwatch;
pub mod file;
pub mod prometheus;
#[cfg(feature = "aws")]
pub mod retry;
#[cfg(feature = "aws")]
pub mod s3_report;
pub mod sns;
pub mod stdout;

use chrono::{DateTime, Utc};

use crate::analyze::Findings;
use crate::analyze::metrics::MetricDatum;
use crate::attribution::{AttributionAnalysis, AttributionViolations, LabelDrift};
use crate::baseline::Constraints;
use crate::bias::Analysis;
use crate::bias::drift::BiasViolations;
use crate::model_quality::{
    ModelQualityConstraints, ModelQualityStatistics, ModelQualityViolations,
};

/// Everything one closed window yields, as the sinks receive it.
#[derive(Debug, Clone)]
pub struct WindowReport {
    pub monitor: String,
    /// `None` for batch monitors (their paths name no endpoint).
    pub endpoint: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub rows: u64,
    pub outcome: Outcome,
    pub metrics: Vec<MetricDatum>,
    /// Model Monitor's layout below the output root, `/`-separated:
    /// `{endpoint}/{monitor}/yyyy/mm/dd/hh` (batch: `{monitor}/yyyy/mm/dd/hh`).
    pub relative_dir: String,
}

/// What a window was found to be, by its monitor's kind.
#[derive(Debug, Clone)]
pub enum Outcome {
    DataQuality {
        /// The baseline's constraints, which the window was checked against (the thresholds
        /// alerts quote); `findings.constraints` are those suggested from the window.
        constraints: Constraints,
        findings: Findings,
    },
    Bias {
        analysis: Analysis,
        violations: BiasViolations,
        /// A label-joined window: what the join made of its rows and the labels.
        join: Option<crate::model_quality::JoinCounts>,
    },
    ModelQuality {
        statistics: ModelQualityStatistics,
        /// Suggested from the window, as the CLI's `check` writes them.
        constraints: ModelQualityConstraints,
        violations: ModelQualityViolations,
        /// Rows without a usable prediction or ground truth.
        skipped_rows: u64,
        /// A label-joined window: what the join made of its predictions and the labels.
        join: Option<crate::model_quality::JoinCounts>,
        /// With `[monitor.estimate]`: the window's performance estimated before its labels.
        estimate: Option<Box<crate::estimate::EstimatedPerformance>>,
    },
    FeatureAttribution {
        /// The window's global attributions, in Clarify's explainability layout.
        analysis: AttributionAnalysis,
        /// NDCG per baseline label.
        drift: Vec<LabelDrift>,
        violations: AttributionViolations,
        /// Values refused (past the feature limit) or unreadable.
        refused_values: u64,
    },
    MultivariateDrift {
        /// The monitor's baseline (features, thresholds, chunk size).
        spec: std::sync::Arc<crate::multivariate::MultivariateSpec>,
        /// The window as one chunk: error, sampling error, thresholds, alert, top features.
        result: crate::multivariate::ChunkResult,
        /// Rows refused, under the feature that refused them.
        refused_by_feature: std::collections::BTreeMap<String, u64>,
        violations: crate::multivariate::monitor::MultivariateViolations,
    },
}

impl WindowReport {
    /// The label join's counts of a label-joined window.
    pub fn join(&self) -> Option<&crate::model_quality::JoinCounts> {
        match &self.outcome {
            Outcome::Bias { join, .. } | Outcome::ModelQuality { join, .. } => join.as_ref(),
            _ => None,
        }
    }

    /// The "window finalised" event of this window; of a window's later revision (`restate`),
    /// the "window restated" one.
    pub fn emit_finalised(&self) {
        if let Some(counts) = self.join().filter(|c| c.revision > 0) {
            crate::events::emit(crate::events::Event::WindowRestated {
                monitor: &self.monitor,
                endpoint: self.endpoint.as_deref(),
                window: &self.relative_dir,
                revision: counts.revision,
                labelled: counts.labelled,
                violations: self.violation_count(),
            });
            return;
        }
        crate::events::emit(crate::events::Event::WindowFinalised {
            monitor: &self.monitor,
            endpoint: self.endpoint.as_deref(),
            window: &self.relative_dir,
            rows: self.rows,
            violations: self.violation_count(),
        });
    }

    #[cfg(feature = "aws")]
    pub fn family(&self) -> cloudwatch::Family {
        match self.outcome {
            Outcome::DataQuality { .. } => cloudwatch::Family::DataQuality,
            Outcome::Bias { .. } => cloudwatch::Family::Bias,
            Outcome::ModelQuality { .. } => cloudwatch::Family::ModelQuality,
            Outcome::FeatureAttribution { .. } => cloudwatch::Family::FeatureAttribution,
            Outcome::MultivariateDrift { .. } => cloudwatch::Family::MultivariateDrift,
        }
    }

    pub fn violation_count(&self) -> usize {
        match &self.outcome {
            Outcome::DataQuality { findings, .. } => findings.violations.violations.len(),
            Outcome::Bias { violations, .. } => violations.violations.len(),
            Outcome::ModelQuality { violations, .. } => violations.violations.len(),
            Outcome::FeatureAttribution { violations, .. } => violations.violations.len(),
            Outcome::MultivariateDrift { violations, .. } => violations.violations.len(),
        }
    }
}
