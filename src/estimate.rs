//! `driftd estimate`: a labelled reference and unlabelled (or labelled) input files →
//! CBPE ([`crate::cbpe`]) per chunk of input rows → `estimated_performance.json`.
//!
//! Files are read with the same decoders as `baseline`/`check` (any format, gzip/zstd);
//! columns are found by name (`_c0`, `_c1`, … for headerless CSV). A row without a readable
//! prediction or score (or, in the reference, label) is skipped and written to the
//! quarantine file with its record number. Rows are kept in memory (the estimate sorts
//! them), up to [`cbpe::MAX_ROWS`] per dataset; past that the run stops with an error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use arrow::array::{Array, StringArray};
use arrow::record_batch::RecordBatch;
use serde::Serialize;

use crate::cbpe::{
    self, Cbpe, ChunkEstimate, Chunking, ClassCalibration, Kind, MetricEstimate, Rows,
};
use crate::config::EstimateConfig;
use crate::decode::{
    DecodeError, DecodeOptions, Quarantine, RejectReason, as_text, missing_column,
};
use crate::model_quality::{
    ClassScoreRun, JoinKey, LabelRun, ModelQualitySpec, Predicted, PredictionRun, ProblemType,
    ScoredRows, Truth,
};
use crate::pipeline::{self, RunInputs};

/// The file `driftd estimate` writes.
pub const ESTIMATED_PERFORMANCE_FILE: &str = "estimated_performance.json";

/// What to estimate and from which columns.
#[derive(Debug, Clone, PartialEq)]
pub struct EstimateSpec {
    pub kind: Kind,
    /// The column of the model's predicted class.
    pub inference_attribute: String,
    /// Class names, sorted (binary: `0`, `1`), and per class the column of its score
    /// (binary: one column, the score of class 1).
    pub classes: Vec<String>,
    pub probability_attributes: Vec<String>,
    pub ground_truth_attribute: String,
    pub chunking: Chunking,
}

/// A class name as compared: numbers by value (`1.0` is class `1`), other text trimmed.
fn canonical_class(text: &str) -> String {
    crate::model_quality::canonical_class(text.trim())
}

impl EstimateSpec {
    /// `probability`: binary, one column; multiclass, one `CLASS=COLUMN` per class, or bare
    /// columns with `classes` naming their classes in the same order. Classes are sorted, as
    /// NannyML sorts them.
    pub fn new(
        kind: Kind,
        inference_attribute: String,
        probability: Vec<String>,
        classes: Option<Vec<String>>,
        ground_truth_attribute: String,
        chunking: Chunking,
    ) -> Result<Self, String> {
        if let Chunking::Size(0) | Chunking::Count(0) = chunking {
            return Err("--chunk-size must be at least 1".into());
        }
        let (classes, probability_attributes) = match kind {
            Kind::Binary => {
                if probability.len() != 1 || classes.is_some() {
                    return Err(
                        "BinaryClassification takes one --probability-attribute (the score of class 1) and no --classes"
                            .into(),
                    );
                }
                (vec!["0".to_string(), "1".to_string()], probability)
            }
            Kind::Multiclass => {
                let pairs: Vec<(String, String)> = match classes {
                    Some(classes) => {
                        if classes.len() != probability.len() {
                            return Err(format!(
                                "{} --classes but {} --probability-attribute columns; give one class per column",
                                classes.len(),
                                probability.len()
                            ));
                        }
                        classes
                            .iter()
                            .map(|c| canonical_class(c))
                            .zip(probability)
                            .collect()
                    }
                    None => probability
                        .iter()
                        .map(|item| {
                            item.split_once('=')
                                .map(|(c, col)| (canonical_class(c), col.trim().to_string()))
                                .ok_or_else(|| {
                                    format!(
                                        "--probability-attribute {item:?}: multiclass needs CLASS=COLUMN, or --classes"
                                    )
                                })
                        })
                        .collect::<Result<_, _>>()?,
                };
                if pairs.len() < 2 {
                    return Err("MulticlassClassification needs a probability column per class (at least 2)".into());
                }
                if pairs.len() > cbpe::MAX_CLASSES {
                    return Err(format!(
                        "{} classes, more than the {} driftd handles",
                        pairs.len(),
                        cbpe::MAX_CLASSES
                    ));
                }
                let mut pairs = pairs;
                pairs.sort();
                if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
                    return Err(
                        "a class is named twice in --probability-attribute/--classes".into(),
                    );
                }
                pairs.into_iter().unzip()
            }
        };
        Ok(Self {
            kind,
            inference_attribute,
            classes,
            probability_attributes,
            ground_truth_attribute,
            chunking,
        })
    }
}

/// A batch column as trimmed text.
struct Column(StringArray);

impl Column {
    fn find(batch: &RecordBatch, name: &str) -> Option<Self> {
        let array = batch.column_by_name(name)?;
        let text = as_text(array)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("as_text gives Utf8")
            .clone();
        Some(Self(text))
    }

    fn value(&self, row: usize) -> Option<&str> {
        (self.0.is_valid(row))
            .then(|| self.0.value(row).trim())
            .filter(|t| !t.is_empty())
    }
}

/// The rows read from a dataset's files, and what was left out.
#[derive(Debug, Default)]
pub struct ReadRows {
    pub rows: Rows,
    pub objects_read: usize,
    pub failed: Vec<DecodeError>,
    /// Rows skipped for an unreadable prediction, score or (reference) label.
    pub skipped: u64,
    /// Input rows without a usable label (then no realized values are reported).
    pub unlabelled: u64,
}

/// Reads `files` into rows. `reference`: labels are required (a row without one is
/// skipped). Otherwise labels are read when the column exists.
fn read_rows(
    spec: &EstimateSpec,
    files: &[PathBuf],
    options: &DecodeOptions,
    quarantine: &mut Quarantine,
    reference: bool,
) -> Result<ReadRows> {
    let class_index: HashMap<&str, usize> = spec
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let columns = spec.probability_attributes.len();
    let mut out = ReadRows {
        rows: Rows {
            scores: vec![Vec::new(); columns],
            predicted: Vec::new(),
            labels: Some(Vec::new()),
        },
        ..ReadRows::default()
    };
    let mut all_labelled = true;
    for file in files {
        let source = file.display().to_string();
        let mut object = Rows {
            scores: vec![Vec::new(); columns],
            predicted: Vec::new(),
            labels: Some(Vec::new()),
        };
        let mut object_all_labelled = true;
        let mut fault: Option<String> = None;
        let mut skips: Vec<(u64, String, String)> = Vec::new();
        let mut record = 0u64;
        let decoded = pipeline::decode_object(file, options, quarantine, |chunk| {
            let batch = &chunk.features;
            if fault.is_some() {
                return;
            }
            let find = |name: &str, setting: &str| {
                Column::find(batch, name).ok_or_else(|| missing_column(setting, name, batch))
            };
            let inference = match find(&spec.inference_attribute, "inference attribute") {
                Ok(c) => c,
                Err(e) => return fault = Some(e),
            };
            let mut scores = Vec::with_capacity(columns);
            for name in &spec.probability_attributes {
                match find(name, "probability attribute") {
                    Ok(c) => scores.push(c),
                    Err(e) => return fault = Some(e),
                }
            }
            let truth = Column::find(batch, &spec.ground_truth_attribute);
            if truth.is_none() {
                if reference {
                    return fault = Some(
                        find(&spec.ground_truth_attribute, "ground truth attribute")
                            .err()
                            .expect("missing"),
                    );
                }
                object_all_labelled = false;
            }
            for row in 0..batch.num_rows() {
                record += 1;
                let class_of = |column: &Column, field: &str| -> Result<usize, (String, String)> {
                    let text = column
                        .value(row)
                        .ok_or_else(|| (field.to_string(), "missing value".to_string()))?;
                    class_index
                        .get(canonical_class(text).as_str())
                        .copied()
                        .ok_or_else(|| {
                            (
                                field.to_string(),
                                format!("{text:?} is not one of the classes {:?}", spec.classes),
                            )
                        })
                };
                let parsed = (|| {
                    let predicted = class_of(&inference, &spec.inference_attribute)?;
                    let mut values = Vec::with_capacity(columns);
                    for (column, name) in scores.iter().zip(&spec.probability_attributes) {
                        let text = column
                            .value(row)
                            .ok_or_else(|| (name.clone(), "missing value".to_string()))?;
                        let value = text
                            .parse::<f64>()
                            .ok()
                            .filter(|x| x.is_finite())
                            .ok_or_else(|| {
                                (name.clone(), format!("{text:?} is not a finite number"))
                            })?;
                        values.push(value);
                    }
                    let label = match &truth {
                        Some(column) => match class_of(column, &spec.ground_truth_attribute) {
                            Ok(label) => Some(label),
                            Err(skip) if reference => return Err(skip),
                            Err(_) => None,
                        },
                        None => None,
                    };
                    Ok((predicted, values, label))
                })();
                match parsed {
                    Ok((predicted, values, label)) => {
                        object.predicted.push(predicted);
                        for (column, value) in object.scores.iter_mut().zip(values) {
                            column.push(value);
                        }
                        match label {
                            Some(label) => object.labels.as_mut().expect("kept").push(label),
                            None => object_all_labelled = false,
                        }
                    }
                    Err((field, message)) => skips.push((record, field, message)),
                }
            }
        });
        match pipeline::object_outcome(decoded, fault, &source) {
            Err(error) => {
                tracing::error!(%error, "object skipped");
                out.failed.push(error);
                continue;
            }
            Ok(_) => out.objects_read += 1,
        }
        for (record, field, message) in &skips {
            quarantine.reject(
                &source,
                0,
                RejectReason::BadValue,
                &format!("record {record}: {field}: {message}"),
                b"",
            );
        }
        out.skipped += skips.len() as u64;
        let labelled = object.labels.as_ref().map_or(0, Vec::len);
        out.unlabelled += (object.predicted.len() - labelled) as u64;
        all_labelled &= object_all_labelled;
        out.rows.predicted.extend(object.predicted);
        for (all, part) in out.rows.scores.iter_mut().zip(object.scores) {
            all.extend(part);
        }
        if let (Some(all), Some(part)) = (out.rows.labels.as_mut(), object.labels) {
            all.extend(part);
        }
        if out.rows.len() > cbpe::MAX_ROWS {
            bail!(
                "more than {} rows in {}; driftd estimate keeps every row in memory",
                cbpe::MAX_ROWS,
                source
            );
        }
    }
    if !all_labelled {
        out.rows.labels = None;
    }
    Ok(out)
}

/// `estimated_performance.json`: of `driftd estimate`'s chunks, or of a daemon's window (one
/// chunk: the window's scored predictions).
#[derive(Debug, Clone, Serialize)]
pub struct EstimatedPerformance {
    pub problem_type: &'static str,
    pub classes: Vec<String>,
    /// Rows per chunk (the last chunk also holds the rest); `null` with the default of ten
    /// chunks per dataset.
    pub chunk_size: Option<usize>,
    pub reference_rows: usize,
    pub input_rows: usize,
    pub rows_skipped: u64,
    /// Whether realized values (from the input's labels) are given.
    pub realized: bool,
    pub calibration: Vec<ClassCalibration>,
    pub chunks: Vec<ChunkEstimate>,
}

impl EstimatedPerformance {
    /// `estimated_<metric>` per estimate that could be computed (a window's are published to
    /// CloudWatch beside the realized metrics).
    pub fn metric_values(&self) -> Vec<(String, f64)> {
        (self.chunks.iter().flat_map(|chunk| &chunk.metrics))
            .filter(|(_, m)| m.value.is_finite())
            .map(|(name, m)| (format!("estimated_{name}"), m.value))
            .collect()
    }

    /// The estimates outside their thresholds, by metric name.
    pub fn alerts(&self) -> Vec<(&str, &MetricEstimate)> {
        (self.chunks.iter().flat_map(|chunk| &chunk.metrics))
            .filter(|(_, m)| m.alert)
            .map(|(name, m)| (name.as_str(), m))
            .collect()
    }
}

fn problem_type_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Binary => "BinaryClassification",
        Kind::Multiclass => "MulticlassClassification",
    }
}

/// What `driftd estimate` did.
#[derive(Debug)]
pub struct EstimateRun {
    pub chunks: Vec<ChunkEstimate>,
    /// Chunks of the reference the thresholds come from (NannyML warns below 6).
    pub reference_chunks: usize,
    pub reference_rows: usize,
    pub input_rows: usize,
    pub rows_skipped: u64,
    pub unlabelled_input_rows: u64,
    pub failed: Vec<DecodeError>,
    pub calibration: Vec<ClassCalibration>,
}

impl EstimateRun {
    /// (chunk index, metric) of every alert.
    pub fn alerts(&self) -> Vec<(usize, &str)> {
        self.chunks
            .iter()
            .flat_map(|c| {
                c.metrics
                    .iter()
                    .filter(|(_, m)| m.alert)
                    .map(move |(name, _)| (c.index, name.as_str()))
            })
            .collect()
    }
}

/// Fits CBPE on `reference`, estimates `inputs` chunk by chunk, writes
/// `{output}/estimated_performance.json`. Rows with unreadable values go to `quarantine`
/// (default `{output}/quarantine.jsonl`, removed when empty).
pub fn run_estimate(
    spec: &EstimateSpec,
    reference: &[PathBuf],
    inputs: &[PathBuf],
    options: &DecodeOptions,
    quarantine: Option<PathBuf>,
    output: &Path,
) -> Result<EstimateRun> {
    let reference_files =
        pipeline::list_files(reference).context("cannot list the reference files")?;
    if reference_files.is_empty() {
        bail!("no reference files found in {reference:?}");
    }
    let mut run = RunInputs::open(inputs, output, quarantine)?;
    let reference_rows = read_rows(spec, &reference_files, options, &mut run.quarantine, true)?;
    if reference_rows.objects_read == 0 {
        let reasons: Vec<String> = reference_rows
            .failed
            .iter()
            .map(|e| e.to_string())
            .collect();
        bail!(
            "none of the {} reference files could be read: {}",
            reference_files.len(),
            reasons.join("; ")
        );
    }
    let input_rows = read_rows(spec, &run.files, options, &mut run.quarantine, false)?;
    let report = pipeline::ReadReport {
        objects_read: input_rows.objects_read,
        rows: input_rows.rows.len() as u64,
        ..pipeline::ReadReport::default()
    };
    let files = run.files.clone();
    run.finish(&report)
        .with_context(|| format!("reading {files:?}"))?;
    if input_rows.rows.is_empty() {
        bail!("no input row had a usable prediction and scores (see the quarantine file)");
    }
    let cbpe = Cbpe::fit(
        spec.kind,
        spec.classes.clone(),
        &reference_rows.rows,
        spec.chunking,
    )
    .map_err(|e| anyhow::anyhow!("cannot fit CBPE on the reference: {e}"))?;
    let chunks = cbpe.estimate(&input_rows.rows);
    let calibration = cbpe.calibration();
    let file = EstimatedPerformance {
        problem_type: problem_type_name(spec.kind),
        classes: spec.classes.clone(),
        chunk_size: match spec.chunking {
            Chunking::Size(size) => Some(size),
            Chunking::Count(_) => None,
        },
        reference_rows: reference_rows.rows.len(),
        input_rows: input_rows.rows.len(),
        rows_skipped: reference_rows.skipped + input_rows.skipped,
        realized: input_rows.rows.labels.is_some(),
        calibration: calibration.clone(),
        chunks: chunks.clone(),
    };
    crate::json_file::write_json(&output.join(ESTIMATED_PERFORMANCE_FILE), &file)?;
    let mut failed = reference_rows.failed;
    failed.extend(input_rows.failed);
    Ok(EstimateRun {
        reference_chunks: spec.chunking.ranges(reference_rows.rows.len()).len(),
        reference_rows: reference_rows.rows.len(),
        input_rows: input_rows.rows.len(),
        rows_skipped: reference_rows.skipped + input_rows.skipped,
        unlabelled_input_rows: input_rows.unlabelled,
        failed,
        calibration,
        chunks,
    })
}

/// Reference chunks a daemon's estimator needs at least: its thresholds are the spread of the
/// realized metrics over them (NannyML warns below 6).
pub const MIN_REFERENCE_CHUNKS: usize = 2;

/// CBPE for a label-joined model-quality monitor (`[monitor.estimate]`), binary or multiclass:
/// fitted once at start-up, then each window's predictions are estimated as one chunk, when it
/// closes and before its labels come.
#[derive(Debug)]
pub struct WindowEstimator {
    kind: Kind,
    cbpe: Cbpe,
    reference_rows: usize,
    chunk_size: usize,
}

impl WindowEstimator {
    /// Reads the labelled reference with the monitor's columns and fits CBPE on it. A row
    /// without a readable score, prediction or label is left out; the count is logged.
    pub fn fit(
        spec: &ModelQualitySpec,
        settings: &EstimateConfig,
        limits: crate::decode::Limits,
    ) -> Result<Self, String> {
        let kind = match spec.problem_type {
            ProblemType::BinaryClassification => Kind::Binary,
            ProblemType::MulticlassClassification if !spec.class_scores.is_empty() => {
                Kind::Multiclass
            }
            ProblemType::MulticlassClassification => {
                return Err("a multiclass monitor's estimate needs each class's score column (estimate.probability_attributes)".into());
            }
            ProblemType::Regression => {
                return Err("CBPE estimates classifiers, not Regression".into());
            }
        };
        let files = pipeline::list_files(std::slice::from_ref(&settings.reference))
            .map_err(|e| format!("{}: {e}", settings.reference.display()))?;
        if files.is_empty() {
            return Err(format!("no file in {}", settings.reference.display()));
        }
        let options = DecodeOptions {
            format: settings.format,
            header: settings.header,
            limits,
            ..DecodeOptions::default()
        };
        let mut quarantine = Quarantine::in_memory();
        let (mut predictions, mut scores, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        // Row numbers are the join keys, so the rows stay in the files' order (the reference's
        // chunks follow it).
        let mut next_row: JoinKey = 0;
        for file in &files {
            let mut fault = None;
            let decoded = pipeline::decode_object(file, &options, &mut quarantine, |chunk| {
                let batch = &chunk.features;
                let keys: Vec<JoinKey> = (next_row..).take(batch.num_rows()).collect();
                next_row += batch.num_rows() as JoinKey;
                if fault.is_some() {
                    return;
                }
                if next_row > cbpe::MAX_ROWS as JoinKey {
                    fault = Some(format!(
                        "more than {} rows; CBPE keeps every reference row in memory",
                        cbpe::MAX_ROWS
                    ));
                    return;
                }
                let mut read = || -> Result<(), String> {
                    let p = PredictionRun::from_batch(spec, batch, &keys)?;
                    let l = LabelRun::from_batch(spec, batch, &keys)?;
                    if kind == Kind::Multiclass {
                        scores.push(ClassScoreRun::from_batch(&spec.class_scores, batch, &keys)?);
                    }
                    predictions.push(p);
                    labels.push(l);
                    Ok(())
                };
                fault = read().err();
            });
            pipeline::object_outcome(decoded, fault, &file.display().to_string())
                .map_err(|e| e.to_string())?;
        }
        let predictions = PredictionRun::concat(&predictions);
        let labels = LabelRun::concat(&labels);
        let (rows, classes) = match kind {
            Kind::Binary => (
                binary_rows(predictions.scored_with(&labels), true),
                binary_classes(),
            ),
            Kind::Multiclass => {
                let classes = class_names(spec);
                let scores = ClassScoreRun::concat(&scores);
                let rows = multiclass_rows(&predictions, &scores, &classes, Some(&labels));
                (rows, classes)
            }
        };
        let left_out = next_row as u64 - rows.len() as u64;
        if left_out > 0 {
            tracing::warn!(
                reference = %settings.reference.display(),
                rows = left_out,
                "reference rows without a readable score, prediction or label are left out of CBPE"
            );
        }
        let chunks = Chunking::Size(settings.chunk_size).ranges(rows.len()).len();
        if chunks < MIN_REFERENCE_CHUNKS {
            return Err(format!(
                "{} usable rows make {chunks} chunk(s) of chunk_size {}; the thresholds need at least {MIN_REFERENCE_CHUNKS} (NannyML advises 6): lower chunk_size or give a longer reference",
                rows.len(),
                settings.chunk_size
            ));
        }
        let cbpe = Cbpe::fit(kind, classes, &rows, Chunking::Size(settings.chunk_size))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            kind,
            cbpe,
            reference_rows: rows.len(),
            chunk_size: settings.chunk_size,
        })
    }

    /// A window's estimate from its predictions (labels or not) and, multiclass, their class
    /// scores; `None` when no prediction has scores.
    pub fn estimate(
        &self,
        predictions: &PredictionRun,
        scores: Option<&ClassScoreRun>,
    ) -> Option<EstimatedPerformance> {
        let rows = match (self.kind, scores) {
            (Kind::Binary, _) => binary_rows(predictions.scored(), false),
            (Kind::Multiclass, Some(scores)) => {
                multiclass_rows(predictions, scores, self.cbpe.classes(), None)
            }
            (Kind::Multiclass, None) => return None,
        };
        let chunk = self.cbpe.estimate_all(&rows)?;
        Some(EstimatedPerformance {
            problem_type: problem_type_name(self.kind),
            classes: self.cbpe.classes().to_vec(),
            chunk_size: Some(self.chunk_size),
            reference_rows: self.reference_rows,
            input_rows: rows.len(),
            rows_skipped: (predictions.len() - rows.len()) as u64,
            realized: false,
            calibration: self.cbpe.calibration(),
            chunks: vec![chunk],
        })
    }
}

fn binary_classes() -> Vec<String> {
    vec!["0".to_string(), "1".to_string()]
}

/// The classes a multiclass spec scores, sorted (as NannyML sorts them).
fn class_names(spec: &ModelQualitySpec) -> Vec<String> {
    spec.class_scores.iter().map(|(c, _)| c.clone()).collect()
}

fn binary_rows(scored: ScoredRows, labelled: bool) -> Rows {
    Rows {
        scores: vec![scored.scores],
        predicted: scored.predicted,
        labels: labelled.then_some(scored.labels),
    }
}

/// A multiclass model's predictions as CBPE reads them, in key order: each with its scores
/// and a predicted class among `classes` and, with `labels`, a label among them too. Other
/// rows are left out.
fn multiclass_rows(
    predictions: &PredictionRun,
    scores: &ClassScoreRun,
    classes: &[String],
    labels: Option<&LabelRun>,
) -> Rows {
    let index_of = |name: &str| classes.iter().position(|c| c == name);
    let mut rows = Rows {
        scores: vec![Vec::new(); classes.len()],
        predicted: Vec::new(),
        labels: labels.map(|_| Vec::new()),
    };
    let mut truth = labels.map(|l| l.rows().peekable());
    let mut cursor = scores.cursor();
    for (key, predicted) in predictions.rows() {
        let Predicted::Class(class) = predicted else {
            continue;
        };
        let Some(predicted) = index_of(predictions.class_name(class)) else {
            continue;
        };
        let Some(row_scores) = cursor.scores_of(key) else {
            continue;
        };
        if let (Some(truth), Some(labels), Some(all)) = (&mut truth, labels, &mut rows.labels) {
            while truth.next_if(|(k, _)| *k < key).is_some() {}
            let label = match truth.next_if(|(k, _)| *k == key) {
                Some((_, Truth::Class(id))) => index_of(labels.class_name(id)),
                _ => None,
            };
            let Some(label) = label else { continue };
            all.push(label);
        }
        rows.predicted.push(predicted);
        for (column, &score) in rows.scores.iter_mut().zip(row_scores) {
            column.push(score);
        }
    }
    rows
}
