//! Local objects through decode → profile (or → bias state, → model-quality state): what
//! `baseline`, `check`, `bias` and `run` share, and the files of `driftd bias` and of
//! `baseline`/`check --kind model-quality`.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::analyze::metrics::MetricScope;
use crate::attribution::{
    self, AttributionAnalysis, AttributionSource, AttributionSpec, AttributionState,
    AttributionViolations,
};
use crate::bias::{self, ANALYSIS_FILE, Analysis, BiasSpec, BiasState};
use crate::decode::{self, Chunk, DecodeError, DecodeOptions, Quarantine, RejectReason};
use crate::model_quality::{
    self as mq, Membership, ModelQualityConstraints, ModelQualitySpec, ModelQualityState,
    ModelQualityStatistics, ModelQualityViolations,
};
use crate::profile::Profile;
use crate::sinks::file::{METRICS_FILE, VIOLATIONS_FILE, write_metrics};

/// Chunks decoded ahead of the consumer. Two keep both cores busy (one decodes while the other
/// profiles) and bound memory to a few chunks.
const CHUNKS_IN_FLIGHT: usize = 2;

/// An object's decoding together with what its consumer found wrong (`fault`, e.g. a column
/// it needs is missing): the object was read, or it is skipped whole with this error.
pub fn object_outcome(
    decoded: Result<u64, DecodeError>,
    fault: Option<String>,
    source: &str,
) -> Result<u64, DecodeError> {
    match (decoded, fault) {
        (Err(error), _) => Err(error),
        (Ok(_), Some(message)) => Err(DecodeError::Malformed {
            source_name: source.to_string(),
            message,
        }),
        (Ok(records), None) => Ok(records),
    }
}

/// Decodes the object at `path` on a thread of its own and hands each chunk to `consume` in
/// order, so decoding the next chunk overlaps with consuming this one. Returns the number of
/// rows decoded. `options.limits` apply: a file over `max_object_bytes` (by its metadata) is
/// refused before it is read, and a decompression bomb fails as [`DecodeError::Limit`].
pub fn decode_object(
    path: &Path,
    options: &DecodeOptions,
    quarantine: &mut Quarantine,
    mut consume: impl FnMut(Chunk),
) -> Result<u64, DecodeError> {
    let mut decoder = decode::open_path(path, options)?;
    let (sender, receiver) = mpsc::sync_channel::<Chunk>(CHUNKS_IN_FLIGHT);
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || -> Result<(), DecodeError> {
            while let Some(chunk) = decoder.next_chunk(quarantine)? {
                if sender.send(chunk).is_err() {
                    break;
                }
            }
            Ok(())
        });
        let mut rows = 0u64;
        for chunk in receiver {
            rows += chunk.features.num_rows() as u64;
            consume(chunk);
        }
        producer.join().expect("decoder thread panicked")?;
        Ok(rows)
    })
}

/// The files named by `inputs`: files as given, directories walked (hidden entries skipped),
/// each directory's files in name order.
pub fn list_files(inputs: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(input)?
                .map(|entry| entry.map(|e| e.path()))
                .collect::<Result<_, _>>()?;
            entries.retain(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            });
            entries.sort();
            files.extend(list_files(&entries)?);
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

/// What reading a set of objects came to.
#[derive(Debug, Default)]
pub struct ReadReport {
    pub objects_read: usize,
    pub rows: u64,
    /// Columns left out of the profile because it already had `limits.max_columns` (each
    /// object was within the limit, their union was not).
    pub columns_refused: u64,
    /// Objects that could not be decoded at all: the local dead-letter list.
    pub failed: Vec<DecodeError>,
}

/// Reads each file with `read_object` (which decodes it and keeps what it read only when it
/// returns `Ok` with the rows read) and tallies the outcome. An object that fails is reported
/// and, since the reader keeps nothing of it, contributes nothing.
fn read_each(
    files: &[PathBuf],
    mut read_object: impl FnMut(usize, &Path) -> Result<u64, DecodeError>,
) -> ReadReport {
    let mut report = ReadReport::default();
    for (index, file) in files.iter().enumerate() {
        match read_object(index, file) {
            Ok(rows) => {
                report.objects_read += 1;
                report.rows += rows;
            }
            Err(error) => {
                tracing::error!(%error, "object skipped");
                report.failed.push(error);
            }
        }
    }
    report
}

/// What the decoding thread of [`profile_files`] hands the profiling thread, in file order.
enum Decoded {
    Chunk(Chunk),
    /// The end of an object: its rows, or why it contributes nothing.
    End(Result<u64, DecodeError>),
}

/// Profiles every file as one dataset (one window). An object that cannot be decoded to its
/// end is reported and contributes nothing, not even the rows before the fault.
///
/// One thread decodes the files one after the other while this one profiles and merges what
/// it has decoded: an object is often a single chunk, so a pipeline per object would leave a
/// core idle while each object is merged and the next one opened. Objects are still profiled
/// and merged one by one, in order, so the profile is the same as reading them one at a time.
pub fn profile_files(
    files: &[PathBuf],
    options: &DecodeOptions,
    quarantine: &mut Quarantine,
) -> (Profile, ReadReport) {
    let options = &DecodeOptions {
        without_events: true,
        ..options.clone()
    };
    let (sender, receiver) = mpsc::sync_channel::<Decoded>(CHUNKS_IN_FLIGHT);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for file in files {
                let decoded = decode::open_path(file, options).and_then(|mut decoder| {
                    let mut rows = 0u64;
                    while let Some(chunk) = decoder.next_chunk(quarantine)? {
                        rows += chunk.features.num_rows() as u64;
                        if sender.send(Decoded::Chunk(chunk)).is_err() {
                            break;
                        }
                    }
                    Ok(rows)
                });
                if sender.send(Decoded::End(decoded)).is_err() {
                    break;
                }
            }
        });
        let mut profile = Profile::new();
        let mut object_profile = profile.empty_like();
        let mut report = ReadReport::default();
        for decoded in receiver {
            match decoded {
                Decoded::Chunk(chunk) => object_profile.add_batch(&chunk.features),
                Decoded::End(Ok(rows)) => {
                    let object = std::mem::take(&mut object_profile);
                    report.columns_refused +=
                        profile.merge_within(object, options.limits.max_columns);
                    report.objects_read += 1;
                    report.rows += rows;
                    object_profile = profile.empty_like();
                }
                Decoded::End(Err(error)) => {
                    tracing::error!(%error, "object skipped");
                    report.failed.push(error);
                    object_profile = profile.empty_like();
                }
            }
        }
        if report.columns_refused > 0 {
            tracing::warn!(
                columns_refused = report.columns_refused,
                max_columns = options.limits.max_columns,
                "columns past limits.max_columns across objects left out"
            );
        }
        (profile, report)
    })
}

/// A one-off run's inputs and quarantine (`baseline`, `check`, `bias`): the files to read, and
/// the quarantine file, opened (replacing an old one, since rejects are appended) before any
/// work so that a bad path fails first.
pub struct RunInputs {
    pub files: Vec<PathBuf>,
    pub quarantine: Quarantine,
    quarantine_path: PathBuf,
}

impl RunInputs {
    /// Lists `inputs`, creates `output`, opens the quarantine file (default
    /// `{output}/quarantine.jsonl`).
    pub fn open(inputs: &[PathBuf], output: &Path, quarantine: Option<PathBuf>) -> Result<Self> {
        let files = list_files(inputs).context("cannot list the input files")?;
        if files.is_empty() {
            bail!("no input files found in {inputs:?}");
        }
        std::fs::create_dir_all(output)
            .with_context(|| format!("cannot create the output directory {}", output.display()))?;
        let quarantine_path = quarantine.unwrap_or_else(|| output.join("quarantine.jsonl"));
        if quarantine_path.exists() {
            std::fs::remove_file(&quarantine_path)
                .with_context(|| format!("cannot replace {}", quarantine_path.display()))?;
        }
        let quarantine = Quarantine::to_file(&quarantine_path).with_context(|| {
            format!(
                "cannot open the quarantine file {}",
                quarantine_path.display()
            )
        })?;
        Ok(Self {
            files,
            quarantine,
            quarantine_path,
        })
    }

    pub fn quarantine_path(&self) -> &Path {
        &self.quarantine_path
    }

    /// Removes the quarantine file when nothing was rejected (an empty one is clutter), and
    /// fails when no object could be read; returns the quarantine's counts.
    pub fn finish(self, report: &ReadReport) -> Result<Quarantine> {
        if self.quarantine.total() == 0 {
            std::fs::remove_file(&self.quarantine_path).with_context(|| {
                format!("cannot remove the empty {}", self.quarantine_path.display())
            })?;
        }
        if report.objects_read == 0 {
            bail!("none of the {} input files could be read", self.files.len());
        }
        Ok(self.quarantine)
    }
}

/// Reads every file into one state (one window). An object that cannot be decoded to its end
/// contributes nothing.
pub fn read_bias_files(
    spec: &Arc<BiasSpec>,
    files: &[PathBuf],
    options: &DecodeOptions,
    quarantine: &mut Quarantine,
) -> (BiasState, ReadReport) {
    let mut state = BiasState::new(spec.clone());
    let report = read_each(files, |_, file| {
        let mut object = BiasState::new(spec.clone());
        let rows = decode_object(file, options, quarantine, |chunk| {
            object.add_batch(&chunk.features)
        })?;
        state.merge(object);
        Ok(rows)
    });
    (state, report)
}

/// What `driftd bias` did.
#[derive(Debug)]
pub struct BiasRun {
    pub analysis: Analysis,
    /// With a baseline: the window's bias drift violations.
    pub violations: Option<bias::drift::BiasViolations>,
    pub report: ReadReport,
    pub rejected_records: u64,
    pub analysis_path: PathBuf,
}

/// `driftd bias`: the inputs as one dataset → `{output}/analysis.json` and the
/// `bias_metric_*` metrics file; with a `baseline` analysis.json also
/// `constraint_violations.json` (bias drift). Malformed records go to `quarantine` (default
/// `{output}/quarantine.jsonl`, removed when empty).
pub fn run_bias(
    analysis_config: &Path,
    baseline: Option<&Path>,
    inputs: &[PathBuf],
    options: &DecodeOptions,
    quarantine: Option<PathBuf>,
    output: &Path,
    scope: &MetricScope,
) -> Result<BiasRun> {
    let spec = Arc::new(BiasSpec::load(analysis_config)?);
    let mut run = RunInputs::open(inputs, output, quarantine)?;
    let (state, report) = read_bias_files(&spec, &run.files, options, &mut run.quarantine);
    let quarantine = run.finish(&report)?;
    let evaluation = state.evaluate();
    let analysis = bias::analysis(&spec, &evaluation);
    let analysis_path = output.join(ANALYSIS_FILE);
    crate::json_file::write_json(&analysis_path, &analysis)?;
    let violations = match baseline {
        Some(path) => {
            let reference: Analysis = crate::json_file::read_json(path)?;
            let violations =
                bias::drift::check(&reference, &analysis, &evaluation, spec.drift_rule);
            crate::json_file::write_json(&output.join(VIOLATIONS_FILE), &violations)?;
            Some(violations)
        }
        None => None,
    };
    write_metrics(
        &output.join(METRICS_FILE),
        &bias::drift::bias_metrics(&analysis, scope),
    )?;
    Ok(BiasRun {
        analysis,
        violations,
        report,
        rejected_records: quarantine.total(),
        analysis_path,
    })
}

/// What `driftd baseline|check --kind model-quality` did.
#[derive(Debug)]
pub struct ModelQualityRun {
    pub statistics: ModelQualityStatistics,
    /// With a baseline: the window's violations of its constraints.
    pub violations: Option<ModelQualityViolations>,
    pub report: ReadReport,
    /// Rows left out for a missing or unreadable value (in the quarantine file).
    pub skipped_rows: u64,
}

/// Reads every file into one model-quality state. Files have no record ids, so a row's key
/// (which decides its subsamples) is its file's position in `files` and its own position in
/// the file. An object that cannot be decoded, or lacks a column the spec names, contributes
/// nothing and is reported as failed.
pub fn read_model_quality_files(
    spec: &ModelQualitySpec,
    files: &[PathBuf],
    options: &DecodeOptions,
    quarantine: &mut Quarantine,
) -> (ModelQualityState, ReadReport) {
    let mut state = ModelQualityState::new(spec.problem_type);
    let report = read_each(files, |index, file| {
        let source = file.display().to_string();
        let mut object = ModelQualityState::new(spec.problem_type);
        let mut missing_column = None;
        let mut skips = Vec::new();
        let mut first = 0u64;
        let rows = decode_object(file, options, quarantine, |chunk| {
            if missing_column.is_some() {
                return;
            }
            let membership = |row: usize| {
                let key = ((index as u64) << 40) | (first + row as u64);
                Membership::of_key(&key.to_le_bytes())
            };
            match mq::add_batch(&mut object, spec, &chunk.features, membership) {
                Ok(skipped) => skips.extend(skipped.into_iter().map(|s| (first, s))),
                Err(error) => missing_column = Some(error),
            }
            first += chunk.features.num_rows() as u64;
        })?;
        if let Some(error) = missing_column {
            return Err(DecodeError::Malformed {
                source_name: source,
                message: error.to_string(),
            });
        }
        for (first, skip) in skips {
            quarantine.reject(
                &source,
                0,
                RejectReason::BadValue,
                &format!(
                    "record {}: {}: {}",
                    first + skip.row as u64 + 1,
                    skip.field,
                    skip.message
                ),
                b"",
            );
        }
        state.merge(&object).expect("states of one spec");
        Ok(rows)
    });
    (state, report)
}

/// A model-quality baseline's `constraints.json` in `dir`, for `problem_type`.
pub fn read_model_quality_constraints(
    dir: &Path,
    problem_type: mq::ProblemType,
) -> Result<ModelQualityConstraints, String> {
    let path = dir.join(mq::CONSTRAINTS_FILE);
    let constraints: ModelQualityConstraints =
        crate::json_file::read_json(&path).map_err(|e| e.to_string())?;
    if constraints.problem_type != problem_type {
        return Err(format!(
            "{} holds {} but the problem type is {problem_type:?}",
            path.display(),
            constraints.problem_type.constraints_key(),
        ));
    }
    Ok(constraints)
}

/// `driftd baseline --kind model-quality` (no `baseline`) and `driftd check --kind
/// model-quality` (a `baseline` directory with constraints.json): the inputs as one dataset →
/// `{output}/statistics.json` and `constraints.json` (suggested from these data, as Model
/// Monitor's executions also write it), the metrics file, and with a baseline
/// `constraint_violations.json`. Malformed records and rows with unreadable values go to
/// `quarantine` (default `{output}/quarantine.jsonl`, removed when empty).
pub fn run_model_quality(
    spec: &ModelQualitySpec,
    baseline: Option<&Path>,
    inputs: &[PathBuf],
    options: &DecodeOptions,
    quarantine: Option<PathBuf>,
    output: &Path,
    scope: &MetricScope,
) -> Result<ModelQualityRun> {
    spec.validate().map_err(anyhow::Error::msg)?;
    let constraints = baseline
        .map(|dir| read_model_quality_constraints(dir, spec.problem_type))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let mut run = RunInputs::open(inputs, output, quarantine)?;
    let (mut state, report) =
        read_model_quality_files(spec, &run.files, options, &mut run.quarantine);
    let quarantine = run.finish(&report)?;
    let statistics = mq::evaluate(&mut state);
    if statistics.item_count == 0 {
        // Metrics of nothing are zeros, and constraints made of them would be nonsense.
        bail!(
            "no record had a usable prediction and ground truth ({} skipped, see the quarantine file)",
            quarantine.total()
        );
    }
    crate::json_file::write_json(
        &output.join(mq::STATISTICS_FILE),
        &mq::statistics_file(&statistics, scope.timestamp),
    )?;
    crate::json_file::write_json(
        &output.join(mq::CONSTRAINTS_FILE),
        &mq::suggest_constraints(&statistics),
    )?;
    let violations = constraints.map(|c| mq::check(&c, &statistics.metrics));
    if let Some(violations) = &violations {
        crate::json_file::write_json(&output.join(VIOLATIONS_FILE), violations)?;
        write_metrics(
            &output.join(METRICS_FILE),
            &crate::analyze::metrics::model_quality_metrics(&statistics, scope),
        )?;
    }
    Ok(ModelQualityRun {
        statistics,
        violations,
        report,
        skipped_rows: quarantine
            .counts()
            .get(&RejectReason::BadValue)
            .copied()
            .unwrap_or(0),
    })
}

/// What `driftd baseline|check --kind feature-attribution` did.
#[derive(Debug)]
pub struct AttributionRun {
    pub analysis: AttributionAnalysis,
    /// With a baseline: NDCG per baseline label.
    pub drift: Vec<attribution::LabelDrift>,
    pub violations: Option<AttributionViolations>,
    pub report: ReadReport,
    /// Records with attributions, and values refused (past the feature limit) or unreadable.
    pub records: u64,
    pub refused_values: u64,
    pub bad_values: u64,
    pub rejected_records: u64,
}

/// Reads every file into one attribution state (one window). Capture files give their
/// responses' attributions (`source`); other formats are tables of attribution columns.
pub fn read_attribution_files(
    spec: &AttributionSpec,
    source: &Arc<AttributionSource>,
    files: &[PathBuf],
    options: &DecodeOptions,
    quarantine: &mut Quarantine,
) -> (AttributionState, ReadReport) {
    let options = DecodeOptions {
        attributions: Some(source.clone()),
        ..options.clone()
    };
    let mut state = AttributionState::new(spec);
    let report = read_each(files, |_, file| {
        let mut object = AttributionState::new(spec);
        let rows = decode_object(file, &options, quarantine, |chunk| {
            object.add_batch(&chunk.features)
        })?;
        state.merge(&object);
        Ok(rows)
    });
    (state, report)
}

/// A Clarify explainability analysis.json given as the window itself: one input file named
/// `*.json` that reads as one.
fn window_analysis(files: &[PathBuf]) -> Option<AttributionAnalysis> {
    match files {
        [file] if file.extension().is_some_and(|e| e == "json") => {
            AttributionAnalysis::load(file).ok()
        }
        _ => None,
    }
}

/// `driftd baseline --kind feature-attribution` (no `baseline`: writes the inputs' global
/// attributions as `{output}/analysis.json`) and `driftd check --kind feature-attribution` (a
/// baseline analysis.json: also NDCG per label, `constraint_violations.json` and the
/// explainability metrics file). The input is capture with attributions, a table of attribution
/// columns, or a Clarify explainability analysis.json of the window.
#[allow(clippy::too_many_arguments)]
pub fn run_attribution(
    spec: &AttributionSpec,
    source: &Arc<AttributionSource>,
    baseline: Option<&Path>,
    inputs: &[PathBuf],
    options: &DecodeOptions,
    quarantine: Option<PathBuf>,
    output: &Path,
    scope: &MetricScope,
) -> Result<AttributionRun> {
    spec.validate().map_err(anyhow::Error::msg)?;
    let reference = baseline
        .map(AttributionAnalysis::load)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let mut run = RunInputs::open(inputs, output, quarantine)?;
    let (analysis, counts, report) = match window_analysis(&run.files) {
        Some(analysis) => {
            let report = ReadReport {
                objects_read: 1,
                ..ReadReport::default()
            };
            (analysis, (0, 0, 0), report)
        }
        None => {
            let (state, report) =
                read_attribution_files(spec, source, &run.files, options, &mut run.quarantine);
            let analysis = AttributionAnalysis::new(state.explanations());
            (
                analysis,
                (state.records, state.refused_values, state.bad_values),
                report,
            )
        }
    };
    let quarantine = run.finish(&report)?;
    if analysis.explanations.kernel_shap.is_empty() {
        bail!(
            "no record had attributions ({} records rejected, see the quarantine file)",
            quarantine.total()
        );
    }
    crate::json_file::write_json(&output.join(attribution::ANALYSIS_FILE), &analysis)?;
    let (drift, violations) = match &reference {
        Some(reference) => {
            let drift = attribution::compare(&reference.explanations, &analysis.explanations);
            let violations = attribution::violations(&drift, spec.threshold);
            crate::json_file::write_json(&output.join(VIOLATIONS_FILE), &violations)?;
            write_metrics(
                &output.join(METRICS_FILE),
                &attribution::metrics(&analysis.explanations, &drift, scope),
            )?;
            (drift, Some(violations))
        }
        None => (Vec::new(), None),
    };
    Ok(AttributionRun {
        analysis,
        drift,
        violations,
        report,
        records: counts.0,
        refused_values: counts.1,
        bad_values: counts.2,
        rejected_records: quarantine.total(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{InputFormat, Limits};

    /// Each object within `limits.max_columns`, each with a column name of its own: the window
    /// (here the one profile of `check`) stops at the limit and counts what it left out.
    #[test]
    fn a_new_column_per_object_stops_at_max_columns_across_objects() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = (0..20)
            .map(|i| {
                let path = dir.path().join(format!("{i:02}.csv"));
                std::fs::write(&path, format!("id,c{i}\n{i},1\n")).unwrap();
                path
            })
            .collect();
        let options = DecodeOptions {
            format: InputFormat::Csv,
            header: true,
            limits: Limits {
                max_columns: 5,
                ..Limits::default()
            },
            ..DecodeOptions::default()
        };
        let mut quarantine = Quarantine::in_memory();
        let (profile, report) = profile_files(&files, &options, &mut quarantine);
        assert_eq!((report.objects_read, report.rows), (20, 20));
        let names: Vec<&str> = profile.columns.keys().map(String::as_str).collect();
        assert_eq!(names, ["id", "c0", "c1", "c2", "c3"]);
        // 21 names in all, 5 kept.
        assert_eq!(report.columns_refused, 16);
        // A kept column still sees every row: present in its object, missing in the others.
        assert_eq!(profile.columns["id"].num_present, 20);
        assert_eq!(profile.columns["c3"].num_present, 1);
        assert_eq!(profile.columns["c3"].num_missing, 19);
        assert_eq!(profile.row_count, 20);
    }

    #[test]
    fn a_file_over_max_object_bytes_is_a_failed_object_naming_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("a.csv");
        let big = dir.path().join("b.csv");
        std::fs::write(&small, "x\n1\n").unwrap();
        std::fs::write(&big, "x\n1\n2\n3\n4\n").unwrap();
        let options = DecodeOptions {
            format: InputFormat::Csv,
            header: true,
            limits: Limits {
                max_object_bytes: 5,
                ..Limits::default()
            },
            ..DecodeOptions::default()
        };
        let mut quarantine = Quarantine::in_memory();
        let (_, report) = profile_files(&[small, big.clone()], &options, &mut quarantine);
        assert_eq!((report.objects_read, report.rows), (1, 1));
        assert_eq!(report.failed.len(), 1);
        let message = report.failed[0].to_string();
        assert!(
            message.starts_with(&format!("{}: the object is 10 bytes", big.display()))
                && message.contains("limits.max_object_bytes (5)"),
            "{message}"
        );
    }
}
