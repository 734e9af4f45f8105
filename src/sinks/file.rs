//! A window's outputs as local files, named as Model Monitor names them.

use std::io::Write;
use std::path::Path;

use crate::analyze::Findings;
use crate::analyze::metrics::MetricDatum;
use crate::baseline::{CONSTRAINTS_FILE, STATISTICS_FILE};
use crate::bias::drift::BiasViolations;
use crate::bias::groups::GROUPS_FILE;
use crate::bias::{ANALYSIS_FILE, Analysis};
use crate::json_file::{FileError, write_json};
use crate::model_quality as mq;

pub const VIOLATIONS_FILE: &str = "constraint_violations.json";
pub const DRIFT_FILE: &str = "drift.json";
/// Model Monitor's BYOC containers write one JSON datum per line to this name.
pub const METRICS_FILE: &str = "cloudwatch_metrics.jsonl";

/// Writes `statistics.json`, `constraints.json` (suggested from the window, as a Model Monitor
/// execution writes it), `constraint_violations.json`, `drift.json` and the metrics file into
/// `dir`.
pub fn write_findings(
    dir: &Path,
    findings: &Findings,
    metrics: &[MetricDatum],
) -> Result<(), FileError> {
    write_json(&dir.join(STATISTICS_FILE), &findings.statistics)?;
    write_json(&dir.join(CONSTRAINTS_FILE), &findings.constraints)?;
    write_json(&dir.join(VIOLATIONS_FILE), &findings.violations)?;
    write_json(&dir.join(DRIFT_FILE), &findings.drift)?;
    write_metrics(&dir.join(METRICS_FILE), metrics)
}

/// A bias window: `analysis.json`, `constraint_violations.json` (Clarify's bias format), the
/// metrics file, and driftd's `bias_groups.json` (the counts behind the metrics).
pub fn write_bias(
    dir: &Path,
    analysis: &Analysis,
    violations: &BiasViolations,
    join: Option<&mq::JoinCounts>,
    metrics: &[MetricDatum],
) -> Result<(), FileError> {
    write_json(&dir.join(ANALYSIS_FILE), analysis)?;
    write_json(&dir.join(VIOLATIONS_FILE), violations)?;
    if let Some(groups) = &analysis.groups {
        write_json(&dir.join(GROUPS_FILE), groups)?;
    }
    if let Some(join) = join {
        write_json(&dir.join(mq::LABEL_JOIN_FILE), &join.file())?;
    }
    write_metrics(&dir.join(METRICS_FILE), metrics)
}

/// A feature-attribution window: Clarify's explainability `analysis.json`,
/// `constraint_violations.json` and the metrics file.
pub fn write_attribution(
    dir: &Path,
    analysis: &crate::attribution::AttributionAnalysis,
    violations: &crate::attribution::AttributionViolations,
    metrics: &[MetricDatum],
) -> Result<(), FileError> {
    write_json(&dir.join(crate::attribution::ANALYSIS_FILE), analysis)?;
    write_json(&dir.join(VIOLATIONS_FILE), violations)?;
    write_metrics(&dir.join(METRICS_FILE), metrics)
}

/// A multivariate-drift window: `multivariate_drift.json` (the window as one chunk),
/// `constraint_violations.json` and the metrics file.
pub fn write_multivariate(
    dir: &Path,
    drift: &serde_json::Value,
    violations: &crate::multivariate::monitor::MultivariateViolations,
    metrics: &[MetricDatum],
) -> Result<(), FileError> {
    write_json(&dir.join(crate::multivariate_run::RESULT_FILE), drift)?;
    write_json(&dir.join(VIOLATIONS_FILE), violations)?;
    write_metrics(&dir.join(METRICS_FILE), metrics)
}

/// A model-quality window: `statistics.json` (evaluated at `evaluation_time`), the window's own
/// suggested `constraints.json`, `constraint_violations.json` and the metrics file.
pub fn write_model_quality(
    dir: &Path,
    outcome: &ModelQualityFiles,
    metrics: &[MetricDatum],
) -> Result<(), FileError> {
    write_json(&dir.join(mq::STATISTICS_FILE), &outcome.statistics)?;
    write_json(&dir.join(mq::CONSTRAINTS_FILE), &outcome.constraints)?;
    write_json(&dir.join(VIOLATIONS_FILE), &outcome.violations)?;
    if let Some(join) = &outcome.label_join {
        write_json(&dir.join(mq::LABEL_JOIN_FILE), join)?;
    }
    if let Some(estimate) = &outcome.estimated_performance {
        write_json(
            &dir.join(crate::estimate::ESTIMATED_PERFORMANCE_FILE),
            estimate,
        )?;
    }
    write_metrics(&dir.join(METRICS_FILE), metrics)
}

/// A model-quality window's files as JSON values (the statistics file borrows its statistics).
pub struct ModelQualityFiles {
    pub statistics: serde_json::Value,
    pub constraints: serde_json::Value,
    pub violations: serde_json::Value,
    /// A label-joined window's `label_join.json`.
    pub label_join: Option<serde_json::Value>,
    /// With `[monitor.estimate]`: `estimated_performance.json`.
    pub estimated_performance: Option<serde_json::Value>,
}

impl ModelQualityFiles {
    pub fn of(
        statistics: &mq::ModelQualityStatistics,
        constraints: &mq::ModelQualityConstraints,
        violations: &mq::ModelQualityViolations,
        join: Option<&mq::JoinCounts>,
        estimate: Option<&crate::estimate::EstimatedPerformance>,
        evaluation_time: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        let json = |value: serde_json::Result<serde_json::Value>| {
            value.expect("model-quality files serialize")
        };
        Self {
            statistics: json(serde_json::to_value(mq::statistics_file(
                statistics,
                evaluation_time,
            ))),
            constraints: json(serde_json::to_value(constraints)),
            violations: json(serde_json::to_value(violations)),
            label_join: join.map(mq::JoinCounts::file),
            estimated_performance: estimate.map(|e| json(serde_json::to_value(e))),
        }
    }
}

/// One datum per line, written through a temporary file and a rename.
pub fn write_metrics(path: &Path, metrics: &[MetricDatum]) -> Result<(), FileError> {
    let write = || -> std::io::Result<()> {
        let tmp = path.with_extension("jsonl.tmp");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        for datum in metrics {
            serde_json::to_writer(&mut out, datum)?;
            out.write_all(b"\n")?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|error| FileError::Write {
        path: path.to_path_buf(),
        error,
    })
}
