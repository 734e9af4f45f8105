//! Model quality: the metrics SageMaker Model Monitor's model-quality monitor computes from
//! predictions and their ground truth (FORMATS.md §7.2), and its three files —
//! `statistics.json`, `constraints.json` and `constraint_violations.json` (§4.4).
//!
//! Everything here is pure and synchronous. A window keeps a [`ModelQualityState`]: exact counts
//! (confusion matrices, and for binary scores a sorted table of score counts) and, for
//! regression, Spark's running sums. States merge ([`ModelQualityState::merge`]), encode to
//! bytes ([`encode`] / [`decode`]) and evaluate to [`ModelQualityStatistics`].
//!
//! Every metric carries a `standard_deviation` as Model Monitor reports it: from five 80 %
//! subsamples, when the window holds at least [`MIN_ROWS_FOR_STD`] rows, else `"NaN"`. Model
//! Monitor draws the subsamples at random; driftd decides a row's membership from a hash of its
//! key ([`Membership`]), so the same rows land in the same subsamples whatever the order, the
//! replica or the restart, and the five subsamples are kept as five more accumulators beside the
//! whole window's.
//!
//! Where Model Monitor's behaviour is not documented, the choices (and the evidence) are:
//! - Formulas are Spark MLlib's (Binary/Multiclass/RegressionMetrics), which reproduce every
//!   documented number; regression sums run in row order, as one Spark partition does, which
//!   reproduces the real SageMaker regression output to the last bit.
//! - The best constant classifier always predicts the label `1`: it gives the documented binary
//!   values and the documented multiclass ones (where class `1` is the minority class).
//! - A probability threshold makes the predicted label `1` when the probability is *above* it
//!   (Spark's `Binarizer`); without a threshold the inference attribute is the predicted label.
//! - The standard deviation is the sample standard deviation (n − 1) of the five subsample
//!   values; the documented numbers cannot tell n − 1 from n.
//! - Suggested constraints are the baseline's own values: `GreaterThanThreshold` for error
//!   rates and errors, `LessThanThreshold` for the rest; best-constant-classifier metrics are
//!   references, not constrained.

mod batch;
mod class_scores;
mod codec;
mod files;
mod join;
mod metrics;
mod sample;
mod scores;
mod state;
#[cfg(test)]
mod tests;

pub(crate) use batch::canonical_class;
pub use batch::{BatchError, RowSkip, add_batch};
pub use class_scores::{ClassScoreRun, ScoreCursor};
pub use codec::{CodecError, FORMAT_VERSION, decode, encode};
pub use files::{
    CONSTRAINTS_FILE, ComparisonOperator, Constraint, ModelQualityConstraints,
    ModelQualityViolation, ModelQualityViolations, STATISTICS_FILE, StatisticsFile, check,
    metric_values, statistics_file, suggest_constraints,
};
pub use join::{
    Absorbed, JoinCounts, JoinKey, JoinState, JoinedWindow, LABEL_JOIN_FILE, LabelRun, LateRows,
    MAX_JOIN_CLASSES, Predicted, PredictionRun, ScoredRows, Staged, Truth, Ttl, join_key,
};
pub use metrics::{ConfusionMatrix, Curve, MetricValue, ModelQualityStatistics, evaluate};
pub use sample::{Membership, SUBSAMPLES, key_hash};
pub use scores::MAX_SCORE_ENTRIES;
pub use state::{MAX_CLASSES, MAX_STATE_ROWS, ModelQualityState, Observation, ObservationMismatch};

use serde::{Deserialize, Serialize};

/// Below this many rows Model Monitor reports `"standard_deviation": "NaN"` (DG
/// `model-monitor-model-quality-metrics.md`).
pub const MIN_ROWS_FOR_STD: u64 = 200;

/// Model Monitor's `problem_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum ProblemType {
    #[value(name = "BinaryClassification")]
    BinaryClassification,
    #[value(name = "MulticlassClassification")]
    MulticlassClassification,
    #[value(name = "Regression")]
    Regression,
}

impl ProblemType {
    /// The key of the metrics in `statistics.json`, e.g. `binary_classification_metrics`.
    pub fn metrics_key(self) -> &'static str {
        match self {
            ProblemType::BinaryClassification => "binary_classification_metrics",
            ProblemType::MulticlassClassification => "multiclass_classification_metrics",
            ProblemType::Regression => "regression_metrics",
        }
    }

    /// The key of the constraints in `constraints.json`, e.g. `regression_constraints`.
    pub fn constraints_key(self) -> &'static str {
        match self {
            ProblemType::BinaryClassification => "binary_classification_constraints",
            ProblemType::MulticlassClassification => "multiclass_classification_constraints",
            ProblemType::Regression => "regression_constraints",
        }
    }
}

/// What a model-quality monitor reads from each row, named as Model Monitor names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelQualitySpec {
    pub problem_type: ProblemType,
    /// The column holding the model's prediction (a label, or a number for regression).
    pub inference_attribute: Option<String>,
    /// Binary classification: the column holding the model's score for label `1`; it gives
    /// the ROC and precision-recall curves and the AUC.
    pub probability_attribute: Option<String>,
    /// Binary classification: with a probability attribute, the predicted label is `1` when
    /// the probability is above this.
    pub probability_threshold: Option<f64>,
    /// The column holding the ground truth.
    pub ground_truth_attribute: String,
    /// driftd's addition for estimating a multiclass monitor (`[monitor.estimate]`): per
    /// class, sorted by class, the column holding the model's score of it. Empty otherwise.
    #[serde(default)]
    pub class_scores: Vec<(String, String)>,
}

impl ModelQualitySpec {
    /// What is missing or contradictory, in words naming the setting to change.
    pub fn validate(&self) -> Result<(), String> {
        let derives_label =
            self.probability_attribute.is_some() && self.probability_threshold.is_some();
        match self.problem_type {
            ProblemType::BinaryClassification if self.inference_attribute.is_none() && !derives_label => {
                Err("BinaryClassification needs inference_attribute, or probability_attribute with probability_threshold".into())
            }
            ProblemType::MulticlassClassification | ProblemType::Regression
                if self.inference_attribute.is_none() =>
            {
                Err(format!("{:?} needs inference_attribute", self.problem_type))
            }
            _ if self.probability_threshold.is_some_and(|t| !t.is_finite()) => {
                Err("probability_threshold must be a finite number".into())
            }
            _ if self.probability_threshold.is_some() && self.probability_attribute.is_none() => {
                Err("probability_threshold needs probability_attribute".into())
            }
            _ => Ok(()),
        }
    }
}
