//! A window's outputs as local files, named as Model Monitor names them.

use std::path::Path;

use super::{Outcome, WindowReport};
use crate::analyze::Findings;
use crate::analyze::metrics::MetricDatum;
use crate::baseline::{CONSTRAINTS_FILE, STATISTICS_FILE};
use crate::bias::ANALYSIS_FILE;
use crate::bias::groups::GROUPS_FILE;
use crate::json_file::{FileError, write_atomically, write_json};
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

/// The window's files, named as Model Monitor (for bias: Clarify) names them, with their
/// bodies. The main file (`statistics.json`, `analysis.json`) comes first.
pub fn window_files(report: &WindowReport) -> Vec<(String, String)> {
    let mut metrics = String::new();
    for datum in &report.metrics {
        metrics.push_str(&serde_json::to_string(datum).expect("a metric datum serializes"));
        metrics.push('\n');
    }
    let mut files = match &report.outcome {
        Outcome::DataQuality { findings, .. } => vec![
            (STATISTICS_FILE, pretty(&findings.statistics)),
            (CONSTRAINTS_FILE, pretty(&findings.constraints)),
            (VIOLATIONS_FILE, pretty(&findings.violations)),
            (DRIFT_FILE, pretty(&findings.drift)),
        ],
        Outcome::Bias {
            analysis,
            violations,
            join,
        } => {
            let mut files = vec![
                (ANALYSIS_FILE, pretty(analysis)),
                (VIOLATIONS_FILE, pretty(violations)),
            ];
            if let Some(groups) = &analysis.groups {
                files.push((GROUPS_FILE, pretty(groups)));
            }
            if let Some(join) = join {
                files.push((crate::model_quality::LABEL_JOIN_FILE, pretty(&join.file())));
            }
            files
        }
        Outcome::ModelQuality {
            statistics,
            constraints,
            violations,
            join,
            estimate,
            ..
        } => {
            let files = ModelQualityFiles::of(
                statistics,
                constraints,
                violations,
                join.as_ref(),
                estimate.as_deref(),
                report.end,
            );
            let mut out = vec![
                (STATISTICS_FILE, pretty(&files.statistics)),
                (CONSTRAINTS_FILE, pretty(&files.constraints)),
                (VIOLATIONS_FILE, pretty(&files.violations)),
            ];
            if let Some(join) = &files.label_join {
                out.push((crate::model_quality::LABEL_JOIN_FILE, pretty(join)));
            }
            if let Some(estimate) = &files.estimated_performance {
                out.push((
                    crate::estimate::ESTIMATED_PERFORMANCE_FILE,
                    pretty(estimate),
                ));
            }
            out
        }
        Outcome::FeatureAttribution {
            analysis,
            violations,
            ..
        } => vec![
            (crate::attribution::ANALYSIS_FILE, pretty(analysis)),
            (VIOLATIONS_FILE, pretty(violations)),
        ],
        Outcome::MultivariateDrift {
            spec,
            result,
            refused_by_feature,
            violations,
        } => vec![
            (
                crate::multivariate_run::RESULT_FILE,
                pretty(&crate::multivariate::monitor::drift_file(
                    &spec.baseline,
                    result,
                    refused_by_feature,
                )),
            ),
            (VIOLATIONS_FILE, pretty(violations)),
        ],
    };
    files.push((METRICS_FILE, metrics));
    files
        .into_iter()
        .map(|(name, body)| (name.to_string(), body))
        .collect()
}

/// Pretty JSON with a final newline, as `json_file::write_json` writes it.
fn pretty<T: serde::Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("outputs serialize");
    text.push('\n');
    text
}

/// Writes a window's files (name, body, as [`window_files`] gives them) into `dir`. Each goes through a temporary file, an fsync and a rename: a reader never
/// sees half a file, and a write repeated after a crash leaves the same files.
pub fn write_window_files(dir: &Path, files: &[(String, String)]) -> Result<(), FileError> {
    for (name, body) in files {
        write_atomically(&dir.join(name), body.as_bytes())?;
    }
    Ok(())
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
    let mut text = Vec::new();
    for datum in metrics {
        serde_json::to_writer(&mut text, datum).expect("a metric datum serializes");
        text.push(b'\n');
    }
    write_atomically(path, &text)
}
