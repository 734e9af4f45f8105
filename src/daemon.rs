//! `driftd run`: objects in, window outputs in Model Monitor's layout out. Embedded mode reads
//! a local directory, AWS mode S3 objects announced on SQS; both through the one [`driver`].
//! This module resolves the monitors and turns a closed window into its report and files.

mod actions;
mod driver;
mod plan;
mod state;

pub use actions::ACTIONS_FILE;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::analyze::{self, metrics::MetricScope};
use crate::attribution::{self, AttributionAnalysis};
use crate::bias;
use crate::config::{Config, ConfigError, MonitorBaseline};
use crate::events;
use crate::ingest::local::PathPattern;
use crate::model_quality;
use crate::multivariate;
use crate::sinks::{Outcome, WindowReport, stdout};
use crate::window::{ClosedWindow, StateKind, WindowState};

pub const DEAD_LETTER_FILE: &str = "dead_letter.jsonl";

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error(transparent)]
    Output(#[from] crate::json_file::FileError),
    #[error(transparent)]
    State(#[from] crate::store::StoreError),
    #[error("{0}")]
    Usage(String),
}

/// What a run did, for the caller's final line.
#[derive(Debug, Default)]
pub struct RunSummary {
    /// Objects (messages, files) that failed at least once, each counted once.
    pub objects_failed: usize,
    pub counts: events::Totals,
}

struct Monitor {
    pattern: PathPattern,
    /// A label-joined model-quality monitor's `ground_truth_path`.
    labels: Option<PathPattern>,
    /// What its windows hold.
    kind: StateKind,
    baseline: MonitorBaseline,
}

/// What an object is to the monitor it is routed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Records (capture, batch files) for its windows.
    Records,
    /// Ground-truth labels for its label join.
    Labels,
}

/// Every monitor whose path pattern (or `ground_truth_path`) matches `path` (relative to the
/// input directory, or an S3 key), in config order, with what the path says. One object can
/// feed several monitors, as an endpoint's capture feeds its data-quality and model-quality
/// schedules in Model Monitor.
fn route(monitors: &[Monitor], path: &str) -> Vec<(usize, crate::ingest::local::PathFields, Role)> {
    (monitors.iter().enumerate())
        .filter_map(|(i, m)| {
            m.pattern
                .matches(path)
                .map(|f| (i, f, Role::Records))
                .or_else(|| {
                    let labels = m.labels.as_ref()?.matches(path)?;
                    Some((i, labels, Role::Labels))
                })
        })
        .collect()
}

/// Runs until the process is stopped, or with `once` (embedded mode only) until the files
/// present now are read and every window they fill is written.
pub fn run(config: &Config, config_path: &Path, once: bool) -> Result<RunSummary, RunError> {
    let baselines = config.load_baselines(config_path)?;
    let monitors = config
        .monitors
        .iter()
        .zip(baselines)
        .map(|(m, baseline)| {
            let pattern = PathPattern::new(&m.path)
                .map_err(|e| RunError::Usage(format!("monitor ({}).path: {e}", m.name)))?;
            let labels = (m.ground_truth_path.as_deref())
                .map(PathPattern::new)
                .transpose()
                .map_err(|e| {
                    RunError::Usage(format!("monitor ({}).ground_truth_path: {e}", m.name))
                })?;
            Ok(Monitor {
                pattern,
                kind: match &baseline {
                    MonitorBaseline::DataQuality(_) => StateKind::DataQuality,
                    MonitorBaseline::Bias { spec, .. } if labels.is_some() => {
                        StateKind::BiasRows(spec.clone())
                    }
                    MonitorBaseline::Bias { spec, .. } => StateKind::Bias(spec.clone()),
                    MonitorBaseline::ModelQuality { spec, .. } if labels.is_some() => {
                        StateKind::Predictions(spec.clone())
                    }
                    MonitorBaseline::ModelQuality { spec, .. } => {
                        StateKind::ModelQuality(spec.clone())
                    }
                    MonitorBaseline::FeatureAttribution { spec, .. } => {
                        StateKind::FeatureAttribution(spec.clone())
                    }
                    MonitorBaseline::MultivariateDrift(spec) => {
                        StateKind::MultivariateDrift(spec.clone())
                    }
                },
                labels,
                baseline,
            })
        })
        .collect::<Result<Vec<_>, RunError>>()?;
    if let Some(listen) = config.observability.listen {
        let bound = crate::sinks::prometheus::spawn(listen).map_err(|error| {
            RunError::Usage(format!(
                "observability.listen: cannot serve on {listen}: {error}; choose a free address"
            ))
        })?;
        tracing::info!(%bound, "serving /metrics, /healthz and /readyz");
    }
    events::telemetry().set_ready("config", Ok(()));
    if once && config.input.is_aws() {
        return Err(RunError::Usage(
            "--once reads a directory once; in AWS mode (input.sqs_queue_url) driftd runs until SIGTERM".into(),
        ));
    }
    let rules = config.load_rules(config_path)?.unwrap_or_default();
    let summary = driver::run(config, config_path, monitors, rules, once)?;
    if let Some(line) = stdout::summarize_quarantine(&summary.counts.quarantined) {
        stdout::print(&format!("{line}\n"));
    }
    Ok(summary)
}

/// A closed window against its monitor's baseline: findings, metrics and where they go.
/// `join`: a label-joined window's counts; `estimate`: its estimated performance.
fn window_report(
    config: &Config,
    monitors: &[Monitor],
    window: ClosedWindow,
    join: Option<model_quality::JoinCounts>,
    estimate: Option<crate::estimate::EstimatedPerformance>,
) -> WindowReport {
    let monitor_config = &config.monitors[window.key.monitor];
    let rows = window.state.row_count();
    let start =
        DateTime::<Utc>::from_timestamp(window.key.start, 0).expect("window start in range");
    let end = DateTime::<Utc>::from_timestamp(window.end, 0).expect("window end in range");
    let scope = MetricScope {
        endpoint: window.key.endpoint.clone(),
        monitoring_schedule: monitor_config.name.clone(),
        timestamp: end,
    };
    let (outcome, metrics) = match (&monitors[window.key.monitor].baseline, window.state) {
        (MonitorBaseline::DataQuality(baseline), WindowState::DataQuality(profile)) => {
            let profile = analyze::adopt_baseline_names(profile, &baseline.statistics);
            let findings = analyze::analyze(baseline, &profile);
            let metrics = analyze::metrics::data_quality_metrics(baseline, &findings, &scope);
            let outcome = Outcome::DataQuality {
                constraints: baseline.constraints.clone(),
                findings,
            };
            (outcome, metrics)
        }
        (MonitorBaseline::Bias { spec, baseline }, WindowState::Bias(state)) => {
            let evaluation = state.evaluate();
            let analysis = bias::analysis(spec, &evaluation);
            let violations = bias::drift::check(baseline, &analysis, &evaluation, spec.drift_rule);
            let metrics = bias::drift::bias_metrics(&analysis, &scope);
            (
                Outcome::Bias {
                    analysis,
                    violations,
                    join,
                },
                metrics,
            )
        }
        (MonitorBaseline::ModelQuality { constraints, .. }, WindowState::ModelQuality(window)) => {
            let mut window = *window;
            let statistics = model_quality::evaluate(&mut window.state);
            // A window without a labelled row (its labels have not come) measured nothing:
            // its metrics would read 0, so neither they nor violations are reported.
            let measured = statistics.item_count > 0;
            let (violations, mut metrics) = if measured {
                (
                    model_quality::check(constraints, &statistics.metrics),
                    analyze::metrics::model_quality_metrics(&statistics, &scope),
                )
            } else {
                (Default::default(), Vec::new())
            };
            if let Some(estimate) = &estimate {
                metrics.extend(analyze::metrics::data(estimate.metric_values(), &scope));
            }
            (
                Outcome::ModelQuality {
                    constraints: model_quality::suggest_constraints(&statistics),
                    statistics,
                    violations,
                    skipped_rows: window.skipped_rows,
                    join,
                    estimate: estimate.map(Box::new),
                },
                metrics,
            )
        }
        (
            MonitorBaseline::FeatureAttribution { spec, baseline },
            WindowState::FeatureAttribution(state),
        ) => {
            let analysis = AttributionAnalysis::new(state.explanations());
            let drift = attribution::compare(&baseline.explanations, &analysis.explanations);
            let violations = attribution::violations(&drift, spec.threshold);
            let metrics = attribution::metrics(&analysis.explanations, &drift, &scope);
            (
                Outcome::FeatureAttribution {
                    analysis,
                    drift,
                    violations,
                    refused_values: state.refused_values + state.bad_values,
                },
                metrics,
            )
        }
        (MonitorBaseline::MultivariateDrift(_), WindowState::MultivariateDrift(window)) => {
            let result = window.evaluate();
            let baseline = &window.spec.baseline;
            let violations = multivariate::monitor::violations(baseline, &result);
            let metrics = multivariate::monitor::metrics(&result, &scope);
            (
                Outcome::MultivariateDrift {
                    spec: window.spec.clone(),
                    result,
                    refused_by_feature: window.refused_by_feature,
                    violations,
                },
                metrics,
            )
        }
        _ => unreachable!("a monitor's windows hold the state its kind makes"),
    };
    let relative_dir = window_dir(
        Path::new(""),
        window.key.endpoint.as_deref(),
        &monitor_config.name,
        start,
        window.end - window.key.start,
    );
    let relative_dir = relative_dir
        .iter()
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    WindowReport {
        monitor: monitor_config.name.clone(),
        endpoint: window.key.endpoint,
        start,
        end,
        rows,
        outcome,
        metrics,
        relative_dir,
    }
}

/// The few lines printed for a committed window, ending with the folder its files go to.
pub(crate) fn window_summary(config: &Config, report: &WindowReport) -> String {
    let dir = config.output.directory.join(&report.relative_dir);
    let title = format!(
        "{} {} [{} .. {})",
        report.monitor,
        report.endpoint.as_deref().unwrap_or("-"),
        report.start.format("%Y-%m-%dT%H:%M:%SZ"),
        report.end.format("%Y-%m-%dT%H:%M:%SZ"),
    );
    let summary = match &report.outcome {
        Outcome::DataQuality { findings, .. } => stdout::summarize(&title, report.rows, findings),
        Outcome::Bias { violations, .. } => stdout::summarize_bias(&title, report.rows, violations),
        Outcome::ModelQuality {
            statistics,
            violations,
            skipped_rows,
            estimate,
            ..
        } => {
            let summary = stdout::summarize_model_quality(
                &title,
                statistics.item_count,
                *skipped_rows,
                violations,
            );
            match estimate {
                Some(estimate) => summary + &stdout::summarize_estimate(estimate),
                None => summary,
            }
        }
        Outcome::FeatureAttribution {
            drift,
            violations,
            refused_values,
            ..
        } => stdout::summarize_attribution(&title, report.rows, *refused_values, drift, violations),
        Outcome::MultivariateDrift { spec, result, .. } => {
            stdout::summarize_multivariate(&title, result, &spec.baseline)
        }
    };
    format!("{summary}  → {}\n", dir.display())
}

/// Model Monitor's layout: `{out}/{endpoint}/{monitor}/yyyy/mm/dd/hh/` for endpoint monitors,
/// `{out}/{monitor}/yyyy/mm/dd/hh/` for batch ones, named by the window's start. Windows
/// not a whole number of hours add a minute folder, and those not a whole number of minutes a
/// second folder too, so no two windows share one.
pub fn window_dir(
    out: &Path,
    endpoint: Option<&str>,
    monitor: &str,
    start: DateTime<Utc>,
    size_seconds: i64,
) -> PathBuf {
    let mut dir = out.to_path_buf();
    if let Some(endpoint) = endpoint {
        // The endpoint comes from an object's path: never `..`, `/abs` or a control character.
        dir.push(crate::safe_name::path_component(endpoint).as_ref());
    }
    dir.push(monitor);
    dir.push(format!("{:04}", start.year()));
    dir.push(format!("{:02}", start.month()));
    dir.push(format!("{:02}", start.day()));
    dir.push(format!("{:02}", start.hour()));
    if size_seconds % 3600 != 0 {
        dir.push(format!("{:02}", start.minute()));
    }
    if size_seconds % 60 != 0 {
        dir.push(format!("{:02}", start.second()));
    }
    dir
}

fn dead_letter(path: &Path, error: &dyn std::fmt::Display) -> Result<(), RunError> {
    let line = serde_json::json!({
        "time": Utc::now().to_rfc3339(),
        "error": error.to_string(),
    });
    let append = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(f, "{line}")
    };
    append().map_err(|error| RunError::Io {
        path: path.to_path_buf(),
        error,
    })
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_folder_stays_below_the_output_whatever_the_endpoint() {
        let start = DateTime::from_timestamp(0, 0).unwrap();
        let out = Path::new("/out");
        for endpoint in ["..", "/etc", "a/../../b", "ep\n"] {
            let dir = window_dir(out, Some(endpoint), "m", start, 3600);
            assert!(
                dir.components()
                    .all(|c| c != std::path::Component::ParentDir),
                "{endpoint:?}: {}",
                dir.display()
            );
            assert!(dir.starts_with(out), "{}", dir.display());
            assert_eq!(dir.components().count(), out.components().count() + 6);
        }
        assert_eq!(
            window_dir(out, Some("churn"), "m", start, 3600),
            Path::new("/out/churn/m/1970/01/01/00")
        );
    }
}
