//! Local objects through decode → profile (or → bias state): what `baseline`, `check`, `bias`
//! and `run` share, and the `driftd bias` command's files.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::analyze::metrics::MetricScope;
use crate::bias::{self, ANALYSIS_FILE, Analysis, BiasSpec, BiasState};
use crate::decode::{self, Chunk, DecodeError, DecodeOptions, Quarantine};
use crate::profile::Profile;
use crate::sinks::file::{METRICS_FILE, VIOLATIONS_FILE, write_metrics};

/// Chunks decoded ahead of the consumer. Two keep both cores busy (one decodes while the other
/// profiles) and bound memory to a few chunks.
const CHUNKS_IN_FLIGHT: usize = 2;

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
    /// Objects that could not be decoded at all: the local dead-letter list.
    pub failed: Vec<DecodeError>,
}

/// Profiles every file as one dataset (one window). An object that cannot be decoded to its
/// end is reported and contributes nothing, not even the rows before the fault.
pub fn profile_files(
    files: &[PathBuf],
    options: &DecodeOptions,
    quarantine: &mut Quarantine,
) -> (Profile, ReadReport) {
    let mut profile = Profile::new();
    let mut report = ReadReport::default();
    for file in files {
        let mut object_profile = profile.empty_like();
        let decoded = decode_object(file, options, quarantine, |chunk| {
            object_profile.add_batch(&chunk.features)
        });
        match decoded {
            Ok(rows) => {
                profile.merge(object_profile);
                report.objects_read += 1;
                report.rows += rows;
            }
            Err(error) => {
                tracing::error!(%error, "object skipped");
                report.failed.push(error);
            }
        }
    }
    (profile, report)
}

/// A one-off run's quarantine file (for `check`, `baseline`, `bias`): replaced when the run
/// starts, since rejects are appended, and opened up front so a bad path fails before any work.
pub fn open_run_quarantine(path: &Path) -> anyhow::Result<Quarantine> {
    if path.exists() {
        std::fs::remove_file(path).with_context(|| format!("cannot replace {}", path.display()))?;
    }
    Quarantine::to_file(path)
        .with_context(|| format!("cannot open the quarantine file {}", path.display()))
}

/// Removes the run's quarantine file when nothing was rejected: an empty one is just clutter.
pub fn close_run_quarantine(path: &Path, quarantine: &Quarantine) -> anyhow::Result<()> {
    if quarantine.total() == 0 {
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the empty {}", path.display()))?;
    }
    Ok(())
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
    let mut report = ReadReport::default();
    for file in files {
        let mut object = BiasState::new(spec.clone());
        match decode_object(file, options, quarantine, |chunk| {
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
    let files = list_files(inputs).context("cannot list the input files")?;
    if files.is_empty() {
        bail!("no input files found in {inputs:?}");
    }
    std::fs::create_dir_all(output)
        .with_context(|| format!("cannot create the output directory {}", output.display()))?;
    let quarantine_path = quarantine.unwrap_or_else(|| output.join("quarantine.jsonl"));
    let mut quarantine = open_run_quarantine(&quarantine_path)?;
    let (state, report) = read_bias_files(&spec, &files, options, &mut quarantine);
    close_run_quarantine(&quarantine_path, &quarantine)?;
    if report.objects_read == 0 {
        bail!("none of the {} input files could be read", files.len());
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{InputFormat, Limits};

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
