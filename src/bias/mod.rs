//! Clarify's bias metrics (FORMATS.md §6): read `analysis_config.json`, reduce rows to a
//! mergeable [`BiasState`], and write `analysis.json` as Clarify does.
//!
//! ```text
//! analysis_config.json ─► BiasSpec ─┐
//! Arrow batches ────────────────────┴► BiasState ─(merge)─► evaluate ─► metrics ─► analysis.json
//! ```
//!
//! smclarify (Clarify's open-source metric code) is the reference: tests/bias_oracle.rs compares
//! every metric with its `bias_report`.

pub mod config;
pub mod drift;
pub mod metrics;
pub mod report;
pub mod state;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};

pub use config::{BiasSpec, ConfigError};
pub use metrics::{Metric, Stage};
pub use report::{Analysis, analysis};
pub use state::{BiasState, Evaluation};

use crate::analyze::metrics::MetricScope;
use crate::decode::{DecodeOptions, Quarantine};
use crate::pipeline::{self, ReadReport};
use crate::sinks::file::{METRICS_FILE, VIOLATIONS_FILE, write_metrics};

pub const ANALYSIS_FILE: &str = "analysis.json";

/// Reads every file into one state (one window). An object that cannot be decoded to its end
/// contributes nothing.
pub fn read_files(
    spec: &Arc<BiasSpec>,
    files: &[PathBuf],
    options: &DecodeOptions,
    quarantine: &mut Quarantine,
) -> (BiasState, ReadReport) {
    let mut state = BiasState::new(spec.clone());
    let mut report = ReadReport::default();
    for file in files {
        let mut object = BiasState::new(spec.clone());
        match pipeline::decode_object(file, options, quarantine, |chunk| {
            object.add_batch(&chunk.features)
        }) {
            Ok(rows) => {
                state.merge(object);
                report.objects_read += 1;
                report.rows += rows;
            }
            Err(error) => {
                tracing::error!(%error, "object skipped");
                report.failed.push(error);
            }
        }
    }
    (state, report)
}

/// What `driftd bias` did.
#[derive(Debug)]
pub struct BiasRun {
    pub analysis: Analysis,
    /// With a baseline: the window's bias drift violations.
    pub violations: Option<drift::BiasViolations>,
    pub report: ReadReport,
    pub rejected_records: u64,
    pub analysis_path: PathBuf,
}

/// `driftd bias`: the inputs as one dataset → `{output}/analysis.json` and the
/// `bias_metric_*` metrics file; with a `baseline` analysis.json also
/// `constraint_violations.json` (bias drift). Malformed records go to `quarantine` (default
/// `{output}/quarantine.jsonl`, removed when empty).
pub fn run(
    analysis_config: &Path,
    baseline: Option<&Path>,
    inputs: &[PathBuf],
    options: &DecodeOptions,
    quarantine: Option<PathBuf>,
    output: &Path,
    scope: &MetricScope,
) -> Result<BiasRun> {
    let spec = Arc::new(BiasSpec::load(analysis_config)?);
    let files = pipeline::list_files(inputs).context("cannot list the input files")?;
    if files.is_empty() {
        bail!("no input files found in {inputs:?}");
    }
    std::fs::create_dir_all(output)
        .with_context(|| format!("cannot create the output directory {}", output.display()))?;
    let quarantine_path = quarantine.unwrap_or_else(|| output.join("quarantine.jsonl"));
    let mut quarantine = pipeline::open_run_quarantine(&quarantine_path)?;
    let (state, report) = read_files(&spec, &files, options, &mut quarantine);
    pipeline::close_run_quarantine(&quarantine_path, &quarantine)?;
    if report.objects_read == 0 {
        bail!("none of the {} input files could be read", files.len());
    }
    let evaluation = state.evaluate();
    let analysis = analysis(&spec, &evaluation);
    let analysis_path = output.join(ANALYSIS_FILE);
    crate::json_file::write_json(&analysis_path, &analysis)?;
    let violations = match baseline {
        Some(path) => {
            let reference: Analysis = crate::json_file::read_json(path)?;
            let violations = drift::check(&reference, &analysis, &evaluation, spec.drift_rule);
            crate::json_file::write_json(&output.join(VIOLATIONS_FILE), &violations)?;
            Some(violations)
        }
        None => None,
    };
    write_metrics(
        &output.join(METRICS_FILE),
        &drift::bias_metrics(&analysis, scope),
    )?;
    Ok(BiasRun {
        analysis,
        violations,
        report,
        rejected_records: quarantine.total(),
        analysis_path,
    })
}
