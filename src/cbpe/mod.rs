//! Confidence-based performance estimation (CBPE), as NannyML 0.13.1 implements it: a
//! classifier's ROC AUC, F1, precision, recall, specificity, accuracy and confusion matrix
//! estimated from its scores alone, before (or without) labels.
//!
//! **Fit** on a labelled reference (scores, predicted labels, labels):
//! - per class, whether to calibrate the scores with isotonic regression, decided as NannyML
//!   does ([`calibration`]); the calibrator is then fitted on the whole reference;
//! - per metric, the sampling-error constants from the reference's per-row contributions;
//! - per metric, alert thresholds: mean ± 3 standard deviations (ddof 0) of the *realized*
//!   metric over the reference's chunks, clipped to the metric's limits.
//!
//! **Estimate** per chunk of rows: with `p` the calibrated probability of a class and `ŷ` the
//! model's prediction, the expected confusion matrix is TP = Σ_{ŷ=1} p, FP = Σ_{ŷ=1} (1 − p),
//! FN = Σ_{ŷ=0} p, TN = Σ_{ŷ=0} (1 − p), and every metric follows from it; the ROC AUC is the
//! area under the curve of cumulative expected true and false positives along the
//! uncalibrated scores. Multiclass metrics are macro means of the one-vs-rest estimates on
//! per-class calibrated, row-renormalised probabilities; accuracy is the mean calibrated
//! probability of the predicted class. Each estimate has a sampling error (`σ_ref / √(n·f)`),
//! a band of ±3 of them, and an alert when it is outside the thresholds.
//!
//! **Exact and approximate.** The confusion sums, F1, precision, recall, specificity and
//! accuracy are computed as NannyML computes them, down to numpy's pairwise summation; they
//! agree with NannyML's published values to ~1e-12. The ROC AUC estimate and the AUC sampling
//! error sort rows by score; among equal scores numpy's order is not reproducible (its sort is
//! unstable and CPU-dependent), driftd's is stable. Where calibrated probabilities differ
//! among rows of equal score (multiclass, after renormalisation), the estimate moves by at
//! most the area those ties span (see below); NannyML's own result moves the same way
//! between machines.
//!
//! **Streaming windows (a later step).** Everything but the ROC AUC is a function of per-window
//! sums: for each predicted class j and each class i, Σ p_i over the rows predicting j (K²
//! sums, and the rows per predicted class). Those merge exactly (up to the order of
//! floating-point addition) across objects, replicas and restarts, so a window keeps K² + K
//! numbers: [`ExpectedSums`] (tested: merged halves give the estimates of the whole to
//! 1e-12). The ROC AUC estimate needs the rows ordered by uncalibrated score with their calibrated p. A window can
//! keep, per class, a table score-bucket → (rows, Σ p) — exact when scores take few values
//! (e.g. rounded to two decimals: at most 101 buckets), else buckets of fixed width. Grouping
//! the rows of one bucket replaces the stair path inside it by its chord, which moves the area
//! by at most Σ_b tp_b·fp_b / (2·TP·FP) (tp_b, fp_b the bucket's expected positives and
//! negatives) — below 1/(2B) for B buckets of equal mass. The sampling errors need only the
//! window's row count; the thresholds and calibrators are fixed by the baseline.
//!
//! **Assumptions.** CBPE trusts the calibrated scores: it is right when P(y | score) is the
//! same in production as in the reference (covariate shift is fine; concept drift — the same
//! score meaning a different chance of being right — is invisible to it), and when the
//! reference is large enough for the calibrator (thousands of rows per class).

pub mod calibration;
pub mod metrics;
pub mod numpy;
pub mod sums;

use calibration::{CalibrationDecision, Isotonic};
use metrics::{Component, Counts, Expected, Reference, Spread};
use serde::Serialize;
pub use sums::{ExpectedSums, SumEstimates};

/// Rows one dataset may hold: the estimate keeps every row in memory — its score and
/// calibrated probability per class (16 bytes per class), predicted class and label (16
/// bytes) — so 20 million rows of a binary model take about 640 MB.
pub const MAX_ROWS: usize = 20_000_000;

/// Classes of a multiclass model (each adds a score column, a calibrator and K confusion
/// cells).
pub const MAX_CLASSES: usize = 64;

/// Binary or multiclass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Kind {
    Binary,
    Multiclass,
}

/// Rows of model output. Classes are indices into the estimator's class list.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    /// Per class, the model's score of that class for every row. Binary: one column, the
    /// score of class 1.
    pub scores: Vec<Vec<f64>>,
    /// The model's predicted class per row (binary: 0 or 1).
    pub predicted: Vec<usize>,
    /// The true class per row, when known.
    pub labels: Option<Vec<usize>>,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.predicted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.predicted.is_empty()
    }
}

/// How rows are cut into chunks: a fixed size, or a number of chunks per dataset (size =
/// rows / number). A last incomplete chunk is appended to the one before (NannyML's
/// `incomplete="append"`); fewer rows than one chunk make one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunking {
    Size(usize),
    Count(usize),
}

impl Chunking {
    /// Row ranges `[start, end)` of `rows` rows.
    pub fn ranges(self, rows: usize) -> Vec<(usize, usize)> {
        let size = match self {
            Chunking::Size(size) => size,
            Chunking::Count(count) => rows / count.max(1),
        }
        .max(1);
        if rows == 0 {
            return Vec::new();
        }
        let full = rows / size;
        if full == 0 {
            return vec![(0, rows)];
        }
        let mut ranges: Vec<(usize, usize)> =
            (0..full).map(|i| (i * size, (i + 1) * size)).collect();
        ranges.last_mut().expect("one full chunk").1 = rows;
        ranges
    }
}

/// Why an estimator could not be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CbpeError {
    #[error("the reference has no labelled rows")]
    EmptyReference,
    #[error("the reference has no labels")]
    NoLabels,
    #[error("{0} classes but {1} score columns")]
    ColumnMismatch(usize, usize),
    #[error("class {0:?} has no row in the reference's labels; every class needs some")]
    MissingClass(String),
    #[error("{0} rows, more than the {MAX_ROWS} one dataset may hold")]
    TooManyRows(usize),
    #[error("{0} classes, more than the {MAX_CLASSES} driftd handles")]
    TooManyClasses(usize),
}

/// How a metric's sampling error follows from the chunk's row count n.
#[derive(Debug, Clone, PartialEq)]
enum Sampling {
    /// σ / √(n·f)
    Universal(Component),
    /// σ / √n
    PerRow(f64),
    /// (σ / √n) · n: a confusion-matrix count.
    Count(f64),
    /// √(Σ_c var_c / (n·f_c)) / K · factor: a macro mean of K classes.
    Macro(Vec<Component>, f64),
}

impl Sampling {
    fn error(&self, n: usize) -> f64 {
        let n = n as f64;
        match self {
            Sampling::Universal(c) => c.spread / (n * c.fraction).sqrt(),
            Sampling::PerRow(std) => std / n.sqrt(),
            Sampling::Count(std) => (std / n.sqrt()) * n,
            Sampling::Macro(components, factor) => {
                let variances: Vec<f64> = components
                    .iter()
                    .map(|c| c.spread / (n * c.fraction))
                    .collect();
                numpy::sum(&variances).sqrt() / components.len() as f64 * factor
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct FittedMetric {
    name: String,
    sampling: Sampling,
    lower_threshold: f64,
    upper_threshold: f64,
    lower_limit: f64,
    upper_limit: Option<f64>,
}

/// One metric of one chunk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricEstimate {
    /// The estimate (NaN, written `null`, when it cannot be computed).
    pub value: f64,
    pub sampling_error: f64,
    /// value ± 3 sampling errors, clipped to the metric's limits.
    pub lower_confidence_boundary: f64,
    pub upper_confidence_boundary: f64,
    /// From the reference: mean ± 3 std of the realized metric over its chunks.
    pub lower_threshold: f64,
    pub upper_threshold: f64,
    /// The estimate is outside the thresholds.
    pub alert: bool,
    /// The metric computed from labels, when the rows have them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realized: Option<f64>,
}

/// One chunk's estimates, in the estimator's metric order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChunkEstimate {
    pub index: usize,
    /// First and last row (0-based, inclusive), as NannyML's chunk keys.
    pub start_row: usize,
    pub end_row: usize,
    pub rows: usize,
    pub metrics: indexmap::IndexMap<String, MetricEstimate>,
}

/// The calibration chosen for one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassCalibration {
    pub class: String,
    #[serde(flatten)]
    pub decision: CalibrationDecision,
}

/// A fitted CBPE estimator.
#[derive(Debug, Clone)]
pub struct Cbpe {
    kind: Kind,
    classes: Vec<String>,
    chunking: Chunking,
    /// Per score column: the isotonic calibrator, or none.
    calibrators: Vec<Option<Isotonic>>,
    decisions: Vec<CalibrationDecision>,
    metrics: Vec<FittedMetric>,
}

/// A binary estimator's metrics, in output order.
pub const BINARY_METRICS: [&str; 10] = [
    "roc_auc",
    "f1",
    "precision",
    "recall",
    "specificity",
    "accuracy",
    "true_positive",
    "false_positive",
    "true_negative",
    "false_negative",
];

/// Per-metric values of one chunk (estimates or realized), in metric order.
fn metric_names(kind: Kind, classes: &[String]) -> Vec<String> {
    let mut names: Vec<String> = BINARY_METRICS.iter().map(|s| s.to_string()).collect();
    if kind == Kind::Multiclass {
        names.truncate(6);
        for actual in classes {
            for predicted in classes {
                names.push(format!("true_{actual}_pred_{predicted}"));
            }
        }
    }
    names
}

/// `np.maximum`: NaN when either is NaN (an estimate that cannot be computed has no band).
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn mean_small(values: &[f64]) -> f64 {
    numpy::mean(values)
}

impl Cbpe {
    /// Fits on `reference`, which must have labels. `classes` names the classes (binary:
    /// `["0", "1"]`; multiclass: sorted, one score column each, as NannyML sorts them).
    pub fn fit(
        kind: Kind,
        classes: Vec<String>,
        reference: &Rows,
        chunking: Chunking,
    ) -> Result<Self, CbpeError> {
        let labels = reference.labels.as_ref().ok_or(CbpeError::NoLabels)?;
        let n = reference.len();
        if n == 0 {
            return Err(CbpeError::EmptyReference);
        }
        if n > MAX_ROWS {
            return Err(CbpeError::TooManyRows(n));
        }
        if classes.len() > MAX_CLASSES {
            return Err(CbpeError::TooManyClasses(classes.len()));
        }
        let columns = match kind {
            Kind::Binary => 1,
            Kind::Multiclass => classes.len(),
        };
        if reference.scores.len() != columns {
            return Err(CbpeError::ColumnMismatch(
                classes.len(),
                reference.scores.len(),
            ));
        }
        if kind == Kind::Multiclass {
            for (c, name) in classes.iter().enumerate() {
                if !labels.contains(&c) {
                    return Err(CbpeError::MissingClass(name.clone()));
                }
            }
        }
        // Calibration per score column (binary: of class 1).
        let column_class = |column: usize| match kind {
            Kind::Binary => 1,
            Kind::Multiclass => column,
        };
        let mut calibrators = Vec::with_capacity(columns);
        let mut decisions = Vec::with_capacity(columns);
        for (column, scores) in reference.scores.iter().enumerate() {
            let class = column_class(column);
            let y: Vec<f64> = labels.iter().map(|&l| f64::from(l == class)).collect();
            let decision = calibration::needs_calibration(&y, scores);
            calibrators.push(
                decision
                    .calibrated
                    .then(|| Isotonic::fit(scores, &y))
                    .flatten(),
            );
            decisions.push(decision);
        }
        let mut cbpe = Self {
            kind,
            classes,
            chunking,
            calibrators,
            decisions,
            metrics: Vec::new(),
        };
        let sampling = cbpe.sampling(reference, labels);
        let names = metric_names(kind, &cbpe.classes);
        let realized: Vec<Vec<f64>> = chunking
            .ranges(n)
            .into_iter()
            .map(|range| cbpe.realized(reference, labels, range))
            .collect();
        cbpe.metrics = names
            .into_iter()
            .zip(sampling)
            .enumerate()
            .map(|(m, (name, sampling))| {
                let upper_limit = (m < 6).then_some(1.0);
                let values: Vec<f64> = realized.iter().map(|chunk| chunk[m]).collect();
                let (lower_threshold, upper_threshold) =
                    metrics::thresholds(&values, Some(0.0), upper_limit);
                FittedMetric {
                    name,
                    sampling,
                    lower_threshold,
                    upper_threshold,
                    lower_limit: 0.0,
                    upper_limit,
                }
            })
            .collect();
        Ok(cbpe)
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    pub fn chunking(&self) -> Chunking {
        self.chunking
    }

    /// The calibration decision per class (binary: one, for class 1).
    pub fn calibration(&self) -> Vec<ClassCalibration> {
        self.decisions
            .iter()
            .enumerate()
            .map(|(column, decision)| ClassCalibration {
                class: match self.kind {
                    Kind::Binary => self.classes[1].clone(),
                    Kind::Multiclass => self.classes[column].clone(),
                },
                decision: *decision,
            })
            .collect()
    }

    /// Metric names, in output order.
    pub fn metric_names(&self) -> Vec<&str> {
        self.metrics.iter().map(|m| m.name.as_str()).collect()
    }

    /// The sampling-error constants, in metric order.
    fn sampling(&self, reference: &Rows, labels: &[usize]) -> Vec<Sampling> {
        let n = reference.len();
        let correct: Vec<f64> = reference
            .predicted
            .iter()
            .zip(labels)
            .map(|(p, l)| f64::from(p == l))
            .collect();
        let mut out = Vec::new();
        match self.kind {
            Kind::Binary => {
                let actual: Vec<bool> = labels.iter().map(|&l| l == 1).collect();
                let predicted: Vec<bool> = reference.predicted.iter().map(|&p| p == 1).collect();
                let r = Reference {
                    actual: &actual,
                    predicted: &predicted,
                };
                out.push(Sampling::Universal(metrics::auc_component(
                    &actual,
                    &reference.scores[0],
                    Spread::Std,
                )));
                out.push(Sampling::Universal(r.f1(Spread::Std)));
                out.push(Sampling::Universal(r.precision(Spread::Std)));
                out.push(Sampling::Universal(r.recall(Spread::Std)));
                out.push(Sampling::Universal(r.specificity(Spread::Std)));
                out.push(Sampling::PerRow(numpy::std(&correct)));
                let cell = |p: bool, a: bool| -> Sampling {
                    let indicator: Vec<f64> = predicted
                        .iter()
                        .zip(&actual)
                        .map(|(&pp, &aa)| f64::from(pp == p && aa == a))
                        .collect();
                    Sampling::Count(numpy::std(&indicator))
                };
                out.push(cell(true, true));
                out.push(cell(true, false));
                out.push(cell(false, false));
                out.push(cell(false, true));
            }
            Kind::Multiclass => {
                let k = self.classes.len();
                let per_class: Vec<(Vec<bool>, Vec<bool>)> = (0..k)
                    .map(|c| {
                        (
                            labels.iter().map(|&l| l == c).collect(),
                            reference.predicted.iter().map(|&p| p == c).collect(),
                        )
                    })
                    .collect();
                let components = |f: &dyn Fn(&Reference) -> Component| -> Vec<Component> {
                    per_class
                        .iter()
                        .map(|(actual, predicted)| f(&Reference { actual, predicted }))
                        .collect()
                };
                let auc: Vec<Component> = (0..k)
                    .map(|c| {
                        metrics::auc_component(&per_class[c].0, &reference.scores[c], Spread::Var)
                    })
                    .collect();
                out.push(Sampling::Macro(auc, 1.2));
                out.push(Sampling::Macro(components(&|r| r.f1(Spread::Var)), 1.0));
                out.push(Sampling::Macro(
                    components(&|r| r.precision(Spread::Var)),
                    1.0,
                ));
                out.push(Sampling::Macro(components(&|r| r.recall(Spread::Var)), 1.0));
                out.push(Sampling::Macro(
                    components(&|r| r.specificity(Spread::Var)),
                    1.0,
                ));
                out.push(Sampling::PerRow(numpy::std(&correct)));
                let mut cells = vec![vec![0usize; k]; k];
                for (&p, &l) in reference.predicted.iter().zip(labels) {
                    cells[l][p] += 1;
                }
                for row in &cells {
                    for &count in row {
                        out.push(Sampling::Count(numpy::std_of_indicators(count, n - count)));
                    }
                }
            }
        }
        out
    }

    /// Realized metrics of rows `range` (scikit-learn's, on the uncalibrated scores), in
    /// metric order; NaN where NannyML gives NaN (one class in the labels or predictions).
    fn realized(&self, rows: &Rows, labels: &[usize], (start, end): (usize, usize)) -> Vec<f64> {
        let labels = &labels[start..end];
        let predicted = &rows.predicted[start..end];
        let n = labels.len();
        let distinct = |values: &[usize]| {
            let mut v = values.to_vec();
            v.sort_unstable();
            v.dedup();
            v.len()
        };
        let single = distinct(labels) <= 1 || distinct(predicted) <= 1;
        let correct = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
        let accuracy = correct as f64 / n as f64;
        let mut out = Vec::new();
        match self.kind {
            Kind::Binary => {
                let y: Vec<f64> = labels.iter().map(|&l| f64::from(l == 1)).collect();
                let c = Counts::of(
                    predicted.iter().map(|&p| p == 1),
                    labels.iter().map(|&l| l == 1),
                );
                out.push(metrics::roc_auc(&y, &rows.scores[0][start..end]));
                let gated = |v: f64| if single { f64::NAN } else { v };
                out.push(gated(c.f1()));
                out.push(gated(c.precision()));
                out.push(gated(c.recall()));
                out.push(c.specificity());
                out.push(accuracy);
                out.extend([c.tp, c.fp, c.tn, c.fn_].map(|v| v as f64));
            }
            Kind::Multiclass => {
                let k = self.classes.len();
                let counts: Vec<Counts> = (0..k)
                    .map(|c| {
                        Counts::of(
                            predicted.iter().map(|&p| p == c),
                            labels.iter().map(|&l| l == c),
                        )
                    })
                    .collect();
                let all_classes = distinct(labels) == k;
                let auc: Vec<f64> = (0..k)
                    .map(|c| {
                        let y: Vec<f64> = labels.iter().map(|&l| f64::from(l == c)).collect();
                        metrics::roc_auc(&y, &rows.scores[c][start..end])
                    })
                    .collect();
                out.push(if all_classes {
                    mean_small(&auc)
                } else {
                    f64::NAN
                });
                let macro_of = |f: fn(&Counts) -> f64| {
                    if single {
                        f64::NAN
                    } else {
                        mean_small(&counts.iter().map(f).collect::<Vec<_>>())
                    }
                };
                out.push(macro_of(Counts::f1));
                out.push(macro_of(Counts::precision));
                out.push(macro_of(Counts::recall));
                out.push(macro_of(Counts::specificity));
                out.push(accuracy);
                let mut cells = vec![vec![0usize; k]; k];
                for (&p, &l) in predicted.iter().zip(labels) {
                    cells[l][p] += 1;
                }
                out.extend(cells.iter().flatten().map(|&v| v as f64));
            }
        }
        out
    }

    /// Calibrated probabilities per score column: binary as the calibrator gives them;
    /// multiclass renormalised per row (1/K where a row's sum is 0).
    pub fn calibrate(&self, rows: &Rows) -> Vec<Vec<f64>> {
        let mut calibrated: Vec<Vec<f64>> = rows
            .scores
            .iter()
            .zip(&self.calibrators)
            .map(|(scores, calibrator)| match calibrator {
                Some(model) => scores.iter().map(|&s| model.predict(s)).collect(),
                None => scores.clone(),
            })
            .collect();
        if self.kind == Kind::Multiclass {
            let k = calibrated.len();
            for row in 0..rows.len() {
                let values: Vec<f64> = calibrated.iter().map(|column| column[row]).collect();
                let denominator = numpy::sum(&values);
                for (column, value) in calibrated.iter_mut().zip(values) {
                    column[row] = if denominator != 0.0 {
                        value / denominator
                    } else {
                        1.0 / k as f64
                    };
                }
            }
        }
        calibrated
    }

    /// Estimates of rows `range` from the calibrated probabilities, in metric order.
    fn estimates(
        &self,
        rows: &Rows,
        calibrated: &[Vec<f64>],
        (start, end): (usize, usize),
    ) -> Vec<f64> {
        let predicted = &rows.predicted[start..end];
        let n = predicted.len() as f64;
        let mut out = Vec::new();
        match self.kind {
            Kind::Binary => {
                let p = &calibrated[0][start..end];
                let positive: Vec<bool> = predicted.iter().map(|&y| y == 1).collect();
                let e = Expected::of(&positive, p);
                out.push(metrics::estimate_roc_auc(p, &rows.scores[0][start..end]));
                out.push(e.f1());
                out.push(e.precision());
                out.push(e.recall());
                out.push(e.specificity());
                out.push((e.tp + e.tn) / n);
                // NannyML: np.mean(np.where(...)) * len.
                out.extend([e.tp, e.fp, e.tn, e.fn_].map(|v| (v / n) * n));
            }
            Kind::Multiclass => {
                let k = self.classes.len();
                let expected: Vec<Expected> = (0..k)
                    .map(|c| {
                        let positive: Vec<bool> = predicted.iter().map(|&y| y == c).collect();
                        Expected::of(&positive, &calibrated[c][start..end])
                    })
                    .collect();
                let auc: Vec<f64> = (0..k)
                    .map(|c| {
                        metrics::estimate_roc_auc(
                            &calibrated[c][start..end],
                            &rows.scores[c][start..end],
                        )
                    })
                    .collect();
                out.push(mean_small(&auc));
                let macro_of = |f: fn(&Expected) -> f64| {
                    mean_small(&expected.iter().map(f).collect::<Vec<_>>())
                };
                out.push(macro_of(Expected::f1));
                out.push(macro_of(Expected::precision));
                out.push(macro_of(Expected::recall));
                out.push(macro_of(Expected::specificity));
                let of_predicted: Vec<f64> = predicted
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| calibrated[c][start + i])
                    .collect();
                out.push(numpy::mean(&of_predicted));
                for actual in calibrated.iter().take(k) {
                    for predicted_class in 0..k {
                        let values: Vec<f64> = predicted
                            .iter()
                            .enumerate()
                            .map(|(i, &c)| {
                                if c == predicted_class {
                                    actual[start + i]
                                } else {
                                    0.0
                                }
                            })
                            .collect();
                        out.push(numpy::mean(&values) * n);
                    }
                }
            }
        }
        out
    }

    /// The mergeable expected-confusion sums of `rows` (what a streaming window would keep;
    /// see [`sums`]).
    pub fn expected_sums(&self, rows: &Rows) -> ExpectedSums {
        let calibrated = self.calibrate(rows);
        let mut sums = ExpectedSums::new(self.classes.len());
        for (row, &predicted) in rows.predicted.iter().enumerate() {
            let probabilities: Vec<f64> = match self.kind {
                Kind::Binary => vec![1.0 - calibrated[0][row], calibrated[0][row]],
                Kind::Multiclass => calibrated.iter().map(|column| column[row]).collect(),
            };
            sums.add(predicted, &probabilities);
        }
        sums
    }

    /// Estimates per chunk of `rows` (their labels, when present, give the realized values).
    pub fn estimate(&self, rows: &Rows) -> Vec<ChunkEstimate> {
        let calibrated = self.calibrate(rows);
        self.chunking
            .ranges(rows.len())
            .into_iter()
            .enumerate()
            .map(|(index, range)| self.chunk_estimate(rows, &calibrated, index, range))
            .collect()
    }

    /// Estimates of all of `rows` as one chunk (a daemon's window); `None` without rows. The
    /// thresholds are still those of the reference's chunks.
    pub fn estimate_all(&self, rows: &Rows) -> Option<ChunkEstimate> {
        if rows.is_empty() {
            return None;
        }
        let calibrated = self.calibrate(rows);
        Some(self.chunk_estimate(rows, &calibrated, 0, (0, rows.len())))
    }

    fn chunk_estimate(
        &self,
        rows: &Rows,
        calibrated: &[Vec<f64>],
        index: usize,
        range: (usize, usize),
    ) -> ChunkEstimate {
        let values = self.estimates(rows, calibrated, range);
        let realized = rows
            .labels
            .as_ref()
            .map(|labels| self.realized(rows, labels, range));
        let size = range.1 - range.0;
        let metrics = self
            .metrics
            .iter()
            .enumerate()
            .map(|(m, metric)| {
                let value = values[m];
                let sampling_error = metric.sampling.error(size);
                let estimate = MetricEstimate {
                    value,
                    sampling_error,
                    lower_confidence_boundary: nan_max(
                        value - 3.0 * sampling_error,
                        metric.lower_limit,
                    ),
                    upper_confidence_boundary: -nan_max(
                        -(value + 3.0 * sampling_error),
                        -metric.upper_limit.unwrap_or(f64::INFINITY),
                    ),
                    lower_threshold: metric.lower_threshold,
                    upper_threshold: metric.upper_threshold,
                    alert: value < metric.lower_threshold || value > metric.upper_threshold,
                    realized: realized.as_ref().map(|r| r[m]),
                };
                (metric.name.clone(), estimate)
            })
            .collect();
        ChunkEstimate {
            index,
            start_row: range.0,
            end_row: range.1 - 1,
            rows: size,
            metrics,
        }
    }
}

#[cfg(test)]
mod tests;
