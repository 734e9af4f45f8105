//! `driftd baseline|check --kind multivariate-drift`: files → [`crate::multivariate`] →
//! `multivariate_baseline.json` / `multivariate_drift.json`.
//!
//! Files are read with the same decoders as the other kinds; features are found by name
//! (`_c0`, `_c1`, … for headerless CSV). The reference is held in memory while fitting (up to
//! [`multivariate::MAX_REFERENCE_CELLS`] values); a check streams: it keeps one state per
//! chunk, up to [`MAX_CHUNKS`] chunks (rows past that are refused and counted). A row with an
//! unreadable value is written to the quarantine file with its record number and counted.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use arrow::array::{Array, StringArray};
use serde::Serialize;

use crate::cbpe::Chunking;
use crate::decode::{DecodeError, DecodeOptions, Quarantine, RejectReason, as_text};
use crate::multivariate::{self, Baseline, ChunkResult, ReferenceBuilder, WindowState};
use crate::pipeline::{self, ReadReport, RunInputs};

pub const BASELINE_FILE: &str = "multivariate_baseline.json";
pub const RESULT_FILE: &str = "multivariate_drift.json";
/// Most chunks one check keeps (each holds a sum per feature).
pub const MAX_CHUNKS: usize = 100_000;

/// Reads `files` and hands each row's feature cells to `row`; `features` is fixed by the first
/// batch when `None`. A missing feature column fails the object.
fn read_rows(
    files: &[PathBuf],
    options: &DecodeOptions,
    quarantine: &mut Quarantine,
    features: &mut Option<Vec<String>>,
    mut row: impl FnMut(&str, u64, &[Option<&str>]) -> Result<(), String>,
) -> (usize, Vec<DecodeError>) {
    let mut objects_read = 0;
    let mut failed = Vec::new();
    for file in files {
        let source = file.display().to_string();
        let mut fault: Option<String> = None;
        let mut record = 0u64;
        let mut skips: Vec<(u64, String)> = Vec::new();
        let decoded = pipeline::decode_object(file, options, quarantine, |chunk| {
            if fault.is_some() {
                return;
            }
            let batch = &chunk.features;
            let names = features.get_or_insert_with(|| {
                batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect()
            });
            let mut columns = Vec::with_capacity(names.len());
            for name in names.iter() {
                let Some(array) = batch.column_by_name(name) else {
                    let have: Vec<&String> = batch
                        .schema_ref()
                        .fields()
                        .iter()
                        .map(|f| f.name())
                        .collect();
                    fault = Some(format!("no column {name:?}; the columns are {have:?}"));
                    return;
                };
                let text = as_text(array);
                columns.push(
                    text.as_any()
                        .downcast_ref::<StringArray>()
                        .expect("as_text gives Utf8")
                        .clone(),
                );
            }
            let mut cells: Vec<Option<&str>> = Vec::with_capacity(columns.len());
            for r in 0..batch.num_rows() {
                record += 1;
                cells.clear();
                cells.extend(columns.iter().map(|c| c.is_valid(r).then(|| c.value(r))));
                if let Err(message) = row(&source, record, &cells) {
                    skips.push((record, message));
                }
            }
        });
        match pipeline::object_outcome(decoded, fault, &source) {
            Err(error) => {
                tracing::error!(%error, "object skipped");
                failed.push(error);
            }
            Ok(_) => objects_read += 1,
        }
        for (record, message) in &skips {
            quarantine.reject(
                &source,
                0,
                RejectReason::BadValue,
                &format!("record {record}: {message}"),
                b"",
            );
        }
    }
    (objects_read, failed)
}

/// What `driftd baseline --kind multivariate-drift` did.
#[derive(Debug)]
pub struct BaselineRun {
    pub baseline: Baseline,
    pub failed: Vec<DecodeError>,
}

/// Fits the baseline on `inputs` and writes `{output}/multivariate_baseline.json`.
/// `chunk_size`: rows per reference chunk (default: a tenth of the reference, NannyML's
/// default of ten chunks).
pub fn run_baseline(
    features: Option<Vec<String>>,
    chunk_size: Option<usize>,
    inputs: &[PathBuf],
    options: &DecodeOptions,
    quarantine: Option<PathBuf>,
    output: &Path,
) -> Result<BaselineRun> {
    if chunk_size == Some(0) {
        bail!("--chunk-size must be at least 1");
    }
    let mut run = RunInputs::open(inputs, output, quarantine)?;
    let mut features = features;
    let mut builder: Option<ReferenceBuilder> = None;
    let mut fit_error: Option<multivariate::FitError> = None;
    let files = run.files.clone();
    let (objects_read, failed) = read_rows(
        &files,
        options,
        &mut run.quarantine,
        &mut features,
        |_, _, cells| {
            if fit_error.is_some() {
                return Ok(());
            }
            let b = match &mut builder {
                Some(b) => b,
                None => {
                    match ReferenceBuilder::new((0..cells.len()).map(|_| String::new()).collect()) {
                        Ok(b) => builder.insert(b),
                        Err(e) => {
                            fit_error = Some(e);
                            return Ok(());
                        }
                    }
                }
            };
            if let Err(e) = b.push_row(cells) {
                fit_error = Some(e);
            }
            Ok(())
        },
    );
    for error in &failed {
        eprintln!("skipped object: {error}");
    }
    let report = ReadReport {
        objects_read,
        ..ReadReport::default()
    };
    run.finish(&report)
        .with_context(|| format!("reading {files:?}"))?;
    if let Some(error) = fit_error {
        bail!("cannot fit the multivariate baseline: {error}");
    }
    let (Some(builder), Some(names)) = (builder, features) else {
        bail!("no reference rows read from {inputs:?}");
    };
    let builder = builder.renamed(names);
    let chunking = chunk_size.map_or(Chunking::Count(10), Chunking::Size);
    let baseline = Baseline::fit(builder, chunking)
        .map_err(|e| anyhow::anyhow!("cannot fit the multivariate baseline: {e}"))?;
    crate::json_file::write_json(&output.join(BASELINE_FILE), &baseline)?;
    Ok(BaselineRun { baseline, failed })
}

/// One chunk of `multivariate_drift.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Chunk {
    pub index: usize,
    /// First and last accepted row (0-based, inclusive), as NannyML's chunk keys.
    pub start_row: u64,
    pub end_row: u64,
    #[serde(flatten)]
    pub result: ChunkResult,
}

/// `multivariate_drift.json`.
#[derive(Debug, Serialize)]
pub struct DriftFile<'a> {
    pub features: Vec<&'a str>,
    pub components: usize,
    pub chunk_size: usize,
    pub input_rows: u64,
    pub rows_refused: u64,
    pub lower_threshold: Option<f64>,
    pub upper_threshold: Option<f64>,
    pub chunks: &'a [Chunk],
}

/// What `driftd check --kind multivariate-drift` did.
#[derive(Debug)]
pub struct CheckRun {
    pub chunks: Vec<Chunk>,
    pub input_rows: u64,
    pub rows_refused: u64,
    pub failed: Vec<DecodeError>,
}

/// Reads `{baseline_dir}/multivariate_baseline.json`, evaluates `inputs` in chunks of the
/// baseline's chunk size, writes `{output}/multivariate_drift.json`.
pub fn run_check(
    baseline_dir: &Path,
    chunk_size: Option<usize>,
    inputs: &[PathBuf],
    options: &DecodeOptions,
    quarantine: Option<PathBuf>,
    output: &Path,
) -> Result<CheckRun> {
    let path = baseline_dir.join(BASELINE_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let baseline: Baseline =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if let Some(size) = chunk_size
        && size != baseline.chunk_size
    {
        bail!(
            "--chunk-size {size}: the baseline's thresholds were learned on chunks of {} rows; rebuild it with --chunk-size {size}",
            baseline.chunk_size
        );
    }
    let size = baseline.chunk_size as u64;
    let mut run = RunInputs::open(inputs, output, quarantine)?;
    let mut features = Some(baseline.features.iter().map(|f| f.name.clone()).collect());
    let mut done: Vec<WindowState> = Vec::new();
    let mut current = baseline.new_state();
    let mut past_limit = 0u64;
    let mut scratch = Vec::new();
    let files = run.files.clone();
    let (objects_read, failed) = read_rows(
        &files,
        options,
        &mut run.quarantine,
        &mut features,
        |_, _, cells| {
            if done.len() >= MAX_CHUNKS {
                past_limit += 1;
                return Err(format!("past the {MAX_CHUNKS} chunks one check keeps"));
            }
            baseline
                .add_row(&mut current, cells, &mut scratch)
                .map_err(|e| e.to_string())?;
            if current.rows == size {
                done.push(std::mem::replace(&mut current, baseline.new_state()));
            }
            Ok(())
        },
    );
    for error in &failed {
        eprintln!("skipped object: {error}");
    }
    // The last incomplete chunk joins the one before (NannyML's incomplete="append").
    let refused_in_current = current.refused_rows;
    match done.last_mut() {
        Some(last) if current.rows > 0 || refused_in_current > 0 => last.merge(&current),
        None if current.rows > 0 => done.push(current),
        _ => {}
    }
    let rows_refused = done.iter().map(|s| s.refused_rows).sum::<u64>() + past_limit;
    let rows_refused = if done.is_empty() {
        rows_refused + refused_in_current
    } else {
        rows_refused
    };
    let input_rows: u64 = done.iter().map(|s| s.rows).sum();
    let report = ReadReport {
        objects_read,
        rows: input_rows,
        ..ReadReport::default()
    };
    run.finish(&report)
        .with_context(|| format!("reading {files:?}"))?;
    if input_rows == 0 {
        bail!("no input row could be read (see the quarantine file)");
    }
    let mut start = 0u64;
    let chunks: Vec<Chunk> = done
        .iter()
        .enumerate()
        .map(|(index, state)| {
            let chunk = Chunk {
                index,
                start_row: start,
                end_row: start + state.rows - 1,
                result: baseline.evaluate(state),
            };
            start += state.rows;
            chunk
        })
        .collect();
    let file = DriftFile {
        features: baseline.features.iter().map(|f| f.name.as_str()).collect(),
        components: baseline.component_count(),
        chunk_size: baseline.chunk_size,
        input_rows,
        rows_refused,
        lower_threshold: baseline.lower_threshold,
        upper_threshold: baseline.upper_threshold,
        chunks: &chunks,
    };
    crate::json_file::write_json(&output.join(RESULT_FILE), &file)?;
    Ok(CheckRun {
        chunks,
        input_rows,
        rows_refused,
        failed,
    })
}
