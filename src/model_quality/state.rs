//! The mergeable per-window state of a model-quality monitor. Each kind keeps one accumulator
//! for the whole window and one per subsample ([`SAMPLES`] in all):
//!
//! - binary: the confusion counts, and the score table of the curves (exact counts, see
//!   scores.rs); merging adds counts, so two halves merged equal the whole exactly;
//! - multiclass: counts per (actual, predicted) class, exact in the same way;
//! - regression: Spark's running sums (Σ|e|, Σe², and Welford's mean and M2 of the nonzero
//!   ground truths), in row order and merged with Spark's partition merge. Counts merge
//!   exactly; the sums, as in Spark, agree with a single pass to rounding (≤ 1e-12 relative
//!   in the tests), not bit for bit.

use std::collections::BTreeMap;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::ProblemType;
use super::sample::{Membership, SAMPLES};
use super::scores::ScoreTable;

/// One labelled prediction, parsed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observation<'a> {
    /// `score` is the probability of label 1, when the monitor has a probability attribute.
    Binary {
        predicted: bool,
        actual: bool,
        score: Option<f64>,
    },
    /// Class names as canonical text (see batch.rs: `1.0` and `1` are the class `1`).
    Multiclass {
        predicted: &'a str,
        actual: &'a str,
    },
    Regression {
        predicted: f64,
        actual: f64,
    },
}

/// An observation of another problem type than the state's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {observation:?} observation cannot be added to a {state:?} state")]
pub struct ObservationMismatch {
    pub state: ProblemType,
    pub observation: ProblemType,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ModelQualityState {
    Binary(BinaryState),
    Multiclass(MulticlassState),
    Regression(RegressionState),
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BinaryState {
    pub(crate) confusion: [Confusion; SAMPLES],
    pub(crate) scores: ScoreTable,
}

/// Counts of one binary accumulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(crate) struct Confusion {
    pub true_positives: u64,
    pub false_positives: u64,
    pub true_negatives: u64,
    pub false_negatives: u64,
}

impl Confusion {
    pub(crate) fn rows(&self) -> u64 {
        self.true_positives + self.false_positives + self.true_negatives + self.false_negatives
    }

    pub(crate) fn positives(&self) -> u64 {
        self.true_positives + self.false_negatives
    }

    fn merge(&mut self, other: &Confusion) {
        self.true_positives += other.true_positives;
        self.false_positives += other.false_positives;
        self.true_negatives += other.true_negatives;
        self.false_negatives += other.false_negatives;
    }
}

/// The actual classes one multiclass state keeps counts for, and the predicted classes per
/// actual one (so at most 65,536 pairs). Real models have tens of classes; a file with a new
/// class name on every row would otherwise grow the state without bound. A row that would
/// open a class past this is left out and counted with the rows without a usable value.
/// States merged from several objects may hold up to this many classes each.
pub const MAX_CLASSES: usize = 256;

/// Rows a decoded state may hold: 2^40, about 10^12, past any window, yet small enough that
/// counts summed over 65,536 class pairs and merged many times over stay within u64. A state
/// with more is corrupt (fuzzing found one whose merge overflowed).
pub const MAX_STATE_ROWS: u64 = 1 << 40;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MulticlassState {
    /// actual class → predicted class → count per accumulator.
    pub(crate) counts: BTreeMap<CompactString, BTreeMap<CompactString, [u64; SAMPLES]>>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RegressionState {
    pub(crate) sums: [RegressionSums; SAMPLES],
}

/// What Spark's `RegressionMetrics` summarises, for one accumulator. Spark's summariser skips
/// zeros, so the mean and M2 are of the nonzero ground truths and the variance corrects for
/// the zeros; keeping that shape reproduces its numbers to the bit.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub(crate) struct RegressionSums {
    pub rows: u64,
    pub sum_absolute_error: f64,
    pub sum_squared_error: f64,
    pub nonzero_truths: u64,
    pub mean_nonzero_truth: f64,
    pub m2_nonzero_truth: f64,
}

impl RegressionSums {
    fn add(&mut self, predicted: f64, actual: f64) {
        self.rows += 1;
        let error = actual - predicted;
        self.sum_absolute_error += error.abs();
        self.sum_squared_error += error * error;
        if actual != 0.0 {
            let diff = actual - self.mean_nonzero_truth;
            self.mean_nonzero_truth += diff / (self.nonzero_truths + 1) as f64;
            self.m2_nonzero_truth += (actual - self.mean_nonzero_truth) * diff;
            self.nonzero_truths += 1;
        }
    }

    /// Spark's `SummarizerBuffer.merge`.
    fn merge(&mut self, other: &RegressionSums) {
        if other.rows == 0 {
            return;
        }
        if self.rows == 0 {
            *self = *other;
            return;
        }
        self.rows += other.rows;
        self.sum_absolute_error += other.sum_absolute_error;
        self.sum_squared_error += other.sum_squared_error;
        let (this, that) = (self.nonzero_truths as f64, other.nonzero_truths as f64);
        let total = this + that;
        if total != 0.0 {
            let delta = other.mean_nonzero_truth - self.mean_nonzero_truth;
            self.mean_nonzero_truth += delta * that / total;
            self.m2_nonzero_truth += other.m2_nonzero_truth + delta * delta * this * that / total;
        }
        self.nonzero_truths += other.nonzero_truths;
    }

    /// Σ(y − ȳ)² as Spark's `RegressionMetrics` gets it: its unbiased variance × (n − 1).
    pub(crate) fn total_sum_of_squares(&self) -> f64 {
        let n = self.rows as f64;
        let denominator = n - 1.0;
        if denominator <= 0.0 {
            return 0.0;
        }
        let nonzero = self.nonzero_truths as f64;
        let mean = self.mean_nonzero_truth;
        let variance = ((self.m2_nonzero_truth + mean * mean * nonzero * (n - nonzero) / n)
            / denominator)
            .max(0.0);
        variance * denominator
    }

    /// Spark's SSerr: the squared L2 norm of the errors, through its square root.
    pub(crate) fn squared_error(&self) -> f64 {
        self.sum_squared_error.sqrt().powi(2)
    }
}

impl ModelQualityState {
    /// Whether a multiclass state has room for the pair: it counts the classes already, or
    /// holds fewer than [`MAX_CLASSES`] of them. Other kinds always have room.
    pub fn admits_class_pair(&self, actual: &str, predicted: &str) -> bool {
        let Self::Multiclass(state) = self else {
            return true;
        };
        match state.counts.get(actual) {
            Some(row) => row.contains_key(predicted) || row.len() < MAX_CLASSES,
            None => state.counts.len() < MAX_CLASSES,
        }
    }

    pub fn new(problem_type: ProblemType) -> Self {
        match problem_type {
            ProblemType::BinaryClassification => Self::Binary(BinaryState::default()),
            ProblemType::MulticlassClassification => Self::Multiclass(MulticlassState::default()),
            ProblemType::Regression => Self::Regression(RegressionState::default()),
        }
    }

    pub fn problem_type(&self) -> ProblemType {
        match self {
            Self::Binary(_) => ProblemType::BinaryClassification,
            Self::Multiclass(_) => ProblemType::MulticlassClassification,
            Self::Regression(_) => ProblemType::Regression,
        }
    }

    /// Labelled rows in the window.
    pub fn rows(&self) -> u64 {
        self.sample_rows()[0]
    }

    /// Rows whose scores were not kept because the window outgrew the score table (their
    /// window reports no curves and no AUC); see [`super::MAX_SCORE_ENTRIES`].
    pub fn score_rows_refused(&self) -> u64 {
        match self {
            Self::Binary(state) => state.scores.refused_rows(),
            _ => 0,
        }
    }

    /// Adds one labelled prediction to the accumulators `membership` names.
    pub fn add(
        &mut self,
        membership: Membership,
        observation: Observation,
    ) -> Result<(), ObservationMismatch> {
        match (self, observation) {
            (
                Self::Binary(state),
                Observation::Binary {
                    predicted,
                    actual,
                    score,
                },
            ) => {
                for sample in membership.samples() {
                    let counts = &mut state.confusion[sample];
                    match (actual, predicted) {
                        (true, true) => counts.true_positives += 1,
                        (false, true) => counts.false_positives += 1,
                        (false, false) => counts.true_negatives += 1,
                        (true, false) => counts.false_negatives += 1,
                    }
                }
                if let Some(score) = score {
                    state.scores.add(score, actual, membership);
                }
            }
            (Self::Multiclass(state), Observation::Multiclass { predicted, actual }) => {
                let row = match state.counts.get_mut(actual) {
                    Some(row) => row,
                    None => state.counts.entry(actual.into()).or_default(),
                };
                let counts = match row.get_mut(predicted) {
                    Some(counts) => counts,
                    None => row.entry(predicted.into()).or_default(),
                };
                for sample in membership.samples() {
                    counts[sample] += 1;
                }
            }
            (Self::Regression(state), Observation::Regression { predicted, actual }) => {
                for sample in membership.samples() {
                    state.sums[sample].add(predicted, actual);
                }
            }
            (state, observation) => {
                return Err(ObservationMismatch {
                    state: state.problem_type(),
                    observation: match observation {
                        Observation::Binary { .. } => ProblemType::BinaryClassification,
                        Observation::Multiclass { .. } => ProblemType::MulticlassClassification,
                        Observation::Regression { .. } => ProblemType::Regression,
                    },
                });
            }
        }
        Ok(())
    }

    /// Adds `other`'s rows, as if they had been added to this state after its own.
    pub fn merge(&mut self, other: &ModelQualityState) -> Result<(), ObservationMismatch> {
        match (self, other) {
            (Self::Binary(a), Self::Binary(b)) => {
                for (a, b) in a.confusion.iter_mut().zip(&b.confusion) {
                    a.merge(b);
                }
                a.scores.merge(&b.scores);
            }
            (Self::Multiclass(a), Self::Multiclass(b)) => {
                for (actual, row) in &b.counts {
                    let into = a.counts.entry(actual.clone()).or_default();
                    for (predicted, counts) in row {
                        let target = into.entry(predicted.clone()).or_default();
                        for (t, c) in target.iter_mut().zip(counts) {
                            *t += c;
                        }
                    }
                }
            }
            (Self::Regression(a), Self::Regression(b)) => {
                for (a, b) in a.sums.iter_mut().zip(&b.sums) {
                    a.merge(b);
                }
            }
            (state, other) => {
                return Err(ObservationMismatch {
                    state: state.problem_type(),
                    observation: other.problem_type(),
                });
            }
        }
        Ok(())
    }

    /// Puts the score table in its canonical (sorted) form; evaluation and encoding need it.
    pub(crate) fn compact(&mut self) {
        if let Self::Binary(state) = self {
            state.scores.compact();
        }
    }

    /// [`Self::sample_rows`] with checked sums: `None` where a total passes u64 (only a
    /// corrupt state's counts can).
    fn checked_sample_rows(&self) -> Option<[u64; SAMPLES]> {
        let mut rows = [0u64; SAMPLES];
        for (s, total) in rows.iter_mut().enumerate() {
            *total = match self {
                Self::Binary(state) => {
                    let c = &state.confusion[s];
                    [c.false_positives, c.true_negatives, c.false_negatives]
                        .into_iter()
                        .try_fold(c.true_positives, u64::checked_add)?
                }
                Self::Multiclass(state) => state
                    .counts
                    .values()
                    .flat_map(|row| row.values())
                    .try_fold(0u64, |sum, c| sum.checked_add(c[s]))?,
                Self::Regression(state) => state.sums[s].rows,
            };
        }
        Some(rows)
    }

    /// Rows per accumulator: the window's, then each subsample's.
    pub(crate) fn sample_rows(&self) -> [u64; SAMPLES] {
        match self {
            Self::Binary(state) => std::array::from_fn(|s| state.confusion[s].rows()),
            Self::Multiclass(state) => std::array::from_fn(|s| {
                state
                    .counts
                    .values()
                    .flat_map(|row| row.values())
                    .map(|c| c[s])
                    .sum()
            }),
            Self::Regression(state) => std::array::from_fn(|s| state.sums[s].rows),
        }
    }

    /// What a decoded state must satisfy: at most [`MAX_STATE_ROWS`] rows (so that sums and
    /// merges of decoded states stay far from u64 overflow), no subsample holding more than the
    /// whole window, and a consistent score table.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let Some(rows) = self.checked_sample_rows() else {
            return Err("its counts overflow a 64-bit total".into());
        };
        if rows[0] > MAX_STATE_ROWS {
            return Err(format!(
                "{} rows, more than a state may hold ({MAX_STATE_ROWS})",
                rows[0]
            ));
        }
        if let Self::Regression(state) = self
            && state.sums.iter().any(|s| s.nonzero_truths > s.rows)
        {
            return Err("more nonzero ground truths than rows".into());
        }
        if let Self::Binary(state) = self {
            state.scores.validate()?;
            if state.scores.rows() > state.confusion[0].rows() {
                return Err("more scores than rows".into());
            }
        }
        let rows = self.sample_rows();
        if rows[1..].iter().any(|&n| n > rows[0]) {
            return Err(format!(
                "a subsample holds more rows than the window: {rows:?}"
            ));
        }
        Ok(())
    }
}
